//! Tests of the webhook payloads roadtest reads.

use super::*;

const RECEIVED_MS: i64 = 1_767_225_700_000;

fn parsed(body: &str) -> Vec<ReceivedAlert> {
    parse_webhook(body.as_bytes(), RECEIVED_MS).unwrap_or_else(|error| panic!("{error}"))
}

fn refused(body: &str) -> String {
    parse_webhook(body.as_bytes(), RECEIVED_MS)
        .expect_err("malformed")
        .to_string()
}

fn alert(name: &str, vehicle_id: &str, reported_at_ms: Option<i64>) -> ReceivedAlert {
    ReceivedAlert {
        alert: name.to_string(),
        vehicle_id: vehicle_id.to_string(),
        reported_at_ms,
        received_at_ms: RECEIVED_MS,
    }
}

/// An Alertmanager notification as its webhook receiver posts it (version 4), with one firing and
/// one resolved alert.
const ALERTMANAGER: &str = r#"{
  "receiver": "roadtest", "status": "firing", "version": "4",
  "groupKey": "{}:{alertname=\"speeding\"}", "truncatedAlerts": 0,
  "groupLabels": {"alertname": "speeding"}, "commonLabels": {"alertname": "speeding"},
  "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
  "alerts": [
    {"status": "firing", "labels": {"alertname": "speeding", "vehicle_id": "veh-000012", "severity": "page"},
     "annotations": {}, "startsAt": "2026-01-01T00:00:11.500123456Z", "endsAt": "0001-01-01T00:00:00Z",
     "generatorURL": "http://prometheus:9090/graph", "fingerprint": "a1b2"},
    {"status": "resolved", "labels": {"alertname": "speeding", "vehicle_id": "veh-000003"},
     "annotations": {}, "startsAt": "2026-01-01T00:00:05Z", "endsAt": "2026-01-01T00:00:20Z",
     "generatorURL": "", "fingerprint": "c3d4"}
  ]
}"#;

#[test]
fn alertmanager_payloads_give_their_firing_alerts() {
    assert_eq!(
        parsed(ALERTMANAGER),
        [alert("speeding", "veh-000012", Some(1_767_225_611_500))]
    );
    let resolved_only = ALERTMANAGER.replace(
        "\"status\": \"firing\", \"labels\"",
        "\"status\": \"resolved\", \"labels\"",
    );
    assert_eq!(parsed(&resolved_only), []);
}

#[test]
fn plain_objects_and_arrays_of_them_are_read() {
    assert_eq!(
        parsed(
            r#"{"alert": "speeding", "vehicle_id": "veh-000001", "at": 1767225611000, "value": 140.2}"#
        ),
        [alert("speeding", "veh-000001", Some(1_767_225_611_000))]
    );
    assert_eq!(
        parsed(
            r#"[{"alert": "speeding", "vehicle_id": "veh-000001", "at": "2026-01-01T00:00:11Z"},
                {"alert": "cold", "vehicle_id": "veh-000002"}]"#
        ),
        [
            alert("speeding", "veh-000001", Some(1_767_225_611_000)),
            alert("cold", "veh-000002", None),
        ]
    );
    assert_eq!(parsed("[]"), []);
}

#[test]
fn malformed_payloads_say_where_and_what() {
    for (body, expected) in [
        ("{\"alert\": ", "(body): not JSON"),
        ("42", "(body): is neither an Alertmanager payload"),
        (r#"{"vehicle_id": "veh-000001"}"#, "alert: missing"),
        (
            r#"{"alert": "", "vehicle_id": "veh-000001"}"#,
            "alert: is empty",
        ),
        (
            r#"{"alert": "a", "vehicle_id": 7}"#,
            "vehicle_id: 7 is not a string",
        ),
        (
            r#"{"alert": "a", "vehicle_id": "v", "at": "yesterday"}"#,
            "at: \"yesterday\" is not an RFC 3339 time",
        ),
        (
            r#"{"alert": "a", "vehicle_id": "v", "at": 1.5}"#,
            "at: 1.5 is not a whole number of ms",
        ),
        (
            r#"{"alert": "a", "vehicle_id": "v", "at": true}"#,
            "at: true is neither ms",
        ),
        (
            r#"[{"alert": "a", "vehicle_id": "v"}, 3]"#,
            "[1]: is not an object",
        ),
        (r#"[{"alert": "a"}]"#, "[0].vehicle_id: missing"),
        (
            r#"{"version": "3", "alerts": []}"#,
            "version: \"3\" is not an Alertmanager payload version",
        ),
        (r#"{"version": 4, "alerts": []}"#, "version: 4 is not"),
        (r#"{"version": "4"}"#, "alerts: missing or not an array"),
        (
            r#"{"version": "4", "alerts": [1]}"#,
            "alerts[0]: is not an object",
        ),
    ] {
        let message = refused(body);
        assert!(message.starts_with(expected), "{body}: {message}");
    }
    let broken = [
        (
            "\"vehicle_id\": \"veh-000012\", ",
            "",
            "alerts[0].labels.vehicle_id: missing",
        ),
        (
            "\"startsAt\": \"2026-01-01T00:00:11.500123456Z\"",
            "\"startsAt\": \"soon\"",
            "alerts[0].startsAt: \"soon\" is not an RFC 3339 time",
        ),
        (
            "\"status\": \"firing\", \"labels\"",
            "\"status\": \"pending\", \"labels\"",
            "alerts[0].status: \"pending\" is neither",
        ),
        (
            "\"labels\": {\"alertname\": \"speeding\", \"vehicle_id\": \"veh-000012\", \"severity\": \"page\"}",
            "\"labels\": []",
            "alerts[0].labels: missing or not an object",
        ),
    ];
    for (from, to, expected) in broken {
        assert!(ALERTMANAGER.contains(from), "{from}");
        let message = refused(&ALERTMANAGER.replacen(from, to, 1));
        assert!(message.starts_with(expected), "{expected}: {message}");
    }
}
