//! The run's own connection to the database the pipeline writes (Cassandra or PostgreSQL),
//! bypassing the fault proxies: it creates the schema, verifies the rows and cleans up.

use std::sync::Arc;
use std::time::Duration;

use scylla::client::session::Session;

use crate::clients::{ClientError, cql, pg, pg_table};
use crate::faults::tamper::TamperRecord;
use crate::fleet::FleetPlan;
use crate::measure::RunClock;
use crate::scenario::{Scenario, TableSettings};
use crate::table::{TableError, TableLayout};
use crate::targets::{Endpoints, Target};
use crate::verify::{VerifyOutcome, verify, verify_postgres};
use crate::wire::RecordFormat;

/// A direct connection to the run's database.
#[derive(Clone)]
pub(super) enum Database {
    Cql(Arc<Session>),
    Postgres {
        client: Arc<tokio_postgres::Client>,
        url: String,
    },
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Database {
    /// Connects to the database the target serves, waiting up to `wait` for it.
    pub(super) async fn connect(
        endpoints: &Endpoints,
        wait: Duration,
    ) -> Result<Self, ClientError> {
        Ok(match &endpoints.postgres_direct {
            Some(endpoint) => Database::Postgres {
                client: Arc::new(pg::connect(endpoint, wait).await?),
                url: endpoint.url.clone(),
            },
            None => Database::Cql(Arc::new(cql::connect(&endpoints.cql_direct, wait).await?)),
        })
    }

    /// Which database, for messages.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Database::Cql(_) => "Cassandra",
            Database::Postgres { .. } => "PostgreSQL",
        }
    }

    /// Creates the keyspace (PostgreSQL: schema) and roadtest's table, unless the scenario says
    /// the system under test creates them.
    pub(super) async fn create_schema(
        &self,
        endpoints: &Endpoints,
        keyspace: &str,
        target: &Target,
        scenario: &Scenario,
    ) -> Result<(), ClientError> {
        let table = &scenario.pipeline.table;
        match self {
            _ if !table.create => Ok(()),
            Database::Cql(session) => {
                let address = endpoints.cql_direct.address();
                let replication = target.cql_replication();
                cql::create_schema(session, &address, keyspace, replication, table).await
            }
            Database::Postgres { client, url } => {
                pg::create_schema(client, url, keyspace, table).await
            }
        }
    }

    /// Waits (up to `wait`) until the table `settings` names exists, then checks it against the
    /// message `format` and returns how to read it.
    pub(super) async fn wait_and_check(
        &self,
        keyspace: &str,
        settings: &TableSettings,
        format: &RecordFormat,
        wait: Duration,
    ) -> Result<TableLayout, TableError> {
        match self {
            Database::Cql(session) => {
                crate::table::wait_and_check(session, keyspace, settings, format, wait).await
            }
            Database::Postgres { client, .. } => {
                pg_table::wait_and_check(client, keyspace, settings, format, wait).await
            }
        }
    }

    /// The rows of the table `layout` describes (within its window), counted within `timeout`.
    pub(super) async fn count_rows(
        &self,
        keyspace: &str,
        layout: &TableLayout,
        timeout: Duration,
    ) -> Result<u64, String> {
        match self {
            Database::Cql(session) => layout.count_rows(session, keyspace, timeout).await,
            Database::Postgres { client, .. } => {
                let count = pg_table::count_rows(client, keyspace, layout);
                match tokio::time::timeout(timeout, count).await {
                    Ok(counted) => counted.map_err(|e| e.to_string()),
                    Err(_) => Err(format!("no count within {timeout:?}")),
                }
            }
        }
    }

    /// Carries out the scenario's tamper faults on the stored rows (Cassandra only: the
    /// scenario's rules refuse them on PostgreSQL).
    pub(super) async fn tamper(
        &self,
        keyspace: &str,
        layout: &TableLayout,
        scenario: &Scenario,
        plan: &FleetPlan,
    ) -> Result<Vec<TamperRecord>, ClientError> {
        match self {
            Database::Cql(session) => {
                super::tamper::tamper(session, keyspace, layout, scenario, plan).await
            }
            Database::Postgres { .. } => Ok(Vec::new()),
        }
    }

    /// Every event of `plan` against the rows (`layout`: how the table holds them).
    pub(super) async fn verify(
        &self,
        keyspace: &str,
        plan: &FleetPlan,
        clock: RunClock,
        layout: &TableLayout,
    ) -> Result<VerifyOutcome, ClientError> {
        match self {
            Database::Cql(session) => {
                verify(Arc::clone(session), keyspace, plan, clock, layout).await
            }
            Database::Postgres { client, url } => {
                verify_postgres(client, url, keyspace, plan, clock, layout).await
            }
        }
    }

    /// Drops the run's keyspace (PostgreSQL: schema) and what it holds.
    pub(super) async fn drop_keyspace(&self, keyspace: &str) -> Result<(), String> {
        match self {
            Database::Cql(session) => session
                .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Database::Postgres { client, url } => pg::drop_schema(client, url, keyspace)
                .await
                .map_err(|e| e.to_string()),
        }
    }
}
