//! Unit tests of the external target's pure parts: flag checks, fault refusal, node address translation.

use super::*;
use crate::targets::{Capabilities, TargetKind};

fn scenario(faults: &str) -> Scenario {
    let text =
        format!("name = \"t\"\nseed = 1\nduration_s = 30\n[fleet]\nvehicle_count = 2\n{faults}");
    Scenario::parse(&text, Path::new("t.toml")).expect("valid scenario")
}

fn refuse(scenario: &Scenario) -> Result<(), String> {
    Capabilities::of(TargetKind::External).refuse_unsupported_faults(TargetKind::External, scenario)
}

#[test]
fn process_faults_on_the_clusters_are_refused_and_the_rest_allowed() {
    let fault = |action: &str, service: &str| {
        format!(
            "[[faults]]\naction = \"{action}\"\nservice = \"{service}\"\nat_s = 5\nduration_s = 2\n"
        )
    };
    for (action, service) in [
        ("kill", "broker"),
        ("stop", "cassandra"),
        ("pause", "broker"),
    ] {
        let error =
            refuse(&scenario(&fault(action, service))).expect_err("process control of a cluster");
        assert!(
            error.contains(&format!("cannot {action} the {service}")),
            "{error}"
        );
    }
    let allowed = [
        fault("kill", "consumer"),
        fault("pause", "consumer"),
        fault("blackhole", "broker"),
        fault("reset", "cassandra"),
    ]
    .concat();
    let allowed = scenario(&allowed);
    refuse(&allowed).expect("consumer and network faults");
    assert_eq!(
        network_fault_roles(&allowed),
        BTreeSet::from([Role::Broker, Role::Cassandra])
    );
    assert!(network_fault_roles(&scenario("")).is_empty());
}

#[test]
fn connection_flags_are_checked() {
    let args = |bootstrap: Option<&str>, contact: &[&str]| ExternalArgs {
        kafka_bootstrap: bootstrap.map(str::to_string),
        cql_contact: contact.iter().map(|c| c.to_string()).collect(),
        kafka_replication_factor: 1,
        cql_replication: cql::REPLICATION_ONE.to_string(),
        ..ExternalArgs::default()
    };
    let no_env = |_: &str| None;
    let ExternalClusters { kafka, cql, .. } =
        args(Some("b1:9092,b2:9092"), &["c1:9042", "c2:9042"])
            .resolve(no_env)
            .expect("valid");
    assert_eq!(kafka.bootstrap, "b1:9092,b2:9092");
    assert_eq!(cql.contact_points, ["c1:9042", "c2:9042"]);
    for (bootstrap, contact, flag) in [
        (None, &["c:9042"][..], "--kafka-bootstrap"),
        (Some("b:9092"), &[][..], "--cql-contact"),
        (Some("b"), &["c:9042"][..], "--kafka-bootstrap"),
        (Some("b:0"), &["c:9042"][..], "--kafka-bootstrap"),
        (Some("b:9092"), &[":9042"][..], "--cql-contact"),
        (Some("b:9092"), &["c:port"][..], "--cql-contact"),
    ] {
        let error = args(bootstrap, contact)
            .resolve(no_env)
            .expect_err("invalid flags");
        assert!(error.contains(flag), "{bootstrap:?} {contact:?}: {error}");
    }
    let mut bad_map = args(Some("b:9092"), &["c:9042"]);
    bad_map.cql_replication = "3".into();
    let error = bad_map.resolve(no_env).expect_err("not a map");
    assert!(error.contains("--cql-replication"), "{error}");
    assert!(
        !ExternalArgs {
            kafka_replication_factor: 1,
            cql_replication: cql::REPLICATION_ONE.to_string(),
            ..ExternalArgs::default()
        }
        .is_set()
    );
}

#[test]
fn postgres_flags_take_the_password_from_the_environment_and_match_the_sink() {
    let args = |contact: &[&str], postgres: Option<&str>| ExternalArgs {
        kafka_bootstrap: Some("b:9092".into()),
        cql_contact: contact.iter().map(|c| c.to_string()).collect(),
        postgres_url: postgres.map(str::to_string),
        kafka_replication_factor: 1,
        cql_replication: cql::REPLICATION_ONE.to_string(),
        ..ExternalArgs::default()
    };
    let url = "postgresql://app@db:5432/telemetry";
    let env = |key: &str| (key == POSTGRES_PASSWORD_ENV).then(|| "s3cret".to_string());
    let clusters = args(&[], Some(url)).resolve(env).expect("valid");
    let postgres = clusters.postgres.clone().expect("PostgreSQL");
    assert_eq!(postgres.url, url);
    assert_eq!(
        postgres.password.as_ref().map(|p| p.expose()),
        Some("s3cret")
    );
    assert!(!clusters.replay_flags().contains("s3cret"));
    assert!(clusters.replay_flags().contains("--postgres-url"));
    assert!(!clusters.replay_flags().contains("--cql-contact"));
    let no_env = |_: &str| None;
    let without = args(&[], Some(url)).resolve(no_env).expect("valid");
    assert_eq!(without.postgres.and_then(|p| p.password), None);
    for (contact, postgres, says) in [
        (
            &[][..],
            None,
            "--cql-contact HOST:PORT (Cassandra) or --postgres-url",
        ),
        (&["c:9042"][..], Some(url), "not both"),
        (
            &[][..],
            Some("postgresql://app:pw@db/x"),
            POSTGRES_PASSWORD_ENV,
        ),
    ] {
        let error = args(contact, postgres)
            .resolve(no_env)
            .expect_err("refused");
        assert!(error.contains(says), "{error}");
    }
    let pipeline = |sink: Sink, synchronous_commit: bool| PipelineSettings {
        sink,
        postgres_synchronous_commit: synchronous_commit,
        ..PipelineSettings::default()
    };
    clusters
        .refuse_other_sink(&pipeline(Sink::Postgres, true))
        .expect("PostgreSQL to PostgreSQL");
    for (refused, says) in [
        (pipeline(Sink::Cassandra, true), "--cql-contact"),
        (pipeline(Sink::Postgres, false), "synchronous_commit"),
    ] {
        let error = clusters.refuse_other_sink(&refused).expect_err("refused");
        assert!(error.contains(says), "{error}");
    }
    let cassandra = args(&["c:9042"], None).resolve(no_env).expect("valid");
    let error = cassandra
        .refuse_other_sink(&pipeline(Sink::Postgres, true))
        .expect_err("no PostgreSQL given");
    assert!(error.contains("--postgres-url"), "{error}");
}

#[test]
fn every_reported_node_address_reaches_its_own_proxy() {
    let nodes: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
    let proxies: Vec<SocketAddr> = vec![
        "127.0.0.1:40001".parse().unwrap(),
        "127.0.0.1:40002".parse().unwrap(),
    ];
    let pairs = translation_pairs(&nodes, &[9042, 40001, 40002], &proxies);
    let lookup: std::collections::HashMap<_, _> = pairs.iter().copied().collect();
    assert_eq!(lookup.len(), 6);
    for (node, proxy) in nodes.iter().zip(&proxies) {
        for port in [9042, 40001, 40002] {
            assert_eq!(lookup[&SocketAddr::new(*node, port)], *proxy);
        }
    }
}
