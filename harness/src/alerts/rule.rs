//! One `[[alerts]]` rule made ready to evaluate: the event field it reads, its threshold and how long the condition must hold.

use crate::scenario::AlertRule;
use crate::wire::Event;

/// A rule that cannot be evaluated: the rule's key at fault (`field`, `above`, `below`, `for_s`)
/// and what to do. The scenario's validation reports it as `alerts[i].KEY`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("alert {rule:?}: {key}: {message}")]
pub struct RuleError {
    /// The rule's name.
    pub rule: String,
    pub key: &'static str,
    pub message: String,
}

/// The event's value a rule compares ([`AlertRule::FIELDS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Latitude,
    Longitude,
    Speed,
    Temperature,
    Humidity,
}

impl Field {
    fn parse(name: &str) -> Option<Field> {
        Some(match name {
            "latitude" => Field::Latitude,
            "longitude" => Field::Longitude,
            "speed" => Field::Speed,
            "temperature" => Field::Temperature,
            "humidity" => Field::Humidity,
            _ => return None,
        })
    }

    /// The value as the record carries it (speed in km/h).
    fn value(self, event: &Event) -> f64 {
        match self {
            Field::Latitude => event.latitude,
            Field::Longitude => event.longitude,
            Field::Speed => event.speed_kmh,
            Field::Temperature => event.temperature_c,
            Field::Humidity => event.humidity_pct,
        }
    }
}

/// Strictly above or strictly below a finite threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Threshold {
    Above(f64),
    Below(f64),
}

/// A checked rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rule {
    pub(crate) name: String,
    field: Field,
    threshold: Threshold,
    /// `for_s` in ms (a float, so a fractional `for_s` is kept exactly as written).
    for_ms: f64,
}

impl Rule {
    /// Checks `rule`: a known field, exactly one finite threshold, a finite `for_s` of 0 or more.
    /// (Its name and the field's presence in the message are the scenario's checks.)
    pub(crate) fn compile(rule: &AlertRule) -> Result<Rule, RuleError> {
        let error = |key: &'static str, message: String| RuleError {
            rule: rule.name.clone(),
            key,
            message,
        };
        let field = Field::parse(&rule.field).ok_or_else(|| {
            error(
                "field",
                format!(
                    "{:?} is not a numeric field of the event; use one of {}",
                    rule.field,
                    AlertRule::FIELDS.join(", ")
                ),
            )
        })?;
        let threshold = match (rule.above, rule.below) {
            (Some(_), Some(_)) => {
                return Err(error(
                    "below",
                    "and `above` are both set; a rule has one threshold: keep `above` (holds \
                     while the field is greater) or `below` (while it is less)"
                        .to_string(),
                ));
            }
            (None, None) => {
                return Err(error(
                    "above",
                    "missing; give `above = NUMBER` (holds while the field is greater) or \
                     `below = NUMBER` (while it is less)"
                        .to_string(),
                ));
            }
            (Some(above), None) => Threshold::Above(above),
            (None, Some(below)) => Threshold::Below(below),
        };
        let (Threshold::Above(value) | Threshold::Below(value)) = threshold;
        if !value.is_finite() {
            let key = if rule.above.is_some() {
                "above"
            } else {
                "below"
            };
            return Err(error(key, format!("{value} is not a finite number")));
        }
        if !rule.for_s.is_finite() || rule.for_s < 0.0 {
            return Err(error(
                "for_s",
                format!(
                    "{} is not a duration; give the seconds the condition must hold, 0 or more",
                    rule.for_s
                ),
            ));
        }
        Ok(Rule {
            name: rule.name.clone(),
            field,
            threshold,
            for_ms: rule.for_s * 1000.0,
        })
    }

    /// Whether `event` meets the condition.
    pub(crate) fn holds(&self, event: &Event) -> bool {
        let value = self.field.value(event);
        match self.threshold {
            Threshold::Above(limit) => value > limit,
            Threshold::Below(limit) => value < limit,
        }
    }

    /// Whether a condition held since `since_ms` has held long enough at `now_ms`.
    pub(crate) fn long_enough(&self, since_ms: i64, now_ms: i64) -> bool {
        (now_ms - since_ms) as f64 >= self.for_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(field: &str, above: Option<f64>, below: Option<f64>, for_s: f64) -> AlertRule {
        AlertRule {
            name: "r".to_string(),
            field: field.to_string(),
            above,
            below,
            for_s,
        }
    }

    fn event(speed_kmh: f64, temperature_c: f64) -> Event {
        Event {
            vehicle_index: 0,
            seq: 0,
            timestamp_ms: 0,
            latitude: 52.5,
            longitude: 13.4,
            speed_kmh,
            temperature_c,
            humidity_pct: 50.0,
        }
    }

    #[test]
    fn every_allowed_field_reads_its_own_value() {
        let sample = Event {
            latitude: 1.0,
            longitude: 2.0,
            speed_kmh: 3.0,
            temperature_c: 4.0,
            humidity_pct: 5.0,
            ..event(0.0, 0.0)
        };
        for (index, name) in AlertRule::FIELDS.iter().enumerate() {
            let field = Field::parse(name).expect("an allowed field parses");
            assert_eq!(
                field.value(&sample),
                [1.0, 2.0, 3.0, 4.0, 5.0][index],
                "{name}"
            );
        }
        assert_eq!(Field::parse("seq"), None);
    }

    #[test]
    fn thresholds_are_strict() {
        let above = Rule::compile(&rule("speed", Some(130.0), None, 10.0)).expect("valid");
        assert!(!above.holds(&event(130.0, 20.0)));
        assert!(above.holds(&event(130.000_001, 20.0)));
        let below = Rule::compile(&rule("temperature", None, Some(0.0), 0.0)).expect("valid");
        assert!(!below.holds(&event(50.0, 0.0)));
        assert!(below.holds(&event(50.0, -0.5)));
        assert!(above.long_enough(0, 10_000) && !above.long_enough(1, 10_000));
        let fractional = Rule::compile(&rule("speed", Some(1.0), None, 0.0015)).expect("valid");
        assert!(!fractional.long_enough(0, 1) && fractional.long_enough(0, 2));
    }

    #[test]
    fn bad_rules_name_the_key() {
        let key = |rule: AlertRule| Rule::compile(&rule).expect_err("rejected").key;
        assert_eq!(key(rule("seq", Some(1.0), None, 0.0)), "field");
        assert_eq!(key(rule("speed", Some(1.0), Some(2.0), 0.0)), "below");
        assert_eq!(key(rule("speed", None, None, 0.0)), "above");
        assert_eq!(key(rule("speed", Some(f64::INFINITY), None, 0.0)), "above");
        assert_eq!(key(rule("speed", None, Some(f64::NAN), 0.0)), "below");
        assert_eq!(key(rule("speed", Some(1.0), None, -1.0)), "for_s");
        assert_eq!(key(rule("speed", Some(1.0), None, f64::NAN)), "for_s");
        let message = Rule::compile(&rule("speeed", Some(1.0), None, 0.0))
            .expect_err("rejected")
            .to_string();
        assert!(
            message.contains("\"speeed\"") && message.contains("speed, temperature, humidity"),
            "{message}"
        );
    }
}
