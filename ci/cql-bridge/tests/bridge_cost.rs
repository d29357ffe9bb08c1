//! Measures the bridge's added cost per request (ignored by default; run with
//! `cargo test --release -p cql-bridge --test bridge_cost -- --ignored --nocapture`):
//! 1. pure translation time of one prepared-INSERT EXECUTE plus its VOID result, in-process;
//! 2. CPU time (utime+stime from /proc/PID/stat) of the `cql-bridge` binary while the scylla
//!    driver runs prepared INSERTs at concurrency 64 through it against Cassandra 2.1
//!    (ROADTEST_CASSANDRA_NATIVE, default 127.0.0.1:19142; ROADTEST_CASSANDRA_PID, if set, adds
//!    Cassandra's own CPU for comparison; ROADTEST_BRIDGE_COST_N sets the request count, default
//!    20,000; CPU time has the kernel's tick resolution, usually 10 ms).

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::{Bytes, BytesMut};
use cql_bridge::frame::{Frame, Header, opcode};
use cql_bridge::translate::Translator;
use futures_util::{StreamExt, TryStreamExt, stream};
use scylla::client::session_builder::SessionBuilder;
use scylla::value::CqlTimestamp;

fn execute_frame() -> Frame {
    let mut b = Vec::new();
    b.extend_from_slice(&16u16.to_be_bytes());
    b.extend_from_slice(&[0xAB; 16]);
    b.extend_from_slice(&[0, 1, 0x01 | 0x20]); // ONE, values, default timestamp
    b.extend_from_slice(&5u16.to_be_bytes());
    for v in [
        &b"v3"[..],
        &[0, 0, 1, 139, 207, 226, 0, 0],
        &[0; 8],
        &[64, 0, 0, 0, 0, 0, 0, 0],
        b"n12345",
    ] {
        b.extend_from_slice(&(v.len() as i32).to_be_bytes());
        b.extend_from_slice(v);
    }
    b.extend_from_slice(&1_700_000_000_000_000i64.to_be_bytes());
    Frame {
        header: Header {
            version: 0x04,
            flags: 0,
            stream: 17,
            opcode: opcode::EXECUTE,
        },
        body: Bytes::from(b),
    }
}

#[test]
#[ignore = "measurement; run explicitly with --release -- --ignored --nocapture"]
fn pure_translation_cost_per_request() {
    let t = Translator::new(Ipv4Addr::LOCALHOST);
    let req = execute_frame();
    let resp = Frame {
        header: Header {
            version: 0x83,
            flags: 0,
            stream: 17,
            opcode: opcode::RESULT,
        },
        body: Bytes::from_static(&[0, 0, 0, 1]),
    };
    let mut up = BytesMut::with_capacity(1 << 20);
    let mut down = BytesMut::with_capacity(1 << 20);
    let n = 2_000_000u32;
    let start = Instant::now();
    for _ in 0..n {
        black_box(t.on_request(black_box(&req), &mut up));
        t.on_response(black_box(&resp), &mut down).unwrap();
        up.clear();
        down.clear();
    }
    let per = start.elapsed().as_nanos() as f64 / f64::from(n);
    println!("pure translation: {per:.0} ns per EXECUTE + VOID result pair ({n} pairs)");
}

fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the ")" of the command name: state is field 3; utime 14, stime 15.
    let rest = stat.rsplit_once(')').context("stat format")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement against Cassandra; run explicitly with --release -- --ignored --nocapture"]
async fn bridge_process_cpu_per_request() -> Result<()> {
    let upstream: SocketAddr = std::env::var("ROADTEST_CASSANDRA_NATIVE")
        .unwrap_or_else(|_| "127.0.0.1:19142".into())
        .parse()?;
    let cassandra_pid: Option<u32> = std::env::var("ROADTEST_CASSANDRA_PID")
        .ok()
        .and_then(|p| p.parse().ok());
    let listen = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cql-bridge"))
        .args([
            "--listen",
            &listen.to_string(),
            "--upstream",
            &upstream.to_string(),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    let result = async {
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(listen).await.is_err() {
            if Instant::now() > deadline {
                bail!("bridge did not listen on {listen}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let session = SessionBuilder::new().known_node_addr(listen).fetch_schema_metadata(false).build().await?;
        let ks = format!("bridge_cost_{}", std::process::id());
        session.query_unpaged(format!("CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"), &[]).await?;
        session.query_unpaged(format!("CREATE TABLE IF NOT EXISTS {ks}.r (v text, ts timestamp, seq bigint, PRIMARY KEY (v, ts))"), &[]).await?;
        let insert = session.prepare(format!("INSERT INTO {ks}.r (v, ts, seq) VALUES (?, ?, ?)")).await?;
        let run = |from: i64, n: i64| {
            let (session, insert) = (&session, &insert);
            stream::iter(from..from + n)
                .map(move |i| async move {
                    session.execute_unpaged(insert, (format!("v{}", i % 16), CqlTimestamp(i), i)).await
                })
                .buffer_unordered(64)
                .try_for_each(|_| async { Ok(()) })
        };
        run(0, 5_000).await?; // warm-up (JIT on the Cassandra side)
        let n: i64 = std::env::var("ROADTEST_BRIDGE_COST_N").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
        let (b0, c0) = (cpu_ticks(child.id())?, cassandra_pid.map(cpu_ticks).transpose()?);
        let start = Instant::now();
        run(1_000_000, n).await?;
        let wall = start.elapsed();
        let (b1, c1) = (cpu_ticks(child.id())?, cassandra_pid.map(cpu_ticks).transpose()?);
        let hz = clock_ticks_per_sec();
        let bridge_s = (b1 - b0) as f64 / hz;
        println!(
            "{n} prepared INSERTs at concurrency 64 in {:.2} s ({:.0}/s); bridge process CPU {:.3} s = {:.1} us per request",
            wall.as_secs_f64(),
            n as f64 / wall.as_secs_f64(),
            bridge_s,
            bridge_s * 1e6 / n as f64
        );
        if let (Some(c0), Some(c1)) = (c0, c1) {
            let cass_s = (c1 - c0) as f64 / hz;
            println!(
                "Cassandra CPU {cass_s:.3} s = {:.1} us per request; bridge/Cassandra = {:.1}%",
                cass_s * 1e6 / n as f64,
                100.0 * bridge_s / cass_s
            );
        }
        session.query_unpaged(format!("DROP KEYSPACE {ks}"), &[]).await?;
        Ok(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}
