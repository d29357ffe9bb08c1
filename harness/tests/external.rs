//! The external target against real clusters: this host's services (`roadtest services up`: Tansu, Cassandra 2.1 behind the CQL bridge) stand in for clusters that already run; mutual TLS through terminators this test puts in front of them, a Cassandra that requires a login, and a PostgreSQL server of the test's own that requires a password.
//!
//! Fails (never skips) when the services are not up, saying how to start them. The runs are
//! serialised: they share the services, and the fault run's latency checks need a quiet host.

use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::ssl::{Ssl, SslAcceptor, SslMethod, SslVerifyMode};
use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};
use roadtest::Scenario;
use roadtest::clients::pg::{self, POSTGRES_PASSWORD_ENV, PgEndpoint};
use roadtest::clients::security::{
    CqlSecurity, KafkaProtocol, KafkaSecurity, Login, Password, TlsFiles,
};
use roadtest::clients::{CqlConnection, KafkaConnection, cql};
use roadtest::report::Report;
use roadtest::run::{ExternalClusters, RunOptions};
use roadtest::targets::{PostgresInstall, TargetKind};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

mod services;
use services::{run_keyspaces, services};

/// One run at a time (see the module docs).
static RUNS: Mutex<()> = Mutex::const_new(());

fn scenario(name: &str) -> (Scenario, PathBuf) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"));
    (
        Scenario::load(&path).unwrap_or_else(|e| panic!("{e}")),
        path,
    )
}

fn out_dir(label: &str) -> PathBuf {
    std::env::temp_dir().join(format!("roadtest-external-{}-{label}", std::process::id()))
}

/// A scenario and the options that run it on the external target through the library.
fn external_run(name: &str, clusters: ExternalClusters) -> (Scenario, RunOptions) {
    let (scenario, path) = scenario(name);
    let mut options = RunOptions::new(&scenario, &path).expect("run options");
    options.local.roadtest_binary = PathBuf::from(env!("CARGO_BIN_EXE_roadtest"));
    options.target = Some(TargetKind::External);
    options.external = Some(clusters);
    options.out_dir = out_dir(name);
    options.progress = false;
    (scenario, options)
}

/// Runs a scenario on the external target; panics when the run cannot be carried out.
async fn run(name: &str, clusters: ExternalClusters) -> Report {
    let (scenario, options) = external_run(name, clusters);
    let report = scenario
        .run(options.clone())
        .await
        .unwrap_or_else(|error| panic!("{name}: the run could not be carried out: {error}"));
    let _ = std::fs::remove_dir_all(&options.out_dir);
    report
}

fn plaintext(kafka: &str, cql: &str) -> ExternalClusters {
    ExternalClusters {
        kafka: KafkaConnection::plaintext(kafka),
        cql: CqlConnection {
            contact_points: vec![cql.to_string()],
            ..CqlConnection::default()
        },
        postgres: None,
        kafka_replication_factor: 1,
        cql_replication: cql::REPLICATION_ONE.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_from_the_command_line_passes_and_leaves_nothing_behind() {
    let _one = RUNS.lock().await;
    let (kafka, cql) = services();
    let before = run_keyspaces(&cql).await;
    let ran = run_cli("smoke", &kafka, &["--cql-contact", &cql], None);
    passed_without_loss(
        ran,
        &format!("--kafka-bootstrap {kafka} --cql-contact {cql}"),
    );
    assert_eq!(
        run_keyspaces(&cql).await,
        before,
        "a passed run drops its keyspace"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_kill_and_network_faults_work_without_touching_the_clusters() {
    let _one = RUNS.lock().await;
    let (kafka, cql) = services();
    let report = run("external-faults-ci", plaintext(&kafka, &cql)).await;
    report.assert_no_loss();
    report.assert_passed();
    for fault in &report.faults {
        assert!(fault.error.is_none(), "{fault:?}");
    }
    // The 3 s blackhole stalled the producer's acknowledgements (only the broker path can):
    // the producer reached the broker only through the proxy (the gateway rewrote the broker's
    // advertised address).
    let produce_ack_max_ms = report.latency.stages["produce_ack_ms"].max_ms;
    assert!(
        produce_ack_max_ms >= 2500.0,
        "a 3 s broker blackhole should stall produce acks, max was {produce_ack_max_ms} ms"
    );
    // +150 ms +- 30 each way on the writes of 6 s of the run (only the Cassandra path can).
    let write_ack_p99_ms = report.latency.stages["write_ack_ms"].p99_ms;
    assert!(
        write_ack_p99_ms >= 240.0,
        "the Cassandra latency fault should show in write acks, p99 was {write_ack_p99_ms} ms"
    );
}

// ---- PostgreSQL: a server of this test's that wants a password ----

/// The password of the PostgreSQL server's user `app`.
const APP_PASSWORD: &str = "correct horse battery";

/// A PostgreSQL server on a free port whose TCP connections need a password (scram-sha-256;
/// user `app`), with commit times on; returns it, its port and its folder.
fn postgres_with_login() -> (Service, u16, PathBuf) {
    let install = PostgresInstall::find().unwrap_or_else(|error| panic!("{error}"));
    let dir = out_dir("postgres-server");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the server's folder");
    let password_file = dir.join("password");
    std::fs::write(&password_file, APP_PASSWORD).expect("the password file");
    let as_server_user = |command: &mut Command| {
        if let Some((uid, gid)) = install.user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown");
            std::os::unix::fs::chown(&password_file, Some(uid), Some(gid)).expect("chown");
            std::os::unix::process::CommandExt::uid(command, uid);
            std::os::unix::process::CommandExt::gid(command, gid);
        }
    };
    let data = dir.join("data");
    let mut initdb = Command::new(install.bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "app",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ])
        .arg(format!("--pwfile={}", password_file.display()))
        .args(["--no-sync", "-E", "UTF8"])
        .current_dir(&dir);
    as_server_user(&mut initdb);
    let output = initdb.output().expect("run initdb");
    assert!(output.status.success(), "initdb: {output:?}");
    let address = free_address();
    let mut server = Command::new(install.bin.join("postgres"));
    server
        .arg("-D")
        .arg(&data)
        .args(["-p", &address.port().to_string(), "-k"])
        .arg(&dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "track_commit_timestamp=on",
        ])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("postgres.log")).expect("log"),
        ));
    as_server_user(&mut server);
    let service = Service(server.spawn().expect("start postgres"));
    wait_until_listening("PostgreSQL", address, Duration::from_secs(30));
    (service, address.port(), dir)
}

/// The schemas of the server whose names roadtest's runs use.
async fn run_schemas(url: &str) -> Vec<String> {
    let endpoint = PgEndpoint {
        url: url.to_string(),
        password: Some(Password::new(APP_PASSWORD)),
    };
    let client = pg::connect(&endpoint, Duration::from_secs(30))
        .await
        .expect("connect");
    let rows = client
        .query(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'roadtest_%' ORDER BY 1",
            &[],
        )
        .await
        .expect("list the schemas");
    rows.iter().map(|row| row.get(0)).collect()
}

/// Checks that a [`run_cli`] run passed on the external target with every event found, and
/// that its replay command holds `replay_part` (it reaches the same clusters); its report.
fn passed_without_loss(
    (code, stderr, report): (Option<i32>, String, Option<serde_json::Value>),
    replay_part: &str,
) -> serde_json::Value {
    assert_eq!(code, Some(0), "{stderr}");
    let report = report.expect("report.json written");
    assert_eq!(report["target"]["name"], "external");
    assert_eq!(report["verify"]["lost"], 0);
    assert_eq!(report["verify"]["expected"], report["verify"]["found"]);
    let replay = report["replay_command"].as_str().unwrap_or_default();
    assert!(
        replay.contains(replay_part),
        "the replay command must reach the same clusters: {replay}"
    );
    report
}

/// `roadtest run SCENARIO --target external --kafka-bootstrap KAFKA DATABASE_FLAGS`, the
/// PostgreSQL password in the environment when given; (exit code, stderr, report.json when
/// written).
fn run_cli(
    name: &str,
    kafka: &str,
    database_flags: &[&str],
    password: Option<&str>,
) -> (Option<i32>, String, Option<serde_json::Value>) {
    let out = out_dir(&format!("{name}-cli"));
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../scenarios/{name}.toml"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_roadtest"));
    command
        .arg("run")
        .arg(&scenario)
        .args([
            "--target",
            "external",
            "--quiet",
            "--kafka-bootstrap",
            kafka,
        ])
        .args(database_flags)
        .arg("--out")
        .arg(&out)
        .env_remove(POSTGRES_PASSWORD_ENV);
    if let Some(password) = password {
        command.env(POSTGRES_PASSWORD_ENV, password);
    }
    let output = command.output().expect("run roadtest");
    let report = std::fs::read(out.join("report.json"))
        .ok()
        .map(|bytes| serde_json::from_slice(&bytes).expect("report.json is JSON"));
    let _ = std::fs::remove_dir_all(&out);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_with_a_password_from_the_environment_and_a_slowed_path() {
    let _one = RUNS.lock().await;
    let (kafka, _) = services();
    let (_server, port, dir) = postgres_with_login();
    let url = format!("postgresql://app@127.0.0.1:{port}/postgres");
    let (code, stderr, _) = run_cli(
        "external-postgres-ci",
        &kafka,
        &["--postgres-url", &url],
        None,
    );
    assert_ne!(code, Some(0), "no password, no run: {stderr}");
    assert!(
        stderr.contains("refused") && stderr.contains(POSTGRES_PASSWORD_ENV),
        "a refused login must say where the password goes: {stderr}"
    );
    let (code, stderr, report) = run_cli(
        "external-postgres-ci",
        &kafka,
        &["--postgres-url", &url],
        Some(APP_PASSWORD),
    );
    assert!(!stderr.contains(APP_PASSWORD), "{stderr}");
    let report = passed_without_loss((code, stderr, report), &format!("--postgres-url {url}"));
    let versions = report["target"]["service_versions"]["postgres"]
        .as_str()
        .unwrap_or_default();
    assert!(versions.contains("PostgreSQL 1"), "{report}");
    // +150 ms +- 30 each way on 6 s of writes: only the consumer's path through the proxy can.
    let write_ack_p99_ms = report["latency"]["stages"]["write_ack_ms"]["p99"]
        .as_f64()
        .unwrap_or_default();
    assert!(
        write_ack_p99_ms >= 240.0,
        "the PostgreSQL latency fault should show in write acks, p99 was {write_ack_p99_ms} ms"
    );
    assert_eq!(
        run_schemas(&url).await,
        Vec::<String>::new(),
        "a passed run drops its schema"
    );
    let _ = std::fs::remove_dir_all(dir);
}

// ---- TLS: terminators in front of a Tansu of this test and of the services' CQL bridge ----

/// A CA, a server certificate it signed for `localhost` / 127.0.0.1 (in the acceptor, which
/// requires a client certificate signed by the same CA) and such a client certificate, as PEM files.
struct Certificates {
    ca_pem: PathBuf,
    client_cert_pem: PathBuf,
    client_key_pem: PathBuf,
    acceptor: Arc<SslAcceptor>,
}

fn key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).expect("RSA key")).expect("key")
}

fn certificate(
    subject: &str,
    serial: u32,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
) -> X509 {
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", subject).expect("CN");
    let name = name.build();
    let mut builder = X509::builder().expect("builder");
    builder.set_version(2).expect("v3");
    let serial = BigNum::from_u32(serial).expect("serial");
    builder
        .set_serial_number(&serial.to_asn1_integer().expect("serial"))
        .expect("serial");
    builder.set_subject_name(&name).expect("subject");
    builder.set_pubkey(key).expect("public key");
    builder
        .set_not_before(&Asn1Time::days_from_now(0).expect("time"))
        .expect("not before");
    builder
        .set_not_after(&Asn1Time::days_from_now(2).expect("time"))
        .expect("not after");
    match issuer {
        None => {
            builder.set_issuer_name(&name).expect("issuer");
            builder
                .append_extension(BasicConstraints::new().critical().ca().build().expect("CA"))
                .expect("CA extension");
            builder.sign(key, MessageDigest::sha256()).expect("sign");
        }
        Some((ca, ca_key)) => {
            builder.set_issuer_name(ca.subject_name()).expect("issuer");
            let names = SubjectAlternativeName::new()
                .dns("localhost")
                .ip("127.0.0.1")
                .build(&builder.x509v3_context(Some(ca), None))
                .expect("SAN");
            builder.append_extension(names).expect("SAN extension");
            builder.sign(ca_key, MessageDigest::sha256()).expect("sign");
        }
    }
    builder.build()
}

fn certificates(dir: &Path) -> Certificates {
    std::fs::create_dir_all(dir).expect("cert dir");
    let ca_key = key();
    let ca = certificate("roadtest test CA", 1, &ca_key, None);
    let server_key = key();
    let server = certificate("localhost", 2, &server_key, Some((&ca, &ca_key)));
    let client_key = key();
    let client = certificate("roadtest client", 3, &client_key, Some((&ca, &ca_key)));
    let write = |name: &str, pem: Vec<u8>| {
        let path = dir.join(name);
        std::fs::write(&path, pem).expect("write PEM");
        path
    };
    let ca_pem = write("ca.pem", ca.to_pem().expect("PEM"));
    let client_cert_pem = write("client.pem", client.to_pem().expect("PEM"));
    let client_key_pem = write(
        "client-key.pem",
        client_key.private_key_to_pem_pkcs8().expect("PEM"),
    );
    let mut acceptor =
        SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).expect("acceptor");
    acceptor.set_private_key(&server_key).expect("key");
    acceptor.set_certificate(&server).expect("certificate");
    acceptor
        .cert_store_mut()
        .add_cert(ca.clone())
        .expect("trust the CA");
    acceptor.add_extra_chain_cert(ca).expect("chain");
    acceptor.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    Certificates {
        ca_pem,
        client_cert_pem,
        client_key_pem,
        acceptor: Arc::new(acceptor.build()),
    }
}

/// Accepts TLS on `listener` and forwards the plaintext to `upstream`; counts handshakes, and
/// refusals (handshakes that failed, e.g. for want of a client certificate).
struct TlsFront {
    handshakes: Arc<AtomicU64>,
    refusals: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn tls_front(listener: TcpListener, acceptor: Arc<SslAcceptor>, upstream: SocketAddr) -> TlsFront {
    let handshakes = Arc::new(AtomicU64::new(0));
    let refusals = Arc::new(AtomicU64::new(0));
    let (counter, refused) = (Arc::clone(&handshakes), Arc::clone(&refusals));
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (acceptor, counter) = (Arc::clone(&acceptor), Arc::clone(&counter));
            let refused = Arc::clone(&refused);
            tokio::spawn(async move {
                let Ok(ssl) = Ssl::new(acceptor.context()) else {
                    return;
                };
                let Ok(mut tls) = tokio_openssl::SslStream::new(ssl, client) else {
                    return;
                };
                if Pin::new(&mut tls).accept().await.is_err() {
                    refused.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                counter.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut server) = TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
                }
            });
        }
    });
    TlsFront {
        handshakes,
        refusals,
        task,
    }
}

/// A service process of this test, killed on drop.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts Tansu on a free port, advertising `advertised` (the TLS front); waits until it listens.
fn tansu(advertised: &str) -> (Service, SocketAddr) {
    let binary = roadtest::targets::local::roadtest_home().join("bin/tansu");
    assert!(
        binary.exists(),
        "Tansu is not installed ({}); run `roadtest services install`",
        binary.display()
    );
    let address = free_address();
    let child = Command::new(binary)
        .args(["broker", "--listener-url", &format!("tcp://{address}")])
        .args(["--advertised-listener-url", &format!("tcp://{advertised}")])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tansu");
    let broker = Service(child);
    wait_until_listening("Tansu", address, Duration::from_secs(20));
    (broker, address)
}

fn free_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
}

fn wait_until_listening(name: &str, address: SocketAddr, limit: Duration) {
    let deadline = Instant::now() + limit;
    while StdTcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{name} did not listen on {address} within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Cassandra 2.1 node that requires a login (PasswordAuthenticator, superuser
/// cassandra/cassandra) and a CQL bridge in front of it; returns them and the bridge's address.
fn cassandra_with_login(dir: &Path) -> (Service, Service, SocketAddr) {
    let launcher = roadtest::targets::local::roadtest_home().join("bin/cassandra-node");
    assert!(
        launcher.exists(),
        "Cassandra is not installed ({}); run `roadtest services install`",
        launcher.display()
    );
    let _ = std::fs::remove_dir_all(dir);
    let ports: Vec<String> = (0..4).map(|_| free_address().port().to_string()).collect();
    let native = SocketAddr::from(([127, 0, 0, 1], ports[0].parse().expect("port")));
    let log = std::fs::File::create(dir.with_extension("log")).expect("node log");
    let node = Command::new(launcher)
        .arg("--dir")
        .arg(dir)
        .args(["--native-port", &ports[0], "--storage-port", &ports[1]])
        .args(["--ssl-storage-port", &ports[2], "--jmx-port", &ports[3]])
        .args(["--authenticator", "password"])
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .expect("start cassandra-node");
    let node = Service(node);
    wait_until_listening("Cassandra", native, Duration::from_secs(120));
    let bridge_address = free_address();
    let bridge = Command::new(env!("CARGO_BIN_EXE_roadtest"))
        .args(["cql-bridge", "--listen", &bridge_address.to_string()])
        .args(["--upstream", &native.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the bridge");
    let bridge = Service(bridge);
    wait_until_listening("the CQL bridge", bridge_address, Duration::from_secs(10));
    (node, bridge, bridge_address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_to_both_clusters_and_a_cassandra_login() {
    let _one = RUNS.lock().await;
    services();
    let (_node, _bridge, cql) = cassandra_with_login(&out_dir("cassandra-with-login"));
    let certificates = certificates(&out_dir("certificates"));
    let kafka_listener = TcpListener::bind("127.0.0.1:0").await.expect("listen");
    let kafka_front_port = kafka_listener.local_addr().expect("address").port();
    // The broker advertises the TLS front by name: librdkafka checks the name against the certificate.
    let advertised = format!("localhost:{kafka_front_port}");
    let (_broker, broker_address) = tansu(&advertised);
    let kafka_front = tls_front(
        kafka_listener,
        Arc::clone(&certificates.acceptor),
        broker_address,
    );
    let cql_listener = TcpListener::bind("127.0.0.1:0").await.expect("listen");
    let cql_front_address = cql_listener.local_addr().expect("address");
    let cql_front = tls_front(cql_listener, Arc::clone(&certificates.acceptor), cql);
    // Mutual TLS: the fronts refuse a client without a certificate signed by the test CA.
    let tls = TlsFiles {
        ca: Some(certificates.ca_pem.clone()),
        cert: Some(certificates.client_cert_pem.clone()),
        key: Some(certificates.client_key_pem.clone()),
    };
    let mut clusters = plaintext(&advertised, &cql_front_address.to_string());
    clusters.kafka.security = KafkaSecurity {
        protocol: KafkaProtocol::Ssl,
        sasl: None,
        tls: tls.clone(),
    };
    clusters.cql.security = CqlSecurity {
        login: Some(Login {
            username: "cassandra".into(),
            password: Password::new("cassandra"),
        }),
        tls: Some(tls),
    };

    // The CQL front really requires a client certificate. (Under TLS 1.3 the server's refusal
    // comes after the client's side of the handshake: the client sees either the alert or a
    // broken connection, so the front's count is what this checks, not the client's wording.)
    let mut no_certificate = clusters.cql.clone();
    if let Some(files) = no_certificate.security.tls.as_mut() {
        (files.cert, files.key) = (None, None);
    }
    cql::connect(&no_certificate, Duration::from_secs(5))
        .await
        .expect_err("TLS without the client certificate");
    assert!(cql_front.refusals.load(Ordering::Relaxed) > 0);
    assert_eq!(cql_front.handshakes.load(Ordering::Relaxed), 0);

    // A wrong password is refused at once, and said so.
    let mut wrong = clusters.cql.clone();
    if let Some(login) = wrong.security.login.as_mut() {
        login.password = Password::new("not-the-password");
    }
    let started = Instant::now();
    let error = cql::connect(&wrong, Duration::from_secs(120))
        .await
        .expect_err("a wrong password");
    assert!(
        error.to_string().contains("refused the connection"),
        "{error}"
    );
    // "At once": one handshake and one refusal, not retries until the 120 s deadline.
    let refused_after = started.elapsed();
    eprintln!("external: a wrong password was refused after {refused_after:?}");
    assert!(
        refused_after < Duration::from_secs(10),
        "bad credentials must be refused at once, not retried: took {refused_after:?}"
    );

    let report = run("smoke", clusters.clone()).await;
    report.assert_no_loss();
    report.assert_passed();
    assert!(kafka_front.handshakes.load(Ordering::Relaxed) > 0);
    assert!(cql_front.handshakes.load(Ordering::Relaxed) > 0);
    let versions = &report.target.service_versions;
    assert!(versions["broker"].contains("security ssl"), "{versions:?}");
    assert!(versions["cassandra"].contains("TLS"), "{versions:?}");

    // Broker network faults need to read the protocol: with TLS they are refused, clearly.
    let (scenario, options) = external_run("network-partition-ci", clusters);
    let error = scenario
        .run(options.clone())
        .await
        .expect_err("broker network faults over TLS are refused");
    assert!(
        error.to_string().contains("without TLS"),
        "the refusal should say why: {error}"
    );
    let _ = std::fs::remove_dir_all(&options.out_dir);
}
