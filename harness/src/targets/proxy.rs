//! A seeded, controllable fault-injecting TCP proxy: latency with jitter, bandwidth caps, blackholes and resets.
//!
//! A [`FaultProxy`] listens on one address and forwards every accepted connection to one upstream
//! address. [`FaultProxy::set`] changes the [`NetworkCondition`] of the proxy at any time; the new
//! condition applies at once to new and to already open connections, in both directions.
//!
//! Guarantees, whatever the condition:
//! - bytes are delivered in order, per direction, exactly as read (jitter never reorders them: a
//!   chunk is delivered at `max(previous delivery, arrival + delay + jitter)`);
//! - memory is bounded: each direction of a connection holds at most [`HELD_BYTES_MAX`] bytes
//!   (at most [`BANDWIDTH_HELD_BYTES_MAX`] under a bandwidth cap); beyond that the proxy stops
//!   reading from the sender, so TCP backpressure reaches it; at most [`CONNECTIONS_MAX`]
//!   connections are open at once (further clients wait in the listen backlog);
//! - when one side ends its stream (EOF), the proxy shuts down the write half of the other side
//!   once everything held for it was delivered; an I/O error on either side resets both sides;
//! - dropping the [`FaultProxy`] stops the listener and every connection task (their sockets close);
//! - no I/O error panics: each is logged with `tracing` (debug for one connection, warn for the
//!   listener) and ends only what it concerns.
//!
//! Randomness (the latency jitter) comes only from [`crate::seed::rng_for`]: direction `d` (0 =
//! client to upstream, 1 = upstream to client) of the `c`-th accepted connection (from 0) of the
//! proxy named `name` draws from `rng_for(seed, "proxy.<name>", 2 * c + d)`, one draw per delayed
//! chunk. The draws replay with the seed; how the kernel splits a stream into chunks does not.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, sleep_until, timeout};

use crate::seed::{SimRng, rng_for};

/// The most bytes one direction of one connection holds back (in flight under latency, or held
/// during a blackhole) before the proxy stops reading from the sender.
pub const HELD_BYTES_MAX: usize = 2 * 1024 * 1024;
/// The most bytes one direction holds under a bandwidth cap, so the sender feels the cap early.
pub const BANDWIDTH_HELD_BYTES_MAX: usize = 64 * 1024;
/// The most connections one proxy forwards at once.
pub const CONNECTIONS_MAX: usize = 1024;
/// How long the proxy waits for the upstream to accept a connection.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest one-way delay (delay plus jitter) a chunk can get.
pub const DELAY_MAX: Duration = Duration::from_secs(3600);
/// The largest burst of a bandwidth cap's token bucket (it is otherwise 50 ms worth of bytes).
pub const BURST_BYTES_MAX: u64 = 64 * 1024;
/// The most bytes read from a socket at once.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// The condition of the network between the proxy's clients and its upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkCondition {
    /// Bytes pass as fast as both sides allow.
    #[default]
    Healthy,
    /// Every chunk read is delivered `delay_ms` plus a jitter uniform in `[-jitter_ms, +jitter_ms)`
    /// later (one way, each direction; clamped to `[0, DELAY_MAX]`), never before an earlier chunk.
    Latency { delay_ms: u64, jitter_ms: u64 },
    /// Each direction of each connection passes at most `bytes_per_s` (a token bucket whose burst
    /// is [`burst_bytes`]`(bytes_per_s)`, full when the cap is set). `0` lets nothing through.
    Bandwidth { bytes_per_s: u64 },
    /// A partition: nothing is forwarded in either direction. Bytes already read, and bytes sent
    /// during the blackhole (up to [`HELD_BYTES_MAX`] per direction, then TCP backpressure), are
    /// held and delivered in order once the blackhole ends, as TCP retransmission would after a
    /// real partition heals; an end of stream is held too. New clients are accepted (userland
    /// TCP cannot withhold the SYN-ACK) but the proxy connects them upstream only after the
    /// blackhole ends, so they stall. The proxy never times out a connection by itself.
    Blackhole,
    /// A one-shot action, not a lasting condition: resets every connection open now (both sides
    /// get a TCP RST via `SO_LINGER` 0; whatever the proxy held for them is dropped) and leaves
    /// the lasting condition as it was. The proxy keeps accepting; new connections are not reset.
    Reset,
}

/// Counters of one proxy since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProxyStats {
    /// Client connections accepted.
    pub connections_accepted: u64,
    /// Connections open now (accepted and not yet closed).
    pub connections_open: u64,
    /// Connections ended by [`NetworkCondition::Reset`].
    pub connections_reset: u64,
    /// Connections the upstream refused or did not accept in time (the client was reset).
    pub upstream_connect_failures: u64,
    /// Bytes delivered from clients to the upstream.
    pub to_upstream_bytes: u64,
    /// Bytes delivered from the upstream to clients.
    pub to_client_bytes: u64,
}

/// The proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("proxy {name}: cannot listen on {address}: {source} (pick another port, or 0 for any)")]
    Listen {
        name: String,
        address: SocketAddr,
        source: io::Error,
    },
}

/// A running proxy; dropping it stops the listener and closes every connection it forwards.
#[derive(Debug)]
pub struct FaultProxy {
    local_addr: SocketAddr,
    control: watch::Sender<Control>,
    shared: Shared,
    listener_task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on `listen` (port 0 = any free port) and forwards every accepted connection to
    /// `upstream`, starting [`NetworkCondition::Healthy`]. `seed` is the run's root seed.
    pub async fn start(
        name: &str,
        listen: SocketAddr,
        upstream: SocketAddr,
        seed: u64,
    ) -> Result<FaultProxy, ProxyError> {
        let listen_error = |source| ProxyError::Listen {
            name: name.to_owned(),
            address: listen,
            source,
        };
        let listener = TcpListener::bind(listen).await.map_err(listen_error)?;
        let local_addr = listener.local_addr().map_err(listen_error)?;
        let (control, control_receiver) = watch::channel(Control::default());
        let shared = Shared {
            name: name.to_owned(),
            upstream,
            seed,
            control: control_receiver,
            counters: Arc::new(Counters::default()),
        };
        let listener_task = tokio::spawn(accept_loop(listener, shared.clone()));
        tracing::debug!(proxy = name, %local_addr, %upstream, "fault proxy listening");
        Ok(FaultProxy {
            local_addr,
            control,
            shared,
            listener_task,
        })
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address every connection is forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Replaces the lasting condition (for new and open connections, both directions), or with
    /// [`NetworkCondition::Reset`] resets every open connection and keeps the lasting condition.
    pub fn set(&self, condition: NetworkCondition) {
        tracing::debug!(proxy = %self.shared.name, ?condition, "network condition");
        self.control.send_modify(|control| match condition {
            NetworkCondition::Reset => control.resets += 1,
            lasting => control.condition = lasting,
        });
    }

    /// Back to [`NetworkCondition::Healthy`]; what a blackhole held is delivered now.
    pub fn clear(&self) {
        self.set(NetworkCondition::Healthy);
    }

    /// The lasting condition now (never [`NetworkCondition::Reset`]).
    pub fn condition(&self) -> NetworkCondition {
        self.control.borrow().condition
    }

    pub fn stats(&self) -> ProxyStats {
        let counters = &self.shared.counters;
        ProxyStats {
            connections_accepted: counters.connections_accepted.load(Ordering::Relaxed),
            connections_open: counters.connections_open.load(Ordering::Relaxed),
            connections_reset: counters.connections_reset.load(Ordering::Relaxed),
            upstream_connect_failures: counters.upstream_connect_failures.load(Ordering::Relaxed),
            to_upstream_bytes: counters.to_upstream_bytes.load(Ordering::Relaxed),
            to_client_bytes: counters.to_client_bytes.load(Ordering::Relaxed),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Aborting the listener drops its JoinSet, which aborts every connection task.
        self.listener_task.abort();
    }
}

/// The burst of the token bucket for a cap of `bytes_per_s`: 50 ms worth, at least 1 byte, at
/// most [`BURST_BYTES_MAX`].
pub fn burst_bytes(bytes_per_s: u64) -> u64 {
    (bytes_per_s / 20).clamp(1, BURST_BYTES_MAX)
}

/// What the proxy handle tells its tasks.
#[derive(Debug, Clone, Copy, Default)]
struct Control {
    condition: NetworkCondition,
    /// Bumped by every [`NetworkCondition::Reset`]; a connection older than the bump resets.
    resets: u64,
}

#[derive(Debug, Default)]
struct Counters {
    connections_accepted: AtomicU64,
    connections_open: AtomicU64,
    connections_reset: AtomicU64,
    upstream_connect_failures: AtomicU64,
    to_upstream_bytes: AtomicU64,
    to_client_bytes: AtomicU64,
}

/// What the handle and every task of one proxy share.
#[derive(Debug, Clone)]
struct Shared {
    name: String,
    upstream: SocketAddr,
    seed: u64,
    control: watch::Receiver<Control>,
    counters: Arc<Counters>,
}

async fn accept_loop(listener: TcpListener, shared: Shared) {
    let mut connections = JoinSet::new();
    let mut index: u64 = 0;
    loop {
        while connections.try_join_next().is_some() {}
        if connections.len() >= CONNECTIONS_MAX {
            connections.join_next().await;
            continue;
        }
        let (client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(proxy = %shared.name, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // The reset epoch is taken at accept: a later Reset resets this connection.
        let epoch = shared.control.borrow().resets;
        add(&shared.counters.connections_accepted, 1);
        let open = OpenGuard::new(&shared.counters);
        tracing::debug!(proxy = %shared.name, %peer, index, "accepted");
        connections.spawn(serve_connection(client, shared.clone(), index, epoch, open));
        index += 1;
    }
}

/// Keeps `connections_open` right however a connection task ends (including abort).
struct OpenGuard(Arc<Counters>);

impl OpenGuard {
    fn new(counters: &Arc<Counters>) -> OpenGuard {
        counters.connections_open.fetch_add(1, Ordering::Relaxed);
        OpenGuard(Arc::clone(counters))
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How a forwarded connection ended.
enum Ending {
    /// Both directions reached their end of stream (or the proxy is going away).
    Closed,
    /// A [`NetworkCondition::Reset`] arrived.
    Reset,
    /// An I/O error on either side.
    Failed(io::Error),
}

/// Forwards one accepted client; `_open` counts it as open until this ends (or is aborted).
async fn serve_connection(
    mut client: TcpStream,
    shared: Shared,
    index: u64,
    epoch: u64,
    _open: OpenGuard,
) {
    let mut control = shared.control.clone();
    // A client accepted during a blackhole stalls until the blackhole ends.
    loop {
        let current = *control.borrow_and_update();
        if current.resets != epoch {
            add(&shared.counters.connections_reset, 1);
            reset(&shared.name, index, &client);
            return;
        }
        if current.condition != NetworkCondition::Blackhole {
            break;
        }
        if control.changed().await.is_err() {
            return;
        }
    }
    let connect = timeout(
        UPSTREAM_CONNECT_TIMEOUT,
        TcpStream::connect(shared.upstream),
    );
    let connected = connect
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()));
    let mut upstream = match connected {
        Ok(upstream) => upstream,
        Err(error) => {
            tracing::debug!(proxy = %shared.name, index, upstream = %shared.upstream, %error, "upstream connect failed");
            add(&shared.counters.upstream_connect_failures, 1);
            reset(&shared.name, index, &client);
            return;
        }
    };
    for stream in [&client, &upstream] {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(proxy = %shared.name, index, %error, "cannot set TCP_NODELAY");
        }
    }
    match forward(&mut client, &mut upstream, &shared, index, epoch).await {
        Ending::Closed => {
            tracing::debug!(proxy = %shared.name, index, "closed");
            return;
        }
        Ending::Reset => add(&shared.counters.connections_reset, 1),
        Ending::Failed(error) => {
            tracing::debug!(proxy = %shared.name, index, %error, "connection failed; resetting both sides");
        }
    }
    reset(&shared.name, index, &client);
    reset(&shared.name, index, &upstream);
}

/// Runs both directions until both end, one fails, or a reset arrives.
async fn forward(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    shared: &Shared,
    index: u64,
    epoch: u64,
) -> Ending {
    let (mut client_read, mut client_write) = client.split();
    let (mut upstream_read, mut upstream_write) = upstream.split();
    let component = format!("proxy.{}", shared.name);
    let lane = |direction: u64| Lane::new(rng_for(shared.seed, &component, 2 * index + direction));
    let (mut to_upstream, mut to_client) = (lane(0), lane(1));
    let both = async {
        tokio::try_join!(
            pump(
                &mut client_read,
                &mut upstream_write,
                &mut to_upstream,
                shared.control.clone(),
                &shared.counters.to_upstream_bytes,
            ),
            pump(
                &mut upstream_read,
                &mut client_write,
                &mut to_client,
                shared.control.clone(),
                &shared.counters.to_client_bytes,
            ),
        )
    };
    tokio::select! {
        result = both => match result {
            Ok(_) => Ending::Closed,
            Err(error) => Ending::Failed(error),
        },
        () = reset_after(shared.control.clone(), epoch) => Ending::Reset,
    }
}

fn add(counter: &AtomicU64, amount: u64) {
    counter.fetch_add(amount, Ordering::Relaxed);
}

/// Resolves when a reset newer than `epoch` arrives; never if the proxy is gone.
async fn reset_after(mut control: watch::Receiver<Control>, epoch: u64) {
    loop {
        if control.borrow_and_update().resets != epoch {
            return;
        }
        if control.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Makes the kernel answer with RST when the socket closes (it closes when dropped).
fn reset(name: &str, index: u64, stream: &TcpStream) {
    if let Err(error) = stream.set_zero_linger() {
        tracing::debug!(proxy = %name, index, %error, "cannot set SO_LINGER 0; closing instead");
    }
}

/// One chunk read from the sender, waiting for delivery.
struct Chunk {
    /// Offset from the lane's start when it may be delivered.
    deliver_at: Duration,
    data: Vec<u8>,
    /// How much of `data` was delivered already.
    written: usize,
}

/// A token bucket for one direction.
struct TokenBucket {
    bytes_per_s: u64,
    tokens: f64,
    refilled_at: Duration,
}

/// One direction of one connection: what it holds and when each piece may go.
struct Lane {
    start: Instant,
    rng: SimRng,
    queue: VecDeque<Chunk>,
    held_bytes: usize,
    last_delivery: Duration,
    bucket: Option<TokenBucket>,
}

/// What the writer of a lane may do now.
#[derive(Debug, PartialEq)]
enum Gate {
    /// Write up to this many bytes of the head chunk now.
    Write(usize),
    /// Nothing may be written before this offset.
    WaitUntil(Duration),
    /// Nothing to write, or nothing may be written until the condition changes.
    Closed,
}

impl Lane {
    fn new(rng: SimRng) -> Lane {
        Lane {
            start: Instant::now(),
            rng,
            queue: VecDeque::new(),
            held_bytes: 0,
            last_delivery: Duration::ZERO,
            bucket: None,
        }
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Brings the token bucket in line with the condition and refills it up to `now`.
    fn refresh(&mut self, condition: NetworkCondition, now: Duration) {
        let NetworkCondition::Bandwidth { bytes_per_s } = condition else {
            self.bucket = None;
            return;
        };
        let burst = burst_bytes(bytes_per_s) as f64;
        match &mut self.bucket {
            Some(bucket) if bucket.bytes_per_s == bytes_per_s => {
                let elapsed_s = now.saturating_sub(bucket.refilled_at).as_secs_f64();
                bucket.tokens = (bucket.tokens + elapsed_s * bytes_per_s as f64).min(burst);
                bucket.refilled_at = now;
            }
            _ => {
                self.bucket = Some(TokenBucket {
                    bytes_per_s,
                    tokens: burst,
                    refilled_at: now,
                })
            }
        }
    }

    /// How many more bytes this lane may read from the sender now.
    fn room(&self, condition: NetworkCondition) -> usize {
        let held_max = match condition {
            NetworkCondition::Bandwidth { .. } => BANDWIDTH_HELD_BYTES_MAX,
            _ => HELD_BYTES_MAX,
        };
        held_max.saturating_sub(self.held_bytes)
    }

    fn gate(&self, condition: NetworkCondition, now: Duration) -> Gate {
        if condition == NetworkCondition::Blackhole {
            return Gate::Closed;
        }
        let Some(head) = self.queue.front() else {
            return Gate::Closed;
        };
        if head.deliver_at > now {
            return Gate::WaitUntil(head.deliver_at);
        }
        let remaining = head.data.len() - head.written;
        let Some(bucket) = &self.bucket else {
            return Gate::Write(remaining);
        };
        if bucket.bytes_per_s == 0 {
            return Gate::Closed;
        }
        let wanted = remaining.min(burst_bytes(bucket.bytes_per_s) as usize);
        if bucket.tokens >= wanted as f64 {
            return Gate::Write(remaining.min(bucket.tokens as usize));
        }
        let missing_s = (wanted as f64 - bucket.tokens) / bucket.bytes_per_s as f64;
        Gate::WaitUntil(now + Duration::from_secs_f64(missing_s.min(DELAY_MAX.as_secs_f64())))
    }

    /// The next `length` bytes to deliver (empty when nothing is held).
    fn head(&self, length: usize) -> &[u8] {
        match self.queue.front() {
            Some(head) => &head.data[head.written..head.written + length],
            None => &[],
        }
    }

    /// Records `count` bytes of the head chunk as delivered.
    fn delivered(&mut self, count: usize) {
        if let Some(bucket) = &mut self.bucket {
            bucket.tokens -= count as f64;
        }
        self.held_bytes -= count;
        if let Some(head) = self.queue.front_mut() {
            head.written += count;
            if head.written == head.data.len() {
                self.queue.pop_front();
            }
        }
    }

    /// Takes a chunk just read from the sender and schedules its delivery.
    fn push(&mut self, data: &[u8], condition: NetworkCondition, now: Duration) {
        let deliver_at = match condition {
            NetworkCondition::Latency {
                delay_ms,
                jitter_ms,
            } => schedule_delivery(&mut self.rng, self.last_delivery, now, delay_ms, jitter_ms),
            _ => self.last_delivery.max(now),
        };
        self.last_delivery = deliver_at;
        self.held_bytes += data.len();
        self.queue.push_back(Chunk {
            deliver_at,
            data: data.to_vec(),
            written: 0,
        });
    }
}

/// When a chunk that arrived at `arrival` is delivered under `delay_ms +- jitter_ms`, given that
/// the previous chunk of the same direction is delivered at `previous` (offsets from one start).
///
/// The one-way delay is `delay_ms` plus one draw uniform in `[-jitter_ms, +jitter_ms)` (no draw
/// when `jitter_ms` is 0), clamped to `[0, DELAY_MAX]`; the result is never before `previous`.
fn schedule_delivery(
    rng: &mut SimRng,
    previous: Duration,
    arrival: Duration,
    delay_ms: u64,
    jitter_ms: u64,
) -> Duration {
    let jitter_ms = if jitter_ms == 0 {
        0.0
    } else {
        rng.uniform(-(jitter_ms as f64), jitter_ms as f64)
    };
    let one_way_ms = (delay_ms as f64 + jitter_ms).clamp(0.0, DELAY_MAX.as_millis() as f64);
    let one_way = Duration::from_secs_f64(one_way_ms / 1000.0);
    previous.max(arrival.saturating_add(one_way))
}

/// Moves bytes from `source` to `destination` under the proxy's condition until the source ends
/// and everything held was delivered (then shuts the destination's write half down), or the
/// proxy is gone. Returns the first I/O error.
async fn pump(
    source: &mut ReadHalf<'_>,
    destination: &mut WriteHalf<'_>,
    lane: &mut Lane,
    mut control: watch::Receiver<Control>,
    delivered_bytes: &AtomicU64,
) -> io::Result<()> {
    let mut buffer = vec![0u8; READ_CHUNK_BYTES];
    let mut source_open = true;
    loop {
        let condition = control.borrow_and_update().condition;
        let now = lane.now();
        lane.refresh(condition, now);
        if !source_open && lane.queue.is_empty() {
            // The source ended and all of it was delivered: pass the end of stream on. The
            // destination may be gone already; that only ends this direction.
            if let Err(error) = destination.shutdown().await {
                tracing::debug!(%error, "shutdown after end of stream failed");
            }
            return Ok(());
        }
        let read_length = if source_open {
            lane.room(condition).min(READ_CHUNK_BYTES)
        } else {
            0
        };
        let (write_length, wake_at) = match lane.gate(condition, now) {
            Gate::Write(length) => (length, None),
            Gate::WaitUntil(offset) => (0, Some(offset)),
            Gate::Closed => (0, None),
        };
        let wake = lane.start + wake_at.unwrap_or(Duration::ZERO);
        tokio::select! {
            biased;
            changed = control.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
            written = destination.write(lane.head(write_length)), if write_length > 0 => {
                let written = written?;
                if written == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                lane.delivered(written);
                add(delivered_bytes, written as u64);
            }
            () = sleep_until(wake), if wake_at.is_some() => {}
            read = source.read(&mut buffer[..read_length]), if read_length > 0 => {
                match read? {
                    0 => source_open = false,
                    count => lane.push(&buffer[..count], condition, lane.now()),
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
