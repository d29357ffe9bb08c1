//! What happened to the containers that roadtest did not do: out-of-memory kills and the restarts Docker's restart policy made, read from Docker's event log after the run.
//!
//! Docker keeps each container's events (`oom`, `die` with its exit code, `start`); asked once
//! at the end of the run with `since` and `until`, the log is complete even when a restart has
//! reset the container's `OOMKilled` state. A kill roadtest makes (`docker kill`) has no `oom`
//! event, so it is never mistaken for one.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use testcontainers::bollard::Docker;
use testcontainers::bollard::query_parameters::EventsOptionsBuilder;

/// Bound on reading one container's event log.
const EVENTS_TIMEOUT: Duration = Duration::from_secs(5);
/// A `die` this close after an `oom` is that kill's exit.
const DIE_AFTER_OOM_NS: i64 = 5_000_000_000;

/// The kernel killed a container for lack of memory during the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OomKill {
    /// `broker` or `cassandra`.
    pub service: String,
    /// Seconds since the run's start.
    pub at_s: f64,
    /// The container's exit code (137: killed), from the `die` event that followed.
    pub exit_code: Option<i64>,
    /// When Docker started it again (its restart policy), seconds since the run's start; `null`:
    /// it stayed down.
    pub restarted_at_s: Option<f64>,
    /// Events the fleet was meant to have sent by then.
    pub events_before: u64,
    /// Lost events intended from this kill (from the run's start, for the first: a kill loses
    /// writes acknowledged before it) until the next.
    pub events_lost: u64,
}

/// One container event, as the history reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// `oom`, `die`, `start`, ...
    pub action: String,
    /// Nanoseconds since the Unix epoch.
    pub time_ns: i64,
    /// For `die`: the exit code.
    pub exit_code: Option<i64>,
}

/// The OOM kills in one container's `events` (any order), with times relative to `start_ns`;
/// `events_before` and `events_lost` are left 0 for the caller, who knows the fleet and the
/// verification.
pub fn oom_kills(service: &str, events: &[ContainerEvent], start_ns: i64) -> Vec<OomKill> {
    let mut events = events.to_vec();
    events.sort_by_key(|event| event.time_ns);
    let seconds = |time_ns: i64| (time_ns - start_ns) as f64 / 1e9;
    let after = |time_ns: i64, action: &str| {
        events
            .iter()
            .find(|event| event.time_ns >= time_ns && event.action == action)
            .cloned()
    };
    events
        .iter()
        .filter(|event| event.action == "oom")
        .map(|oom| {
            let die = after(oom.time_ns, "die")
                .filter(|die| die.time_ns - oom.time_ns <= DIE_AFTER_OOM_NS);
            let start = after(die.as_ref().map_or(oom.time_ns, |d| d.time_ns), "start");
            OomKill {
                service: service.to_string(),
                at_s: seconds(oom.time_ns),
                exit_code: die.and_then(|die| die.exit_code),
                restarted_at_s: start.map(|start| seconds(start.time_ns)),
                events_before: 0,
                events_lost: 0,
            }
        })
        .collect()
}

/// The events of container `id` from `since` until now (empty when Docker cannot say).
pub async fn container_events(docker: &Docker, id: &str, since: SystemTime) -> Vec<ContainerEvent> {
    let epoch_s = |time: SystemTime| {
        time.duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
    };
    let since = epoch_s(since).to_string();
    let until = (epoch_s(SystemTime::now()) + 1).to_string();
    let filters = HashMap::from([("container", vec![id]), ("type", vec!["container"])]);
    let options = EventsOptionsBuilder::new()
        .since(&since)
        .until(&until)
        .filters(&filters)
        .build();
    let stream = docker.events(Some(options));
    let read = stream.filter_map(|message| async move {
        let message = message.ok()?;
        let exit_code = message
            .actor
            .and_then(|actor| actor.attributes)
            .and_then(|attributes| attributes.get("exitCode").and_then(|c| c.parse().ok()));
        Some(ContainerEvent {
            action: message.action?,
            time_ns: message.time_nano?,
            exit_code,
        })
    });
    tokio::time::timeout(EVENTS_TIMEOUT, read.collect::<Vec<_>>())
        .await
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str, time_s: f64, exit_code: Option<i64>) -> ContainerEvent {
        ContainerEvent {
            action: action.to_string(),
            time_ns: (time_s * 1e9) as i64,
            exit_code,
        }
    }

    #[test]
    fn an_oom_kill_is_dated_with_its_exit_and_the_restart_that_followed() {
        let events = [
            event("start", 100.0, None),
            // roadtest's own kill and restart: no oom event, not an OOM kill.
            event("kill", 105.0, None),
            event("die", 105.1, Some(137)),
            event("start", 108.0, None),
            event("oom", 112.5, None),
            event("die", 112.6, Some(137)),
            event("start", 113.0, None),
            event("oom", 120.0, None),
            event("die", 120.1, Some(137)),
        ];
        let mut shuffled = events.to_vec();
        shuffled.reverse();
        let kills = oom_kills("cassandra", &shuffled, 100_000_000_000);
        assert_eq!(kills.len(), 2, "{kills:?}");
        assert_eq!(kills[0].service, "cassandra");
        assert!((kills[0].at_s - 12.5).abs() < 1e-6, "{kills:?}");
        assert_eq!(kills[0].exit_code, Some(137));
        assert!(
            kills[0]
                .restarted_at_s
                .is_some_and(|s| (s - 13.0).abs() < 1e-6)
        );
        // The last one stayed down.
        assert_eq!(kills[1].exit_code, Some(137));
        assert_eq!(kills[1].restarted_at_s, None);
    }

    #[test]
    fn a_die_long_after_an_oom_is_not_its_exit() {
        let events = [event("oom", 1.0, None), event("die", 30.0, Some(1))];
        let kills = oom_kills("broker", &events, 0);
        assert_eq!(kills.len(), 1);
        assert_eq!(kills[0].exit_code, None);
        assert!(oom_kills("broker", &[event("die", 1.0, Some(137))], 0).is_empty());
    }
}
