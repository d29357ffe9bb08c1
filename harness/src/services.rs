//! `roadtest services install | up | down | status`: the real local services (Tansu, Cassandra
//! 2.1 and the CQL bridge) from the binary alone, for the local target and the test suites.
//!
//! The work is done by `harness/services/services.sh` and its Cassandra launcher
//! `harness/services/cassandra-node`, built into this binary: both are written to
//! `$ROADTEST_HOME/lib/services/` and the script runs with bash, with `ROADTEST_EXE` set to this
//! binary (the bridge it starts is `roadtest cql-bridge`). `ci/services` is a call of this.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::targets::local::roadtest_home;

/// The script, as built into this binary.
const SERVICES_SCRIPT: &str = include_str!("../services/services.sh");
/// The Cassandra launcher the script installs under `$ROADTEST_HOME/bin`.
const CASSANDRA_NODE: &str = include_str!("../services/cassandra-node");

/// What `roadtest services` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServicesAction {
    /// Install Tansu and Cassandra under $ROADTEST_HOME (idempotent; needs java 11+, python3 with
    /// venv, npm).
    Install,
    /// Install if needed, start the services on their fixed ports and wait until each is ready;
    /// writes $ROADTEST_HOME/services/services.env.
    Up,
    /// Stop exactly the processes `up` started.
    Down,
    /// One line per service; exit 0 if all are up, 3 otherwise.
    Status,
}

impl ServicesAction {
    fn name(self) -> &'static str {
        match self {
            ServicesAction::Install => "install",
            ServicesAction::Up => "up",
            ServicesAction::Down => "down",
            ServicesAction::Status => "status",
        }
    }
}

/// Why `roadtest services` could not run its script.
#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    #[error("cannot write {path}: {source} (is ROADTEST_HOME writable?)")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot run bash ({source}); roadtest services needs bash, java 11+, python3 and npm")]
    Bash { source: std::io::Error },
}

/// Runs `action`; returns the script's exit code (1 when a signal ended it).
pub fn run(action: ServicesAction) -> Result<u8, ServicesError> {
    let dir = roadtest_home().join("lib/services");
    let script = write_executable(&dir, "services", SERVICES_SCRIPT)?;
    write_executable(&dir, "cassandra-node", CASSANDRA_NODE)?;
    let mut command = Command::new("bash");
    command.arg(&script).arg(action.name());
    if let Ok(exe) = std::env::current_exe() {
        command.env("ROADTEST_EXE", exe);
    }
    let status = command
        .status()
        .map_err(|source| ServicesError::Bash { source })?;
    Ok(status
        .code()
        .map_or(1, |code| u8::try_from(code).unwrap_or(1)))
}

/// Writes `text` to `dir/name` with mode 0755, unless it is there already; through a temporary
/// file and a rename, so another roadtest running the script never sees half a file.
fn write_executable(dir: &Path, name: &str, text: &str) -> Result<PathBuf, ServicesError> {
    let path = dir.join(name);
    if std::fs::read_to_string(&path).is_ok_and(|current| current == text) {
        return Ok(path);
    }
    let error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ServicesError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(error(dir))?;
    let temporary = dir.join(format!(".{name}.{}", std::process::id()));
    std::fs::write(&temporary, text).map_err(error(&temporary))?;
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o755))
        .map_err(error(&temporary))?;
    std::fs::rename(&temporary, &path).map_err(error(&path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_written_executable_once_and_replaced_when_they_differ() {
        let dir = std::env::temp_dir().join(format!("roadtest-services-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = write_executable(&dir, "services", "echo one\n").expect("written");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "echo one\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        write_executable(&dir, "services", "echo two\n").expect("replaced");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "echo two\n");
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_built_in_script_knows_every_action_and_the_bridge_subcommand() {
        for action in [
            "install) cmd_install",
            "up) cmd_up",
            "down) cmd_down",
            "status) cmd_status",
        ] {
            assert!(SERVICES_SCRIPT.contains(action), "{action}");
        }
        assert!(SERVICES_SCRIPT.contains(r#"BRIDGE_CMD=("$ROADTEST_EXE" cql-bridge)"#));
        assert!(CASSANDRA_NODE.starts_with("#!/usr/bin/env bash"));
    }
}
