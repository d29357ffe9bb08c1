//! The reference consumer as a child process on this host (`roadtest ingest`), for the targets whose services run elsewhere (containers, external).

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::process::{ProcessSpec, ServiceProcess};
use super::{Role, TargetError};

/// The consumer process of a run: started, signalled, restarted; terminated when dropped.
#[derive(Debug)]
pub struct HostConsumer {
    roadtest_binary: PathBuf,
    dir: PathBuf,
    process: Option<ServiceProcess>,
}

impl HostConsumer {
    /// A consumer that will run `roadtest_binary ingest ...` with its files in `dir`
    /// (`dir/consumer/`, log `dir/consumer.log`).
    pub fn new(roadtest_binary: PathBuf, dir: &Path) -> HostConsumer {
        HostConsumer {
            roadtest_binary,
            dir: dir.to_path_buf(),
            process: None,
        }
    }

    /// Starts `roadtest ingest ARGS...` (killing a previous one) with roadtest's environment
    /// plus `env` (how the external target hands over passwords: never as arguments).
    pub fn start(
        &mut self,
        args: Vec<OsString>,
        env: Vec<(OsString, OsString)>,
    ) -> Result<(), TargetError> {
        let spec = ProcessSpec {
            name: Role::Consumer.name().to_string(),
            program: self.roadtest_binary.clone(),
            args: std::iter::once(OsString::from("ingest"))
                .chain(args)
                .collect(),
            dir: self.dir.join("consumer"),
            log: self.dir.join("consumer.log"),
            env,
        };
        if let Some(mut old) = self.process.take() {
            old.kill();
        }
        let program = spec.program.clone();
        let process = ServiceProcess::spawn(spec)
            .map_err(|source| TargetError::spawn(Role::Consumer, program, source))?;
        self.process = Some(process);
        Ok(())
    }

    /// Its exit status if it has exited (reaping it).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.process.as_mut()?.exited()
    }

    /// `("consumer", pid)` while it runs, for /proc sampling.
    pub fn processes(&mut self) -> Vec<(String, u32)> {
        let Some(process) = self.process.as_mut() else {
            return Vec::new();
        };
        let pid = process.pid().filter(|_| process.is_running());
        pid.map(|pid| vec![(Role::Consumer.name().to_string(), pid)])
            .unwrap_or_default()
    }

    pub fn kill(&mut self) -> Result<(), TargetError> {
        self.process()?.kill();
        Ok(())
    }

    /// SIGTERM, then SIGKILL after `grace`; whether it exited by itself cleanly.
    pub fn stop(&mut self, grace: Duration) -> Result<bool, TargetError> {
        let status = self.process()?.terminate(grace);
        Ok(status.is_some_and(|s| s.success() || s.code() == Some(143) || s.signal() == Some(15)))
    }

    /// SIGSTOP (`resume`: SIGCONT).
    pub fn pause(&mut self) -> Result<(), TargetError> {
        self.signal(Signal::SIGSTOP)
    }

    pub fn resume(&mut self) -> Result<(), TargetError> {
        self.signal(Signal::SIGCONT)
    }

    /// Starts it again with the same arguments.
    pub fn restart(&mut self) -> Result<(), TargetError> {
        let process = self.process()?;
        let program = process.program().to_path_buf();
        process
            .start()
            .map_err(|source| TargetError::spawn(Role::Consumer, program, source))
    }

    /// SIGTERM and up to `grace` to exit (then SIGKILL); nothing if it never started.
    pub fn terminate(&mut self, grace: Duration) {
        if let Some(process) = self.process.as_mut() {
            process.terminate(grace);
        }
    }

    fn process(&mut self) -> Result<&mut ServiceProcess, TargetError> {
        self.process.as_mut().ok_or(TargetError::NotRunning {
            role: Role::Consumer,
        })
    }

    fn signal(&mut self, signal: Signal) -> Result<(), TargetError> {
        self.process()?
            .signal(signal)
            .map_err(|source| TargetError::Signal {
                role: Role::Consumer,
                source,
            })
    }
}

impl Drop for HostConsumer {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(10));
    }
}
