//! `roadtest calibrate REPORT`: the sim's latency parameters derived from a real run's stage latencies.
//!
//! Each simulated latency is a base plus an exponential tail ([`LatencyModel`]). From a real
//! report: produce = `produce_ack_ms` (base its min, tail mean its mean minus min); fetch = what
//! `consume_ms` adds to `produce_ack_ms`; write = `write_ack_ms` less the consumer's linger (a
//! row waits half of it on average before its batch is sealed). A rough fit: the sim reproduces
//! the means and minimums of the stages, not their tails. The result is JSON that
//! `ROADTEST_SIM_LATENCIES=FILE` hands to `run --target sim` and `explore`.

use std::path::{Path, PathBuf};

use crate::report::{Report, STAGE_CONSUME_MS, STAGE_PRODUCE_ACK_MS, STAGE_WRITE_ACK_MS};

use super::{LatencyModel, SimLatencies};

/// The environment variable naming a calibration file for the sim.
pub const LATENCIES_ENV: &str = "ROADTEST_SIM_LATENCIES";
/// The consumer's linger, ms (see `IngestSettings::from_consumer`).
const LINGER_MS: f64 = 20.0;
/// The least tail mean a fit gives, µs.
const TAIL_MEAN_MIN_US: f64 = 10.0;

/// The sim's latencies could not be had; each message names the file or what is missing.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error("the report has no {stage} measurements to calibrate from")]
    NoStage { stage: &'static str },
    #[error("{}: cannot read the sim latencies: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a sim latencies file: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{}: database_rows_per_s is {rate}: give the database's capacity in rows per second, \
         1 or more (or leave the key out for no limit)",
        path.display()
    )]
    Capacity { path: PathBuf, rate: f64 },
}

/// Derives the sim's latencies from a real run's report.
pub fn from_report(report: &Report) -> Result<SimLatencies, CalibrateError> {
    let stage = |stage: &'static str| {
        report
            .latency
            .stages
            .get(stage)
            .filter(|summary| summary.count > 0)
            .ok_or(CalibrateError::NoStage { stage })
    };
    let (produce, consume, write) = (
        stage(STAGE_PRODUCE_ACK_MS)?,
        stage(STAGE_CONSUME_MS)?,
        stage(STAGE_WRITE_ACK_MS)?,
    );
    let model = |min_ms: f64, mean_ms: f64| LatencyModel {
        base_us: (min_ms.max(0.0) * 1000.0) as u64,
        mean_extra_us: ((mean_ms - min_ms) * 1000.0).max(TAIL_MEAN_MIN_US),
    };
    let fetch_min_ms = (consume.min_ms - produce.min_ms).max(0.0);
    let fetch_mean_ms = (consume.mean_ms - produce.mean_ms).max(fetch_min_ms);
    let write_mean_ms = (write.mean_ms - LINGER_MS / 2.0).max(write.min_ms);
    Ok(SimLatencies {
        produce: model(produce.min_ms, produce.mean_ms),
        fetch: model(fetch_min_ms, fetch_mean_ms),
        write: model(write.min_ms, write_mean_ms),
        write_per_row_us: 0,
        // A real run shows latencies, not the database's capacity.
        database_rows_per_s: None,
    })
}

/// The latencies a simulated run uses: the file named by [`LATENCIES_ENV`], else the defaults.
pub fn latencies_from_env() -> Result<SimLatencies, CalibrateError> {
    match std::env::var_os(LATENCIES_ENV) {
        None => Ok(SimLatencies::default()),
        Some(file) => read(Path::new(&file)),
    }
}

/// Reads a calibration file written by `roadtest calibrate`.
pub fn read(file: &Path) -> Result<SimLatencies, CalibrateError> {
    let text = std::fs::read_to_string(file).map_err(|source| CalibrateError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let latencies: SimLatencies =
        serde_json::from_str(&text).map_err(|source| CalibrateError::Parse {
            path: file.to_path_buf(),
            source,
        })?;
    match latencies.database_rows_per_s {
        Some(rate) if !(rate.is_finite() && rate >= 1.0) => Err(CalibrateError::Capacity {
            path: file.to_path_buf(),
            rate,
        }),
        _ => Ok(latencies),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_capacity_in_a_latencies_file_is_read_and_a_bad_one_named() {
        let dir = std::env::temp_dir().join(format!("roadtest-capacity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("latencies.json");
        let with = |rate: f64| SimLatencies {
            database_rows_per_s: Some(rate),
            ..SimLatencies::default()
        };
        std::fs::write(&file, serde_json::to_string(&with(1_500.0)).expect("json")).expect("w");
        assert_eq!(read(&file).expect("reads"), with(1_500.0));
        std::fs::write(&file, serde_json::to_string(&with(0.0)).expect("json")).expect("w");
        let error = read(&file).expect_err("no capacity").to_string();
        assert!(error.contains("database_rows_per_s is 0"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_real_report_calibrates_to_its_stage_minimums_and_means() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/baselines/smoke.json");
        let report = Report::read(&path).expect("the committed smoke baseline parses");
        let latencies = from_report(&report).expect("the baseline has stage latencies");
        let produce = &report.latency.stages[STAGE_PRODUCE_ACK_MS];
        assert_eq!(latencies.produce.base_us, (produce.min_ms * 1000.0) as u64);
        let mean_us = latencies.produce.base_us as f64 + latencies.produce.mean_extra_us;
        assert!((mean_us - produce.mean_ms * 1000.0).abs() < 2.0);
        let text = serde_json::to_string(&latencies).expect("serializes");
        let back: SimLatencies = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, latencies);
        let mut empty = report.clone();
        empty.latency.stages.clear();
        assert!(from_report(&empty).is_err());
    }
}
