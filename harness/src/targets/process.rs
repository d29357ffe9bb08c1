//! A child process roadtest owns: spawned with its output in a log file, signalled, restarted, always reaped.
//!
//! Every child gets `PR_SET_PDEATHSIG = SIGKILL`, so it dies with roadtest even when roadtest is
//! itself killed with SIGKILL; `Drop` kills and reaps it on every other way out (return, error, panic).

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{Role, TargetError};

/// How to start one service process.
#[derive(Debug, Clone, Default)]
pub struct ProcessSpec {
    /// Name used in messages and logs (`broker`, `cassandra`, ...).
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Working directory (created if missing).
    pub dir: PathBuf,
    /// Where stdout and stderr go (appended across restarts).
    pub log: PathBuf,
    pub env: Vec<(OsString, OsString)>,
    /// Run as this (uid, gid) instead of roadtest's own (PostgreSQL refuses to run as root).
    pub user: Option<(u32, u32)>,
    /// SIGKILL, SIGSTOP and SIGCONT go to the process and every descendant: a server that forks
    /// workers, each in a session of its own (PostgreSQL), is killed, paused and resumed whole.
    pub whole_tree: bool,
    /// What [`ServiceProcess::terminate`] sends (None: SIGTERM).
    pub stop_signal: Option<Signal>,
}

/// A running (or stopped) service process.
#[derive(Debug)]
pub struct ServiceProcess {
    spec: ProcessSpec,
    child: Option<Child>,
    starts: u32,
    /// How the process ended by itself, kept until it is started again: whoever looks first
    /// (the sampler, the watch) reaps it, and every later look still sees the status.
    ended: Option<ExitStatus>,
}

impl ServiceProcess {
    /// Spawns the process described by `spec`.
    pub fn spawn(spec: ProcessSpec) -> std::io::Result<ServiceProcess> {
        let mut process = ServiceProcess {
            spec,
            child: None,
            starts: 0,
            ended: None,
        };
        process.start()?;
        Ok(process)
    }

    /// Starts the process again if it is not running (after a kill or stop).
    pub fn start(&mut self) -> std::io::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.spec.dir)?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.spec.log)?;
        let mut command = Command::new(&self.spec.program);
        command
            .args(&self.spec.args)
            .current_dir(&self.spec.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)));
        {
            use std::os::unix::process::CommandExt;
            if let Some((uid, gid)) = self.spec.user {
                command.uid(uid).gid(gid);
            }
        }
        // After the change of user (which clears a parent-death signal), so it holds.
        die_with_parent(&mut command);
        self.child = Some(command.spawn()?);
        self.ended = None;
        self.starts += 1;
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn program(&self) -> &Path {
        &self.spec.program
    }

    pub fn log_path(&self) -> &Path {
        &self.spec.log
    }

    /// How many times the process has been started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// The pid while the process runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The status of the process if it ended by itself since it was last started (reaping it
    /// the first time). A kill or stop of roadtest's own leaves no status.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            self.child = None;
            self.ended = Some(status);
        }
        self.ended
    }

    pub fn is_running(&mut self) -> bool {
        self.exited();
        self.child.is_some()
    }

    /// Sends a signal; an exited process is not an error.
    pub fn signal(&self, signal: Signal) -> nix::Result<()> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        for target in self.targets(pid, signal) {
            match kill(target, signal) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGCONT after SIGKILL, so a paused process dies promptly and is reaped.
            for signal in [Signal::SIGKILL, Signal::SIGCONT] {
                for target in self.targets(child.id(), signal) {
                    let _ = kill(target, signal);
                }
            }
            let _ = child.wait();
        }
    }

    /// The stop signal (SIGTERM unless the spec names another), wait up to `grace`, then SIGKILL;
    /// returns the exit status if it stopped by itself (or had ended by itself before).
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.ended.take() {
            return Some(status);
        }
        let _ = self.signal(Signal::SIGCONT);
        let _ = self.signal(self.spec.stop_signal.unwrap_or(Signal::SIGTERM));
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                self.ended = None;
                return Some(status);
            }
            self.child.as_ref()?;
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        None
    }

    /// Where a signal to the process goes: with `whole_tree`, a SIGKILL, SIGSTOP or SIGCONT goes
    /// to every descendant too (for SIGKILL the tree is stopped first, so that nothing in it acts
    /// on the others' deaths: they all die at the same instant, as in a crash).
    fn targets(&self, pid: u32, signal: Signal) -> Vec<Pid> {
        let whole = matches!(signal, Signal::SIGKILL | Signal::SIGSTOP | Signal::SIGCONT);
        if !(self.spec.whole_tree && whole) {
            return vec![Pid::from_raw(pid as i32)];
        }
        let tree: Vec<Pid> = std::iter::once(pid)
            .chain(descendants(pid))
            .map(|pid| Pid::from_raw(pid as i32))
            .collect();
        if signal == Signal::SIGKILL {
            for &process in &tree {
                let _ = kill(process, Signal::SIGSTOP);
            }
        }
        tree
    }

    /// The last `lines` lines of the log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.spec.log, lines)
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `process` (the `role`) accepts TCP connections at `address`, retrying quietly
/// with backoff; fails when it exits, or when `deadline` has passed since `started`.
pub async fn wait_accepting(
    process: &mut ServiceProcess,
    role: Role,
    address: SocketAddr,
    started: Instant,
    deadline: Duration,
) -> Result<(), TargetError> {
    let mut backoff = Duration::from_millis(20);
    loop {
        if let Some(status) = process.exited() {
            return Err(TargetError::Exited {
                role,
                status: status.to_string(),
                log: process.log_path().to_path_buf(),
                tail: process.log_tail(20),
            });
        }
        let attempt = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(address),
        )
        .await;
        if let Ok(Ok(_)) = attempt {
            return Ok(());
        }
        if started.elapsed() >= deadline {
            return Err(TargetError::NotReady {
                role,
                address,
                waited: started.elapsed(),
                log: process.log_path().to_path_buf(),
                tail: process.log_tail(20),
            });
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 3 / 2).min(Duration::from_millis(500));
    }
}

/// The last `lines` lines of a file (reads at most its last 64 KiB).
/// Every descendant of `pid` (children, their children, ...), from the parent pids in /proc.
pub fn descendants(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = entries
        .filter_map(|entry| {
            let child = entry.ok()?.file_name().to_str()?.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            // Field 4 (ppid), counted from the last ')' since the name may hold anything.
            let ppid = stat[stat.rfind(')')? + 1..].split_whitespace().nth(1)?;
            Some((child, ppid.parse().ok()?))
        })
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(child, _) in parents.iter().filter(|(_, ppid)| *ppid == parent) {
            found.push(child);
            frontier.push(child);
        }
    }
    found
}

pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let length = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(length.saturating_sub(64 * 1024)));
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Makes the child receive SIGKILL when the thread that spawned it ends (Linux `PR_SET_PDEATHSIG`).
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only makes two
    // async-signal-safe system calls (prctl, getppid); it allocates nothing and takes no locks.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            // The parent may have died between fork and prctl: then nobody would kill us.
            if nix::unistd::getppid().as_raw() as u32 != parent {
                return Err(std::io::Error::other(
                    "roadtest exited while starting a service",
                ));
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sh` with two `sleep`s, each in a session of its own (as PostgreSQL's backends are).
    fn tree(whole_tree: bool) -> (ServiceProcess, Vec<u32>) {
        let dir = std::env::temp_dir().join(format!("roadtest-tree-{}", std::process::id()));
        let spec = ProcessSpec {
            name: "tree".into(),
            program: PathBuf::from("sh"),
            args: vec![
                "-c".into(),
                "setsid sleep 30 & setsid sleep 30 & wait".into(),
            ],
            log: dir.join(format!("tree-{whole_tree}.log")),
            dir,
            whole_tree,
            ..ProcessSpec::default()
        };
        let process = ServiceProcess::spawn(spec).expect("sh starts");
        let pid = process.pid().expect("a pid");
        for _ in 0..200 {
            let found = descendants(pid);
            if found.len() >= 2 {
                return (process, found);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the sleeps of {pid} never appeared");
    }

    fn alive(pid: u32) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().next());
        !matches!(state, None | Some("Z") | Some("X"))
    }

    fn gone_soon(pid: u32) -> bool {
        (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            !alive(pid)
        })
    }

    #[test]
    fn an_exit_stays_seen_whoever_reaps_it_first() {
        let dir = std::env::temp_dir().join(format!("roadtest-exit-{}", std::process::id()));
        let spec = ProcessSpec {
            name: "exits".into(),
            program: PathBuf::from("sh"),
            args: vec!["-c".into(), "exit 3".into()],
            log: dir.join("exits.log"),
            dir: dir.clone(),
            ..ProcessSpec::default()
        };
        let mut process = ServiceProcess::spawn(spec).expect("sh starts");
        // The sampler's look reaps it; the watch's later look must still see how it ended.
        assert!((0..500).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            !process.is_running()
        }));
        for _ in 0..2 {
            assert_eq!(process.exited().and_then(|status| status.code()), Some(3));
        }
        // Stopping a process that already ended gives its status, and leaves none behind.
        assert_eq!(
            process
                .terminate(Duration::from_secs(1))
                .and_then(|s| s.code()),
            Some(3)
        );
        assert_eq!(process.exited(), None);
        // A restart starts afresh.
        process.start().expect("sh starts again");
        assert_eq!(process.starts(), 2);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_whole_tree_dies_with_its_root_and_a_plain_process_alone() {
        let (mut whole, descendants_of_whole) = tree(true);
        whole.kill();
        for pid in descendants_of_whole {
            assert!(
                gone_soon(pid),
                "descendant {pid} survived the kill of its tree"
            );
        }
        let (mut plain, descendants_of_plain) = tree(false);
        plain.kill();
        for &pid in &descendants_of_plain {
            assert!(alive(pid), "descendant {pid} died with a plain process");
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        let dir = std::env::temp_dir().join(format!("roadtest-tree-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(dir);
    }
}
