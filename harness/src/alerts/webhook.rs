//! What an alert webhook receives: Alertmanager's payload (version 4) or roadtest's plain form, parsed into the alerts it reports, with a precise error for anything malformed.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One firing alert as posted: its name, the vehicle, the time the sender gives it (Alertmanager's
/// `startsAt`, the plain form's `at`; not used for matching) and when roadtest received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedAlert {
    pub alert: String,
    pub vehicle_id: String,
    /// ms since the Unix epoch, if the payload gave a time.
    pub reported_at_ms: Option<i64>,
    /// Wall time of arrival, ms since the Unix epoch.
    pub received_at_ms: i64,
}

/// A payload that is not one roadtest reads: where in it (`(body)` for the whole) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct PayloadError {
    pub at: String,
    pub message: String,
}

fn malformed<T>(at: impl Into<String>, message: impl Into<String>) -> Result<T, PayloadError> {
    Err(PayloadError {
        at: at.into(),
        message: message.into(),
    })
}

/// The firing alerts of one webhook body received at `received_at_ms`. It takes
/// - Alertmanager's payload, version `"4"`: `{"version":"4","status":..,"alerts":[{"status":
///   "firing","labels":{"alertname":..,"vehicle_id":..},"startsAt":RFC3339,..}]}`; resolved
///   alerts are left out (unread);
/// - a plain object `{"alert":..,"vehicle_id":..,"at":..}` (`at`, optional: ms since the Unix
///   epoch or an RFC 3339 string), or an array of them.
///
/// Other keys are ignored. Anything else is a [`PayloadError`] saying what is wrong.
pub fn parse_webhook(body: &[u8], received_at_ms: i64) -> Result<Vec<ReceivedAlert>, PayloadError> {
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(error) => return malformed("(body)", format!("not JSON: {error}")),
    };
    match value {
        Value::Object(object) if object.contains_key("version") => {
            alertmanager(&object, received_at_ms)
        }
        Value::Object(object) => Ok(vec![plain(&object, "(body)", received_at_ms)?]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let at = format!("[{index}]");
                match item {
                    Value::Object(object) => plain(object, &at, received_at_ms),
                    _ => malformed(at, "is not an object {\"alert\", \"vehicle_id\", \"at\"}"),
                }
            })
            .collect(),
        _ => malformed(
            "(body)",
            "is neither an Alertmanager payload (version \"4\"), an object {\"alert\", \
             \"vehicle_id\", \"at\"} nor an array of such objects",
        ),
    }
}

/// The firing alerts of an Alertmanager webhook payload.
fn alertmanager(
    object: &Map<String, Value>,
    received_at_ms: i64,
) -> Result<Vec<ReceivedAlert>, PayloadError> {
    match object.get("version") {
        Some(Value::String(version)) if version == "4" => {}
        other => {
            return malformed(
                "version",
                format!(
                    "{} is not an Alertmanager payload version roadtest reads; it reads \"4\"",
                    other.unwrap_or(&Value::Null)
                ),
            );
        }
    }
    let Some(Value::Array(alerts)) = object.get("alerts") else {
        return malformed("alerts", "missing or not an array");
    };
    let mut firing = Vec::new();
    for (index, alert) in alerts.iter().enumerate() {
        let at = format!("alerts[{index}]");
        let Value::Object(alert) = alert else {
            return malformed(at, "is not an object");
        };
        match text(alert, &at, "status")? {
            "firing" => {}
            "resolved" => continue,
            other => {
                return malformed(
                    format!("{at}.status"),
                    format!("{other:?} is neither \"firing\" nor \"resolved\""),
                );
            }
        }
        let labels_at = format!("{at}.labels");
        let Some(Value::Object(labels)) = alert.get("labels") else {
            return malformed(labels_at, "missing or not an object");
        };
        let starts_at = text(alert, &at, "startsAt")?;
        let Some(reported_at_ms) = crate::time::parse_rfc3339_ms(starts_at) else {
            return malformed(
                format!("{at}.startsAt"),
                format!("{starts_at:?} is not an RFC 3339 time"),
            );
        };
        firing.push(ReceivedAlert {
            alert: text(labels, &labels_at, "alertname")?.to_string(),
            vehicle_id: text(labels, &labels_at, "vehicle_id")?.to_string(),
            reported_at_ms: Some(reported_at_ms),
            received_at_ms,
        });
    }
    Ok(firing)
}

/// One plain alert object (`at`: where it is in the body).
fn plain(
    object: &Map<String, Value>,
    at: &str,
    received_at_ms: i64,
) -> Result<ReceivedAlert, PayloadError> {
    let key = |name: &str| path(at, name);
    let reported_at_ms = match object.get("at") {
        None | Some(Value::Null) => None,
        Some(Value::Number(number)) => match number.as_i64() {
            Some(ms) => Some(ms),
            None => return malformed(key("at"), format!("{number} is not a whole number of ms")),
        },
        Some(Value::String(time)) => match crate::time::parse_rfc3339_ms(time) {
            Some(ms) => Some(ms),
            None => return malformed(key("at"), format!("{time:?} is not an RFC 3339 time")),
        },
        Some(other) => {
            return malformed(
                key("at"),
                format!("{other} is neither ms since the Unix epoch nor an RFC 3339 string"),
            );
        }
    };
    Ok(ReceivedAlert {
        alert: text(object, at, "alert")?.to_string(),
        vehicle_id: text(object, at, "vehicle_id")?.to_string(),
        reported_at_ms,
        received_at_ms,
    })
}

/// The non-empty string under `name` of `object` (found at `at`).
fn text<'a>(object: &'a Map<String, Value>, at: &str, name: &str) -> Result<&'a str, PayloadError> {
    let key = path(at, name);
    match object.get(name) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text),
        Some(Value::String(_)) => malformed(key, "is empty"),
        Some(other) => malformed(key, format!("{other} is not a string")),
        None => malformed(key, "missing"),
    }
}

/// The path of key `name` in the object at `at` (`(body)`: the body itself).
fn path(at: &str, name: &str) -> String {
    if at == "(body)" {
        name.to_string()
    } else {
        format!("{at}.{name}")
    }
}

#[cfg(test)]
#[path = "webhook_tests.rs"]
mod tests;
