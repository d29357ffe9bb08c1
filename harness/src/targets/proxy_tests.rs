//! Tests of the fault proxy: its delivery schedule as pure logic, and its conditions on real loopback sockets.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;

use super::*;

/// The longest any test waits for something that should happen.
const WAIT: Duration = Duration::from_secs(10);
/// How long a test watches for something that should not happen.
const QUIET: Duration = Duration::from_millis(200);

fn any_port() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn pattern(length: usize, salt: usize) -> Vec<u8> {
    (0..length)
        .map(|i| ((i * 7 + i / 251 + salt * 13) % 256) as u8)
        .collect()
}

/// An echo server on loopback that stops when dropped.
struct Echo {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn echo_server() -> Echo {
    let listener = TcpListener::bind(any_port()).await.expect("bind echo");
    let address = listener.local_addr().expect("echo address");
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            connections.spawn(async move {
                let (mut reader, mut writer) = stream.split();
                if tokio::io::copy(&mut reader, &mut writer).await.is_ok() {
                    let _ = writer.shutdown().await;
                }
            });
        }
    });
    Echo { address, task }
}

async fn proxy_to(upstream: SocketAddr) -> FaultProxy {
    FaultProxy::start("test", any_port(), upstream, 42)
        .await
        .expect("start proxy")
}

async fn connect(proxy: &FaultProxy) -> TcpStream {
    let stream = timeout(WAIT, TcpStream::connect(proxy.local_addr()))
        .await
        .expect("connect in time")
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// Sends `message` and waits for its echo; returns the round-trip time.
async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> Duration {
    let started = std::time::Instant::now();
    stream.write_all(message).await.expect("send");
    let mut echoed = vec![0u8; message.len()];
    timeout(WAIT, stream.read_exact(&mut echoed))
        .await
        .expect("echo in time")
        .expect("echo");
    assert_eq!(echoed, message);
    started.elapsed()
}

/// Waits until `check` holds for the proxy's stats.
async fn eventually(proxy: &FaultProxy, check: impl Fn(&ProxyStats) -> bool) -> ProxyStats {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let stats = proxy.stats();
        if check(&stats) {
            return stats;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stats never matched: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends `data`, ends the stream, and returns everything echoed until the end of stream.
async fn echo_all(stream: TcpStream, data: Vec<u8>) -> Vec<u8> {
    let (mut reader, mut writer) = stream.into_split();
    let sender = tokio::spawn(async move {
        writer.write_all(&data).await.expect("send all");
        writer.shutdown().await.expect("shutdown");
    });
    let mut echoed = Vec::new();
    timeout(WAIT, reader.read_to_end(&mut echoed))
        .await
        .expect("echo in time")
        .expect("echo");
    sender.await.expect("sender");
    echoed
}

fn lane() -> Lane {
    Lane::new(rng_for(1, "proxy.test", 0))
}

fn ms(milliseconds: u64) -> Duration {
    Duration::from_millis(milliseconds)
}

fn delivery_schedule(seed: u64, spacing_ms: u64) -> Vec<(Duration, Duration)> {
    let mut rng = rng_for(seed, "proxy.test", 0);
    let mut previous = Duration::ZERO;
    (0..1000)
        .map(|k| {
            let arrival = ms(k * spacing_ms);
            previous = schedule_delivery(&mut rng, previous, arrival, 50, 20);
            (arrival, previous)
        })
        .collect()
}

#[test]
fn jitter_schedule_replays_with_the_seed() {
    assert_eq!(delivery_schedule(7, 1), delivery_schedule(7, 1));
    assert_ne!(delivery_schedule(7, 1), delivery_schedule(8, 1));
}

#[test]
fn jitter_stays_within_its_range_and_never_reorders() {
    // Arrivals 1 ms apart under +-20 ms jitter would reorder without the max(previous, ..) rule.
    let dense = delivery_schedule(7, 1);
    assert!(dense.windows(2).all(|pair| pair[0].1 <= pair[1].1));
    assert!(dense.iter().all(|(arrival, at)| *at >= *arrival + ms(30)));
    // Arrivals 100 ms apart are never held back by an earlier chunk: each gets its own jitter.
    let sparse = delivery_schedule(7, 100);
    let delays: Vec<Duration> = sparse.iter().map(|(arrival, at)| *at - *arrival).collect();
    assert!(
        delays
            .iter()
            .all(|delay| *delay >= ms(30) && *delay < ms(70))
    );
    assert!(delays.iter().any(|delay| *delay < ms(40)));
    assert!(delays.iter().any(|delay| *delay > ms(60)));
}

#[test]
fn no_jitter_means_exactly_the_delay_and_no_draw() {
    let mut rng = rng_for(7, "proxy.test", 0);
    let untouched = rng.clone().next_u64();
    let at = schedule_delivery(&mut rng, Duration::ZERO, ms(5), 50, 0);
    assert_eq!(at, ms(55));
    assert_eq!(rng.next_u64(), untouched);
    // Jitter larger than the delay clamps at zero delay, never before the arrival.
    let mut rng = rng_for(7, "proxy.test", 1);
    for k in 0..100 {
        assert!(schedule_delivery(&mut rng, Duration::ZERO, ms(k), 1, 50) >= ms(k));
    }
}

#[test]
fn blackhole_closes_the_gate_and_healthy_opens_it() {
    let mut lane = lane();
    assert_eq!(lane.gate(NetworkCondition::Healthy, ms(0)), Gate::Closed);
    lane.push(b"held", NetworkCondition::Blackhole, ms(0));
    assert_eq!(lane.gate(NetworkCondition::Blackhole, ms(1)), Gate::Closed);
    assert_eq!(lane.gate(NetworkCondition::Healthy, ms(1)), Gate::Write(4));
    assert_eq!(lane.head(4), b"held");
    lane.delivered(4);
    assert_eq!(lane.held_bytes, 0);
    assert!(lane.queue.is_empty());
}

#[test]
fn bandwidth_gate_releases_one_burst_then_waits_for_tokens() {
    let cap = NetworkCondition::Bandwidth { bytes_per_s: 1000 };
    assert_eq!(burst_bytes(1000), 50);
    let mut lane = lane();
    lane.refresh(cap, ms(0));
    lane.push(&[0u8; 500], cap, ms(0));
    assert_eq!(lane.gate(cap, ms(0)), Gate::Write(50));
    lane.delivered(50);
    assert_eq!(lane.gate(cap, ms(0)), Gate::WaitUntil(ms(50)));
    lane.refresh(cap, ms(50));
    assert_eq!(lane.gate(cap, ms(50)), Gate::Write(50));
    // A cap of zero lets nothing through.
    let closed = NetworkCondition::Bandwidth { bytes_per_s: 0 };
    lane.refresh(closed, ms(60));
    assert_eq!(lane.gate(closed, ms(60)), Gate::Closed);
}

#[test]
fn a_full_lane_stops_reading() {
    let mut lane = lane();
    let chunk = vec![0u8; READ_CHUNK_BYTES];
    while lane.room(NetworkCondition::Blackhole) > 0 {
        let room = lane.room(NetworkCondition::Blackhole).min(READ_CHUNK_BYTES);
        lane.push(&chunk[..room], NetworkCondition::Blackhole, ms(0));
    }
    assert_eq!(lane.held_bytes, HELD_BYTES_MAX);
    let cap = NetworkCondition::Bandwidth { bytes_per_s: 1000 };
    assert_eq!(lane.room(cap), 0);
}

#[tokio::test]
async fn healthy_passes_one_mebibyte_both_ways_byte_exact() {
    let echo = echo_server().await;
    let proxy = proxy_to(echo.address).await;
    let data = pattern(1 << 20, 1);
    let echoed = echo_all(connect(&proxy).await, data.clone()).await;
    assert_eq!(echoed.len(), data.len());
    assert!(echoed == data, "echo differs from what was sent");
    let stats = eventually(&proxy, |stats| stats.connections_open == 0).await;
    assert_eq!(stats.to_upstream_bytes, 1 << 20);
    assert_eq!(stats.to_client_bytes, 1 << 20);
    assert_eq!(stats.connections_accepted, 1);
}

#[tokio::test]
async fn latency_adds_the_delay_each_way() {
    let echo = echo_server().await;
    let proxy = proxy_to(echo.address).await;
    let mut stream = connect(&proxy).await;
    round_trip(&mut stream, b"warm-up").await;
    let healthy = round_trip(&mut stream, b"ping").await;
    proxy.set(NetworkCondition::Latency {
        delay_ms: 50,
        jitter_ms: 0,
    });
    let delayed = round_trip(&mut stream, b"ping").await;
    assert!(delayed >= ms(99), "RTT {delayed:?} (healthy {healthy:?})");
    proxy.set(NetworkCondition::Latency {
        delay_ms: 40,
        jitter_ms: 10,
    });
    for _ in 0..5 {
        let jittered = round_trip(&mut stream, b"ping").await;
        assert!(jittered >= ms(59), "RTT {jittered:?} under 40 +- 10 ms");
    }
    assert_eq!(
        proxy.condition(),
        NetworkCondition::Latency {
            delay_ms: 40,
            jitter_ms: 10
        }
    );
}

#[tokio::test]
async fn bandwidth_cap_slows_a_transfer_to_the_cap() {
    let echo = echo_server().await;
    let proxy = proxy_to(echo.address).await;
    let bytes_per_s = 300_000;
    let length = 150_000;
    proxy.set(NetworkCondition::Bandwidth { bytes_per_s });
    let stream = connect(&proxy).await;
    let started = std::time::Instant::now();
    let data = pattern(length, 2);
    let echoed = echo_all(stream, data.clone()).await;
    let elapsed = started.elapsed();
    assert!(echoed == data, "echo differs from what was sent");
    let least = Duration::from_secs_f64(
        (length as u64 - burst_bytes(bytes_per_s)) as f64 / bytes_per_s as f64,
    );
    assert!(
        elapsed >= least,
        "{length} bytes at {bytes_per_s} B/s took {elapsed:?}"
    );
}

#[tokio::test]
async fn blackhole_holds_bytes_until_cleared() {
    let echo = echo_server().await;
    let proxy = proxy_to(echo.address).await;
    let mut stream = connect(&proxy).await;
    round_trip(&mut stream, b"before").await;
    proxy.set(NetworkCondition::Blackhole);
    stream.write_all(b"held").await.expect("send");
    // A client arriving during the blackhole is accepted but stalls.
    let mut late = connect(&proxy).await;
    late.write_all(b"late").await.expect("send");
    let mut buffer = [0u8; 4];
    assert!(timeout(QUIET, stream.read(&mut buffer)).await.is_err());
    assert!(timeout(QUIET, late.read(&mut buffer)).await.is_err());
    assert_eq!(proxy.stats().to_upstream_bytes, b"before".len() as u64);
    proxy.clear();
    for (stream, expected) in [(&mut stream, b"held"), (&mut late, b"late")] {
        timeout(WAIT, stream.read_exact(&mut buffer))
            .await
            .expect("delivered after the blackhole")
            .expect("read");
        assert_eq!(&buffer, expected);
    }
}

#[tokio::test]
async fn blackhole_applies_backpressure_and_loses_nothing() {
    let echo = echo_server().await;
    let proxy = proxy_to(echo.address).await;
    proxy.set(NetworkCondition::Blackhole);
    let length = 32 << 20;
    let data = pattern(length, 3);
    let (mut reader, mut writer) = connect(&proxy).await.into_split();
    let sent = data.clone();
    let sender = tokio::spawn(async move {
        writer.write_all(&sent).await.expect("send all");
        writer.shutdown().await.expect("shutdown");
    });
    tokio::time::sleep(QUIET).await;
    assert!(!sender.is_finished(), "32 MiB went into a blackhole");
    proxy.clear();
    let mut echoed = Vec::with_capacity(length);
    timeout(WAIT, reader.read_to_end(&mut echoed))
        .await
        .expect("echo in time")
        .expect("echo");
    sender.await.expect("sender");
    assert_eq!(echoed.len(), length);
    assert!(echoed == data, "echo differs from what was sent");
}

#[tokio::test]
async fn reset_ends_open_connections_and_new_ones_work() {
    let echo = echo_server().await;
    let proxy = proxy_to(echo.address).await;
    let mut stream = connect(&proxy).await;
    round_trip(&mut stream, b"before").await;
    proxy.set(NetworkCondition::Reset);
    let mut buffer = [0u8; 16];
    match timeout(WAIT, stream.read(&mut buffer)).await {
        Err(_) => panic!("the connection stayed open after a reset"),
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(count)) => panic!("{count} unexpected bytes after a reset"),
    }
    eventually(&proxy, |stats| stats.connections_reset == 1).await;
    assert_eq!(proxy.condition(), NetworkCondition::Healthy);
    let mut fresh = connect(&proxy).await;
    round_trip(&mut fresh, b"after").await;
    assert_eq!(proxy.stats().connections_reset, 1);
}

#[tokio::test]
async fn fifty_concurrent_connections_pass_through() {
    let echo = echo_server().await;
    let proxy = proxy_to(echo.address).await;
    let mut clients = JoinSet::new();
    for salt in 0..50 {
        let address = proxy.local_addr();
        clients.spawn(async move {
            let stream = TcpStream::connect(address).await.expect("connect");
            let data = pattern(64 * 1024, salt);
            let echoed = echo_all(stream, data.clone()).await;
            assert!(echoed == data, "connection {salt}: echo differs");
        });
    }
    timeout(WAIT, async {
        while let Some(done) = clients.join_next().await {
            done.expect("client");
        }
    })
    .await
    .expect("all clients in time");
    let stats = eventually(&proxy, |stats| stats.connections_open == 0).await;
    assert_eq!(stats.connections_accepted, 50);
    assert_eq!(stats.to_upstream_bytes, 50 * 64 * 1024);
    assert_eq!(stats.to_client_bytes, 50 * 64 * 1024);
}

#[tokio::test]
async fn dropping_the_proxy_closes_its_connections() {
    let echo = echo_server().await;
    let proxy = proxy_to(echo.address).await;
    let address = proxy.local_addr();
    let mut stream = connect(&proxy).await;
    round_trip(&mut stream, b"before").await;
    drop(proxy);
    let mut buffer = [0u8; 16];
    match timeout(WAIT, stream.read(&mut buffer)).await {
        Err(_) => panic!("the connection stayed open after the proxy was dropped"),
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(count)) => panic!("{count} unexpected bytes"),
    }
    let deadline = std::time::Instant::now() + WAIT;
    while TcpStream::connect(address).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "still listening");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_unreachable_upstream_resets_the_client() {
    let closed = TcpListener::bind(any_port()).await.expect("bind");
    let upstream = closed.local_addr().expect("address");
    drop(closed);
    let proxy = proxy_to(upstream).await;
    let mut stream = connect(&proxy).await;
    let mut buffer = [0u8; 16];
    match timeout(WAIT, stream.read(&mut buffer)).await {
        Err(_) => panic!("the client was left hanging"),
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(count)) => panic!("{count} unexpected bytes"),
    }
    eventually(&proxy, |stats| stats.upstream_connect_failures == 1).await;
}

#[tokio::test]
async fn a_port_in_use_is_a_typed_error() {
    let taken = TcpListener::bind(any_port()).await.expect("bind");
    let address = taken.local_addr().expect("address");
    let error = FaultProxy::start("busy", address, address, 1)
        .await
        .expect_err("port in use");
    assert!(matches!(error, ProxyError::Listen { .. }), "{error}");
    assert!(error.to_string().contains("busy"));
}
