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
#[derive(Debug, Clone)]
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
}

/// A running (or stopped) service process.
#[derive(Debug)]
pub struct ServiceProcess {
    spec: ProcessSpec,
    child: Option<Child>,
    starts: u32,
}

impl ServiceProcess {
    /// Spawns the process described by `spec`.
    pub fn spawn(spec: ProcessSpec) -> std::io::Result<ServiceProcess> {
        let mut process = ServiceProcess {
            spec,
            child: None,
            starts: 0,
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
        die_with_parent(&mut command);
        self.child = Some(command.spawn()?);
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

    /// Reaps the process if it has exited; returns its status then.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(status)
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.exited().is_none()
    }

    /// Sends a signal; an exited process is not an error.
    pub fn signal(&self, signal: Signal) -> nix::Result<()> {
        match self.pid() {
            Some(pid) => match kill(Pid::from_raw(pid as i32), signal) {
                Err(nix::errno::Errno::ESRCH) => Ok(()),
                other => other,
            },
            None => Ok(()),
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGCONT first so a paused process can die promptly and be reaped.
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; returns the exit status if it stopped by itself.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        let _ = self.signal(Signal::SIGCONT);
        let _ = self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            self.child.as_ref()?;
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        None
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
