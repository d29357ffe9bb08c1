//! Expected alerts against received ones, per (alert, vehicle): matched with their latency, missed, duplicated, spurious.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::evaluate::ExpectedAlert;
use super::webhook::ReceivedAlert;

/// How many missed and spurious alerts the section lists, at most (the earliest).
pub const EXAMPLES_MAX: usize = 10;

/// The alerts of a run: what the seed says must fire against what the webhook received.
/// `received` = `expected - missed` (matched) `+ duplicated + spurious`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertsSection {
    /// Alerts the events raise ([`super::expected_alerts`]).
    pub expected: u64,
    /// Firing alerts received (resolved ones and malformed posts not counted).
    pub received: u64,
    /// Expected alerts no received alert matched.
    pub missed: u64,
    /// Received alerts of an (alert, vehicle) with no expected alert due by their arrival.
    pub spurious: u64,
    /// Received alerts left over after matching, of an (alert, vehicle) that had one due.
    pub duplicated: u64,
    /// Posts the webhook refused (counted by the server; 0 here).
    pub malformed: u64,
    /// From the intended send time of the event that completed the condition to the arrival of
    /// the matching alert, over the matched alerts.
    pub latency_ms: AlertLatency,
    /// The earliest missed alerts (by event time).
    pub missed_examples: Vec<ExpectedAlert>,
    /// The earliest spurious alerts (by arrival).
    pub spurious_examples: Vec<ReceivedAlert>,
}

/// Nearest-rank percentiles of the matched alerts' latency, ms; null without any match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AlertLatency {
    pub p50: Option<i64>,
    pub p99: Option<i64>,
    pub max: Option<i64>,
}

/// One (alert, vehicle)'s alerts: expected ones as (wall time due, index), received ones as
/// (arrival, index), both in time order.
#[derive(Debug, Default)]
struct KeyAlerts {
    expected: Vec<(i64, usize)>,
    received: Vec<(i64, usize)>,
}

/// What matching found.
#[derive(Debug, Default)]
struct Outcome {
    latencies_ms: Vec<i64>,
    missed: Vec<usize>,
    spurious: Vec<usize>,
    duplicated: u64,
}

/// Matches `received` to `expected`; `event_wall_ms` maps an event's timestamp to the wall time
/// the producer was to send it (ms since the Unix epoch). The rule, per (alert, vehicle):
/// expected alerts in the order they fall due each take the earliest received alert not yet taken
/// that arrived at or after their due time; one with none left is missed. A received alert left
/// over is duplicated when an expected alert of its (alert, vehicle) was due by its arrival, else
/// spurious (no such alert, or it arrived before any was due).
pub fn match_alerts(
    expected: &[ExpectedAlert],
    received: &[ReceivedAlert],
    event_wall_ms: impl Fn(i64) -> i64,
) -> AlertsSection {
    let mut keys: BTreeMap<(&str, &str), KeyAlerts> = BTreeMap::new();
    for (index, alert) in expected.iter().enumerate() {
        let key = (alert.alert.as_str(), alert.vehicle_id.as_str());
        let due_ms = event_wall_ms(alert.at_ms);
        keys.entry(key).or_default().expected.push((due_ms, index));
    }
    for (index, alert) in received.iter().enumerate() {
        let key = (alert.alert.as_str(), alert.vehicle_id.as_str());
        let arrived_ms = alert.received_at_ms;
        keys.entry(key)
            .or_default()
            .received
            .push((arrived_ms, index));
    }
    let mut outcome = Outcome::default();
    for alerts in keys.values_mut() {
        alerts.expected.sort_unstable();
        alerts.received.sort_unstable();
        match_key(alerts, &mut outcome);
    }
    let mut missed: Vec<&ExpectedAlert> = outcome.missed.iter().map(|&i| &expected[i]).collect();
    missed.sort_by(|a, b| {
        (a.at_ms, &a.vehicle_id, &a.alert).cmp(&(b.at_ms, &b.vehicle_id, &b.alert))
    });
    let mut spurious: Vec<&ReceivedAlert> =
        outcome.spurious.iter().map(|&i| &received[i]).collect();
    spurious.sort_by(|a, b| {
        (a.received_at_ms, &a.vehicle_id, &a.alert).cmp(&(
            b.received_at_ms,
            &b.vehicle_id,
            &b.alert,
        ))
    });
    AlertsSection {
        expected: expected.len() as u64,
        received: received.len() as u64,
        missed: missed.len() as u64,
        spurious: spurious.len() as u64,
        duplicated: outcome.duplicated,
        malformed: 0,
        latency_ms: latency(outcome.latencies_ms),
        missed_examples: missed.into_iter().take(EXAMPLES_MAX).cloned().collect(),
        spurious_examples: spurious.into_iter().take(EXAMPLES_MAX).cloned().collect(),
    }
}

/// The rule of [`match_alerts`] on one (alert, vehicle).
fn match_key(alerts: &KeyAlerts, outcome: &mut Outcome) {
    let mut taken = vec![false; alerts.received.len()];
    let mut next = 0;
    for &(due_ms, index) in &alerts.expected {
        // Received alerts that arrived before this one was due can match no later one either.
        while next < alerts.received.len() && alerts.received[next].0 < due_ms {
            next += 1;
        }
        match alerts.received.get(next) {
            Some(&(arrived_ms, _)) => {
                outcome.latencies_ms.push(arrived_ms - due_ms);
                taken[next] = true;
                next += 1;
            }
            None => outcome.missed.push(index),
        }
    }
    let first_due_ms = alerts.expected.first().map(|&(due_ms, _)| due_ms);
    for (&(arrived_ms, index), taken) in alerts.received.iter().zip(taken) {
        if taken {
            continue;
        }
        if first_due_ms.is_some_and(|due_ms| due_ms <= arrived_ms) {
            outcome.duplicated += 1;
        } else {
            outcome.spurious.push(index);
        }
    }
}

fn latency(mut latencies_ms: Vec<i64>) -> AlertLatency {
    latencies_ms.sort_unstable();
    let rank = |quantile: f64| {
        let rank = (quantile * latencies_ms.len() as f64).ceil() as usize;
        latencies_ms.get(rank.max(1) - 1).copied()
    };
    AlertLatency {
        p50: rank(0.50),
        p99: rank(0.99),
        max: latencies_ms.last().copied(),
    }
}

#[cfg(test)]
#[path = "matching_tests.rs"]
mod tests;
