//! The telemetry record and its versioned JSON encoding (what goes on the Kafka topic).
//!
//! Format version 1, one JSON object per message, keys in this order:
//! `format_version, vehicle_id, seq, timestamp, latitude, longitude, speed, temperature, humidity`.
//! Floats are written in their shortest round-trip form, so decoding gives back the exact `f64`.

use std::io::Write;

use serde::{Deserialize, Serialize};

mod format;

pub use format::RecordFormat;

/// The version written into every record.
pub const FORMAT_VERSION: u32 = 1;

/// One telemetry sample of one vehicle, as generated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    /// Index of the vehicle in the fleet; its id is `veh-` followed by at least six digits of it.
    pub vehicle_index: u32,
    /// Sequence number of this sample within its vehicle, from 0.
    pub seq: u64,
    /// Sample time in milliseconds since the Unix epoch (scenario time).
    pub timestamp_ms: i64,
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
    /// Average speed since the previous sample, km/h.
    pub speed_kmh: f64,
    /// Degrees Celsius.
    pub temperature_c: f64,
    /// Relative humidity, percent.
    pub humidity_pct: f64,
}

/// The record as it appears on the wire (and as a consumer decodes it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub format_version: u32,
    pub vehicle_id: String,
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub latitude: f64,
    pub longitude: f64,
    /// km/h.
    pub speed: f64,
    /// Degrees Celsius.
    pub temperature: f64,
    /// Percent.
    pub humidity: f64,
}

/// A record that could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a telemetry record: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported format_version {found}; this roadtest reads version {FORMAT_VERSION}")]
    Version { found: u32 },
    #[error("vehicle_id {0:?} is not of the form veh-NNNNNN")]
    VehicleId(String),
}

/// The vehicle id of a fleet index: `veh-000042`.
pub fn vehicle_id(index: u32) -> String {
    let mut id = Vec::with_capacity(11);
    write_vehicle_id(&mut id, index);
    // Only ASCII was written.
    String::from_utf8(id).unwrap_or_default()
}

/// The fleet index of a vehicle id, if it is one roadtest makes.
pub fn vehicle_index(id: &str) -> Option<u32> {
    let digits = id.strip_prefix("veh-")?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Writes `veh-NNNNNN` without going through `fmt`.
fn write_vehicle_id(out: &mut Vec<u8>, index: u32) {
    out.extend_from_slice(b"veh-");
    let mut digits = itoa::Buffer::new();
    let text = digits.format(index);
    for _ in text.len()..6 {
        out.push(b'0');
    }
    out.extend_from_slice(text.as_bytes());
}

fn write_f64(out: &mut Vec<u8>, value: f64) {
    // The model never produces non-finite values; keep the output valid JSON regardless.
    if value.is_finite() {
        let mut buffer = ryu::Buffer::new();
        out.extend_from_slice(buffer.format_finite(value).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

impl Event {
    /// Appends the JSON encoding (no trailing newline) to `out`.
    pub fn encode_json(&self, out: &mut Vec<u8>) {
        let mut integers = itoa::Buffer::new();
        out.extend_from_slice(b"{\"format_version\":");
        out.extend_from_slice(integers.format(FORMAT_VERSION).as_bytes());
        out.extend_from_slice(b",\"vehicle_id\":\"");
        write_vehicle_id(out, self.vehicle_index);
        out.extend_from_slice(b"\",\"seq\":");
        out.extend_from_slice(integers.format(self.seq).as_bytes());
        out.extend_from_slice(b",\"timestamp\":");
        out.extend_from_slice(integers.format(self.timestamp_ms).as_bytes());
        out.extend_from_slice(b",\"latitude\":");
        write_f64(out, self.latitude);
        out.extend_from_slice(b",\"longitude\":");
        write_f64(out, self.longitude);
        out.extend_from_slice(b",\"speed\":");
        write_f64(out, self.speed_kmh);
        out.extend_from_slice(b",\"temperature\":");
        write_f64(out, self.temperature_c);
        out.extend_from_slice(b",\"humidity\":");
        write_f64(out, self.humidity_pct);
        out.push(b'}');
    }

    /// The JSON encoding as a new buffer.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(192);
        self.encode_json(&mut out);
        out
    }

    /// Appends the Kafka message key, the vehicle id, to `out` (no allocation on the hot path).
    pub fn encode_key(&self, out: &mut Vec<u8>) {
        write_vehicle_id(out, self.vehicle_index);
    }

    /// Writes the record as one NDJSON line.
    pub fn write_line(&self, out: &mut impl Write, scratch: &mut Vec<u8>) -> std::io::Result<()> {
        scratch.clear();
        self.encode_json(scratch);
        scratch.push(b'\n');
        out.write_all(scratch)
    }
}

impl Record {
    /// Decodes one message value, checking the format version and the vehicle id.
    pub fn decode(bytes: &[u8]) -> Result<(Record, u32), DecodeError> {
        let record: Record = serde_json::from_slice(bytes)?;
        if record.format_version != FORMAT_VERSION {
            return Err(DecodeError::Version {
                found: record.format_version,
            });
        }
        let index = vehicle_index(&record.vehicle_id)
            .ok_or_else(|| DecodeError::VehicleId(record.vehicle_id.clone()))?;
        Ok((record, index))
    }

    /// The record of an event.
    pub fn from_event(event: &Event) -> Record {
        Record {
            format_version: FORMAT_VERSION,
            vehicle_id: vehicle_id(event.vehicle_index),
            seq: event.seq,
            timestamp: event.timestamp_ms,
            latitude: event.latitude,
            longitude: event.longitude,
            speed: event.speed_kmh,
            temperature: event.temperature_c,
            humidity: event.humidity_pct,
        }
    }
}

/// The fields of a stored row (the record less its key and timestamp), as verification compares
/// them with the event of the same timestamp and as tamper faults change them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowFields {
    pub seq: u64,
    pub latitude: f64,
    pub longitude: f64,
    pub speed: f64,
    pub temperature: f64,
    pub humidity: f64,
    pub format_version: u32,
}

impl RowFields {
    /// The fields a faithful pipeline stores for `record`.
    pub fn of_record(record: &Record) -> RowFields {
        RowFields {
            seq: record.seq,
            latitude: record.latitude,
            longitude: record.longitude,
            speed: record.speed,
            temperature: record.temperature,
            humidity: record.humidity,
            format_version: record.format_version,
        }
    }

    /// The fields a faithful pipeline stores for `event` (its record at this format version).
    pub fn of_event(event: &Event) -> RowFields {
        RowFields::of_record(&Record::from_event(event))
    }

    /// The fields as the table's columns hold them: values out of range become ones that cannot
    /// match (a negative `seq` or `format_version` becomes the largest).
    pub fn from_columns(
        seq: i64,
        [latitude, longitude, speed, temperature, humidity]: [f64; 5],
        format_version: i32,
    ) -> RowFields {
        RowFields {
            seq: u64::try_from(seq).unwrap_or(u64::MAX),
            latitude,
            longitude,
            speed,
            temperature,
            humidity,
            format_version: u32::try_from(format_version).unwrap_or(u32::MAX),
        }
    }

    /// The double field named `field`; `None` for `seq`, `format_version` or a name that is no
    /// field.
    pub fn float(mut self, field: &str) -> Option<f64> {
        self.float_mut(field).copied()
    }

    /// The double field named `field`, to change; `None` for `seq`, `format_version`
    /// or a name that is no field.
    pub fn float_mut(&mut self, field: &str) -> Option<&mut f64> {
        match field {
            "latitude" => Some(&mut self.latitude),
            "longitude" => Some(&mut self.longitude),
            "speed" => Some(&mut self.speed),
            "temperature" => Some(&mut self.temperature),
            "humidity" => Some(&mut self.humidity),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event with a float that needs all its digits and one that is not exact (0.1 + 0.2).
    pub(super) fn sample() -> Event {
        Event {
            vehicle_index: 42,
            seq: 7,
            timestamp_ms: 1_767_225_600_123,
            latitude: 52.520_008_123_456_78,
            longitude: 13.404_954,
            speed_kmh: 0.1 + 0.2,
            temperature_c: -3.5,
            humidity_pct: 61.0,
        }
    }

    #[test]
    fn encoding_is_exactly_the_documented_form() {
        let text = String::from_utf8(sample().to_json()).unwrap();
        assert_eq!(
            text,
            r#"{"format_version":1,"vehicle_id":"veh-000042","seq":7,"timestamp":1767225600123,"latitude":52.52000812345678,"longitude":13.404954,"speed":0.30000000000000004,"temperature":-3.5,"humidity":61.0}"#
        );
    }

    #[test]
    fn decode_gives_back_exact_values() {
        let event = sample();
        let (record, index) = Record::decode(&event.to_json()).unwrap();
        assert_eq!(index, 42);
        assert_eq!(record, Record::from_event(&event));
        assert_eq!(record.speed.to_bits(), event.speed_kmh.to_bits());
    }

    #[test]
    fn decoding_is_exact_for_every_generated_float() {
        // serde_json's default float parser is off by an ulp now and then; roadtest needs
        // `float_roundtrip`, or the verification reports corrupt rows that are not.
        let plan = crate::fleet::FleetPlan {
            seed: 42,
            vehicle_count: 20,
            model: crate::scenario::MotionModel::Mixed,
            region: crate::scenario::Region::default(),
            start_ms: 0,
            end_ms: 600_000,
            interval_ms: 1000.0,
            jitter_fraction: 0.02,
            ramp: None,
            speeding_share: 0.0,
        };
        for event in plan.events() {
            let (record, _) = Record::decode(&event.to_json()).unwrap();
            for (sent, decoded) in [
                (event.latitude, record.latitude),
                (event.longitude, record.longitude),
                (event.speed_kmh, record.speed),
                (event.temperature_c, record.temperature),
                (event.humidity_pct, record.humidity),
            ] {
                assert_eq!(
                    sent.to_bits(),
                    decoded.to_bits(),
                    "{sent} decoded as {decoded}"
                );
            }
        }
    }

    #[test]
    fn encoding_matches_serde_json() {
        let event = sample();
        let via_serde = serde_json::to_vec(&Record::from_event(&event)).unwrap();
        assert_eq!(event.to_json(), via_serde);
    }

    #[test]
    fn bad_records_are_refused_with_a_reason() {
        assert!(matches!(
            Record::decode(b"not json"),
            Err(DecodeError::Json(_))
        ));
        let wrong_version = String::from_utf8(sample().to_json())
            .unwrap()
            .replace("\"format_version\":1", "\"format_version\":9");
        assert!(matches!(
            Record::decode(wrong_version.as_bytes()),
            Err(DecodeError::Version { found: 9 })
        ));
        let wrong_id = String::from_utf8(sample().to_json())
            .unwrap()
            .replace("veh-000042", "car-1");
        assert!(matches!(
            Record::decode(wrong_id.as_bytes()),
            Err(DecodeError::VehicleId(_))
        ));
    }

    #[test]
    fn vehicle_ids_round_trip() {
        for index in [0, 42, 999_999, 1_000_000, u32::MAX] {
            assert_eq!(vehicle_index(&vehicle_id(index)), Some(index));
        }
        assert_eq!(vehicle_id(0), "veh-000000");
        assert_eq!(vehicle_id(42), "veh-000042");
        assert_eq!(vehicle_id(1_000_000), "veh-1000000");
        assert_eq!(vehicle_index("veh-42"), None);
        assert_eq!(vehicle_index("veh-00004x"), None);
    }
}
