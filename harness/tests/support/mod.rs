//! What several integration test files share: a Tansu broker of their own, and loopback ports.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

/// The longest Tansu may take to listen.
const TANSU_START: Duration = Duration::from_secs(30);

/// Tansu as a child process; killed when dropped, also when the test panics.
pub struct Tansu {
    child: Child,
    log: PathBuf,
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Tansu {
    /// Starts Tansu (memory storage) listening on `port` (from [`free_port`]) and advertising
    /// `advertised` (`host:port`), and waits until it accepts connections. `label` names its log.
    pub async fn start(port: u16, advertised: &str, label: &str) -> Tansu {
        let binary = roadtest::targets::local::roadtest_home().join("bin/tansu");
        assert!(
            binary.exists(),
            "Tansu is not installed (looked for {}); run `roadtest services install` (or set \
             ROADTEST_HOME to where it is installed)",
            binary.display()
        );
        let log =
            std::env::temp_dir().join(format!("roadtest-{label}-tansu-{}.log", std::process::id()));
        let log_file = File::create(&log).expect("create Tansu's log");
        let child = Command::new(&binary)
            .args(["broker", "--listener-url"])
            .arg(format!("tcp://127.0.0.1:{port}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://{advertised}"))
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone Tansu's log"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut tansu = Tansu { child, log };
        let deadline = Instant::now() + TANSU_START;
        while TcpStream::connect(loopback(port)).await.is_err() {
            if let Ok(Some(status)) = tansu.child.try_wait() {
                panic!(
                    "Tansu exited while starting ({status}):\n{}",
                    tansu.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "Tansu did not listen on port {port} within {TANSU_START:?}:\n{}",
                tansu.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tansu
    }

    /// Removes the log (a test that passed has no use for it).
    pub fn remove_log(&self) {
        let _ = std::fs::remove_file(&self.log);
    }

    /// The end of Tansu's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A port free now, outside the OS's ephemeral range (see `roadtest::targets::free_port`).
pub fn free_port() -> u16 {
    roadtest::targets::free_port().expect("a free port")
}
