//! The consumer under test: how it is launched (the reference consumer, `roadtest ingest`; a program of the user's own; an image of the user's own, which the containers target runs), and, as a child process on this host, the process itself for the targets whose services run elsewhere (containers, external).

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::process::{ProcessSpec, ServiceProcess};
use super::{Role, TargetError};

/// How the consumer under test starts.
#[derive(Debug, Clone)]
pub enum ConsumerLaunch {
    /// `roadtest ingest ARGS...`, in the target's `consumer/` folder; the target adds its flags.
    Reference {
        args: Vec<OsString>,
        env: Vec<(OsString, OsString)>,
    },
    /// A program of the user's own with roadtest's contract in its environment.
    Own(OwnConsumer),
    /// A Docker image of the user's own, run as a container (the containers target only).
    Image(ImageConsumer),
}

/// A consumer of the user's own as a Docker image: what runs, with which environment.
#[derive(Debug, Clone)]
pub struct ImageConsumer {
    /// `NAME:TAG`, checked by the scenario.
    pub image: String,
    /// roadtest's `ROADTEST_*` variables and the scenario's `env`: the container's environment.
    pub env: Vec<(OsString, OsString)>,
}

/// A consumer of the user's own: what runs, where, and with which environment.
#[derive(Debug, Clone)]
pub struct OwnConsumer {
    /// The program, resolved (PATH or the scenario's folder).
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Its working folder (the scenario's).
    pub dir: PathBuf,
    /// roadtest's `ROADTEST_*` variables and the scenario's `env`, added to roadtest's own.
    pub env: Vec<(OsString, OsString)>,
}

impl ConsumerLaunch {
    /// The reference consumer with these `roadtest ingest` flags.
    pub fn reference(args: Vec<OsString>) -> ConsumerLaunch {
        ConsumerLaunch::Reference {
            args,
            env: Vec::new(),
        }
    }

    /// Adds what the target knows of reaching its clusters: `flags` for the reference
    /// consumer, `env` for both (the reference consumer reads its passwords from it; a
    /// consumer of the user's own reads everything from it).
    pub fn with_target_settings(
        mut self,
        flags: Vec<OsString>,
        contract_env: Vec<(OsString, OsString)>,
        reference_env: Vec<(OsString, OsString)>,
    ) -> ConsumerLaunch {
        match &mut self {
            ConsumerLaunch::Reference { args, env } => {
                args.extend(flags);
                env.extend(reference_env);
            }
            ConsumerLaunch::Own(own) => own.env.extend(contract_env),
            ConsumerLaunch::Image(image) => image.env.extend(contract_env),
        }
        self
    }

    /// The process to spawn: the program named `consumer`, its log `target_dir/consumer.log`;
    /// an image is not a process of this host (the containers target runs it).
    pub fn spec(
        self,
        roadtest_binary: &Path,
        target_dir: &Path,
    ) -> Result<ProcessSpec, TargetError> {
        let name = Role::Consumer.name().to_string();
        let log = target_dir.join("consumer.log");
        Ok(match self {
            ConsumerLaunch::Reference { args, env } => ProcessSpec {
                name,
                program: roadtest_binary.to_path_buf(),
                args: std::iter::once(OsString::from("ingest"))
                    .chain(args)
                    .collect(),
                dir: target_dir.join("consumer"),
                log,
                env,
                ..ProcessSpec::default()
            },
            ConsumerLaunch::Own(own) => ProcessSpec {
                name,
                program: own.program,
                args: own.args,
                dir: own.dir,
                log,
                env: own.env,
                ..ProcessSpec::default()
            },
            ConsumerLaunch::Image(ImageConsumer { image, .. }) => {
                return Err(TargetError::ConsumerImage { image });
            }
        })
    }
}

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

    /// Starts the consumer (killing a previous one) with roadtest's environment plus the
    /// launch's (how passwords are handed over: never as arguments).
    pub fn start(&mut self, launch: ConsumerLaunch) -> Result<(), TargetError> {
        let spec = launch.spec(&self.roadtest_binary, &self.dir)?;
        if let Some(mut old) = self.process.take() {
            old.kill();
        }
        let program = spec.program.clone();
        let process = ServiceProcess::spawn(spec)
            .map_err(|source| TargetError::spawn(Role::Consumer, program, source))?;
        self.process = Some(process);
        Ok(())
    }

    /// Its exit status if it ended by itself (kept until it is started again).
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
