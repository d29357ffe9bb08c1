//! cql-bridge: a TCP proxy that lets CQL native protocol v4 clients (the scylla 1.9.0 driver)
//! talk to a v3-only server (Apache Cassandra 2.1.0).
//!
//! Translations, and nothing else:
//! 1. header version byte 0x04 -> 0x03 on requests, 0x83 -> 0x84 on responses and events;
//! 2. STARTUP `CQL_VERSION` -> `3.0.0`; a STARTUP asking for compression is refused;
//! 3. SUPPORTED keeps `COMPRESSION` with an empty list; frames flagged compressed (0x01) or
//!    with a custom payload (0x04) are answered with a protocol ERROR by the bridge;
//! 4. PREPARED results get the v4 `pk_count` (0) after `columns_count`;
//! 5. `rpc_address` is removed from SELECTs on `system.local` (Cassandra 2.1 lacks it there)
//!    and re-inserted as an `inet` column holding [`BridgeConfig::advertise_ip`];
//! 6. unset values (v4 length -2) in QUERY/EXECUTE/BATCH are refused with an Invalid ERROR.
//!
//! Anything else of v4 that v3 lacks is refused with an ERROR frame, never dropped silently.
//! Pure frame parsing and rewriting lives in [`frame`], [`wire`], [`request`], [`response`],
//! [`metadata`], [`system_local`] and [`translate`]; the tokio layer is private.

pub mod frame;
pub mod metadata;
mod proxy;
pub mod request;
pub mod response;
pub mod system_local;
pub mod translate;
pub mod wire;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Default bound on a frame body: 256 MiB (Cassandra's own default maximum frame size).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 256 * 1024 * 1024;

/// What the bridge connects to and how it translates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    /// The v3 server's native-protocol address.
    pub upstream: SocketAddr,
    /// Injected as `rpc_address` into `system.local` results. Drivers open their pools to
    /// this address (on the port they first connected to), so it must reach the bridge.
    pub advertise_ip: Ipv4Addr,
    /// Largest accepted frame body, either direction; bigger frames close the connection.
    pub max_frame_bytes: usize,
}

impl BridgeConfig {
    /// Defaults: advertise the upstream host's IPv4 (127.0.0.1 if it has none or it is
    /// unspecified), bodies up to [`DEFAULT_MAX_FRAME_BYTES`].
    pub fn new(upstream: SocketAddr) -> Self {
        let advertise_ip = match upstream.ip() {
            IpAddr::V4(ip) if !ip.is_unspecified() => ip,
            _ => Ipv4Addr::LOCALHOST,
        };
        Self {
            upstream,
            advertise_ip,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        }
    }
}

/// Failures of the bridge as a whole (a single connection's failure is only logged).
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Requested address.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// The listening socket's address could not be read.
    #[error("cannot read the listening address: {0}")]
    LocalAddr(std::io::Error),
    /// The bridge task ended abnormally.
    #[error("bridge task failed: {0}")]
    Task(String),
}

/// Serves clients accepted on `listener` forever (accept errors are logged and retried).
pub async fn serve(listener: TcpListener, config: BridgeConfig) -> Result<(), BridgeError> {
    proxy::serve_until(listener, config, std::future::pending()).await;
    Ok(())
}

/// Serves clients until `shutdown` resolves; open connections are then dropped.
pub async fn serve_with_shutdown(
    listener: TcpListener,
    config: BridgeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BridgeError> {
    proxy::serve_until(listener, config, shutdown).await;
    Ok(())
}

/// A bridge running in the background of the current tokio runtime. Dropping the handle stops
/// it (connections included).
#[derive(Debug)]
pub struct BridgeHandle {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), BridgeError>>>,
}

impl BridgeHandle {
    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, drops open connections, and waits for the bridge task to end.
    pub async fn shutdown(mut self) -> Result<(), BridgeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(|e| BridgeError::Task(e.to_string()))?,
            None => Ok(()),
        }
    }
}

impl Drop for BridgeHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Binds `listen` and runs the bridge in a background task.
pub async fn spawn(listen: SocketAddr, config: BridgeConfig) -> Result<BridgeHandle, BridgeError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| BridgeError::Bind {
            addr: listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(BridgeError::LocalAddr)?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_with_shutdown(listener, config, async move {
        let _ = stopped.await;
    }));
    Ok(BridgeHandle {
        local_addr,
        stop: Some(stop),
        task: Some(task),
    })
}

/// Runs the bridge on an ephemeral port of 127.0.0.1 (for tests and in-process use).
pub async fn spawn_ephemeral(config: BridgeConfig) -> Result<BridgeHandle, BridgeError> {
    spawn(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
}
