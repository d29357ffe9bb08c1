//! The message format a pipeline expects ([`RecordSettings`]): an event encoded with the pipeline's own field names, timestamp encoding and key; roadtest's record when the settings are the default.

use super::{Event, FORMAT_VERSION, write_f64, write_vehicle_id};
use crate::scenario::{RecordSettings, TimestampEncoding};

/// How events are written onto the topic for one pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordFormat {
    settings: RecordSettings,
}

impl RecordFormat {
    /// The format `settings` describe (checked by the scenario's validation).
    pub fn new(settings: &RecordSettings) -> RecordFormat {
        RecordFormat {
            settings: settings.clone(),
        }
    }

    /// Appends the message value of `event` (JSON, no trailing newline) to `out`.
    pub fn encode(&self, event: &Event, out: &mut Vec<u8>) {
        if self.settings.is_default() {
            // roadtest's record: the hand-written encoder, byte for byte as documented.
            event.encode_json(out);
            return;
        }
        let mut integers = itoa::Buffer::new();
        out.push(b'{');
        let mut first = true;
        if self.settings.format_version {
            out.extend_from_slice(b"\"format_version\":");
            out.extend_from_slice(integers.format(FORMAT_VERSION).as_bytes());
            first = false;
        }
        for (field, name) in self.settings.names() {
            if name.is_empty() {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            // Names are checked to need no escaping (letters, digits, '_', '-', '.').
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            self.write_value(field, event, out);
        }
        out.push(b'}');
    }

    /// Appends the Kafka message key of `event`: the text of the key field's value (a string
    /// without its quotes).
    pub fn encode_key(&self, event: &Event, out: &mut Vec<u8>) {
        if self.settings.key == "vehicle_id" {
            write_vehicle_id(out, event.vehicle_index);
            return;
        }
        let start = out.len();
        self.write_value(&self.settings.key, event, out);
        if out.get(start) == Some(&b'"') {
            out.remove(start);
            out.pop();
        }
    }

    /// Writes the message value of `event` as one NDJSON line (`roadtest events`).
    pub fn write_line(
        &self,
        event: &Event,
        out: &mut impl std::io::Write,
        scratch: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        scratch.clear();
        self.encode(event, scratch);
        scratch.push(b'\n');
        out.write_all(scratch)
    }

    /// Whether the message carries `field` (roadtest's name): a field left out cannot be
    /// stored, so verification does not check it.
    pub fn sends(&self, field: &str) -> bool {
        self.settings.sends(field)
    }

    /// The JSON value of one field of `event`.
    fn write_value(&self, field: &str, event: &Event, out: &mut Vec<u8>) {
        let mut integers = itoa::Buffer::new();
        match field {
            "vehicle_id" => {
                out.push(b'"');
                write_vehicle_id(out, event.vehicle_index);
                out.push(b'"');
            }
            "seq" => out.extend_from_slice(integers.format(event.seq).as_bytes()),
            "timestamp" => {
                write_timestamp(event.timestamp_ms, self.settings.timestamp_encoding, out)
            }
            "latitude" => write_f64(out, event.latitude),
            "longitude" => write_f64(out, event.longitude),
            "speed" => write_f64(out, event.speed_kmh),
            "temperature" => write_f64(out, event.temperature_c),
            _ => write_f64(out, event.humidity_pct),
        }
    }
}

/// A timestamp in milliseconds since the epoch, written as `encoding` says.
fn write_timestamp(timestamp_ms: i64, encoding: TimestampEncoding, out: &mut Vec<u8>) {
    match encoding {
        TimestampEncoding::EpochMs => {
            out.extend_from_slice(itoa::Buffer::new().format(timestamp_ms).as_bytes());
        }
        TimestampEncoding::EpochS => {
            // Exact decimal text (no float rounding): seconds, a point, three digits.
            let sign = if timestamp_ms < 0 { "-" } else { "" };
            let magnitude = timestamp_ms.unsigned_abs();
            let (seconds, millis) = (magnitude / 1000, magnitude % 1000);
            out.extend_from_slice(format!("{sign}{seconds}.{millis:03}").as_bytes());
        }
        TimestampEncoding::Rfc3339 => {
            out.push(b'"');
            let text = crate::time::format_rfc3339_ms(i128::from(timestamp_ms));
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::wire::tests::sample;

    fn encoded(settings: &RecordSettings) -> (String, String) {
        let format = RecordFormat::new(settings);
        let (mut value, mut key) = (Vec::new(), Vec::new());
        format.encode(&sample(), &mut value);
        format.encode_key(&sample(), &mut key);
        (
            String::from_utf8(value).expect("utf-8"),
            String::from_utf8(key).expect("utf-8"),
        )
    }

    #[test]
    fn the_default_format_is_roadtests_record_byte_for_byte() {
        let (value, key) = encoded(&RecordSettings::default());
        assert_eq!(value.as_bytes(), sample().to_json());
        assert_eq!(key, "veh-000042");
    }

    #[test]
    fn renamed_fields_a_left_out_one_and_an_rfc3339_timestamp() {
        let settings = RecordSettings {
            vehicle_id: "vin".into(),
            seq: "sequence".into(),
            timestamp: "ts".into(),
            latitude: "lat".into(),
            longitude: "lon".into(),
            humidity: String::new(),
            timestamp_encoding: TimestampEncoding::Rfc3339,
            format_version: false,
            ..RecordSettings::default()
        };
        let (value, key) = encoded(&settings);
        assert_eq!(
            value,
            r#"{"vin":"veh-000042","sequence":7,"ts":"2026-01-01T00:00:00.123Z","lat":52.52000812345678,"lon":13.404954,"speed":0.30000000000000004,"temperature":-3.5}"#
        );
        assert_eq!(key, "veh-000042");
        let format = RecordFormat::new(&settings);
        assert!(format.sends("seq") && !format.sends("humidity"));
        assert!(!format.sends("format_version"));
    }

    #[test]
    fn seconds_keep_their_milliseconds_exactly_and_any_sent_field_can_be_the_key() {
        let settings = RecordSettings {
            timestamp_encoding: TimestampEncoding::EpochS,
            key: "timestamp".into(),
            ..RecordSettings::default()
        };
        let (value, key) = encoded(&settings);
        assert!(value.contains(r#""timestamp":1767225600.123,"#), "{value}");
        assert!(value.starts_with(r#"{"format_version":1,"vehicle_id":"veh-000042","#));
        assert_eq!(key, "1767225600.123");
        let rfc_key = RecordSettings {
            timestamp_encoding: TimestampEncoding::Rfc3339,
            key: "timestamp".into(),
            ..RecordSettings::default()
        };
        assert_eq!(encoded(&rfc_key).1, "2026-01-01T00:00:00.123Z");
        let seq_key = RecordSettings {
            key: "seq".into(),
            ..RecordSettings::default()
        };
        assert_eq!(encoded(&seq_key).1, "7");
        let mut before_1970 = Vec::new();
        write_timestamp(-1, TimestampEncoding::EpochS, &mut before_1970);
        assert_eq!(before_1970, b"-0.001");
    }
}
