//! The `[gate]` settings of a scenario (or of a gate file): how `roadtest compare --gate` judges a run against a baseline, and their checks.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The `[gate]` table of a scenario: how `roadtest compare --gate` judges a run against a baseline.
///
/// Every key is optional; the defaults suit a shared, noisy 2-core machine while still failing a
/// 2x throughput drop or a 2x latency rise. A gate file (`roadtest compare --gate-file FILE`)
/// holds the same keys at its top level.
///
/// ```toml
/// [gate]
/// noise_sigmas = 3.0            # the baseline's per-second spread that counts as noise
/// throughput_ratio_min = 0.7    # written/s and produced/s at least 70% of the baseline's
/// latency_ratio_max = 1.5       # e2e p50 and p99 at most 1.5x the baseline's
/// latency_max_ratio_max = 3.0   # e2e max at most 3x
/// latency_rise_ms_min = 2.0     # latency rises below 2 ms never fail
/// memory_ratio_max = 1.5        # peak RSS of each process at most 1.5x
/// memory_rise_mb_min = 32.0     # memory rises below 32 MB never fail
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GateSettings {
    /// How many robust standard deviations of the baseline's per-second samples count as noise
    /// (0 to 10; 0 turns the noise band off and leaves the ratio bounds alone).
    pub noise_sigmas: f64,
    /// Written/s and produced/s of the new run must be at least this fraction of the baseline's,
    /// unless the drop is within noise (0.01 to 1).
    pub throughput_ratio_min: f64,
    /// End-to-end p50 and p99 of the new run may be at most this multiple of the baseline's,
    /// unless the rise is within noise (1 to 100).
    pub latency_ratio_max: f64,
    /// End-to-end max of the new run may be at most this multiple of the baseline's, unless the
    /// rise is within noise (1 to 1000). Looser than the percentiles: one slow event sets it.
    pub latency_max_ratio_max: f64,
    /// A latency rise smaller than this, in ms, is never a regression (0 to 60000).
    pub latency_rise_ms_min: f64,
    /// Peak RSS of each process may be at most this multiple of the baseline's, unless the rise is
    /// within noise (1 to 100).
    pub memory_ratio_max: f64,
    /// A memory rise smaller than this, in MB, is never a regression (0 to 1000000).
    pub memory_rise_mb_min: f64,
}

impl Default for GateSettings {
    fn default() -> Self {
        GateSettings {
            noise_sigmas: 3.0,
            throughput_ratio_min: 0.7,
            latency_ratio_max: 1.5,
            latency_max_ratio_max: 3.0,
            latency_rise_ms_min: 2.0,
            memory_ratio_max: 1.5,
            memory_rise_mb_min: 32.0,
        }
    }
}

/// Gate settings that could not be read; every message names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum GateSettingsError {
    /// The gate file could not be read.
    #[error("{file}: cannot read the gate file: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// A key is unknown, has the wrong type or is out of range (or the TOML is malformed).
    #[error("{file}: {key}: {message}")]
    Invalid {
        file: PathBuf,
        key: String,
        message: String,
    },
}

impl GateSettings {
    /// True for the defaults (a scenario without a `[gate]` table leaves it out when serialized,
    /// so its hash does not change).
    pub fn is_default(&self) -> bool {
        *self == GateSettings::default()
    }

    /// The settings of a resolved scenario (as a report embeds it): its `gate` table, or the
    /// defaults when it has none (scenarios without `[gate]`, and reports older than the gate).
    ///
    /// Errors name the key: `gate.noise_sigmas: ...`.
    pub fn from_resolved(resolved: &serde_json::Value) -> Result<GateSettings, (String, String)> {
        let settings = match resolved.get("gate") {
            None | Some(serde_json::Value::Null) => GateSettings::default(),
            Some(table) => serde_path_to_error::deserialize(table.clone()).map_err(|error| {
                (
                    gate_key(&error.path().to_string()),
                    error.inner().to_string(),
                )
            })?,
        };
        check_settings(&settings)?;
        Ok(settings)
    }

    /// Reads a gate file: TOML with the keys of a scenario's `[gate]` table at its top level;
    /// unknown keys and out-of-range values are rejected, naming the file and the key.
    pub fn read_file(file: &Path) -> Result<GateSettings, GateSettingsError> {
        let text = std::fs::read_to_string(file).map_err(|source| GateSettingsError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        Self::parse_file(&text, file)
    }

    /// Parses the text of a gate file read from `file` (see [`GateSettings::read_file`]). Keys
    /// in errors are as written in the file (`latency_ratio_max`, no `gate.` in front).
    pub fn parse_file(text: &str, file: &Path) -> Result<GateSettings, GateSettingsError> {
        let invalid = |key: &str, message: String| GateSettingsError::Invalid {
            file: file.to_path_buf(),
            key: key.to_string(),
            message,
        };
        let deserializer = toml::Deserializer::parse(text)
            .map_err(|error| invalid("(syntax)", error.message().trim().to_string()))?;
        let settings: GateSettings =
            serde_path_to_error::deserialize(deserializer).map_err(|error| {
                let key = match error.path().to_string() {
                    path if path == "." => "(top level)".to_string(),
                    path => path,
                };
                invalid(&key, error.inner().message().trim().to_string())
            })?;
        check_settings(&settings).map_err(|(key, message)| {
            invalid(key.strip_prefix("gate.").unwrap_or(&key), message)
        })?;
        Ok(settings)
    }
}

/// `gate.KEY` for a serde path inside the gate table (`gate` for the table itself).
fn gate_key(path: &str) -> String {
    if path == "." {
        "gate".to_string()
    } else {
        format!("gate.{path}")
    }
}

/// Checks the range of every key; the first problem is returned as `(gate.KEY, message)`.
pub(crate) fn check_settings(settings: &GateSettings) -> Result<(), (String, String)> {
    let ranges = [
        ("noise_sigmas", settings.noise_sigmas, 0.0, 10.0),
        (
            "throughput_ratio_min",
            settings.throughput_ratio_min,
            0.01,
            1.0,
        ),
        ("latency_ratio_max", settings.latency_ratio_max, 1.0, 100.0),
        (
            "latency_max_ratio_max",
            settings.latency_max_ratio_max,
            1.0,
            1_000.0,
        ),
        (
            "latency_rise_ms_min",
            settings.latency_rise_ms_min,
            0.0,
            60_000.0,
        ),
        ("memory_ratio_max", settings.memory_ratio_max, 1.0, 100.0),
        (
            "memory_rise_mb_min",
            settings.memory_rise_mb_min,
            0.0,
            1_000_000.0,
        ),
    ];
    for (key, value, low, high) in ranges {
        // Written so that NaN is out of range too.
        if !(value >= low && value <= high) {
            return Err((
                format!("gate.{key}"),
                format!("{value} is out of range; allowed {low} to {high}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_left_out_when_serialized() {
        let defaults = GateSettings::default();
        assert!(defaults.is_default());
        check_settings(&defaults).unwrap();
        let parsed: GateSettings = toml::from_str("").unwrap();
        assert_eq!(parsed, defaults);
        let partial: GateSettings = toml::from_str("latency_ratio_max = 1.2").unwrap();
        assert_eq!(partial.latency_ratio_max, 1.2);
        assert_eq!(partial.noise_sigmas, 3.0);
        assert!(!partial.is_default());
    }

    #[test]
    fn settings_come_from_the_resolved_scenario_or_default() {
        let none = serde_json::json!({"name": "x"});
        assert_eq!(
            GateSettings::from_resolved(&none).unwrap(),
            GateSettings::default()
        );
        let set = serde_json::json!({"gate": {"throughput_ratio_min": 0.9}});
        assert_eq!(
            GateSettings::from_resolved(&set)
                .unwrap()
                .throughput_ratio_min,
            0.9
        );
        let unknown = serde_json::json!({"gate": {"throughput_drop": 0.9}});
        let (key, message) = GateSettings::from_resolved(&unknown).unwrap_err();
        assert_eq!(key, "gate.throughput_drop");
        assert!(message.contains("throughput_drop"), "{message}");
        let wrong_type = serde_json::json!({"gate": {"noise_sigmas": "three"}});
        assert_eq!(
            GateSettings::from_resolved(&wrong_type).unwrap_err().0,
            "gate.noise_sigmas"
        );
    }

    #[test]
    fn scenarios_take_a_gate_table_and_keep_their_hash_without_one() {
        use crate::scenario::Scenario;
        use std::path::Path;
        const BASE: &str = "name = \"unit\"\nseed = 1\nduration_s = 10\n\
                            [fleet]\nvehicle_count = 3\nsample_interval_ms = 500\n";
        let file = Path::new("unit.toml");
        let plain = Scenario::parse(BASE, file).unwrap();
        assert!(plain.gate.is_default());
        assert!(serde_json::to_value(&plain).unwrap().get("gate").is_none());
        let spelled_out = format!("{BASE}[gate]\nnoise_sigmas = 3.0\n");
        assert_eq!(
            Scenario::parse(&spelled_out, file).unwrap().hash(),
            plain.hash()
        );
        let gated =
            Scenario::parse(&format!("{BASE}[gate]\nthroughput_ratio_min = 0.8\n"), file).unwrap();
        gated.validate(file).unwrap();
        assert_eq!(gated.gate.throughput_ratio_min, 0.8);
        let resolved = serde_json::to_value(&gated).unwrap();
        assert_eq!(GateSettings::from_resolved(&resolved).unwrap(), gated.gate);
        let unknown = Scenario::parse(&format!("{BASE}[gate]\nthroughput_drop = 0.8\n"), file)
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("throughput_drop"), "{unknown}");
        let out_of_range =
            Scenario::parse(&format!("{BASE}[gate]\nlatency_ratio_max = 0.5\n"), file)
                .unwrap()
                .validate(file)
                .unwrap_err()
                .to_string();
        assert!(
            out_of_range.contains("gate.latency_ratio_max: 0.5 is out of range; allowed 1 to 100"),
            "{out_of_range}"
        );
    }

    #[test]
    fn ranges_name_the_key() {
        let cases = [
            GateSettings {
                noise_sigmas: -1.0,
                ..GateSettings::default()
            },
            GateSettings {
                throughput_ratio_min: 1.5,
                ..GateSettings::default()
            },
            GateSettings {
                latency_ratio_max: 0.5,
                ..GateSettings::default()
            },
            GateSettings {
                memory_ratio_max: f64::NAN,
                ..GateSettings::default()
            },
        ];
        let keys: Vec<String> = cases
            .iter()
            .map(|settings| check_settings(settings).unwrap_err().0)
            .collect();
        assert_eq!(
            keys,
            [
                "gate.noise_sigmas",
                "gate.throughput_ratio_min",
                "gate.latency_ratio_max",
                "gate.memory_ratio_max"
            ]
        );
        let (_, message) = check_settings(&cases[1]).unwrap_err();
        assert!(message.contains("allowed 0.01 to 1"), "{message}");
    }

    #[test]
    fn gate_files_reject_unknown_keys_and_bad_ranges_naming_file_and_key() {
        let file = Path::new("ci/gate.toml");
        let parsed = GateSettings::parse_file("latency_ratio_max = 1.2\n", file).unwrap();
        assert_eq!(parsed.latency_ratio_max, 1.2);
        assert_eq!(parsed.noise_sigmas, 3.0);
        let unknown = GateSettings::parse_file("latency_drop = 1.2\n", file)
            .unwrap_err()
            .to_string();
        assert!(
            unknown.starts_with("ci/gate.toml: latency_drop: unknown field `latency_drop`"),
            "{unknown}"
        );
        let range = GateSettings::parse_file("memory_ratio_max = 0.5\n", file)
            .unwrap_err()
            .to_string();
        assert_eq!(
            range,
            "ci/gate.toml: memory_ratio_max: 0.5 is out of range; allowed 1 to 100"
        );
        let wrong_type = GateSettings::parse_file("noise_sigmas = \"three\"\n", file)
            .unwrap_err()
            .to_string();
        assert!(
            wrong_type.starts_with("ci/gate.toml: noise_sigmas: invalid type"),
            "{wrong_type}"
        );
        let syntax = GateSettings::parse_file("noise_sigmas = = 3\n", file)
            .unwrap_err()
            .to_string();
        assert!(syntax.starts_with("ci/gate.toml: (syntax): "), "{syntax}");
        let missing = GateSettings::read_file(Path::new("/nonexistent/gate.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("/nonexistent/gate.toml: cannot read the gate file"),
            "{missing}"
        );
    }
}
