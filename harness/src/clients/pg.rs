//! PostgreSQL, the second sink: connecting, the run's table in a schema of the run's own, the
//! reference consumer's batched upsert (one statement, one transaction) and reading rows back
//! with their write times: the commit time of the transaction that wrote each
//! (`track_commit_timestamp`), or the table's own write-time column ([`super::pg_table`]).
//!
//! tokio-postgres: it runs on the tokio runtime the rest of roadtest uses, prepares statements,
//! and pipelines the queries of concurrent tasks over one connection (the consumer's batches in
//! flight share it), with no macros or compile-time database. Unlike the CQL driver it does not
//! reconnect by itself: [`PgWriter`] does, after PostgreSQL restarts.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Statement};

use super::security::Password;
use super::{ClientError, retry_unless};
use crate::scenario::TableSettings;
use crate::table::TableLayout;
use crate::wire::Record;

/// The variable holding the password of the PostgreSQL user (`roadtest run --postgres-url`,
/// `roadtest ingest --postgres-url`): libpq's `PGPASSWORD` under roadtest's name. A URL never
/// carries it: URLs are logged, shown by `ps` and written into the replay command.
pub const POSTGRES_PASSWORD_ENV: &str = "ROADTEST_POSTGRES_PASSWORD";

/// The table's columns after `vehicle_id` and `timestamp`, in the order the upsert binds them:
/// roadtest's value fields, each in a column of its own name.
const VALUE_COLUMNS: [&str; 7] = crate::scenario::VALUE_FIELDS;

/// How long one connection attempt of the writer may take before the batch fails (and the
/// consumer's core retries it).
const WRITER_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// `host:port` of a connection string, for messages (the string itself may hold a password).
pub fn address_of(url: &str) -> String {
    let Ok(config) = url.parse::<tokio_postgres::Config>() else {
        return String::from("(unparsable PostgreSQL URL)");
    };
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => String::from("localhost"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

/// A PostgreSQL server to connect to: a connection string without a password, and the password
/// (from [`POSTGRES_PASSWORD_ENV`]) kept apart, so it reaches no argument, log line or report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgEndpoint {
    pub url: String,
    pub password: Option<Password>,
}

impl PgEndpoint {
    /// A server that needs no password (the local target's own, with trust on loopback).
    pub fn new(url: impl Into<String>) -> PgEndpoint {
        PgEndpoint {
            url: url.into(),
            password: None,
        }
    }

    /// `url` with the password from `lookup(POSTGRES_PASSWORD_ENV)` (the environment; an empty
    /// value is none).
    pub fn with_password_from(url: String, lookup: impl Fn(&str) -> Option<String>) -> PgEndpoint {
        let password = lookup(POSTGRES_PASSWORD_ENV).filter(|password| !password.is_empty());
        PgEndpoint {
            url,
            password: password.map(Password::new),
        }
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        address_of(&self.url)
    }

    /// The connection settings: the URL's, plus the password.
    fn config(&self) -> Result<tokio_postgres::Config, tokio_postgres::Error> {
        let mut config: tokio_postgres::Config = self.url.parse()?;
        if let Some(password) = &self.password {
            config.password(password.expose());
        }
        Ok(config)
    }

    /// The same server and login at `address` instead (roadtest's fault proxy in front of it),
    /// as a key-value connection string.
    pub fn at(&self, address: std::net::SocketAddr) -> PgEndpoint {
        let config = self.url.parse::<tokio_postgres::Config>().ok();
        let quoted = |text: &str| format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"));
        let mut url = format!("host={} port={}", address.ip(), address.port());
        if let Some(user) = config.as_ref().and_then(|c| c.get_user()) {
            url.push_str(&format!(" user={}", quoted(user)));
        }
        if let Some(dbname) = config.as_ref().and_then(|c| c.get_dbname()) {
            url.push_str(&format!(" dbname={}", quoted(dbname)));
        }
        url.push_str(" connect_timeout=3");
        PgEndpoint {
            url,
            password: self.password.clone(),
        }
    }
}

/// Checks a connection string given on the command line: it parses, names a TCP host, and
/// holds no password (that comes from [`POSTGRES_PASSWORD_ENV`]).
pub fn check_url(flag: &str, url: &str) -> Result<(), String> {
    let example = "postgresql://USER@HOST:5432/DATABASE";
    let config: tokio_postgres::Config = url.parse().map_err(|e| {
        format!("{flag}: not a PostgreSQL connection string ({e}); give one like {example}")
    })?;
    if config.get_password().is_some() {
        return Err(format!(
            "{flag}: the URL holds a password; leave it out and set {POSTGRES_PASSWORD_ENV} \
             instead (URLs are logged, shown by ps and written into the replay command)"
        ));
    }
    if !matches!(
        config.get_hosts().first(),
        Some(tokio_postgres::config::Host::Tcp(_))
    ) {
        return Err(format!(
            "{flag}: no TCP host in {url:?}; give one like {example}"
        ));
    }
    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
        return Err(format!(
            "{flag}: sslmode=require: roadtest connects to PostgreSQL without TLS for now; use \
             a listener that accepts plain connections (sslmode=prefer or disable)"
        ));
    }
    Ok(())
}

/// An error with its causes: tokio-postgres shows only its kind ("db error", "invalid
/// configuration") and keeps what PostgreSQL said in its source.
fn full_message(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn error(url: &str, what: impl Into<String>, source: tokio_postgres::Error) -> ClientError {
    ClientError::Postgres {
        address: address_of(url),
        what: what.into(),
        source: full_message(&source).into(),
    }
}

/// One connection attempt; its connection task runs until the client is dropped or it breaks.
async fn connect_once(endpoint: &PgEndpoint) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = endpoint.config()?.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

/// Connects, trying again until `deadline` (PostgreSQL refuses connections while it starts and
/// while it recovers after a crash); a refused login ends it at once.
pub async fn connect(endpoint: &PgEndpoint, deadline: Duration) -> Result<Client, ClientError> {
    let attempt = || async { connect_once(endpoint).await.map_err(|e| full_message(&e)) };
    retry_unless(deadline, attempt, |message: &String| login_refused(message))
        .await
        .map_err(|gave_up| {
            ClientError::gave_up("PostgreSQL", endpoint.address(), gave_up, login_refused)
        })
}

/// Whether a connection error is a refused login (no waiting mends it): a wrong password, an
/// unknown user, a password the server asked for and roadtest did not have.
fn login_refused(error: &str) -> bool {
    [
        "password authentication failed",
        "password missing",
        "no pg_hba.conf entry",
        "role \"",
    ]
    .iter()
    .any(|sign| error.contains(sign))
}

/// What a PostgreSQL server says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    pub version: String,
    /// `track_commit_timestamp`: whether it records when each transaction committed (without
    /// it no row has a write time, and roadtest cannot measure latency).
    pub commit_times: bool,
    /// `synchronous_commit` (on: a commit is flushed before it is acknowledged).
    pub synchronous_commit: String,
}

/// Asks a server for its [`ServerFacts`].
pub async fn server_facts(client: &Client, url: &str) -> Result<ServerFacts, ClientError> {
    let show = |setting: &'static str| async move {
        client
            .query_one(&format!("SHOW {setting}"), &[])
            .await
            .and_then(|row| row.try_get::<_, String>(0))
            .map_err(|e| error(url, format!("read the setting {setting}"), e))
    };
    Ok(ServerFacts {
        version: show("server_version").await?,
        commit_times: show("track_commit_timestamp").await? == "on",
        synchronous_commit: show("synchronous_commit").await?,
    })
}

/// Creates the run's schema and the table `table` describes in it (roadtest's by default), the
/// CQL table's shape in PostgreSQL's types; a hypertable on its timestamp column when the
/// TimescaleDB extension is installed.
pub async fn create_schema(
    client: &Client,
    url: &str,
    schema: &str,
    table: &TableSettings,
) -> Result<(), ClientError> {
    let ddl = format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}; {}",
        super::pg_table::ddl(table, schema)
    );
    client
        .batch_execute(&ddl)
        .await
        .map_err(|e| error(url, format!("create schema {schema} and its table"), e))?;
    let timescale = client
        .query_opt(
            "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'",
            &[],
        )
        .await
        .map_err(|e| error(url, "look for the TimescaleDB extension", e))?;
    if timescale.is_some() {
        let hypertable = format!(
            "SELECT create_hypertable('{schema}.{}', '{}', if_not_exists => TRUE)",
            table.name, table.timestamp
        );
        client
            .batch_execute(&hypertable)
            .await
            .map_err(|e| error(url, "make the table a TimescaleDB hypertable", e))?;
    }
    Ok(())
}

/// Drops the run's schema and its table.
pub async fn drop_schema(client: &Client, url: &str, schema: &str) -> Result<(), ClientError> {
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .map_err(|e| error(url, format!("drop schema {schema}"), e))
}

/// The upsert of one batch (bound: [`UpsertColumns::params`]): every column as an array,
/// unnested into rows, one statement and so one transaction; a row already there (a redelivered
/// event) is overwritten, as in Cassandra.
pub fn upsert_statement(schema: &str) -> String {
    let updates: Vec<String> = VALUE_COLUMNS
        .iter()
        .map(|column| format!("{column} = EXCLUDED.{column}"))
        .collect();
    format!(
        "INSERT INTO {schema}.telemetry (vehicle_id, timestamp, {}) \
         SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::bigint[], $4::float8[], \
         $5::float8[], $6::float8[], $7::float8[], $8::float8[], $9::int4[]) \
         ON CONFLICT (vehicle_id, timestamp) DO UPDATE SET {}",
        VALUE_COLUMNS.join(", "),
        updates.join(", ")
    )
}

/// A batch as the upsert's column arrays. A key that comes twice (a redelivery inside one batch)
/// keeps its last row: one statement may not update a row twice.
#[derive(Debug, Default)]
pub struct UpsertColumns {
    vehicle_id: Vec<String>,
    timestamp: Vec<SystemTime>,
    seq: Vec<i64>,
    floats: [Vec<f64>; 5],
    format_version: Vec<i32>,
}

impl UpsertColumns {
    pub fn of<'a>(records: impl Iterator<Item = &'a Record>) -> UpsertColumns {
        let mut last: std::collections::BTreeMap<(&str, i64), &Record> = Default::default();
        for record in records {
            last.insert((record.vehicle_id.as_str(), record.timestamp), record);
        }
        let mut columns = UpsertColumns::default();
        for record in last.into_values() {
            columns.vehicle_id.push(record.vehicle_id.clone());
            columns.timestamp.push(system_time(record.timestamp));
            columns.seq.push(record.seq as i64);
            let values = [
                record.latitude,
                record.longitude,
                record.speed,
                record.temperature,
                record.humidity,
            ];
            for (column, value) in columns.floats.iter_mut().zip(values) {
                column.push(value);
            }
            columns.format_version.push(record.format_version as i32);
        }
        columns
    }

    /// The upsert's parameters, in [`upsert_statement`]'s order.
    pub fn params(&self) -> [&(dyn ToSql + Sync); 9] {
        let [latitude, longitude, speed, temperature, humidity] = &self.floats;
        [
            &self.vehicle_id,
            &self.timestamp,
            &self.seq,
            latitude,
            longitude,
            speed,
            temperature,
            humidity,
            &self.format_version,
        ]
    }
}

/// Milliseconds since the Unix epoch as a point in time (negative ones before it).
fn system_time(ms: i64) -> SystemTime {
    let offset = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH + offset
    } else {
        UNIX_EPOCH - offset
    }
}

/// The reference consumer's writer: upserts batches over one connection (concurrent batches are
/// pipelined on it), and connects again on the next batch after the connection broke.
#[derive(Debug)]
pub struct PgWriter {
    endpoint: PgEndpoint,
    upsert: String,
    current: tokio::sync::Mutex<Option<Arc<(Client, Statement)>>>,
}

impl PgWriter {
    /// Connects (waiting up to `deadline` for PostgreSQL) and prepares the upsert into `schema`.
    pub async fn connect(
        endpoint: PgEndpoint,
        schema: &str,
        deadline: Duration,
    ) -> Result<Self, ClientError> {
        let client = connect(&endpoint, deadline).await?;
        let upsert = upsert_statement(schema);
        let statement = client
            .prepare(&upsert)
            .await
            .map_err(|e| error(&endpoint.url, "prepare the upsert", e))?;
        let writer = PgWriter {
            endpoint,
            upsert,
            current: tokio::sync::Mutex::new(None),
        };
        *writer.current.lock().await = Some(Arc::new((client, statement)));
        Ok(writer)
    }

    /// The open connection and its prepared upsert, connecting again when there is none.
    async fn connection(&self) -> Result<Arc<(Client, Statement)>, String> {
        let mut current = self.current.lock().await;
        if let Some(open) = current.as_ref().filter(|open| !open.0.is_closed()) {
            return Ok(Arc::clone(open));
        }
        *current = None;
        let attempt = async {
            let client = connect_once(&self.endpoint).await?;
            let statement = client.prepare(&self.upsert).await?;
            Ok::<_, tokio_postgres::Error>((client, statement))
        };
        match tokio::time::timeout(WRITER_CONNECT_TIMEOUT, attempt).await {
            Ok(Ok(open)) => Ok(Arc::clone(current.insert(Arc::new(open)))),
            Ok(Err(e)) => Err(format!(
                "connect to PostgreSQL at {}: {}",
                self.endpoint.address(),
                full_message(&e)
            )),
            Err(_) => Err(format!(
                "connect to PostgreSQL at {}: no answer within {WRITER_CONNECT_TIMEOUT:?}",
                self.endpoint.address()
            )),
        }
    }

    /// Upserts `records` in one transaction; Ok once PostgreSQL has committed it (flushed to
    /// the WAL first when `synchronous_commit` is on).
    pub async fn write<'a>(&self, records: impl Iterator<Item = &'a Record>) -> Result<(), String> {
        let open = self.connection().await?;
        let columns = UpsertColumns::of(records);
        let (client, statement) = (&open.0, &open.1);
        client
            .execute(statement, &columns.params())
            .await
            .map(|_| ())
            .map_err(|e| {
                let address = self.endpoint.address();
                format!("upsert into PostgreSQL at {address}: {}", full_message(&e))
            })
    }
}

/// One row of a vehicle as read back: its timestamp (ms since the epoch), the compared values
/// (`None` where null or not in the table) and its write time: when the transaction that wrote
/// it committed, or the table's write-time column (µs since the epoch; 0 when unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    pub timestamp_ms: i64,
    pub seq: Option<i64>,
    pub floats: [Option<f64>; 5],
    pub format_version: Option<i32>,
    pub committed_us: i64,
}

/// Reads the rows of one vehicle in timestamp order from the table `layout` describes, with
/// their write times (its write-time column, else their commit times).
pub async fn vehicle_rows(
    client: &Client,
    url: &str,
    schema: &str,
    layout: &TableLayout,
    vehicle_id: &str,
) -> Result<Vec<StoredRow>, ClientError> {
    let select = super::pg_table::select(layout, schema);
    let rows = client
        .query(&select, &[&vehicle_id])
        .await
        .map_err(|e| error(url, format!("read the rows of {vehicle_id}"), e))?;
    let read = |row: &tokio_postgres::Row| -> Result<StoredRow, tokio_postgres::Error> {
        Ok(StoredRow {
            timestamp_ms: row.try_get(0)?,
            seq: row.try_get(1)?,
            floats: [
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
                row.try_get(5)?,
                row.try_get(6)?,
            ],
            format_version: row.try_get(7)?,
            committed_us: row.try_get(8)?,
        })
    };
    rows.iter()
        .map(read)
        .collect::<Result<_, _>>()
        .map_err(|e| error(url, format!("decode the rows of {vehicle_id}"), e))
}

/// Every vehicle with rows in the table `layout` describes.
pub async fn vehicles(
    client: &Client,
    url: &str,
    schema: &str,
    layout: &TableLayout,
) -> Result<Vec<String>, ClientError> {
    let listing = format!(
        "SELECT DISTINCT {} FROM {schema}.{} ORDER BY 1",
        layout.vehicle, layout.table
    );
    let rows = client
        .query(&listing, &[])
        .await
        .map_err(|e| error(url, "list the vehicles with rows", e))?;
    rows.iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(|e| error(url, "list the vehicles with rows", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_of_a_url_leaves_out_user_and_password() {
        assert_eq!(
            address_of("postgresql://roadtest:secret@127.0.0.1:5433/roadtest"),
            "127.0.0.1:5433"
        );
        assert_eq!(address_of("host=db port=6000 user=x"), "db:6000");
    }

    #[test]
    fn a_url_with_a_password_or_without_a_host_is_refused_with_its_flag() {
        check_url(
            "--postgres-url",
            "postgresql://app@db.example.com:5432/telemetry",
        )
        .expect("valid");
        for (url, says) in [
            ("postgresql://app:secret@db:5432/x", POSTGRES_PASSWORD_ENV),
            ("host=db user=app password=secret", POSTGRES_PASSWORD_ENV),
            ("postgresql://app@db/x?sslmode=require", "sslmode=require"),
            ("host=/var/run/postgresql user=app", "no TCP host"),
            (
                "postgresql://app@db:port/x",
                "not a PostgreSQL connection string",
            ),
        ] {
            let error = check_url("--postgres-url", url).expect_err(url);
            assert!(error.starts_with("--postgres-url: "), "{error}");
            assert!(error.contains(says), "{url}: {error}");
            assert!(!error.contains("secret"), "{error}");
        }
    }

    #[test]
    fn an_endpoint_moved_to_a_proxy_keeps_its_login_and_database() {
        let endpoint = PgEndpoint {
            url: "postgresql://o'brien@db.example.com:6432/tele%20metry".into(),
            password: Some(Password::new("pw")),
        };
        let moved = endpoint.at("127.0.0.1:40001".parse().expect("address"));
        let config: tokio_postgres::Config = moved.url.parse().expect("parses");
        assert_eq!(moved.address(), "127.0.0.1:40001");
        assert_eq!(config.get_user(), Some("o'brien"));
        assert_eq!(config.get_dbname(), Some("tele metry"));
        assert_eq!(config.get_password(), None);
        assert_eq!(moved.password, endpoint.password);
        let with_password = moved.config().expect("parses");
        assert_eq!(with_password.get_password(), Some(&b"pw"[..]));
    }

    #[test]
    fn milliseconds_become_the_system_time_that_many_from_the_epoch() {
        for ms in [0_i64, 1, 1_796_135_062_123, -1, -86_400_001] {
            let time = system_time(ms);
            let back = match time.duration_since(UNIX_EPOCH) {
                Ok(after) => after.as_millis() as i64,
                Err(before) => -(before.duration().as_millis() as i64),
            };
            assert_eq!(back, ms);
        }
    }

    #[test]
    fn a_key_twice_in_one_batch_keeps_its_last_row() {
        let record = |seq: u64, timestamp: i64| Record {
            format_version: 1,
            vehicle_id: String::from("veh-000001"),
            seq,
            timestamp,
            latitude: 52.5,
            longitude: 13.4,
            speed: 30.0,
            temperature: 20.0,
            humidity: 50.0,
        };
        let records = [record(1, 10), record(2, 20), record(3, 10)];
        let columns = UpsertColumns::of(records.iter());
        assert_eq!(columns.seq, vec![3, 2]);
        assert_eq!(columns.timestamp.len(), 2);
    }
}
