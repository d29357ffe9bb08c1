//! CQL client setup: sessions through the v4 bridge, the pipeline's schema init, the statements the pipeline uses.

use std::net::SocketAddr;
use std::time::Duration;

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

use super::{ClientError, retry};

/// Opens a session, retrying with backoff while the database is still starting.
///
/// Schema metadata fetching is off: Cassandra 2.1 has no `system_schema` keyspace.
pub async fn connect(contact: SocketAddr, deadline: Duration) -> Result<Session, ClientError> {
    retry(deadline, || async {
        SessionBuilder::new()
            .known_node_addr(contact)
            .fetch_schema_metadata(false)
            .fetch_full_schema_metadata(false)
            .connection_timeout(Duration::from_secs(3))
            .build()
            .await
    })
    .await
    .map_err(|(waited, last_error)| ClientError::Unreachable {
        service: "Cassandra (through the CQL bridge)",
        address: contact.to_string(),
        waited,
        last_error,
    })
}

/// The pipeline's init step: keyspace and the `telemetry` table, partition key `vehicle_id`,
/// clustering key `timestamp` newest first, every record field. Idempotent.
pub async fn create_schema(
    session: &Session,
    contact: SocketAddr,
    keyspace: &str,
) -> Result<(), ClientError> {
    let statements = [
        format!(
            "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = \
             {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.telemetry (\
             vehicle_id text, timestamp timestamp, seq bigint, \
             latitude double, longitude double, speed double, \
             temperature double, humidity double, format_version int, \
             PRIMARY KEY ((vehicle_id), timestamp)) \
             WITH CLUSTERING ORDER BY (timestamp DESC)"
        ),
    ];
    for statement in statements {
        // DDL can time out while Cassandra is busy flushing; retry it for a while.
        retry(Duration::from_secs(60), || {
            session.query_unpaged(statement.as_str(), ())
        })
        .await
        .map_err(|(_, message)| ClientError::Cql {
            address: contact.to_string(),
            what: format!("schema init ({})", first_words(&statement)),
            message,
        })?;
    }
    Ok(())
}

/// The upsert the consumer writes each record with.
pub fn insert_statement(keyspace: &str) -> String {
    format!(
        "INSERT INTO {keyspace}.telemetry (vehicle_id, timestamp, seq, latitude, longitude, \
         speed, temperature, humidity, format_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
}

fn first_words(statement: &str) -> String {
    statement
        .split_whitespace()
        .take(6)
        .collect::<Vec<_>>()
        .join(" ")
}
