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
