//! The shared services (`roadtest services up`) that several integration test files run against as existing clusters: where they listen, checked to answer.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The services' Kafka bootstrap and CQL contact: the environment `ci/test` exports, else
/// `$ROADTEST_HOME/services/services.env`. Panics with what to do when they do not answer.
pub fn services() -> (String, String) {
    let home = roadtest::targets::local::roadtest_home();
    let file = std::fs::read_to_string(home.join("services/services.env")).unwrap_or_default();
    let value = |key: &str| {
        std::env::var(key).ok().or_else(|| {
            file.lines()
                .find_map(|line| line.strip_prefix(&format!("{key}=")).map(str::to_string))
        })
    };
    let (Some(kafka), Some(cql)) = (
        value("ROADTEST_KAFKA_BOOTSTRAP"),
        value("ROADTEST_CQL_CONTACT"),
    ) else {
        panic!(
            "the local services are not up (no services.env under {}); start them with \
             `roadtest services install && roadtest services up`",
            home.display()
        );
    };
    for (name, address) in [("Tansu", &kafka), ("the CQL bridge", &cql)] {
        let reachable = address
            .parse::<SocketAddr>()
            .ok()
            .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).ok());
        assert!(
            reachable.is_some(),
            "{name} does not answer on {address}; start the services with `roadtest services up`"
        );
    }
    (kafka, cql)
}

/// The `roadtest_*` keyspaces of the services' Cassandra.
pub async fn run_keyspaces(contact: &str) -> Vec<String> {
    let connection = roadtest::clients::CqlConnection {
        contact_points: vec![contact.to_string()],
        ..Default::default()
    };
    let session = roadtest::clients::cql::connect(&connection, Duration::from_secs(30))
        .await
        .expect("CQL session");
    let rows = session
        .query_unpaged("SELECT keyspace_name FROM system.schema_keyspaces", ())
        .await
        .expect("keyspaces")
        .into_rows_result()
        .expect("rows");
    let mut names: Vec<String> = rows
        .rows::<(String,)>()
        .expect("text rows")
        .filter_map(Result::ok)
        .map(|(name,)| name)
        .filter(|name| name.starts_with("roadtest_"))
        .collect();
    names.sort();
    names
}
