//! Process sampling: resident memory (MB) and CPU (% of one core) of named processes, read from /proc.
//!
//! The caller names the processes it cares about (`("consumer", pid)`, `("roadtest", own_pid())`)
//! and drives the cadence, or lets [`spawn_sampler`] do it every [`SAMPLE_INTERVAL_MS`]. Services
//! are killed and restarted during crash tests: a pid that is gone is recorded as absent, never an
//! error, and a restarted service keeps its name under a new pid.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::live::RunMetrics;

/// Time between two samples taken by [`spawn_sampler`], in ms.
pub const SAMPLE_INTERVAL_MS: u64 = 250;

/// The most points a timeline keeps per process (more than 24 h at 4 samples a second); later
/// samples still count toward the peaks.
pub const TIMELINE_POINT_COUNT_MAX: usize = 400_000;

/// Clock ticks per second assumed when the kernel does not say (the Linux USER_HZ everywhere).
const CLOCK_TICKS_PER_S_FALLBACK: u64 = 100;

/// `AT_CLKTCK` in the ELF auxiliary vector: the kernel's clock ticks per second.
const AUXV_CLOCK_TICKS: usize = 17;

/// One sample of one named process.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProcessPoint {
    /// When the sample was taken, in ms since the run start.
    pub at_ms: u64,
    /// Resident memory in MB (2^20 bytes); `None` when the process was not running.
    pub rss_mb: Option<f64>,
    /// CPU time since the previous sample, in % of one core (200 = two cores busy); `None` when the
    /// process was not running or this is its first sample since it (re)started.
    pub cpu_percent: Option<f64>,
}

/// Samples memory and CPU of named processes over a run.
#[derive(Debug, Clone, Default)]
pub struct ProcessSampler {
    tracks: BTreeMap<String, Track>,
    /// Where each new point is also published while the run goes (`--metrics-listen`).
    live: Option<RunMetrics>,
}

/// Everything known about one named process.
#[derive(Debug, Clone, Default)]
struct Track {
    /// The last sample that found the process, to compute CPU from.
    previous: Option<Previous>,
    points: Vec<ProcessPoint>,
    peak_rss_mb: Option<f64>,
    peak_cpu_percent: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
struct Previous {
    pid: u32,
    /// Start time of the process in clock ticks since boot: tells a reused pid from the same process.
    start_ticks: u64,
    cpu_ticks: u64,
    at_ms: u64,
}

/// What /proc says about one live process.
#[derive(Debug, Clone, Copy)]
struct RawSample {
    rss_mb: f64,
    cpu_ticks: u64,
    start_ticks: u64,
}

impl ProcessSampler {
    /// A sampler that has seen nothing yet.
    pub fn new() -> ProcessSampler {
        ProcessSampler::default()
    }

    /// A sampler that also publishes each point to `live` (nothing when `None`).
    pub fn publishing_to(live: Option<RunMetrics>) -> ProcessSampler {
        ProcessSampler {
            live,
            ..ProcessSampler::default()
        }
    }

    /// Samples every `(name, pid)` of `processes` once, `at_ms` after the run start.
    ///
    /// Names should be unique in one call. A process that is gone (or a zombie) is recorded as
    /// absent. A name whose pid changed since the last sample (a restart) starts a new CPU baseline.
    /// Several pids under one name are one service of several processes (PostgreSQL's server
    /// and its backends, the first pid the server's): their memory is the sum of their
    /// proportional set sizes (shared pages counted once over all), their CPU time the sum.
    pub fn sample(&mut self, processes: &[(String, u32)], at_ms: u64) {
        let mut by_name: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for (name, pid) in processes {
            by_name.entry(name.as_str()).or_default().push(*pid);
        }
        for (name, pids) in by_name {
            let raw = match pids.as_slice() {
                [pid] => read_sample(*pid),
                _ => read_group_sample(&pids),
            };
            let track = self.tracks.entry(name.to_string()).or_default();
            let point = track.observe(pids[0], raw, at_ms);
            if let Some(live) = &self.live {
                live.process(name, point.rss_mb, point.cpu_percent);
            }
        }
    }

    /// Records a reading taken elsewhere (a container's Docker stats), `at_ms` after the run start;
    /// `None` means absent (stopped) or, for CPU, not known yet.
    pub fn record(
        &mut self,
        name: &str,
        rss_mb: Option<f64>,
        cpu_percent: Option<f64>,
        at_ms: u64,
    ) {
        let track = self.tracks.entry(name.to_string()).or_default();
        if let Some(rss) = rss_mb {
            track.peak_rss_mb = Some(track.peak_rss_mb.map_or(rss, |peak| peak.max(rss)));
        }
        if let Some(cpu) = cpu_percent {
            track.peak_cpu_percent = Some(track.peak_cpu_percent.map_or(cpu, |peak| peak.max(cpu)));
        }
        if track.points.len() < TIMELINE_POINT_COUNT_MAX {
            track.points.push(ProcessPoint {
                at_ms,
                rss_mb,
                cpu_percent,
            });
        }
        if let Some(live) = &self.live {
            live.process(name, rss_mb, cpu_percent);
        }
    }

    /// Highest resident memory of each process that was found at least once, in MB.
    pub fn peaks_rss_mb(&self) -> BTreeMap<String, f64> {
        self.tracks
            .iter()
            .filter_map(|(name, track)| track.peak_rss_mb.map(|peak| (name.clone(), peak)))
            .collect()
    }

    /// Highest CPU use of each process that was found on two samples in a row, in % of one core.
    pub fn peak_cpu_percent(&self) -> BTreeMap<String, f64> {
        self.tracks
            .iter()
            .filter_map(|(name, track)| track.peak_cpu_percent.map(|peak| (name.clone(), peak)))
            .collect()
    }

    /// Every sample of every process, in the order taken.
    pub fn timelines(&self) -> BTreeMap<String, Vec<ProcessPoint>> {
        self.tracks
            .iter()
            .map(|(name, track)| (name.clone(), track.points.clone()))
            .collect()
    }
}

impl Track {
    fn observe(&mut self, pid: u32, raw: Option<RawSample>, at_ms: u64) -> ProcessPoint {
        let point = match raw {
            None => {
                self.previous = None;
                ProcessPoint {
                    at_ms,
                    rss_mb: None,
                    cpu_percent: None,
                }
            }
            Some(raw) => {
                let cpu_percent = self
                    .previous
                    .filter(|previous| {
                        previous.pid == pid
                            && previous.start_ticks == raw.start_ticks
                            && previous.at_ms < at_ms
                    })
                    .map(|previous| {
                        let ticks = raw.cpu_ticks.saturating_sub(previous.cpu_ticks) as f64;
                        let elapsed_s = (at_ms - previous.at_ms) as f64 / 1_000.0;
                        ticks / clock_ticks_per_s() as f64 / elapsed_s * 100.0
                    });
                self.previous = Some(Previous {
                    pid,
                    start_ticks: raw.start_ticks,
                    cpu_ticks: raw.cpu_ticks,
                    at_ms,
                });
                self.peak_rss_mb = Some(self.peak_rss_mb.map_or(raw.rss_mb, |p| p.max(raw.rss_mb)));
                if let Some(cpu) = cpu_percent {
                    self.peak_cpu_percent = Some(self.peak_cpu_percent.map_or(cpu, |p| p.max(cpu)));
                }
                ProcessPoint {
                    at_ms,
                    rss_mb: Some(raw.rss_mb),
                    cpu_percent,
                }
            }
        };
        if self.points.len() < TIMELINE_POINT_COUNT_MAX {
            self.points.push(point);
        }
        point
    }
}

/// Resident memory in MB and CPU time (user + system) in clock ticks of a live process; `None`
/// when there is no such process, it is a zombie, or /proc cannot be read.
pub fn read_process(pid: u32) -> Option<(f64, u64)> {
    read_sample(pid).map(|raw| (raw.rss_mb, raw.cpu_ticks))
}

/// The pid of this process.
pub fn own_pid() -> u32 {
    std::process::id()
}

/// Clock ticks per second of the CPU times in `/proc/PID/stat`, from the kernel's auxiliary
/// vector (`AT_CLKTCK`, what `sysconf(_SC_CLK_TCK)` returns), or 100 when it cannot be read.
pub fn clock_ticks_per_s() -> u64 {
    static TICKS_PER_S: OnceLock<u64> = OnceLock::new();
    *TICKS_PER_S.get_or_init(|| {
        std::fs::read("/proc/self/auxv")
            .ok()
            .and_then(|auxv| auxv_value(&auxv, AUXV_CLOCK_TICKS))
            .and_then(|ticks| u64::try_from(ticks).ok())
            .filter(|ticks| *ticks > 0)
            .unwrap_or(CLOCK_TICKS_PER_S_FALLBACK)
    })
}

/// Samples `processes` every [`SAMPLE_INTERVAL_MS`] until `stop` turns true or its sender is
/// dropped, takes one last sample, and returns the sampler. Must be called inside a tokio runtime.
///
/// The caller may update the list at any time (a restarted service gets its new pid under the
/// same name); each sample reads the list as it is then.
pub fn spawn_sampler(
    processes: Arc<Mutex<Vec<(String, u32)>>>,
    run_start: Instant,
    mut stop: watch::Receiver<bool>,
    live: Option<RunMetrics>,
) -> JoinHandle<ProcessSampler> {
    tokio::spawn(async move {
        let mut sampler = ProcessSampler::publishing_to(live);
        let mut ticker = tokio::time::interval(Duration::from_millis(SAMPLE_INTERVAL_MS));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            if *stop.borrow_and_update() {
                break;
            }
            tokio::select! {
                _ = ticker.tick() => sample_list(&mut sampler, &processes, run_start),
                changed = stop.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        sample_list(&mut sampler, &processes, run_start);
        sampler
    })
}

fn sample_list(
    sampler: &mut ProcessSampler,
    processes: &Mutex<Vec<(String, u32)>>,
    run_start: Instant,
) {
    // A poisoned list is still a list of pids: sampling it cannot make things worse.
    let list = processes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let at_ms = u64::try_from(run_start.elapsed().as_millis()).unwrap_or(u64::MAX);
    sampler.sample(&list, at_ms);
}

/// One service of several processes: the first (its leader) must be alive; memory is the sum of
/// the proportional set sizes, CPU the sum of CPU times, the start time the leader's.
fn read_group_sample(pids: &[u32]) -> Option<RawSample> {
    let read = |pid: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
        Some((parse_stat(&stat)?, parse_kb(&rollup, "Pss:")?))
    };
    let ((ticks, start_ticks), pss_kb) = read(*pids.first()?)?;
    let mut sample = RawSample {
        rss_mb: pss_kb as f64 / 1_024.0,
        cpu_ticks: ticks,
        start_ticks,
    };
    for ((ticks, _), pss_kb) in pids[1..].iter().filter_map(|&pid| read(pid)) {
        sample.rss_mb += pss_kb as f64 / 1_024.0;
        sample.cpu_ticks = sample.cpu_ticks.saturating_add(ticks);
    }
    Some(sample)
}

fn read_sample(pid: u32) -> Option<RawSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rss_kb = parse_status_rss_kb(&status)?;
    let (cpu_ticks, start_ticks) = parse_stat(&stat)?;
    Some(RawSample {
        rss_mb: rss_kb as f64 / 1_024.0,
        cpu_ticks,
        start_ticks,
    })
}

/// `VmRSS` of `/proc/PID/status`, in kB; absent for zombies and kernel threads.
fn parse_status_rss_kb(status: &str) -> Option<u64> {
    parse_kb(status, "VmRSS:")
}

/// The kB value of the line starting with `key` (`/proc/PID/status`, `smaps_rollup`).
fn parse_kb(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
}

/// `(utime + stime, starttime)` of `/proc/PID/stat`, in clock ticks; `None` for a zombie or a
/// dead process. The command name (field 2) may hold spaces and parentheses, so fields are
/// counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(u64, u64)> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // fields[0] is field 3 (state); field n is fields[n - 3].
    let state = *fields.first()?;
    if state == "Z" || state == "X" {
        return None;
    }
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|value| value.parse::<u64>().ok())
    };
    let user_ticks = field(14)?;
    let system_ticks = field(15)?;
    let start_ticks = field(22)?;
    Some((user_ticks.saturating_add(system_ticks), start_ticks))
}

/// The value of `key` in an ELF auxiliary vector (native-endian word pairs, ended by key 0).
fn auxv_value(auxv: &[u8], key: usize) -> Option<usize> {
    const WORD: usize = std::mem::size_of::<usize>();
    let word =
        |bytes: &[u8]| -> Option<usize> { Some(usize::from_ne_bytes(bytes.try_into().ok()?)) };
    for pair in auxv.chunks_exact(2 * WORD) {
        let entry_key = word(&pair[..WORD])?;
        if entry_key == 0 {
            return None;
        }
        if entry_key == key {
            return word(&pair[WORD..]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pid that is not running: the highest the kernel hands out is 2^22, so this one never is.
    const DEAD_PID: u32 = 4_194_304 + 7;

    #[test]
    fn own_process_has_memory_and_cpu_time() {
        let (rss_mb, _cpu_ticks) = read_process(own_pid()).expect("this process is alive");
        assert!(rss_mb > 0.0, "rss {rss_mb}");
        assert!((10..=10_000).contains(&clock_ticks_per_s()));
    }

    #[test]
    fn dead_pid_is_absent_not_an_error() {
        assert!(read_process(DEAD_PID).is_none());
        let mut sampler = ProcessSampler::new();
        sampler.sample(&[("ghost".to_string(), DEAD_PID)], 0);
        sampler.sample(&[("ghost".to_string(), DEAD_PID)], 250);
        assert!(sampler.peaks_rss_mb().is_empty());
        assert!(sampler.peak_cpu_percent().is_empty());
        let timelines = sampler.timelines();
        let ghost = &timelines["ghost"];
        assert_eq!(ghost.len(), 2);
        assert!(
            ghost
                .iter()
                .all(|p| p.rss_mb.is_none() && p.cpu_percent.is_none())
        );
    }

    #[test]
    fn sampler_tracks_own_process_and_restarts() {
        let mut sampler = ProcessSampler::new();
        let own = vec![("roadtest".to_string(), own_pid())];
        sampler.sample(&own, 0);
        // Burn some CPU so the second sample has something to show.
        let started = Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        sampler.sample(&own, 100);
        // The service "dies" (its name now points at a dead pid), then comes back.
        sampler.sample(&[("roadtest".to_string(), DEAD_PID)], 200);
        sampler.sample(&own, 300);

        let points = &sampler.timelines()["roadtest"];
        let cpu: Vec<Option<f64>> = points.iter().map(|p| p.cpu_percent).collect();
        assert!(cpu[0].is_none(), "no baseline on the first sample");
        assert!(cpu[1].is_some_and(|c| c >= 0.0), "{cpu:?}");
        assert!(points[2].rss_mb.is_none() && cpu[2].is_none());
        assert!(
            points[3].rss_mb.is_some() && cpu[3].is_none(),
            "new baseline after a restart"
        );
        assert!(sampler.peaks_rss_mb()["roadtest"] > 0.0);
        assert!(sampler.peak_cpu_percent().contains_key("roadtest"));
    }

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let stat = "1234 (we (ird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 \
                    250 50 0 0 20 0 4 0 98765 1000000 300 18446744073709551615";
        assert_eq!(parse_stat(stat), Some((300, 98765)));
        let zombie = stat.replace(") S ", ") Z ");
        assert_eq!(parse_stat(&zombie), None);
        assert_eq!(
            parse_status_rss_kb("Name:\tx\nVmRSS:\t   2048 kB\n"),
            Some(2048)
        );
        assert_eq!(parse_status_rss_kb("Name:\tx\n"), None);
    }

    #[test]
    fn several_pids_under_one_name_are_sampled_as_one_service() {
        let own = own_pid();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let mut sampler = ProcessSampler::new();
        let service = [
            ("server".to_string(), own),
            ("server".to_string(), child.id()),
        ];
        sampler.sample(&service, 0);
        sampler.sample(&[("alone".to_string(), child.id())], 0);
        let _ = child.kill();
        let _ = child.wait();
        let peaks = sampler.peaks_rss_mb();
        // The proportional sizes of both: more than the sleep's alone, a service of two.
        assert!(peaks["server"] > 0.0 && peaks["alone"] > 0.0, "{peaks:?}");
        assert!(peaks["server"] > peaks["alone"], "{peaks:?}");
    }

    #[test]
    fn auxv_lookup_finds_the_key_before_the_end() {
        let mut auxv = Vec::new();
        for (key, value) in [(6usize, 4096usize), (17, 100), (0, 0), (17, 5)] {
            auxv.extend_from_slice(&key.to_ne_bytes());
            auxv.extend_from_slice(&value.to_ne_bytes());
        }
        assert_eq!(auxv_value(&auxv, 17), Some(100));
        assert_eq!(auxv_value(&auxv, 3), None);
    }

    #[tokio::test]
    async fn spawned_sampler_follows_the_shared_list_until_stopped() {
        let processes = Arc::new(Mutex::new(vec![("roadtest".to_string(), own_pid())]));
        let (stop_sender, stop) = watch::channel(false);
        let handle = spawn_sampler(Arc::clone(&processes), Instant::now(), stop, None);
        tokio::time::sleep(Duration::from_millis(300)).await;
        processes
            .lock()
            .unwrap()
            .push(("ghost".to_string(), DEAD_PID));
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop_sender.send(true).unwrap();
        let sampler = tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .expect("sampler stops when told")
            .expect("sampler task does not panic");
        let timelines = sampler.timelines();
        assert!(timelines["roadtest"].len() >= 3, "{timelines:?}");
        assert!(!timelines["ghost"].is_empty());
        assert!(sampler.peaks_rss_mb()["roadtest"] > 0.0);
        assert!(!sampler.peaks_rss_mb().contains_key("ghost"));
    }
}
