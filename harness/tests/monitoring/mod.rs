//! What the monitoring suites share: Debian's Prometheus and Alertmanager started as children
//! on free loopback ports, each with a configuration and a folder of its own, stopped when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A free address on loopback (free when asked; taken by whoever binds it first).
pub fn free_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address")
}

/// A monitoring service; killed, and its folder removed, when dropped.
pub struct Service {
    child: Child,
    pub address: SocketAddr,
    dir: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `program` (looked up in /usr/bin, where Debian's packages put it) with `config` written
/// to `DIR/config.yml`; `flags(config_path, dir, address)` gives its command line. Waits (30 s
/// at most) until `/-/ready` answers.
pub fn start(
    program: &str,
    config: &str,
    flags: impl Fn(&Path, &Path, SocketAddr) -> Vec<String>,
) -> Service {
    let binary = Path::new("/usr/bin").join(program);
    assert!(
        binary.exists(),
        "no {}: install Debian's prometheus and prometheus-alertmanager (`ci/prometheus` does, and \
         `ci/test` runs it)",
        binary.display()
    );
    let dir = std::env::temp_dir().join(format!("roadtest-{program}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a folder for the service");
    let config_path = dir.join("config.yml");
    std::fs::write(&config_path, config).expect("write the config");
    let address = free_address();
    let log = std::fs::File::create(dir.join(format!("{program}.log"))).expect("a log file");
    let child = Command::new(&binary)
        .args(flags(&config_path, &dir, address))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{} does not start: {e}", binary.display()));
    let service = Service {
        child,
        address,
        dir,
    };
    let started = Instant::now();
    while get(address, "/-/ready").is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{program} was not ready within 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    service
}

/// Prometheus with `config`, its samples in its folder.
pub fn prometheus(config: &str) -> Service {
    start("prometheus", config, |config, dir, address| {
        vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address={address}"),
        ]
    })
}

/// The body of `GET http://address/path`.
pub fn get(address: SocketAddr, path: &str) -> Result<String, String> {
    ureq::get(&format!("http://{address}{path}"))
        .call()
        .map_err(|e| e.to_string())?
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())
}
