//! `roadtest explore`: many seeds of one scenario on the sim across threads, every failing seed with its replay command, and shrinking.
//!
//! Results come back sorted by seed whatever the number of threads, so the output of
//! `--jobs 1` and `--jobs 8` is the same text. A shrunk failure is written as a complete
//! scenario file whose replay command reproduces it as it is.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::report::Report;
use crate::scenario::Scenario;

use super::{SimError, SimLatencies, replay_command, simulate};

/// Most simulated runs one shrink may spend.
pub const SHRINK_RUNS_MAX: u32 = 200;

/// The verdict of one seed.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedResult {
    pub seed: u64,
    pub passed: bool,
    pub lost: u64,
    pub corrupt: u64,
    pub unexpected: u64,
    /// Names of the expectations that failed, like `lost_max`.
    pub failed: Vec<String>,
    /// Errors of the run (drain limit and the like).
    pub errors: Vec<String>,
    pub replay: String,
}

impl SeedResult {
    fn of(report: &Report, replay: String) -> SeedResult {
        SeedResult {
            seed: report.seed,
            passed: report.passed,
            lost: report.verify.lost,
            corrupt: report.verify.corrupt,
            unexpected: report.verify.unexpected,
            failed: report
                .expectations
                .iter()
                .filter(|e| !e.passed)
                .map(|e| e.name.clone())
                .collect(),
            errors: report.errors.clone(),
            replay,
        }
    }
}

/// Parses `A..B` (B excluded) or `A..=B` into a range of seeds.
pub fn parse_seeds(text: &str) -> Result<Range<u64>, String> {
    let error = || format!("--seeds {text:?}: give a range like 0..100 (100 excluded) or 0..=99");
    let (start, end) = text.split_once("..").ok_or_else(error)?;
    let start: u64 = start.trim().parse().map_err(|_| error())?;
    let end = match end.strip_prefix('=') {
        Some(last) => last
            .trim()
            .parse::<u64>()
            .map_err(|_| error())?
            .checked_add(1)
            .ok_or_else(error)?,
        None => end.trim().parse().map_err(|_| error())?,
    };
    if end <= start {
        return Err(format!("--seeds {text:?}: the range is empty"));
    }
    Ok(start..end)
}

/// Simulates every seed of `seeds` on `jobs` threads; results sorted by seed.
pub fn explore(
    scenario: &Scenario,
    scenario_path: &Path,
    seeds: Range<u64>,
    jobs: usize,
    latencies: SimLatencies,
) -> Result<Vec<SeedResult>, SimError> {
    let next = AtomicU64::new(seeds.start);
    let results = Mutex::new(Vec::new());
    let first_error = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        break;
                    }
                    let seeded = scenario.clone().with_seed(seed);
                    let replay = replay_command(&seeded, scenario_path);
                    match simulate(&seeded, scenario_path, latencies) {
                        Ok(report) => {
                            if let Ok(mut list) = results.lock() {
                                list.push(SeedResult::of(&report, replay));
                            }
                        }
                        Err(error) => {
                            if let Ok(mut slot) = first_error.lock() {
                                slot.get_or_insert((seed, error));
                            }
                            next.store(seeds.end, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    if let Some((_, error)) = first_error.into_inner().ok().flatten() {
        return Err(error);
    }
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|result| result.seed);
    Ok(results)
}

/// The text `roadtest explore` prints: one line per failing seed with its replay command, then a summary.
pub fn explore_text(results: &[SeedResult], seeds: &Range<u64>) -> String {
    let mut text = String::new();
    let failing: Vec<&SeedResult> = results.iter().filter(|r| !r.passed).collect();
    for result in &failing {
        let _ = writeln!(
            text,
            "FAIL seed {}: lost {}, corrupt {}, unexpected {}; failed {}{}\n  replay: {}",
            result.seed,
            result.lost,
            result.corrupt,
            result.unexpected,
            result.failed.join(", "),
            if result.errors.is_empty() {
                String::new()
            } else {
                format!("; errors: {}", result.errors.join("; "))
            },
            result.replay
        );
    }
    let _ = writeln!(
        text,
        "explored seeds {}..{}: {} runs, {} passed, {} failed",
        seeds.start,
        seeds.end,
        results.len(),
        results.len() - failing.len(),
        failing.len()
    );
    text
}

/// Smaller variants of a scenario, most reducing first: fewer faults, fewer vehicles, shorter.
fn candidates(scenario: &Scenario) -> Vec<Scenario> {
    let mut out = Vec::new();
    for index in 0..scenario.faults.len() {
        let mut fewer = scenario.clone();
        fewer.faults.remove(index);
        out.push(fewer);
        if let Some(random) = &scenario.faults[index].random
            && random.count > 1
        {
            let mut fewer = scenario.clone();
            if let Some(random) = fewer.faults[index].random.as_mut() {
                random.count -= 1;
            }
            out.push(fewer);
        }
    }
    let vehicles = scenario.fleet.vehicle_count;
    for smaller in [vehicles / 2, vehicles - 1] {
        if smaller >= 1 && smaller < vehicles {
            let mut fewer = scenario.clone();
            fewer.fleet.vehicle_count = smaller;
            if let Some(ramp) = fewer.fleet.ramp.as_mut() {
                ramp.start_vehicle_count = ramp.start_vehicle_count.min(smaller);
            }
            out.push(fewer);
        }
    }
    let duration = scenario.duration_s;
    for shorter in [duration / 2, duration * 3 / 4, duration - 1] {
        if shorter >= 1 && shorter < duration {
            let mut less = scenario.clone();
            less.duration_s = shorter;
            out.push(less);
        }
    }
    out
}

/// The scenario with every fault entry replaced by one entry per resolved fault (same schedule).
fn materialized(scenario: &Scenario) -> Scenario {
    let mut out = scenario.clone();
    out.faults = crate::faults::resolve(scenario)
        .into_iter()
        .map(|planned| {
            let mut spec = scenario.faults[planned.entry].clone();
            spec.random = None;
            spec.at_s = None;
            spec.after_events = None;
            match planned.trigger {
                crate::faults::Trigger::AtS(at_s) => spec.at_s = Some(at_s),
                crate::faults::Trigger::AfterEvents(count) => spec.after_events = Some(count),
            }
            spec
        })
        .collect();
    out
}

/// Shrinks a failing scenario (its seed kept) while it still fails; returns the smallest found,
/// its report and the runs spent. `None` if the scenario does not fail to begin with.
pub fn shrink(
    scenario: &Scenario,
    scenario_path: &Path,
    latencies: SimLatencies,
) -> Result<Option<(Scenario, Report, u32)>, SimError> {
    let mut runs = 1;
    let report = simulate(scenario, scenario_path, latencies)?;
    if report.passed {
        return Ok(None);
    }
    // Random triggers become the explicit times they resolve to, so single faults can go.
    let mut best = (materialized(scenario), report);
    'shrinking: while runs < SHRINK_RUNS_MAX {
        for candidate in candidates(&best.0) {
            if candidate.validate(scenario_path).is_err() {
                continue;
            }
            if runs >= SHRINK_RUNS_MAX {
                break 'shrinking;
            }
            runs += 1;
            let report = simulate(&candidate, scenario_path, latencies)?;
            if !report.passed {
                best = (candidate, report);
                continue 'shrinking;
            }
        }
        break;
    }
    Ok(Some((best.0, best.1, runs)))
}

/// The file `--shrink` writes the smallest failing case to, in its output folder.
pub const SHRUNK_FILE_NAME: &str = "shrunk.toml";

/// The smallest failing case could not be written as a scenario file (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ShrunkFileError {
    #[error("cannot write the smallest failing case as TOML: {0}")]
    Toml(#[from] toml::ser::Error),
    #[error("{path}: cannot write the smallest failing case: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: the written case does not load back as the same scenario: {problem}")]
    RoundTrip { path: PathBuf, problem: String },
}

/// Where `--shrink` writes by default: `reports/runs/explore-NAME-SEED`.
pub fn shrunk_dir(scenario: &Scenario) -> PathBuf {
    PathBuf::from("reports/runs").join(format!("explore-{}-{}", scenario.name, scenario.seed))
}

/// The command that replays a shrunk case from its file.
pub fn shrunk_replay_command(scenario: &Scenario, file: &Path) -> String {
    format!(
        "roadtest run {} --seed {} --target sim",
        file.display(),
        scenario.seed
    )
}

/// Writes the shrunk case as a complete scenario file (`dir/shrunk.toml`, every setting and its
/// faults at the fixed times they resolved to) and checks that it loads back as the very same
/// scenario (same hash); returns its path.
pub fn write_shrunk(
    scenario: &Scenario,
    source: &Path,
    dir: &Path,
) -> Result<PathBuf, ShrunkFileError> {
    let path = dir.join(SHRUNK_FILE_NAME);
    let header = format!(
        "# The smallest failing case of {} with seed {}, written by `roadtest explore --shrink`.\n\
         # Replay: {}\n\n",
        source.display(),
        scenario.seed,
        shrunk_replay_command(scenario, &path)
    );
    let text = header + &toml::to_string_pretty(scenario)?;
    let write_error = |source| ShrunkFileError::Write {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(write_error)?;
    std::fs::write(&path, text).map_err(write_error)?;
    match Scenario::load(&path) {
        Ok(loaded) if loaded == *scenario => Ok(path),
        Ok(_) => Err(ShrunkFileError::RoundTrip {
            path,
            problem: "a setting changed on the way".into(),
        }),
        Err(error) => Err(ShrunkFileError::RoundTrip {
            problem: error.to_string(),
            path,
        }),
    }
}

/// The text describing a shrunk failure written to `file`.
pub fn shrink_text(scenario: &Scenario, report: &Report, runs: u32, file: &Path) -> String {
    let mut text = format!(
        "smallest failing case of seed {} (after {runs} runs): {} vehicles, {} s, {} faults; \
         lost {}, corrupt {}, unexpected {}\n",
        scenario.seed,
        scenario.fleet.vehicle_count,
        scenario.duration_s,
        scenario.faults.len(),
        report.verify.lost,
        report.verify.corrupt,
        report.verify.unexpected
    );
    for fault in crate::faults::resolve(scenario) {
        let trigger = match fault.trigger {
            crate::faults::Trigger::AtS(at_s) => format!("at {at_s} s"),
            crate::faults::Trigger::AfterEvents(count) => format!("after {count} events"),
        };
        let _ = writeln!(
            text,
            "  - {} the {} {trigger} for {} s",
            fault.action.name(),
            fault.service,
            fault.duration_s
        );
    }
    let _ = writeln!(
        text,
        "  written as a complete scenario (hash {}): {}\n  replay: {}",
        scenario.hash(),
        file.display(),
        shrunk_replay_command(scenario, file)
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges_parse() {
        assert_eq!(parse_seeds("0..100"), Ok(0..100));
        assert_eq!(parse_seeds("5..=9"), Ok(5..10));
        assert!(parse_seeds("9..9").is_err());
        assert!(parse_seeds("x..9").is_err());
        assert!(parse_seeds("7").is_err());
    }

    #[test]
    fn a_shrunk_case_is_written_as_a_scenario_that_loads_back_the_same() {
        let text = "name = \"shrunk\"\nseed = 9\nduration_s = 20\n[fleet]\nvehicle_count = 6\n\
                    rate_hz = 3.0\nramp = { start_vehicle_count = 2, ramp_s = 5 }\n\
                    [[faults]]\naction = \"kill\"\nservice = \"consumer\"\n\
                    random = { count = 1, between_s = [1.0, 15.0] }\n\
                    [[faults]]\naction = \"latency\"\nservice = \"broker\"\nafter_events = 40\n\
                    delay_ms = 30\njitter_ms = 5\n";
        let source = Path::new("shrunk-source.toml");
        let parsed = Scenario::parse(text, source).expect("parses");
        parsed.validate(source).expect("valid");
        let scenario = materialized(&parsed);
        assert!(
            scenario
                .faults
                .iter()
                .any(|f| f.at_s.is_some_and(|at| at.fract() != 0.0))
        );
        let dir = std::env::temp_dir().join(format!("roadtest-shrunk-{}", std::process::id()));
        let file = write_shrunk(&scenario, source, &dir).expect("writes");
        let loaded = Scenario::load(&file).expect("loads");
        assert_eq!(loaded, scenario);
        assert_eq!(loaded.hash(), scenario.hash());
        let written = std::fs::read_to_string(&file).expect("reads");
        assert!(
            written.starts_with("# The smallest failing case of shrunk-source.toml with seed 9")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
