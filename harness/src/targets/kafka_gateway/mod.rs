//! A Kafka-protocol-aware relay that rewrites broker addresses in metadata responses, so every client connection goes through roadtest's fault proxies.
//!
//! A client that bootstraps through a [`FaultProxy`](super::proxy::FaultProxy) asks the broker
//! for metadata, and the broker answers with the addresses it advertises; librdkafka then
//! connects to those directly and the proxy sees nothing more. For brokers roadtest starts
//! itself, it sets the advertised address to the proxy's. For an external cluster it cannot, so
//! roadtest puts a [`KafkaGateway`] behind each broker's proxy:
//!
//! ```text
//! client -> FaultProxy (listens on A) -> KafkaGateway (listens on G, upstream = real broker) -> broker
//! ```
//!
//! The [`BrokerRoutes`] of every gateway map each real broker's advertised `host:port` to
//! `("127.0.0.1", A)` of that broker's own proxy. The gateway forwards every frame unchanged
//! except the responses to Metadata (api key 3) and FindCoordinator (api key 10) requests, in
//! which it replaces each routed broker's host and port (see [`rewrite_response`]); so the client
//! learns only proxy addresses and every later connection passes a proxy too. A broker missing
//! from the routes is left as advertised (clients would reach it directly, bypassing the faults).
//!
//! The gateway reads the plaintext Kafka protocol, so PLAINTEXT and SASL_PLAINTEXT listeners
//! work (SaslHandshake and SaslAuthenticate are ordinary frames); SSL and SASL_SSL do not, since
//! the gateway would have to terminate TLS to read the responses.
//!
//! Guarantees: frames pass in order and byte for byte except the rewritten ones, whose size
//! prefix is corrected; a frame larger than [`FRAME_BYTES_MAX`] ends its connection; only
//! responses being rewritten are held whole (every other frame streams through in chunks of at
//! most 16 KiB); each connection remembers at most [`PENDING_REQUESTS_MAX`] unanswered requests;
//! at most [`CONNECTIONS_MAX`] connections are open at once; an end of stream on one side shuts
//! down the write half of the other, an I/O error ends both; dropping the gateway stops the
//! listener and every connection task. A response that cannot be parsed is forwarded unchanged
//! and reported with `tracing::warn!` (once per connection).

mod rewrite;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;

use self::rewrite::REQUEST_HEAD_BYTES;
pub use self::rewrite::{
    BrokerRoutes, FIND_COORDINATOR_API_KEY, FRAME_BYTES_MAX, METADATA_API_KEY, RequestHeader,
    RewriteError, request_header, rewrite_response,
};

/// The most Metadata and FindCoordinator requests one connection remembers while they await
/// their response; beyond that the oldest is forgotten (its response then passes unchanged).
pub const PENDING_REQUESTS_MAX: usize = 1024;
/// The most connections one gateway relays at once (further clients wait in the listen backlog).
pub const CONNECTIONS_MAX: usize = 1024;
/// How long the gateway waits to resolve and connect to the upstream broker.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The bytes of a response header read before forwarding: correlation_id.
const RESPONSE_HEAD_BYTES: usize = 4;
const SIZE_PREFIX_BYTES: usize = 4;
/// The most bytes of a passing frame held at once.
const COPY_CHUNK_BYTES: usize = 16 * 1024;

/// The gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("Kafka gateway {name}: cannot listen on {address}: {source} (pick another port, or 0)")]
    Listen {
        name: String,
        address: SocketAddr,
        source: io::Error,
    },
}

/// A running gateway; dropping it stops the listener and closes every connection it relays.
#[derive(Debug)]
pub struct KafkaGateway {
    local_addr: SocketAddr,
    listener_task: JoinHandle<()>,
}

impl KafkaGateway {
    /// Listens on `listen` (port 0 = any free port) and relays every accepted connection to the
    /// broker at `upstream` (resolved for each connection), rewriting addresses by `routes`.
    pub async fn start(
        name: &str,
        listen: SocketAddr,
        upstream: (String, u16),
        routes: Arc<BrokerRoutes>,
    ) -> Result<KafkaGateway, GatewayError> {
        let listen_error = |source| GatewayError::Listen {
            name: name.to_owned(),
            address: listen,
            source,
        };
        let listener = TcpListener::bind(listen).await.map_err(listen_error)?;
        let local_addr = listener.local_addr().map_err(listen_error)?;
        let (host, port) = &upstream;
        tracing::debug!(gateway = name, %local_addr, %host, port, "Kafka gateway listening");
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            upstream,
            routes,
        });
        Ok(KafkaGateway {
            local_addr,
            listener_task: tokio::spawn(accept_loop(listener, shared)),
        })
    }

    /// The address clients (or the fault proxy in front) connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for KafkaGateway {
    fn drop(&mut self) {
        // Aborting the listener drops its JoinSet, which aborts every connection task.
        self.listener_task.abort();
    }
}

/// What every connection task of one gateway reads.
#[derive(Debug)]
struct Shared {
    name: String,
    upstream: (String, u16),
    routes: Arc<BrokerRoutes>,
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    let mut index: u64 = 0;
    loop {
        while connections.try_join_next().is_some() {}
        if connections.len() >= CONNECTIONS_MAX {
            connections.join_next().await;
            continue;
        }
        match listener.accept().await {
            Ok((client, _)) => {
                connections.spawn(serve_connection(client, Arc::clone(&shared), index));
                index += 1;
            }
            Err(error) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(gateway = %shared.name, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// What both directions of one relayed connection share.
#[derive(Debug)]
struct Connection {
    shared: Arc<Shared>,
    index: u64,
    /// The Metadata and FindCoordinator requests sent and not yet answered, oldest first.
    pending: Mutex<VecDeque<RequestHeader>>,
    /// Whether a response that could not be rewritten was reported already.
    warned: AtomicBool,
}

impl Connection {
    /// On the request side remembers a Metadata or FindCoordinator request (before it is
    /// forwarded, so its response cannot overtake it); on the response side returns (and
    /// forgets) the remembered request a response answers. `header` is the frame's start.
    fn note(&self, side: Side, header: &[u8]) -> Option<RequestHeader> {
        // Nothing panics while holding the lock, so a poisoned one is still consistent.
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        match side {
            Side::Requests => {
                let request = request_header(header).filter(|request| {
                    matches!(request.api_key, METADATA_API_KEY | FIND_COORDINATOR_API_KEY)
                })?;
                if pending.len() >= PENDING_REQUESTS_MAX {
                    pending.pop_front();
                }
                pending.push_back(request);
                None
            }
            Side::Responses => {
                let correlation_id = i32::from_be_bytes(header.try_into().ok()?);
                let position = pending
                    .iter()
                    .position(|r| r.correlation_id == correlation_id)?;
                pending.remove(position)
            }
        }
    }
}

/// Relays one accepted client until both directions end or one fails.
async fn serve_connection(mut client: TcpStream, shared: Arc<Shared>, index: u64) {
    let (host, port) = &shared.upstream;
    let connect = timeout(
        UPSTREAM_CONNECT_TIMEOUT,
        TcpStream::connect((host.as_str(), *port)),
    );
    let connected = connect
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()));
    let mut upstream = match connected {
        Ok(upstream) => upstream,
        Err(error) => {
            // Dropping the client closes it: to the client the broker is unreachable.
            tracing::debug!(gateway = %shared.name, index, %host, port, %error, "upstream connect failed");
            return;
        }
    };
    for stream in [&client, &upstream] {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(gateway = %shared.name, index, %error, "cannot set TCP_NODELAY");
        }
    }
    let connection = Connection {
        shared,
        index,
        pending: Mutex::new(VecDeque::new()),
        warned: AtomicBool::new(false),
    };
    let (client_read, client_write) = client.split();
    let (upstream_read, upstream_write) = upstream.split();
    let relayed = tokio::try_join!(
        relay(client_read, upstream_write, Side::Requests, &connection),
        relay(upstream_read, client_write, Side::Responses, &connection),
    );
    let name = &connection.shared.name;
    match relayed {
        Ok(_) => tracing::debug!(gateway = %name, index, "closed"),
        Err(error) => tracing::debug!(gateway = %name, index, %error, "connection failed"),
    }
}

/// The direction a relay task forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Requests,
    Responses,
}

/// Forwards frames until the reader ends (then shuts the writer down) or an I/O error: requests
/// unchanged; responses unchanged unless they answer a remembered request. A frame streams
/// through `buffer` in chunks, the first carrying its size prefix and header.
async fn relay(
    mut reader: ReadHalf<'_>,
    mut writer: WriteHalf<'_>,
    side: Side,
    connection: &Connection,
) -> io::Result<()> {
    let mut buffer = vec![0u8; COPY_CHUNK_BYTES];
    let header_bytes_max = match side {
        Side::Requests => REQUEST_HEAD_BYTES,
        Side::Responses => RESPONSE_HEAD_BYTES,
    };
    loop {
        let first = reader.read(&mut buffer[..SIZE_PREFIX_BYTES]).await?;
        if first == 0 {
            break;
        }
        reader
            .read_exact(&mut buffer[first..SIZE_PREFIX_BYTES])
            .await?;
        let size = i32::from_be_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]);
        let size = usize::try_from(size)
            .ok()
            .filter(|&size| size <= FRAME_BYTES_MAX)
            .ok_or_else(|| {
                let message =
                    format!("{side:?}: frame size {size} is negative or above FRAME_BYTES_MAX");
                io::Error::new(io::ErrorKind::InvalidData, message)
            })?;
        let mut filled = SIZE_PREFIX_BYTES + size.min(header_bytes_max);
        reader
            .read_exact(&mut buffer[SIZE_PREFIX_BYTES..filled])
            .await?;
        let mut left = SIZE_PREFIX_BYTES + size - filled;
        if let Some(request) = connection.note(side, &buffer[SIZE_PREFIX_BYTES..filled]) {
            let head = &buffer[..filled];
            forward_rewritten(&mut reader, &mut writer, head, left, request, connection).await?;
            continue;
        }
        loop {
            let count = (buffer.len() - filled).min(left);
            reader
                .read_exact(&mut buffer[filled..filled + count])
                .await?;
            writer.write_all(&buffer[..filled + count]).await?;
            left -= count;
            if left == 0 {
                break;
            }
            filled = 0;
        }
    }
    if let Err(error) = writer.shutdown().await {
        // The other side may be gone already; that ends only this direction.
        tracing::debug!(gateway = %connection.shared.name, index = connection.index, %error, "shutdown after end of stream failed");
    }
    Ok(())
}

/// Reads the rest (`left` bytes) of a response to `request` whole, then writes it rewritten
/// (with its new size) or, when nothing is routed or it cannot be parsed, unchanged.
async fn forward_rewritten(
    reader: &mut ReadHalf<'_>,
    writer: &mut WriteHalf<'_>,
    head: &[u8],
    left: usize,
    request: RequestHeader,
    connection: &Connection,
) -> io::Result<()> {
    // Grows as bytes arrive, so a lying size allocates nothing up front.
    let mut framed = Vec::with_capacity(head.len() + left.min(COPY_CHUNK_BYTES));
    framed.extend_from_slice(head);
    reader.take(left as u64).read_to_end(&mut framed).await?;
    if framed.len() != head.len() + left {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let frame = &framed[SIZE_PREFIX_BYTES..];
    let routes = &connection.shared.routes;
    match rewrite_response(request.api_key, request.api_version, frame, routes) {
        Ok(Some(rewritten)) => {
            // rewrite_response keeps frames within FRAME_BYTES_MAX, so the size fits an i32.
            framed.clear();
            framed.extend_from_slice(&(rewritten.len() as i32).to_be_bytes());
            framed.extend_from_slice(&rewritten);
        }
        Ok(None) => {}
        Err(error) => {
            if !connection.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(gateway = %connection.shared.name, index = connection.index, %error, "forwarded a response unchanged: clients may now connect around the gateway (not logged again for this connection)");
            }
        }
    }
    writer.write_all(&framed).await
}

#[cfg(test)]
mod tests;
