//! End to end: the scylla 1.9.0 driver -> cql-bridge (in-process, ephemeral port) -> a real
//! Apache Cassandra 2.1 (v3 only). Needs Cassandra on ROADTEST_CASSANDRA_NATIVE (default
//! 127.0.0.1:19142) and fails, never skips, when it is not there.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use cql_bridge::{BridgeConfig, spawn_ephemeral};
use futures_util::{StreamExt, TryStreamExt, stream};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::value::{CqlTimestamp, MaybeUnset};

const ROWS: i64 = 5_000;
const PARTITIONS: i64 = 5;
const CONCURRENCY: usize = 64;
const BASE_TS_MS: i64 = 1_700_000_000_000;

fn cassandra_addr() -> SocketAddr {
    let raw =
        std::env::var("ROADTEST_CASSANDRA_NATIVE").unwrap_or_else(|_| "127.0.0.1:19142".into());
    raw.parse()
        .unwrap_or_else(|e| panic!("ROADTEST_CASSANDRA_NATIVE={raw:?} is not an ADDR:PORT: {e}"))
}

/// Fails the test (does not skip) when Cassandra is not listening.
async fn require_cassandra(addr: SocketAddr) {
    let reachable =
        tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr)).await;
    match reachable {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!(
            "Cassandra 2.1 native port {addr} is not reachable ({e}); start it with \
             `roadtest services install && roadtest services up` (or point ROADTEST_CASSANDRA_NATIVE at one)"
        ),
        Err(_) => panic!(
            "Cassandra 2.1 native port {addr} did not answer within 3 s; start it with \
             `roadtest services install && roadtest services up` (or point ROADTEST_CASSANDRA_NATIVE at one)"
        ),
    }
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("cql_bridge=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

async fn connect(bridge: SocketAddr) -> Result<Session> {
    SessionBuilder::new()
        .known_node_addr(bridge)
        .fetch_schema_metadata(false)
        .build()
        .await
        .context("driver session through the bridge")
}

fn seq_of(vehicle: i64, nth: i64) -> i64 {
    nth * PARTITIONS + vehicle
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scylla_driver_through_bridge_against_cassandra_2_1() -> Result<()> {
    init_logs();
    let upstream = cassandra_addr();
    require_cassandra(upstream).await;
    let mut config = BridgeConfig::new(upstream);
    config.advertise_ip = Ipv4Addr::LOCALHOST;
    let bridge = spawn_ephemeral(config).await?;
    let session = connect(bridge.local_addr()).await?;

    // The topology query worked: one node, reached through the bridge.
    let state = session.get_cluster_state();
    let nodes = state.get_nodes_info();
    ensure!(nodes.len() == 1, "expected one node, got {}", nodes.len());
    ensure!(nodes[0].address.ip() == bridge.local_addr().ip());

    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let ks = format!(
        "bridge_e2e_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000
    );
    session
        .query_unpaged(
            format!("CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"),
            &[],
        )
        .await?;
    session
        .query_unpaged(
            format!(
                "CREATE TABLE {ks}.readings (vehicle text, ts timestamp, seq bigint, speed double, \
                 note text, PRIMARY KEY (vehicle, ts)) WITH CLUSTERING ORDER BY (ts DESC)"
            ),
            &[],
        )
        .await?;

    let insert = session
        .prepare(format!(
            "INSERT INTO {ks}.readings (vehicle, ts, seq, speed, note) VALUES (?, ?, ?, ?, ?)"
        ))
        .await?;
    stream::iter(0..ROWS)
        .map(|i| {
            let (session, insert) = (&session, &insert);
            async move {
                let row = (
                    format!("v{}", i % PARTITIONS),
                    CqlTimestamp(BASE_TS_MS + i),
                    i,
                    i as f64 * 0.5,
                    format!("n{i}"),
                );
                session
                    .execute_unpaged(insert, row)
                    .await
                    .with_context(|| format!("insert {i}"))
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_for_each(|_| async { Ok(()) })
        .await?;

    // Paged read of every partition: newest first, every row present and intact.
    let mut select = session
        .prepare(format!(
            "SELECT ts, seq, speed, note FROM {ks}.readings WHERE vehicle = ?"
        ))
        .await?;
    select.set_page_size(97);
    for v in 0..PARTITIONS {
        let rows: Vec<(CqlTimestamp, i64, f64, String)> = session
            .execute_iter(select.clone(), (format!("v{v}"),))
            .await?
            .rows_stream::<(CqlTimestamp, i64, f64, String)>()?
            .try_collect()
            .await?;
        let per = ROWS / PARTITIONS;
        ensure!(
            rows.len() as i64 == per,
            "partition v{v}: {} rows, expected {per}",
            rows.len()
        );
        for (k, (ts, seq, speed, note)) in rows.iter().enumerate() {
            let expected = seq_of(v, per - 1 - k as i64);
            ensure!(
                *seq == expected,
                "partition v{v} row {k}: seq {seq}, expected {expected} (DESC order)"
            );
            ensure!(
                ts.0 == BASE_TS_MS + expected
                    && *speed == expected as f64 * 0.5
                    && *note == format!("n{expected}")
            );
        }
    }

    let (count,): (i64,) = session
        .query_unpaged(format!("SELECT COUNT(*) FROM {ks}.readings"), &[])
        .await?
        .into_rows_result()?
        .single_row()?;
    ensure!(count == ROWS, "COUNT(*) = {count}, expected {ROWS}");

    // Unset values are refused by the bridge and nothing is written.
    let unset = (
        "unset".to_owned(),
        CqlTimestamp(BASE_TS_MS),
        MaybeUnset::Set(1i64),
        MaybeUnset::Set(1.0f64),
        MaybeUnset::<String>::Unset,
    );
    let err = session
        .execute_unpaged(&insert, unset)
        .await
        .expect_err("an unset value must be refused");
    ensure!(
        err.to_string().contains("unset values"),
        "unexpected error: {err}"
    );
    let (count,): (i64,) = session
        .query_unpaged(
            format!("SELECT COUNT(*) FROM {ks}.readings WHERE vehicle = 'unset'"),
            &[],
        )
        .await?
        .into_rows_result()?
        .single_row()?;
    ensure!(count == 0, "the refused row was written");

    session
        .query_unpaged(format!("DROP KEYSPACE {ks}"), &[])
        .await?;
    drop(session);
    bridge.shutdown().await?;
    Ok(())
}
