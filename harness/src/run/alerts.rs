//! A run's alert webhook: when the scenario has `[[alerts]]`, roadtest listens on loopback for
//! the alerts the pipeline posts (the reference consumer's alerter, or the user's own alerting,
//! told where by `ROADTEST_ALERT_WEBHOOK`), waits for them to settle after the drain, and matches
//! them against the alerts the seed says must fire.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::RunError;
use crate::alerts::{AlertsSection, expected_alerts, match_alerts};
use crate::live::{AlertInbox, serve_alerts};
use crate::measure::{RunClock, epoch_us};
use crate::scenario::Scenario;
use crate::targets::TargetError;

/// The longest wait for alerts after the drain (Alertmanager's grouping delays them seconds).
const SETTLE_MAX: Duration = Duration::from_secs(20);

/// Alerts have settled when none arrived for this long (and every expected one is in).
const QUIET: Duration = Duration::from_secs(2);

/// The webhook of a run with alert rules.
#[derive(Debug)]
pub(super) struct AlertWatch {
    inbox: Arc<AlertInbox>,
    server: tokio::task::JoinHandle<()>,
    /// Where the pipeline posts: `http://127.0.0.1:PORT/alerts`.
    pub(super) url: String,
    /// The rules as JSON, for the reference consumer's alerter.
    pub(super) rules_file: PathBuf,
}

impl Drop for AlertWatch {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl AlertWatch {
    /// Starts the webhook and writes the rules beside the report (`None`: no rules).
    pub(super) async fn start(
        scenario: &Scenario,
        out_dir: &std::path::Path,
        listen: Option<SocketAddr>,
    ) -> Result<Option<AlertWatch>, RunError> {
        if scenario.alerts.is_empty() {
            return Ok(None);
        }
        let address = listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
        let failed = |source| RunError::AlertWebhook { address, source };
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(failed)?;
        let address = listener.local_addr().map_err(failed)?;
        let rules_file = out_dir.join("alert-rules.json");
        let rules = serde_json::to_string_pretty(&scenario.alerts).unwrap_or_default();
        let written =
            std::fs::create_dir_all(out_dir).and_then(|()| std::fs::write(&rules_file, rules));
        written.map_err(|source| TargetError::WorkDir {
            path: rules_file.clone(),
            source,
        })?;
        let inbox = Arc::new(AlertInbox::default());
        let server = tokio::spawn(serve_alerts(listener, Arc::clone(&inbox)));
        Ok(Some(AlertWatch {
            inbox,
            server,
            url: format!("http://{address}/alerts"),
            rules_file,
        }))
    }

    /// Waits until every expected alert is in and none came for [`QUIET`], or [`SETTLE_MAX`];
    /// then matches what arrived against what the seed says.
    pub(super) async fn settle(&self, scenario: &Scenario, clock: RunClock) -> AlertsSection {
        // A validated scenario's rules always compile (the run's scenario was validated).
        let expected = expected_alerts(scenario).unwrap_or_default();
        let started = Instant::now();
        let quiet_ms = QUIET.as_millis() as i64;
        loop {
            let inbox = self.inbox.snapshot();
            let now_ms = (epoch_us() / 1_000) as i64;
            let quiet = inbox
                .last_post_ms
                .is_none_or(|last| now_ms - last >= quiet_ms);
            if (inbox.received.len() >= expected.len() && quiet) || started.elapsed() > SETTLE_MAX {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let inbox = self.inbox.snapshot();
        let start_ms = (clock.start_epoch_us / 1_000) as i64;
        let wall_ms = |event_ms: i64| {
            let offset_ms = (event_ms - clock.scenario_start_ms) as f64 / clock.speedup;
            start_ms + offset_ms.round() as i64
        };
        let mut section = match_alerts(&expected, &inbox.received, wall_ms);
        section.malformed = inbox.malformed;
        section
    }
}
