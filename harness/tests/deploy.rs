//! The monitoring files in deploy/ ask only for what roadtest exposes: the Grafana dashboard is complete (its uid, unique panel ids, titles, grid positions, the provisioned data source, a query in every panel, the panels docs/monitoring.md describes), and every `roadtest_` metric the dashboard, the Prometheus alert rules, their unit tests and docs/monitoring.md name is a family `roadtest run` or the reference consumer exposes (`roadtest::live::exposed_families`).
//!
//! Grafana and Prometheus are not needed: the files are read as text and JSON. `ci/prometheus`
//! checks the rules with promtool.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

const DASHBOARD: &str = "deploy/grafana/dashboards/roadtest.json";
const DATASOURCES: &str = "deploy/grafana/provisioning/datasources/prometheus.yml";
const RULES: &str = "deploy/prometheus/rules/roadtest.rules.yml";
const RULE_TESTS: &str = "deploy/prometheus/tests/roadtest.rules.test.yml";
const MONITORING_DOC: &str = "docs/monitoring.md";
const DASHBOARD_UID: &str = "roadtest-run";

/// Panels docs/monitoring.md promises.
const REQUIRED_PANELS: &[&str] = &[
    "Throughput",
    "End-to-end latency p50/p99",
    "Pipeline lag",
    "Resident memory by process",
    "CPU by process",
    "Cassandra heap",
    "Cassandra GC pauses",
    "Faults active",
    "Consumer write failures and retries",
    "Batch write latency p99",
];

/// The histogram families: a query names their series `_bucket`, `_sum` and `_count`.
const HISTOGRAMS: &[&str] = &[
    "roadtest_e2e_latency_seconds",
    "roadtest_cassandra_gc_pause_seconds",
    "roadtest_ingest_batch_write_latency_seconds",
];
const HISTOGRAM_SERIES: &[&str] = &["_bucket", "_sum", "_count"];
const METRIC_PREFIX: &str = "roadtest_";

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repository().join(relative))
        .unwrap_or_else(|e| panic!("{relative}: cannot read: {e}"))
}

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD}: not JSON: {e}"))
}

/// The uid of the provisioned data source: the first `uid:` line of the YAML.
fn provisioned_datasource_uid() -> String {
    read(DATASOURCES)
        .lines()
        .find_map(|line| line.trim().strip_prefix("uid:"))
        .map(|value| value.trim().trim_matches(['"', '\'']).to_string())
        .filter(|uid| !uid.is_empty())
        .unwrap_or_else(|| panic!("{DATASOURCES}: no `uid:` line with a value"))
}

/// Every panel, those inside (collapsed) rows included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let top = dashboard["panels"]
        .as_array()
        .expect("the dashboard has a `panels` array");
    let mut all = Vec::new();
    for panel in top {
        all.push(panel);
        if let Some(inner) = panel["panels"].as_array() {
            all.extend(inner);
        }
    }
    all
}

fn title_of(panel: &Value) -> &str {
    panel["title"].as_str().unwrap_or("")
}

/// The PromQL of every panel target and of every query variable.
fn queries(dashboard: &Value) -> Vec<String> {
    let mut found: Vec<String> = panels(dashboard)
        .into_iter()
        .filter_map(|panel| panel["targets"].as_array())
        .flatten()
        .filter_map(|target| target["expr"].as_str())
        .map(str::to_string)
        .collect();
    let variables = dashboard["templating"]["list"].as_array();
    for variable in variables.into_iter().flatten() {
        let query = &variable["query"];
        if let Some(text) = query.as_str().or_else(|| query["query"].as_str()) {
            found.push(text.to_string());
        }
    }
    found
}

/// Every `roadtest_[a-z0-9_]+` word of `text`.
fn metric_tokens(text: &str) -> BTreeSet<String> {
    let mut tokens = BTreeSet::new();
    for (at, _) in text.match_indices(METRIC_PREFIX) {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let token: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if token.len() > METRIC_PREFIX.len() {
            tokens.insert(token);
        }
    }
    tokens
}

/// The exposed family a metric name queries: itself, or the histogram whose series it is.
fn family_of(token: &str, exposed: &BTreeSet<String>) -> Option<String> {
    if exposed.contains(token) {
        return Some(token.to_string());
    }
    HISTOGRAM_SERIES
        .iter()
        .filter_map(|suffix| token.strip_suffix(suffix))
        .find(|base| HISTOGRAMS.contains(base) && exposed.contains(*base))
        .map(str::to_string)
}

/// The `roadtest_` names in `text` that no exposed family answers to.
fn unknown_metrics(text: &str, exposed: &BTreeSet<String>) -> Vec<String> {
    metric_tokens(text)
        .into_iter()
        .filter(|token| family_of(token, exposed).is_none())
        .collect()
}

/// Asserts that `text` (the file `name`) names metrics, and only exposed ones.
fn assert_only_exposed(name: &str, text: &str) {
    let exposed = roadtest::live::exposed_families();
    assert!(
        !metric_tokens(text).is_empty(),
        "{name} names no roadtest_ metric: the check would prove nothing"
    );
    let unknown = unknown_metrics(text, &exposed);
    assert!(
        unknown.is_empty(),
        "{name} names metrics roadtest does not expose: {unknown:?}\nexposed: {exposed:?}"
    );
}

/// The alert names of the rules file (`- alert: NAME`).
fn alert_names() -> Vec<String> {
    read(RULES)
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert:"))
        .map(|name| name.trim().to_string())
        .collect()
}

#[test]
fn the_dashboard_has_its_stable_uid() {
    let dashboard = dashboard();
    assert_eq!(
        dashboard["uid"].as_str(),
        Some(DASHBOARD_UID),
        "{DASHBOARD}"
    );
    assert_eq!(dashboard["title"].as_str(), Some("roadtest run"));
    assert_eq!(dashboard["schemaVersion"].as_u64(), Some(39));
}

#[test]
fn every_panel_is_complete_and_uses_the_provisioned_datasource() {
    let dashboard = dashboard();
    let uid = provisioned_datasource_uid();
    let mut ids = BTreeSet::new();
    for panel in panels(&dashboard) {
        let title = title_of(panel);
        assert!(!title.trim().is_empty(), "a panel has no title: {panel}");
        let id = panel["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("panel {title:?}: no numeric id"));
        assert!(ids.insert(id), "panel {title:?}: id {id} is used twice");
        if panel["type"].as_str() == Some("row") {
            continue;
        }
        for field in ["h", "w", "x", "y"] {
            assert!(
                panel["gridPos"][field].is_u64(),
                "panel {title:?}: gridPos.{field} missing"
            );
        }
        assert_eq!(
            panel["datasource"]["uid"].as_str(),
            Some(uid.as_str()),
            "panel {title:?}: datasource uid is not the provisioned {uid:?}"
        );
        let targets = panel["targets"]
            .as_array()
            .filter(|targets| !targets.is_empty())
            .unwrap_or_else(|| panic!("panel {title:?}: no targets"));
        let mut ref_ids = BTreeSet::new();
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or("");
            assert!(
                !expr.trim().is_empty(),
                "panel {title:?}: a target has no expr"
            );
            let ref_id = target["refId"].as_str().unwrap_or("");
            assert!(
                !ref_id.is_empty() && ref_ids.insert(ref_id),
                "panel {title:?}: refId {ref_id:?} missing or repeated"
            );
        }
    }
}

#[test]
fn the_dashboard_has_every_panel_the_docs_promise() {
    let dashboard = dashboard();
    let titles: BTreeSet<&str> = panels(&dashboard).into_iter().map(title_of).collect();
    let missing: Vec<&&str> = REQUIRED_PANELS
        .iter()
        .filter(|title| !titles.contains(**title))
        .collect();
    assert!(
        missing.is_empty(),
        "{DASHBOARD}: no panel {missing:?}; has {titles:?}"
    );
}

#[test]
fn the_scenario_variable_lists_the_runs_scenarios() {
    let dashboard = dashboard();
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("the dashboard has templating.list");
    let scenario = variables
        .iter()
        .find(|variable| variable["name"].as_str() == Some("scenario"))
        .expect("a template variable named scenario");
    let query = &scenario["query"];
    let text = query.as_str().or_else(|| query["query"].as_str());
    assert_eq!(text, Some("label_values(roadtest_run_info, scenario)"));
    assert_eq!(
        scenario["datasource"]["uid"].as_str(),
        Some(provisioned_datasource_uid().as_str())
    );
}

#[test]
fn every_metric_the_dashboard_queries_is_exposed() {
    let queries = queries(&dashboard()).join("\n");
    assert_only_exposed(DASHBOARD, &queries);
}

#[test]
fn every_metric_the_alert_rules_name_is_exposed() {
    assert_only_exposed(RULES, &read(RULES));
    assert_only_exposed(RULE_TESTS, &read(RULE_TESTS));
}

#[test]
fn every_alert_has_unit_tests_and_a_place_in_the_docs() {
    let alerts = alert_names();
    assert!(alerts.len() >= 4, "{RULES}: alerts {alerts:?}");
    let tests = read(RULE_TESTS);
    let doc = read(MONITORING_DOC);
    for alert in &alerts {
        assert!(
            tests.contains(&format!("alertname: {alert}")),
            "{RULE_TESTS}: no test of {alert}"
        );
        assert!(
            doc.contains(alert.as_str()),
            "{MONITORING_DOC}: {alert} not described"
        );
    }
}

#[test]
fn the_docs_list_every_exposed_metric_and_no_other() {
    let doc = read(MONITORING_DOC);
    let missing: Vec<String> = roadtest::live::exposed_families()
        .into_iter()
        .filter(|family| !doc.contains(&format!("`{family}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "{MONITORING_DOC}: no row for {missing:?}"
    );
    assert_only_exposed(MONITORING_DOC, &doc);
}

#[test]
fn a_name_roadtest_does_not_expose_is_rejected() {
    let exposed = roadtest::live::exposed_families();
    for histogram in HISTOGRAMS {
        assert!(exposed.contains(*histogram), "{histogram} is not exposed");
    }
    let query = "rate(roadtest_no_such_metric[1m]) + roadtest_pipeline_lag_events_sum \
                 + histogram_quantile(0.99, rate(roadtest_e2e_latency_seconds_bucket[1m])) \
                 + roadtest_events_produced_total + xroadtest_ignored";
    assert_eq!(
        unknown_metrics(query, &exposed),
        [
            "roadtest_no_such_metric",
            "roadtest_pipeline_lag_events_sum"
        ],
        "an unknown name and a gauge queried as a histogram series are rejected"
    );
    assert_eq!(
        family_of("roadtest_e2e_latency_seconds_bucket", &exposed).as_deref(),
        Some("roadtest_e2e_latency_seconds")
    );
}
