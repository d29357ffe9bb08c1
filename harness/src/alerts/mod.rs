//! Threshold alerts, verified exactly: a scenario's `[[alerts]]` rules evaluated on the events the seed determines, the alerts a webhook receives, and the two matched.
//!
//! **Evaluation** ([`Evaluator`]). Per vehicle and rule, on that vehicle's events in their own
//! order: the condition holds on an event when its `field` is strictly greater than `above` (or
//! strictly less than `below`); `speed` is compared in km/h, as the record carries it. A rule
//! fires once, on the event whose timestamp is at least `for_s` after that of the first event of
//! an unbroken run of holding events (`for_s = 0`: on the first holding event); `at_ms` is the
//! completing event's timestamp. It does not fire again until an event that does not hold has
//! re-armed it. Time is the events' own timestamps, never the wall clock. An event not newer than
//! the newest already seen of its vehicle (a redelivery) is ignored, so redeliveries never fire
//! twice. The one evaluator gives the expected alerts ([`expected_alerts`], from the fleet's
//! deterministic events) and serves a consumer's alerter ([`Evaluator::observe_record`]).
//!
//! **Receiving** ([`parse_webhook`]): Alertmanager's webhook payload version 4 (firing alerts
//! only; labels `alertname` and `vehicle_id`) or a plain `{"alert", "vehicle_id", "at"}` object or
//! array of them.
//!
//! **Matching** ([`match_alerts`]), per (alert name, vehicle id). Each expected alert is due at
//! the wall time its completing event was to be sent. In the order they fall due, each expected
//! alert takes the earliest received alert of its key not yet taken that arrived at or after its
//! due time (an alert cannot answer an event not yet sent); with none left it is **missed**. Its
//! latency is arrival minus due time. A received alert left over is **duplicated** when an
//! expected alert of its key was due by its arrival (a second post of one alert, or one more than
//! the vehicle broke the rule), else **spurious** (the vehicle never broke that rule, or the alert
//! came before the event that completes it was sent). Of two identical alerts of one key, the
//! earlier is matched; a late duplicate of the first of two firings may be taken by the second,
//! which keeps every count right and only shortens that latency.

mod evaluate;
mod matching;
mod rule;
mod webhook;

pub use evaluate::{Evaluator, ExpectedAlert, Fired, expected_alerts};
pub use matching::{AlertLatency, AlertsSection, EXAMPLES_MAX, match_alerts};
pub(crate) use rule::Rule;
pub use rule::RuleError;
pub use webhook::{PayloadError, ReceivedAlert, parse_webhook};
