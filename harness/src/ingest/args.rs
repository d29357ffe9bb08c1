//! `roadtest ingest`'s flags: what they parse into, and how an [`IngestArgs`] renders back into them (how a run starts the reference consumer).

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;

use crate::clients::pg::PgEndpoint;
use crate::clients::security::{CqlSecurityArgs, KafkaSecurityArgs};
use crate::clients::{ClientError, CqlConnection, KafkaConnection};
use crate::scenario::{CommitPolicy, ConsumerSettings};

/// Where the consumer serves metrics unless told otherwise: any free port on loopback.
pub const METRICS_LISTEN_DEFAULT: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));

/// Settings of one consumer process (`roadtest ingest --help`); [`IngestArgs::to_args`] renders
/// them back into the flags that parse to the same value.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct IngestArgs {
    /// Kafka bootstrap servers.
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap: String,
    /// Topic to consume.
    #[arg(long)]
    pub topic: String,
    /// Topic for records that cannot be decoded.
    #[arg(long)]
    pub dead_letter_topic: String,
    /// Consumer group id.
    #[arg(long)]
    pub group: String,
    /// CQL (protocol v4) contact points, comma-separated.
    #[arg(
        long,
        value_name = "HOST:PORT",
        value_delimiter = ',',
        required_unless_present = "postgres_url"
    )]
    pub cql: Vec<String>,
    /// Write PostgreSQL at this connection string instead of Cassandra (the table `telemetry` in
    /// the schema named by --keyspace); the password from ROADTEST_POSTGRES_PASSWORD, never the
    /// URL.
    #[arg(long, value_name = "URL", conflicts_with = "cql")]
    pub postgres_url: Option<String>,
    /// Connect to the node the cluster reports as FROM at TO instead (roadtest's fault proxy in
    /// front of it); repeatable.
    #[arg(long = "cql-translate", value_name = "FROM=TO", value_parser = parse_translation)]
    pub cql_translate: Vec<(SocketAddr, SocketAddr)>,
    /// Keyspace (PostgreSQL: schema) holding the `telemetry` table.
    #[arg(long)]
    pub keyspace: String,
    /// Rows per write batch.
    #[arg(
        long,
        default_value_t = ConsumerSettings::BATCH_SIZE_DEFAULT,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(ConsumerSettings::BATCH_SIZE_MAX))
    )]
    pub batch_size: u32,
    /// Batches in flight at most.
    #[arg(
        long,
        default_value_t = ConsumerSettings::IN_FLIGHT_DEFAULT,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(ConsumerSettings::IN_FLIGHT_MAX))
    )]
    pub max_in_flight: u32,
    /// When offsets are committed: after-write (at-least-once) or before-write (at-most-once, unsafe).
    #[arg(long, default_value = "after-write", value_parser = CommitPolicy::parse)]
    pub commit: CommitPolicy,
    /// Consumer-group session timeout.
    #[arg(
        long,
        default_value_t = ConsumerSettings::SESSION_TIMEOUT_MS_DEFAULT,
        value_parser = clap::value_parser!(u32).range(
            i64::from(ConsumerSettings::SESSION_TIMEOUT_MS_MIN)..=i64::from(ConsumerSettings::SESSION_TIMEOUT_MS_MAX)
        )
    )]
    pub session_timeout_ms: u32,
    /// Where to serve Prometheus metrics (port 0: any free port; it is logged).
    #[arg(long, default_value_t = METRICS_LISTEN_DEFAULT, value_name = "HOST:PORT")]
    pub metrics_listen: SocketAddr,
    /// Directory for this process's stats file (`consumer-PID.json`).
    #[arg(long)]
    pub stats_dir: Option<PathBuf>,
    /// Evaluate these threshold rules (a JSON list of scenario `[[alerts]]` rules) on the
    /// consumed events, count what fires (roadtest_ingest_alerts_fired_total) and post it to
    /// --alert-webhook when given
    #[arg(long, value_name = "FILE")]
    pub alert_rules: Option<PathBuf>,
    /// Where to post alerts, as JSON `[{"vehicle_id", "alert", "at"}]` (`roadtest run` hands
    /// its own webhook)
    #[arg(long, value_name = "URL", requires = "alert_rules")]
    pub alert_webhook: Option<String>,
    // Last: their help headings apply to the flags after them.
    #[command(flatten)]
    pub kafka_security: KafkaSecurityArgs,
    #[command(flatten)]
    pub cql_security: CqlSecurityArgs,
}

impl IngestArgs {
    /// The Kafka and CQL connections these arguments describe (passwords from the environment).
    pub fn connections(&self) -> Result<(KafkaConnection, CqlConnection), ClientError> {
        let lookup = |key: &str| std::env::var(key).ok();
        let kafka = KafkaConnection {
            bootstrap: self.bootstrap.clone(),
            security: self.kafka_security.resolve(lookup)?,
        };
        let cql = CqlConnection {
            contact_points: self.cql.clone(),
            security: self.cql_security.resolve(lookup)?,
            translation: self.cql_translate.clone(),
        };
        Ok((kafka, cql))
    }

    /// The PostgreSQL server of --postgres-url, with the password from the environment.
    pub fn postgres(&self) -> Option<PgEndpoint> {
        let url = self.postgres_url.clone()?;
        Some(PgEndpoint::with_password_from(url, |key| {
            std::env::var(key).ok()
        }))
    }

    /// The consumer settings these arguments give.
    pub fn consumer_settings(&self) -> ConsumerSettings {
        ConsumerSettings {
            batch_size: self.batch_size,
            max_in_flight: self.max_in_flight,
            commit: self.commit,
            session_timeout_ms: self.session_timeout_ms,
            ..ConsumerSettings::default()
        }
    }

    /// The `roadtest ingest` flags that parse back into these arguments: how a run starts the
    /// reference consumer.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args = Vec::new();
        push_flag(&mut args, "--bootstrap", &self.bootstrap);
        push_flag(&mut args, "--topic", &self.topic);
        push_flag(&mut args, "--dead-letter-topic", &self.dead_letter_topic);
        push_flag(&mut args, "--group", &self.group);
        if !self.cql.is_empty() {
            push_flag(&mut args, "--cql", self.cql.join(","));
        }
        if let Some(url) = &self.postgres_url {
            push_flag(&mut args, "--postgres-url", url);
        }
        for (from, to) in &self.cql_translate {
            push_flag(&mut args, "--cql-translate", format!("{from}={to}"));
        }
        push_flag(&mut args, "--keyspace", &self.keyspace);
        push_flag(&mut args, "--batch-size", self.batch_size.to_string());
        push_flag(&mut args, "--max-in-flight", self.max_in_flight.to_string());
        push_flag(&mut args, "--commit", self.commit.name());
        let session_timeout = self.session_timeout_ms.to_string();
        push_flag(&mut args, "--session-timeout-ms", session_timeout);
        push_flag(
            &mut args,
            "--metrics-listen",
            self.metrics_listen.to_string(),
        );
        if let Some(dir) = &self.stats_dir {
            push_flag(&mut args, "--stats-dir", dir);
        }
        if let Some(rules) = &self.alert_rules {
            push_flag(&mut args, "--alert-rules", rules);
        }
        if let Some(webhook) = &self.alert_webhook {
            push_flag(&mut args, "--alert-webhook", webhook);
        }
        push_security_flags(&mut args, &self.kafka_security, &self.cql_security);
        args
    }
}

/// Appends `name value`.
fn push_flag(args: &mut Vec<OsString>, name: &str, value: impl AsRef<std::ffi::OsStr>) {
    args.push(name.into());
    args.push(value.as_ref().to_owned());
}

/// The security flags as given (unresolved: passwords never become flags).
fn push_security_flags(args: &mut Vec<OsString>, kafka: &KafkaSecurityArgs, cql: &CqlSecurityArgs) {
    if let Some(protocol) = kafka.protocol {
        push_flag(args, "--kafka-security-protocol", protocol.flag_name());
    }
    if let Some(mechanism) = kafka.mechanism {
        push_flag(args, "--kafka-sasl-mechanism", mechanism.flag_name());
    }
    if let Some(username) = &kafka.username {
        push_flag(args, "--kafka-username", username);
    }
    if let Some(username) = &cql.username {
        push_flag(args, "--cql-username", username);
    }
    if cql.tls {
        args.push("--cql-tls".into());
    }
    for (name, path) in [
        ("--kafka-ca-file", &kafka.ca_file),
        ("--kafka-cert-file", &kafka.cert_file),
        ("--kafka-key-file", &kafka.key_file),
        ("--cql-ca-file", &cql.ca_file),
        ("--cql-cert-file", &cql.cert_file),
        ("--cql-key-file", &cql.key_file),
    ] {
        if let Some(path) = path {
            push_flag(args, name, path);
        }
    }
}

/// `FROM=TO`, two socket addresses.
pub fn parse_translation(text: &str) -> Result<(SocketAddr, SocketAddr), String> {
    let parse = |part: &str| {
        part.parse::<SocketAddr>()
            .map_err(|e| format!("{text:?}: {part:?} is not an IP:PORT address ({e})"))
    };
    match text.split_once('=') {
        Some((from, to)) => Ok((parse(from)?, parse(to)?)),
        None => Err(format!(
            "{text:?}: give FROM=TO, like 10.0.0.5:9042=127.0.0.1:40001"
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use clap::Parser;

    use super::*;
    use crate::clients::security::{KafkaProtocol, SaslMechanism};

    /// `roadtest ingest`'s flags alone.
    #[derive(Debug, clap::Parser)]
    struct Ingest {
        #[command(flatten)]
        args: IngestArgs,
    }

    fn parse(args: Vec<OsString>) -> IngestArgs {
        let argv = std::iter::once(OsString::from("ingest")).chain(args);
        match Ingest::try_parse_from(argv) {
            Ok(parsed) => parsed.args,
            Err(error) => panic!("the rendered flags do not parse: {error}"),
        }
    }

    fn minimal() -> IngestArgs {
        parse(
            [
                "--bootstrap",
                "127.0.0.1:9092",
                "--topic",
                "t",
                "--dead-letter-topic",
                "t-dl",
            ]
            .into_iter()
            .chain(["--group", "g", "--cql", "127.0.0.1:9042", "--keyspace", "k"])
            .map(OsString::from)
            .collect(),
        )
    }

    #[test]
    fn defaults_render_and_parse_back_equal() {
        let args = minimal();
        assert_eq!(args.metrics_listen, METRICS_LISTEN_DEFAULT);
        assert_eq!(parse(args.to_args()), args);
    }

    #[test]
    fn every_field_renders_and_parses_back_equal() {
        let address = |text: &str| text.parse::<SocketAddr>().unwrap_or_else(|e| panic!("{e}"));
        let pem = |name: &str| Some(PathBuf::from(format!("/etc/roadtest tls/{name}.pem")));
        let args = IngestArgs {
            cql: vec!["10.0.0.5:9042".into(), "10.0.0.6:9042".into()],
            cql_translate: vec![
                (address("10.0.0.5:9042"), address("127.0.0.1:40001")),
                (address("10.0.0.6:9042"), address("127.0.0.1:40002")),
            ],
            batch_size: 250,
            max_in_flight: 3,
            commit: CommitPolicy::BeforeWrite,
            session_timeout_ms: 45_000,
            metrics_listen: address("0.0.0.0:9187"),
            stats_dir: Some(PathBuf::from("/tmp/run dir/consumer-stats")),
            alert_rules: Some(PathBuf::from("/tmp/run dir/alerts.json")),
            alert_webhook: Some("http://127.0.0.1:9000/alerts".into()),
            kafka_security: KafkaSecurityArgs {
                protocol: Some(KafkaProtocol::SaslSsl),
                mechanism: Some(SaslMechanism::ScramSha512),
                username: Some("roadtest".into()),
                ca_file: pem("kafka-ca"),
                cert_file: pem("kafka-cert"),
                key_file: pem("kafka-key"),
            },
            cql_security: CqlSecurityArgs {
                username: Some("cassandra".into()),
                tls: true,
                ca_file: pem("cql-ca"),
                cert_file: pem("cql-cert"),
                key_file: pem("cql-key"),
            },
            ..minimal()
        };
        assert_eq!(parse(args.to_args()), args);
    }

    #[test]
    fn a_postgres_consumer_renders_without_cql_and_parses_back_equal() {
        let args = IngestArgs {
            cql: Vec::new(),
            postgres_url: Some("postgresql://roadtest@127.0.0.1:5433/postgres".into()),
            ..minimal()
        };
        assert_eq!(parse(args.to_args()), args);
    }

    #[test]
    fn every_commit_policy_renders_to_its_flag() {
        for commit in CommitPolicy::ALL {
            let args = IngestArgs {
                commit,
                ..minimal()
            };
            assert_eq!(parse(args.to_args()).commit, commit);
        }
    }
}
