//! Unit tests of the security flags: validation, librdkafka settings, the hand-over to the consumer process.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Parser;

use super::*;

/// The flags as `roadtest ingest` parses them.
#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    kafka: KafkaSecurityArgs,
    #[command(flatten)]
    cql: CqlSecurityArgs,
}

fn parse(args: &[&str]) -> Flags {
    Flags::try_parse_from(std::iter::once("test").chain(args.iter().copied()))
        .unwrap_or_else(|error| panic!("{args:?}: {error}"))
}

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |key| map.get(key).cloned()
}

/// A PEM file that exists (its content is not read by `resolve`).
fn some_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("roadtest-security-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, "not really PEM").expect("temp file");
    path
}

fn flag_of(error: SecurityError) -> &'static str {
    match error {
        SecurityError::Invalid { flag, .. } => flag,
        other => panic!("expected an Invalid error, got {other}"),
    }
}

#[test]
fn no_flags_mean_plaintext_without_login() {
    let flags = parse(&[]);
    assert!(!flags.kafka.is_set() && !flags.cql.is_set());
    let kafka = flags.kafka.resolve(env(&[])).expect("plaintext");
    assert_eq!(kafka, KafkaSecurity::default());
    let mut config = ClientConfig::new();
    kafka.apply(&mut config);
    assert_eq!(
        config.get("security.protocol"),
        None,
        "plaintext adds nothing"
    );
    assert_eq!(
        flags.cql.resolve(env(&[])).expect("no TLS"),
        CqlSecurity::default()
    );
}

#[test]
fn sasl_ssl_sets_every_librdkafka_key() {
    let ca = some_file("kafka-ca.pem");
    let flags = parse(&[
        "--kafka-security-protocol",
        "sasl-ssl",
        "--kafka-sasl-mechanism",
        "scram-sha512",
        "--kafka-username",
        "alice",
        "--kafka-ca-file",
        ca.to_str().expect("utf-8 path"),
    ]);
    let kafka = flags
        .kafka
        .resolve(env(&[(KAFKA_PASSWORD_ENV, "s3cret")]))
        .expect("valid");
    let mut config = ClientConfig::new();
    kafka.apply(&mut config);
    assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
    assert_eq!(config.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
    assert_eq!(config.get("sasl.username"), Some("alice"));
    assert_eq!(config.get("sasl.password"), Some("s3cret"));
    assert_eq!(config.get("ssl.ca.location"), ca.to_str());
    assert_eq!(config.get("ssl.certificate.location"), None);
    assert!(
        !format!("{kafka:?}").contains("s3cret"),
        "Debug must not show the password"
    );
}

#[test]
fn contradicting_or_missing_kafka_settings_name_the_flag() {
    let cert = some_file("client.pem");
    let cert = cert.to_str().expect("utf-8 path");
    let password = env(&[(KAFKA_PASSWORD_ENV, "pw")]);
    let cases: [(&[&str], &str); 7] = [
        (&["--kafka-username", "bob"], "--kafka-username"),
        (
            &["--kafka-sasl-mechanism", "plain"],
            "--kafka-sasl-mechanism",
        ),
        (
            &[
                "--kafka-security-protocol",
                "sasl-plaintext",
                "--kafka-username",
                "bob",
            ],
            "--kafka-sasl-mechanism",
        ),
        (
            &[
                "--kafka-security-protocol",
                "sasl-plaintext",
                "--kafka-sasl-mechanism",
                "plain",
            ],
            "--kafka-username",
        ),
        (&["--kafka-ca-file", cert], "--kafka-ca-file"),
        (
            &[
                "--kafka-security-protocol",
                "ssl",
                "--kafka-cert-file",
                cert,
            ],
            "--kafka-key-file",
        ),
        (
            &[
                "--kafka-security-protocol",
                "ssl",
                "--kafka-ca-file",
                "/no/such/ca.pem",
            ],
            "--kafka-ca-file",
        ),
    ];
    for (args, flag) in cases {
        let error = parse(args)
            .kafka
            .resolve(&password)
            .expect_err(&format!("{args:?} must be refused"));
        assert_eq!(flag_of(error), flag, "{args:?}");
    }
}

#[test]
fn a_login_without_its_password_names_the_environment_variable() {
    let flags = parse(&[
        "--kafka-security-protocol",
        "sasl-plaintext",
        "--kafka-sasl-mechanism",
        "plain",
        "--kafka-username",
        "bob",
        "--cql-username",
        "carol",
    ]);
    let kafka = flags.kafka.resolve(env(&[(KAFKA_PASSWORD_ENV, "")]));
    assert_eq!(
        flag_of(kafka.expect_err("empty password")),
        KAFKA_PASSWORD_ENV
    );
    let cql = flags
        .cql
        .resolve(env(&[(KAFKA_PASSWORD_ENV, "not this one")]));
    assert_eq!(flag_of(cql.expect_err("no CQL password")), CQL_PASSWORD_ENV);
    let cql = flags
        .cql
        .resolve(env(&[(CQL_PASSWORD_ENV, "pw")]))
        .expect("with its password");
    assert_eq!(cql.login.map(|login| login.username), Some("carol".into()));
}

#[test]
fn cql_tls_is_implied_by_its_files_and_needs_both_halves_of_a_key_pair() {
    let ca = some_file("cql-ca.pem");
    let ca = ca.to_str().expect("utf-8 path");
    let cql = parse(&["--cql-ca-file", ca])
        .cql
        .resolve(env(&[]))
        .expect("valid");
    assert_eq!(
        cql.tls.and_then(|files| files.ca),
        Some(PathBuf::from(ca)),
        "a CA file turns TLS on"
    );
    let cql = parse(&["--cql-tls"]).cql.resolve(env(&[])).expect("valid");
    assert_eq!(cql.tls, Some(TlsFiles::default()));
    let error = parse(&["--cql-key-file", ca]).cql.resolve(env(&[]));
    assert_eq!(
        flag_of(error.expect_err("key without cert")),
        "--cql-cert-file"
    );
}

#[test]
fn the_consumer_gets_the_same_settings_through_its_flags() {
    let (ca, cert, key) = (
        some_file("ca.pem"),
        some_file("cert.pem"),
        some_file("key.pem"),
    );
    let path = |p: &PathBuf| p.to_str().expect("utf-8 path").to_string();
    let args: Vec<String> = [
        "--kafka-security-protocol",
        "sasl-ssl",
        "--kafka-sasl-mechanism",
        "scram-sha256",
        "--kafka-username",
        "alice",
        "--kafka-ca-file",
        &path(&ca),
        "--kafka-cert-file",
        &path(&cert),
        "--kafka-key-file",
        &path(&key),
        "--cql-username",
        "carol",
        "--cql-ca-file",
        &path(&ca),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let passwords = env(&[(KAFKA_PASSWORD_ENV, "k"), (CQL_PASSWORD_ENV, "c")]);
    let parent = parse(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let kafka = parent.kafka.resolve(&passwords).expect("valid");
    let cql = parent.cql.resolve(&passwords).expect("valid");
    let mut handed: Vec<String> = kafka
        .to_args()
        .into_iter()
        .chain(cql.to_args())
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    assert!(
        !handed.iter().any(|arg| arg == "k" || arg == "c"),
        "passwords must not be flags: {handed:?}"
    );
    let child = parse(&handed.iter_mut().map(|s| s.as_str()).collect::<Vec<_>>());
    assert_eq!(child.kafka.resolve(&passwords).expect("valid"), kafka);
    assert_eq!(child.cql.resolve(&passwords).expect("valid"), cql);
}

#[test]
fn a_consumer_of_the_users_own_gets_the_same_settings_through_its_environment() {
    let (ca, cert, key) = (
        some_file("ca.pem"),
        some_file("cert.pem"),
        some_file("key.pem"),
    );
    let path = |p: &PathBuf| p.to_str().expect("utf-8 path").to_string();
    let args = [
        "--kafka-security-protocol".to_string(),
        "sasl-ssl".into(),
        "--kafka-sasl-mechanism".into(),
        "scram-sha512".into(),
        "--kafka-username".into(),
        "alice".into(),
        "--kafka-ca-file".into(),
        path(&ca),
        "--cql-username".into(),
        "carol".into(),
        "--cql-cert-file".into(),
        path(&cert),
        "--cql-key-file".into(),
        path(&key),
    ];
    let passwords = env(&[(KAFKA_PASSWORD_ENV, "k"), (CQL_PASSWORD_ENV, "c")]);
    let flags = parse(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let kafka = flags.kafka.resolve(&passwords).expect("valid");
    let cql = flags.cql.resolve(&passwords).expect("valid");
    let handed: HashMap<String, String> = kafka
        .to_env()
        .into_iter()
        .chain(cql.to_env())
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let expected: HashMap<String, String> = [
        ("ROADTEST_KAFKA_SECURITY_PROTOCOL", "sasl_ssl".to_string()),
        ("ROADTEST_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512".into()),
        ("ROADTEST_KAFKA_USERNAME", "alice".into()),
        ("ROADTEST_KAFKA_PASSWORD", "k".into()),
        ("ROADTEST_KAFKA_CA_FILE", path(&ca)),
        ("ROADTEST_CQL_USERNAME", "carol".into()),
        ("ROADTEST_CQL_PASSWORD", "c".into()),
        ("ROADTEST_CQL_TLS", "1".into()),
        ("ROADTEST_CQL_CERT_FILE", path(&cert)),
        ("ROADTEST_CQL_KEY_FILE", path(&key)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(handed, expected);
    // Plaintext without a login: the protocol alone.
    let plain = parse(&[]);
    let kafka = plain.kafka.resolve(&passwords).expect("valid");
    let cql = plain.cql.resolve(&passwords).expect("valid");
    let names: Vec<String> = kafka
        .to_env()
        .into_iter()
        .chain(cql.to_env())
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect();
    assert_eq!(names, ["ROADTEST_KAFKA_SECURITY_PROTOCOL=plaintext"]);
}

#[test]
fn a_cql_ca_that_is_not_pem_is_a_tls_error_naming_the_file() {
    let bad = some_file("garbage-ca.pem");
    let security = CqlSecurity {
        login: None,
        tls: Some(TlsFiles {
            ca: Some(bad.clone()),
            ..TlsFiles::default()
        }),
    };
    match security.ssl_context() {
        Err(SecurityError::Tls { what, .. }) => {
            assert!(what.contains(&bad.display().to_string()), "{what}")
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    assert!(
        CqlSecurity::default()
            .ssl_context()
            .expect("no TLS")
            .is_none()
    );
}
