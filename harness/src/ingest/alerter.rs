//! The reference consumer's optional alerter (`--alert-rules FILE [--alert-webhook URL]`): it
//! evaluates a scenario's threshold rules on the rows it hands out for writing (each vehicle's
//! events in the order they were consumed), counts each alert in its metrics
//! (`roadtest_ingest_alerts_fired_total{alert, vehicle_id}`, for Prometheus rules to relay) and,
//! given a webhook, posts each batch's alerts there as plain JSON, `[{"vehicle_id", "alert",
//! "at"}]`, from a thread of its own, so a slow webhook never holds up consuming. `roadtest run`
//! hands it the rules and its own webhook.

use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use super::core::Row;
use crate::alerts::{Evaluator, Fired};
use crate::live::IngestMetrics;
use crate::scenario::AlertRule;

/// One post's time limit: a webhook that does not answer in time loses that post (logged).
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// Evaluates rows and hands what fires to the posting thread.
#[derive(Debug)]
pub struct Alerter {
    evaluator: Evaluator,
    metrics: IngestMetrics,
    outbox: Option<Sender<Vec<Fired>>>,
    poster: Option<JoinHandle<()>>,
}

impl Alerter {
    /// Reads the rules (a JSON list of `[[alerts]]` rules) and, given a webhook, starts the
    /// posting thread.
    pub fn start(
        rules_path: &Path,
        webhook: Option<&str>,
        metrics: IngestMetrics,
    ) -> Result<Alerter, String> {
        let text = std::fs::read_to_string(rules_path)
            .map_err(|e| format!("{}: cannot read the alert rules: {e}", rules_path.display()))?;
        let rules: Vec<AlertRule> = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}: not a JSON list of alert rules: {e}",
                rules_path.display()
            )
        })?;
        let evaluator = Evaluator::new(&rules).map_err(|e| e.to_string())?;
        tracing::info!(rules = rules.len(), webhook, "alerting");
        let Some(webhook) = webhook else {
            return Ok(Alerter {
                evaluator,
                metrics,
                outbox: None,
                poster: None,
            });
        };
        let (outbox, posts) = channel();
        let url = webhook.to_string();
        let poster = std::thread::Builder::new()
            .name("roadtest-alerter".into())
            .spawn(move || post_all(&url, posts))
            .map_err(|e| format!("cannot start the alerter's thread: {e}"))?;
        Ok(Alerter {
            evaluator,
            metrics,
            outbox: Some(outbox),
            poster: Some(poster),
        })
    }

    /// Evaluates rows in the order they were consumed; what fires is posted in the background.
    pub fn observe(&mut self, rows: &[Row]) {
        let fired: Vec<Fired> = (rows.iter())
            .flat_map(|row| {
                self.evaluator
                    .observe_record(&row.record, row.vehicle_index)
            })
            .collect();
        for alert in &fired {
            self.metrics.alert_fired(&alert.alert, &alert.vehicle_id);
        }
        if let (false, Some(outbox)) = (fired.is_empty(), &self.outbox) {
            let _ = outbox.send(fired);
        }
    }

    /// Posts what is still queued, then stops the thread.
    pub fn finish(mut self) {
        drop(self.outbox.take());
        if let Some(poster) = self.poster.take() {
            let _ = poster.join();
        }
    }
}

/// Posts every batch of alerts that arrives, until the sender is gone.
fn post_all(url: &str, posts: Receiver<Vec<Fired>>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(POST_TIMEOUT))
        .build()
        .into();
    for fired in posts {
        let body: Vec<serde_json::Value> = (fired.iter())
            .map(|alert| {
                serde_json::json!({
                    "vehicle_id": alert.vehicle_id,
                    "alert": alert.alert,
                    "at": alert.at_ms,
                })
            })
            .collect();
        let sent = agent
            .post(url)
            .header("content-type", "application/json")
            .send(serde_json::Value::Array(body).to_string());
        match sent {
            Ok(_) => tracing::info!(alerts = fired.len(), "alerts posted"),
            Err(error) => tracing::warn!(%error, alerts = fired.len(), url, "cannot post alerts"),
        }
    }
}
