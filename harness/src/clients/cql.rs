//! CQL client setup: sessions (login, TLS, address translation), the pipeline's schema init, the statements the pipeline uses.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::value::CqlTimestamp;

use super::{ClientError, CqlConnection, retry, retry_unless};
use crate::scenario::TableSettings;
use crate::wire::Record;

/// The keyspace replication used unless the caller gives another: one replica (one node).
pub const REPLICATION_ONE: &str = "{'class': 'SimpleStrategy', 'replication_factor': 1}";

/// Opens a session, retrying with backoff while the database is still starting.
///
/// Schema metadata fetching is off: Cassandra 2.1 has no `system_schema` keyspace.
pub async fn connect(cql: &CqlConnection, deadline: Duration) -> Result<Session, ClientError> {
    let mut builder = SessionBuilder::new()
        .known_nodes(&cql.contact_points)
        .fetch_schema_metadata(false)
        .fetch_full_schema_metadata(false)
        .connection_timeout(Duration::from_secs(3));
    if let Some(login) = &cql.security.login {
        builder = builder.user(&login.username, login.password.expose());
    }
    if let Some(context) = cql.security.ssl_context()? {
        builder = builder.tls_context(Some(context));
    }
    if !cql.translation.is_empty() {
        let translation: HashMap<_, _> = cql.translation.iter().copied().collect();
        builder = builder.address_translator(Arc::new(translation));
    }
    let hopeless = |error: &scylla::errors::NewSessionError| refused(&error.to_string());
    retry_unless(deadline, || builder.build(), hopeless)
        .await
        .map_err(|gave_up| ClientError::gave_up("Cassandra", cql.address(), gave_up, refused))
}

/// Whether a session error is one waiting does not mend: wrong credentials, a certificate the
/// client cannot verify, or the server refusing the client's certificate (or its absence).
fn refused(error: &str) -> bool {
    [
        "Authentication failed",
        "certificate verify failed",
        "certificate required",
        "bad certificate",
        "unknown ca",
    ]
    .iter()
    .any(|needle| error.contains(needle))
}

/// The pipeline's init step: keyspace (with `replication`, a CQL map like [`REPLICATION_ONE`])
/// and the table `table` describes (roadtest's `telemetry` by default: partition key
/// `vehicle_id`, clustering key `timestamp` newest first, every record field; see
/// [`crate::table::ddl`]). Idempotent. `address` names the database in errors.
pub async fn create_schema(
    session: &Session,
    address: &str,
    keyspace: &str,
    replication: &str,
    table: &TableSettings,
) -> Result<(), ClientError> {
    let statements = [
        format!("CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}"),
        crate::table::ddl(table, keyspace),
    ];
    for statement in statements {
        // DDL can time out while Cassandra is busy flushing; retry it for a while.
        retry(Duration::from_secs(60), || {
            session.query_unpaged(statement.as_str(), ())
        })
        .await
        .map_err(|(_, message)| ClientError::Cql {
            address: address.to_string(),
            what: format!("schema init ({})", first_words(&statement)),
            source: message.into(),
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

/// The values of [`insert_statement`] for one record, in its order.
pub type InsertValues<'a> = (&'a str, CqlTimestamp, i64, f64, f64, f64, f64, f64, i32);

/// A record's values for [`insert_statement`].
pub fn insert_values(record: &Record) -> InsertValues<'_> {
    (
        record.vehicle_id.as_str(),
        CqlTimestamp(record.timestamp),
        record.seq as i64,
        record.latitude,
        record.longitude,
        record.speed,
        record.temperature,
        record.humidity,
        record.format_version as i32,
    )
}

fn first_words(statement: &str) -> String {
    statement
        .split_whitespace()
        .take(6)
        .collect::<Vec<_>>()
        .join(" ")
}
