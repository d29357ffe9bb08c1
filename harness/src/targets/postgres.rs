//! PostgreSQL on the local target: finding the installed server, a fresh cluster in the run
//! directory (initdb), and how it is started: its own port, fsync on, `track_commit_timestamp`
//! on (the commit time of a row's transaction is its write time), `synchronous_commit` as the
//! scenario says ([`server_settings`], which the containers target gives its PostgreSQL image
//! too). As root it runs as the `postgres` user (PostgreSQL refuses root).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

use super::process::ProcessSpec;
use super::{Role, TargetError};

/// The Debian packages' layout: `/usr/lib/postgresql/<major>/bin`.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// The superuser initdb creates; the run's clients log in as it (trust on 127.0.0.1 only).
pub const USER: &str = "roadtest";

/// An installed PostgreSQL server, and who runs it.
#[derive(Debug, Clone)]
pub struct PostgresInstall {
    /// The folder with `initdb` and `postgres`.
    pub bin: PathBuf,
    /// (uid, gid) to run it as; None: roadtest's own.
    pub user: Option<(u32, u32)>,
    /// What `postgres --version` says.
    pub version: String,
}

impl PostgresInstall {
    /// `ROADTEST_POSTGRES_BIN`, else the newest `/usr/lib/postgresql/<major>/bin`, else `pg_config
    /// --bindir`; an error saying how to install it when none has `postgres` and `initdb`.
    pub fn find() -> Result<PostgresInstall, TargetError> {
        let bin = std::env::var_os("ROADTEST_POSTGRES_BIN")
            .map(PathBuf::from)
            .or_else(newest_debian_bin)
            .or_else(pg_config_bindir)
            .filter(|bin| bin.join("postgres").is_file() && bin.join("initdb").is_file())
            .ok_or(TargetError::NoPostgres)?;
        let version = std::process::Command::new(bin.join("postgres"))
            .arg("--version")
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .unwrap_or_default();
        Ok(PostgresInstall {
            bin,
            user: run_as()?,
            version,
        })
    }

    /// Creates an empty cluster in `data` (owned by the user that runs it).
    pub async fn initdb(&self, data: &Path, log: &Path) -> Result<(), TargetError> {
        let parent = data.parent().unwrap_or(data);
        let work_dir_error = |source| TargetError::WorkDir {
            path: parent.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(parent).map_err(work_dir_error)?;
        if let Some((uid, gid)) = self.user {
            std::os::unix::fs::chown(parent, Some(uid), Some(gid)).map_err(work_dir_error)?;
        }
        let mut command = tokio::process::Command::new(self.bin.join("initdb"));
        command
            .arg("-D")
            .arg(data)
            .args(["-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"])
            .current_dir(parent);
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        let program = self.bin.join("initdb");
        let output = command
            .output()
            .await
            .map_err(|source| TargetError::spawn(Role::Postgres, program, source))?;
        let _ = std::fs::write(log, [&output.stdout[..], &output.stderr[..]].concat());
        if output.status.success() {
            return Ok(());
        }
        Err(TargetError::Exited {
            role: Role::Postgres,
            status: format!("initdb: {}", output.status),
            log: log.to_path_buf(),
            tail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }

    /// How the server is started on `port`, its data in `data` and its socket beside it.
    pub fn spec(
        &self,
        data: &Path,
        port: u16,
        synchronous_commit: bool,
        log: PathBuf,
    ) -> ProcessSpec {
        let dir = data.parent().unwrap_or(data).to_path_buf();
        let setting = |text: String| [OsString::from("-c"), OsString::from(text)];
        let mut args = vec![
            OsString::from("-D"),
            data.as_os_str().to_owned(),
            OsString::from("-p"),
            OsString::from(port.to_string()),
            OsString::from("-k"),
            dir.as_os_str().to_owned(),
        ];
        args.extend(setting(String::from("listen_addresses=127.0.0.1")));
        for text in server_settings(synchronous_commit) {
            args.extend(setting(text));
        }
        ProcessSpec {
            name: Role::Postgres.name().to_string(),
            program: self.bin.join("postgres"),
            args,
            dir,
            log,
            user: self.user,
            // Its backends (each in a session of its own) die, stop and go on with it; SIGINT is
            // the fast shutdown (SIGTERM would wait for the consumer to disconnect).
            whole_tree: true,
            stop_signal: Some(Signal::SIGINT),
            ..ProcessSpec::default()
        }
    }
}

/// The settings (`-c name=value`) PostgreSQL runs with on any target roadtest starts it on.
pub fn server_settings(synchronous_commit: bool) -> [String; 5] {
    [
        String::from("fsync=on"),
        String::from("track_commit_timestamp=on"),
        format!(
            "synchronous_commit={}",
            if synchronous_commit { "on" } else { "off" }
        ),
        String::from("shared_buffers=64MB"),
        String::from("max_connections=50"),
    ]
}

/// The connection string of roadtest's user at `address` (`host:port`).
pub fn url(address: std::net::SocketAddr) -> String {
    format!(
        "postgresql://{USER}@{}:{}/postgres?connect_timeout=3",
        address.ip(),
        address.port()
    )
}

fn newest_debian_bin() -> Option<PathBuf> {
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_ROOT)
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .collect();
    majors.sort();
    majors.pop().map(|(_, bin)| bin)
}

fn pg_config_bindir() -> Option<PathBuf> {
    let output = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    Some(PathBuf::from(text.trim())).filter(|_| output.status.success())
}

/// As root, the `postgres` user's (uid, gid); otherwise None (roadtest's own user runs it).
fn run_as() -> Result<Option<(u32, u32)>, TargetError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    match nix::unistd::User::from_name("postgres") {
        Ok(Some(user)) => Ok(Some((user.uid.as_raw(), user.gid.as_raw()))),
        _ => Err(TargetError::NoPostgresUser),
    }
}
