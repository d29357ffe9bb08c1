//! Docker-side helpers of the containers target: log files and ready lines after a restart, memory and CPU from the stats API, orphan removal.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use testcontainers::bollard::Docker;
use testcontainers::bollard::container::LogOutput;
use testcontainers::bollard::models::{ContainerCpuStats, ContainerMemoryStats};
use testcontainers::bollard::query_parameters::{
    ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StatsOptionsBuilder,
};
use testcontainers::core::logs::LogFrame;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::spec::{LABEL_OWNER_HOST, LABEL_OWNER_PID, LogStream, ReadyLine};

/// Bound on one stats request.
const STATS_TIMEOUT: Duration = Duration::from_secs(2);

/// Appends a container's output to its log file (testcontainers' log consumer for a first start).
pub fn file_log_consumer(
    path: &Path,
) -> std::io::Result<impl Fn(&LogFrame) + Send + Sync + 'static> {
    let file = Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?,
    );
    Ok(move |frame: &LogFrame| {
        let bytes = match frame {
            LogFrame::StdOut(bytes) | LogFrame::StdErr(bytes) => bytes,
        };
        let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = file.write_all(bytes);
    })
}

/// Follows a (re)started container's output from `since`: appends it to the log file and
/// raises a flag when the ready line (if any) appears. Stops when the container stops or on drop.
#[derive(Debug)]
pub struct LogFollower {
    task: JoinHandle<()>,
    ready: watch::Receiver<bool>,
}

impl LogFollower {
    pub fn spawn(
        docker: Docker,
        container_id: String,
        since_unix_s: i64,
        log: PathBuf,
        ready_line: Option<ReadyLine>,
    ) -> LogFollower {
        let (ready_sender, ready) = watch::channel(false);
        let task = tokio::spawn(async move {
            let options = LogsOptionsBuilder::new()
                .follow(true)
                .stdout(true)
                .stderr(true)
                .since(i32::try_from(since_unix_s).unwrap_or(i32::MAX))
                .build();
            let mut stream = docker.logs(&container_id, Some(options));
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .ok();
            let mut matcher = ready_line.map(|line| (line.stream, LineMatcher::new(line.text)));
            while let Some(Ok(output)) = stream.next().await {
                let (stream_of, message) = match output {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        (LogStream::Stdout, message)
                    }
                    LogOutput::StdErr { message } => (LogStream::Stderr, message),
                    LogOutput::StdIn { .. } => continue,
                };
                if let Some(file) = file.as_mut() {
                    let _ = file.write_all(&message);
                }
                if let Some((stream, matcher)) = matcher.as_mut()
                    && stream_of == *stream
                    && matcher.feed(&message)
                {
                    let _ = ready_sender.send(true);
                }
            }
        });
        LogFollower { task, ready }
    }

    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Resolves when the ready line was seen (or the follower ended).
    pub async fn ready(&mut self) {
        let _ = self.ready.wait_for(|ready| *ready).await;
    }
}

impl Drop for LogFollower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Finds a needle in a stream of chunks, also when a chunk boundary splits it.
#[derive(Debug)]
pub struct LineMatcher {
    needle: Vec<u8>,
    carry: Vec<u8>,
}

impl LineMatcher {
    pub fn new(needle: &str) -> LineMatcher {
        LineMatcher {
            needle: needle.as_bytes().to_vec(),
            carry: Vec::new(),
        }
    }

    /// Whether the needle ends in this chunk (or started in an earlier one).
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        self.carry.extend_from_slice(chunk);
        let found = !self.needle.is_empty()
            && self
                .carry
                .windows(self.needle.len())
                .any(|window| window == self.needle.as_slice());
        let keep = self.needle.len().saturating_sub(1);
        if self.carry.len() > keep {
            self.carry.drain(..self.carry.len() - keep);
        }
        found
    }
}

/// Memory and CPU of one container at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerUsage {
    /// The role name (`broker`, `cassandra`), the same key the local target's processes use.
    pub name: String,
    /// Memory in use minus reclaimable page cache (what `docker stats` shows), MB; `None` when
    /// the container is not running.
    pub rss_mb: Option<f64>,
    /// CPU since the previous sample, % of one core (200 = two cores busy); `None` on the first
    /// sample after a (re)start.
    pub cpu_percent: Option<f64>,
}

/// CPU counters of one stats sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuSample {
    /// CPU time the container used, ns.
    pub container_ns: u64,
    /// CPU time of the whole host, ns (all cores), when the daemon reports it.
    pub system_ns: Option<u64>,
    pub online_cpus: Option<u32>,
    pub at: Instant,
}

impl CpuSample {
    pub fn of(stats: &ContainerCpuStats, at: Instant) -> Option<CpuSample> {
        let container_ns = stats.cpu_usage.as_ref()?.total_usage?;
        Some(CpuSample {
            container_ns,
            system_ns: stats.system_cpu_usage,
            online_cpus: stats.online_cpus,
            at,
        })
    }
}

/// `docker stats`' CPU formula (container delta / host delta x cores x 100), or container delta
/// over wall time when the host counters are missing; `None` when the container restarted.
pub fn cpu_percent(previous: &CpuSample, current: &CpuSample) -> Option<f64> {
    let container = current.container_ns.checked_sub(previous.container_ns)? as f64;
    match (previous.system_ns, current.system_ns, current.online_cpus) {
        (Some(before), Some(now), Some(cpus)) if now > before && cpus > 0 => {
            Some(container / (now - before) as f64 * f64::from(cpus) * 100.0)
        }
        _ => {
            let wall_ns = current.at.checked_duration_since(previous.at)?.as_nanos() as f64;
            (wall_ns > 0.0).then(|| container / wall_ns * 100.0)
        }
    }
}

/// Memory in use minus inactive page cache (cgroup v2 `inactive_file`, v1 `total_inactive_file`),
/// MB; `None` when the daemon reports no usage (a stopped container).
pub fn memory_mb(stats: &ContainerMemoryStats) -> Option<f64> {
    let usage = stats.usage?;
    let cache = stats.stats.as_ref().and_then(|values| {
        values
            .get("inactive_file")
            .or_else(|| values.get("total_inactive_file"))
            .copied()
    });
    Some(usage.saturating_sub(cache.unwrap_or(0)) as f64 / (1024.0 * 1024.0))
}

/// Samples the containers' memory and CPU with one-shot stats requests. Cheap to clone; owns no
/// container, so a sampler task can hold it while the run drives the target.
#[derive(Debug, Clone)]
pub struct UsageProbe {
    docker: Docker,
    /// (name, container id).
    containers: Vec<(String, String)>,
    previous: Arc<Mutex<BTreeMap<String, CpuSample>>>,
}

impl UsageProbe {
    pub fn new(docker: Docker, containers: Vec<(String, String)>) -> UsageProbe {
        UsageProbe {
            docker,
            containers,
            previous: Arc::default(),
        }
    }

    /// One sample of every container (in name order); a container that cannot be read is
    /// reported with no values, never an error.
    pub async fn sample(&self) -> Vec<ContainerUsage> {
        let requests = self.containers.iter().map(|(name, id)| async move {
            let options = StatsOptionsBuilder::new()
                .stream(false)
                .one_shot(true)
                .build();
            let mut stream = self.docker.stats(id, Some(options));
            let stats = tokio::time::timeout(STATS_TIMEOUT, stream.next())
                .await
                .ok()
                .flatten()
                .and_then(Result::ok);
            (name.clone(), stats, Instant::now())
        });
        let results = futures_util::future::join_all(requests).await;
        let mut previous = self.previous.lock().unwrap_or_else(PoisonError::into_inner);
        let mut usages: Vec<ContainerUsage> = results
            .into_iter()
            .map(|(name, stats, at)| {
                let rss_mb = stats
                    .as_ref()
                    .and_then(|s| s.memory_stats.as_ref())
                    .and_then(memory_mb);
                let current = stats
                    .as_ref()
                    .and_then(|s| s.cpu_stats.as_ref())
                    .and_then(|cpu| CpuSample::of(cpu, at))
                    .filter(|_| rss_mb.is_some());
                let cpu_percent = match (previous.get(&name), current) {
                    (Some(before), Some(now)) => cpu_percent(before, &now),
                    _ => None,
                };
                match current {
                    Some(now) => previous.insert(name.clone(), now),
                    None => previous.remove(&name),
                };
                ContainerUsage {
                    name,
                    rss_mb,
                    cpu_percent,
                }
            })
            .collect();
        usages.sort_by(|a, b| a.name.cmp(&b.name));
        usages
    }
}

/// This host's name, to tell our containers from those of roadtest runs on other hosts that
/// share the daemon.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Seconds since the Unix epoch (for `docker logs --since`).
pub fn unix_now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

/// Whether a container's labels say it belongs to a roadtest on `this_host` that is gone (a
/// roadtest killed with SIGKILL cannot remove its containers).
pub fn is_orphan(
    labels: &HashMap<String, String>,
    this_host: &str,
    alive: impl Fn(u32) -> bool,
) -> bool {
    let owner_pid = labels
        .get(LABEL_OWNER_PID)
        .and_then(|pid| pid.parse::<u32>().ok());
    match (owner_pid, labels.get(LABEL_OWNER_HOST)) {
        (Some(pid), Some(host)) => host == this_host && !alive(pid),
        _ => false,
    }
}

/// Bound on one Docker API call that answers at once (inspect, list, kill, pause, start, remove).
pub const DOCKER_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// `call` bounded by `limit`: a daemon that never answers is an error, not a hang.
pub async fn bounded<T>(
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, testcontainers::bollard::errors::Error>>,
) -> Result<T, testcontainers::bollard::errors::Error> {
    tokio::time::timeout(limit, call).await.unwrap_or(Err(
        testcontainers::bollard::errors::Error::RequestTimeoutError,
    ))
}

/// Removes (forcefully) the containers of earlier roadtest processes of this host that are gone;
/// returns their names. Best effort: errors are ignored.
pub async fn remove_orphans(docker: &Docker) -> Vec<String> {
    // Without /proc (a macOS host) no owner can be seen alive: remove nothing.
    if !Path::new("/proc/self").exists() {
        return Vec::new();
    }
    let this_host = host_name();
    let filters = HashMap::from([("label", vec![LABEL_OWNER_PID])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let listed = bounded(DOCKER_CALL_TIMEOUT, docker.list_containers(Some(options))).await;
    let Ok(containers) = listed else {
        return Vec::new();
    };
    let alive = |pid: u32| Path::new(&format!("/proc/{pid}")).exists();
    let mut removed = Vec::new();
    for container in containers {
        let (Some(id), Some(labels)) = (container.id, container.labels) else {
            continue;
        };
        if !is_orphan(&labels, &this_host, alive) {
            continue;
        }
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        let removal = docker.remove_container(&id, Some(options));
        if bounded(DOCKER_CALL_TIMEOUT, removal).await.is_ok() {
            let name = container
                .names
                .and_then(|names| names.into_iter().next())
                .unwrap_or(id);
            removed.push(name.trim_start_matches('/').to_string());
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    use testcontainers::bollard::models::{
        ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats,
    };

    use super::*;

    // ----- stats and logs ------------------------------------------------------------------------

    fn cpu(container_ns: u64, system_ns: Option<u64>, at: Instant) -> CpuSample {
        CpuSample::of(
            &ContainerCpuStats {
                cpu_usage: Some(ContainerCpuUsage {
                    total_usage: Some(container_ns),
                    ..ContainerCpuUsage::default()
                }),
                system_cpu_usage: system_ns,
                online_cpus: Some(2),
                ..ContainerCpuStats::default()
            },
            at,
        )
        .expect("has a total")
    }

    #[test]
    fn cpu_is_percent_of_one_core_like_docker_stats() {
        let start = Instant::now();
        let before = cpu(1_000_000_000, Some(100_000_000_000), start);
        // 0.5 s of container CPU while the 2-core host did 2 s: half a core.
        let after = cpu(
            1_500_000_000,
            Some(102_000_000_000),
            start + Duration::from_secs(1),
        );
        assert_eq!(cpu_percent(&before, &after), Some(50.0));
        // A restart resets the counter: no value rather than a wrong one.
        let restarted = cpu(
            10_000_000,
            Some(103_000_000_000),
            start + Duration::from_secs(2),
        );
        assert_eq!(cpu_percent(&after, &restarted), None);
        // Without host counters: container time over wall time.
        let before = cpu(0, None, start);
        let after = cpu(250_000_000, None, start + Duration::from_millis(500));
        let percent = cpu_percent(&before, &after).expect("wall-clock fallback");
        assert!((percent - 50.0).abs() < 1e-9, "{percent}");
        assert!(CpuSample::of(&ContainerCpuStats::default(), start).is_none());
    }

    #[test]
    fn memory_leaves_out_reclaimable_page_cache() {
        let stats = |usage: Option<u64>, key: &str, cache: u64| ContainerMemoryStats {
            usage,
            stats: Some(HashMap::from([(key.to_string(), cache)])),
            ..ContainerMemoryStats::default()
        };
        let mb = 1024 * 1024;
        assert_eq!(
            memory_mb(&stats(Some(300 * mb), "inactive_file", 44 * mb)),
            Some(256.0)
        );
        assert_eq!(
            memory_mb(&stats(Some(300 * mb), "total_inactive_file", 100 * mb)),
            Some(200.0)
        );
        assert_eq!(
            memory_mb(&stats(Some(300 * mb), "active_anon", 100 * mb)),
            Some(300.0)
        );
        assert_eq!(
            memory_mb(&stats(None, "inactive_file", 0)),
            None,
            "stopped: absent"
        );
    }

    #[test]
    fn ready_lines_are_found_across_chunk_boundaries() {
        let mut matcher = LineMatcher::new("Kafka Server started");
        assert!(!matcher.feed(b"[2026-11-29] INFO Kafka Ser"));
        assert!(matcher.feed(b"ver started (kafka.server.KafkaRaftServer)\n"));
        let mut matcher = LineMatcher::new("init - serving");
        assert!(!matcher.feed(b"init - starting\n"));
        assert!(!matcher.feed(b"something else entirely\n"));
        assert!(matcher.feed(b"INFO  init - serving\n"));
    }

    #[test]
    fn orphans_are_containers_of_dead_roadtests_on_this_host() {
        let labels = |pid: &str, host: &str| {
            HashMap::from([
                (LABEL_OWNER_PID.to_string(), pid.to_string()),
                (LABEL_OWNER_HOST.to_string(), host.to_string()),
            ])
        };
        let alive = |pid: u32| pid == 100;
        assert!(is_orphan(&labels("200", "here"), "here", alive));
        assert!(
            !is_orphan(&labels("100", "here"), "here", alive),
            "its roadtest runs"
        );
        assert!(
            !is_orphan(&labels("200", "there"), "here", alive),
            "another host's"
        );
        assert!(!is_orphan(&HashMap::new(), "here", alive), "not ours");
        assert!(!is_orphan(&labels("x", "here"), "here", alive));
    }
}
