//! The run's own connection to the database the pipeline writes (Cassandra or PostgreSQL),
//! bypassing the fault proxies: it creates the schema, verifies the rows and cleans up.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use scylla::client::session::Session;

use crate::clients::pg::PgEndpoint;
use crate::clients::{ClientError, cql, pg, pg_table};
use crate::faults::tamper::TamperRecord;
use crate::fleet::FleetPlan;
use crate::measure::RunClock;
use crate::scenario::{Scenario, TableSettings};
use crate::table::{TableError, TableLayout};
use crate::targets::{Endpoints, Target};
use crate::verify::{VerifyOutcome, verify, verify_postgres};
use crate::wire::RecordFormat;

/// Bound on connecting to PostgreSQL again after its connection broke (a crash and restart).
const RECONNECT_WAIT: Duration = Duration::from_secs(30);

/// A direct connection to the run's database.
#[derive(Clone)]
pub(super) enum Database {
    Cql(Arc<Session>),
    Postgres(PgConnection),
}

/// The run's PostgreSQL client, connected again on first use after a restart of the server broke
/// it (tokio-postgres does not reconnect; the scylla session does by itself).
#[derive(Clone)]
pub(super) struct PgConnection {
    endpoint: Arc<PgEndpoint>,
    client: Arc<Mutex<Arc<tokio_postgres::Client>>>,
}

impl PgConnection {
    /// The client, a new one when the last one's connection is closed.
    async fn client(&self) -> Result<Arc<tokio_postgres::Client>, ClientError> {
        let current = {
            let guard = self.client.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(&guard)
        };
        if !current.is_closed() {
            return Ok(current);
        }
        let fresh = Arc::new(pg::connect(&self.endpoint, RECONNECT_WAIT).await?);
        *self.client.lock().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&fresh);
        Ok(fresh)
    }

    fn url(&self) -> &str {
        &self.endpoint.url
    }
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
            Some(endpoint) => Database::Postgres(PgConnection {
                client: Arc::new(Mutex::new(Arc::new(pg::connect(endpoint, wait).await?))),
                endpoint: Arc::new(endpoint.clone()),
            }),
            None => Database::Cql(Arc::new(cql::connect(&endpoints.cql_direct, wait).await?)),
        })
    }

    /// Which database, for messages.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Database::Cql(_) => "Cassandra",
            Database::Postgres(_) => "PostgreSQL",
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
            Database::Postgres(connection) => {
                let client = connection.client().await?;
                pg::create_schema(&client, connection.url(), keyspace, table).await
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
            Database::Postgres(connection) => {
                let read = || async {
                    let client = connection.client().await.map_err(|e| e.to_string())?;
                    let columns = pg_table::read_columns(&client, keyspace, &settings.name).await;
                    columns.map_err(|e| e.to_string())
                };
                crate::table::wait_for_columns(keyspace, settings, format, wait, read).await
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
            Database::Postgres(connection) => {
                let count = async {
                    let client = connection.client().await.map_err(|e| e.to_string())?;
                    let counted = pg_table::count_rows(&client, keyspace, layout).await;
                    counted.map_err(|e| e.to_string())
                };
                match tokio::time::timeout(timeout, count).await {
                    Ok(counted) => counted,
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
            Database::Postgres(_) => Ok(Vec::new()),
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
            Database::Postgres(connection) => {
                let client = connection.client().await?;
                verify_postgres(&client, connection.url(), keyspace, plan, clock, layout).await
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
            Database::Postgres(connection) => {
                let client = connection.client().await.map_err(|e| e.to_string())?;
                pg::drop_schema(&client, connection.url(), keyspace)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }
}
