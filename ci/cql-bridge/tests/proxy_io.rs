//! I/O-layer tests against a scripted in-process v3 server (no Cassandra needed): pipelining,
//! bridge-made error replies, per-connection isolation of malformed/oversized/truncated
//! frames, and upstream connect failure.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cql_bridge::frame::{error_code, opcode};
use cql_bridge::{BridgeConfig, BridgeHandle, spawn_ephemeral};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const T: Duration = Duration::from_secs(5);

/// (version, opcode, stream) of every frame the mock server received.
type Log = Arc<Mutex<Vec<(u8, u8, i16)>>>;

fn frame(version: u8, stream: i16, op: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![version, 0];
    f.extend_from_slice(&stream.to_be_bytes());
    f.push(op);
    f.extend_from_slice(&(body.len() as u32).to_be_bytes());
    f.extend_from_slice(body);
    f
}

async fn read_frame(s: &mut TcpStream) -> Option<(u8, u8, i16, Vec<u8>)> {
    let mut h = [0u8; 9];
    tokio::time::timeout(T, s.read_exact(&mut h))
        .await
        .ok()?
        .ok()?;
    let len = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) as usize;
    let mut body = vec![0; len];
    tokio::time::timeout(T, s.read_exact(&mut body))
        .await
        .ok()?
        .ok()?;
    Some((h[0], h[4], i16::from_be_bytes([h[2], h[3]]), body))
}

/// Scripted v3 server: OPTIONS -> SUPPORTED; QUERY is held until a QUERY with text "FLUSH",
/// which answers all held ones (VOID) in reverse order, then itself.
async fn mock_server(log: Log) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut held = Vec::new();
                while let Some((version, op, stream, body)) = read_frame(&mut s).await {
                    log.lock().unwrap().push((version, op, stream));
                    let void = [0u8, 0, 0, 1];
                    match op {
                        opcode::OPTIONS => {
                            let mut b = vec![0, 1, 0, 11];
                            b.extend_from_slice(b"COMPRESSION");
                            b.extend_from_slice(&[0, 1, 0, 3]);
                            b.extend_from_slice(b"lz4");
                            s.write_all(&frame(0x83, stream, opcode::SUPPORTED, &b))
                                .await
                                .unwrap();
                        }
                        opcode::QUERY if body.get(4..9) == Some(b"FLUSH") => {
                            for held_stream in held.drain(..).rev() {
                                s.write_all(&frame(0x83, held_stream, opcode::RESULT, &void))
                                    .await
                                    .unwrap();
                            }
                            s.write_all(&frame(0x83, stream, opcode::RESULT, &void))
                                .await
                                .unwrap();
                        }
                        opcode::QUERY => held.push(stream),
                        _ => s
                            .write_all(&frame(0x83, stream, opcode::READY, &[]))
                            .await
                            .unwrap(),
                    }
                }
            });
        }
    });
    addr
}

async fn bridge_to_mock(max_frame_bytes: usize) -> (BridgeHandle, Log) {
    let log: Log = Arc::default();
    let upstream = mock_server(Arc::clone(&log)).await;
    let mut config = BridgeConfig::new(upstream);
    config.max_frame_bytes = max_frame_bytes;
    (spawn_ephemeral(config).await.unwrap(), log)
}

fn query(text: &str, values: &[i32]) -> Vec<u8> {
    let mut b = (text.len() as i32).to_be_bytes().to_vec();
    b.extend_from_slice(text.as_bytes());
    b.extend_from_slice(&[0, 1, if values.is_empty() { 0 } else { 1 }]);
    if !values.is_empty() {
        b.extend_from_slice(&(values.len() as u16).to_be_bytes());
        for v in values {
            b.extend_from_slice(&4i32.to_be_bytes());
            b.extend_from_slice(&v.to_be_bytes());
        }
    }
    b
}

fn error_code_of(body: &[u8]) -> i32 {
    i32::from_be_bytes([body[0], body[1], body[2], body[3]])
}

async fn assert_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(T, s.read(&mut buf))
        .await
        .expect("close within 5 s");
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "connection should be closed, read {n:?}"
    );
}

#[tokio::test]
async fn requests_are_pipelined_and_responses_rewritten() {
    let (bridge, log) = bridge_to_mock(1 << 20).await;
    let mut c = TcpStream::connect(bridge.local_addr()).await.unwrap();
    let mut burst = Vec::new();
    for stream in 0..10 {
        burst.extend(frame(
            0x04,
            stream,
            opcode::QUERY,
            &query("INSERT x", &[stream.into()]),
        ));
    }
    burst.extend(frame(0x04, 10, opcode::QUERY, &query("FLUSH", &[])));
    c.write_all(&burst).await.unwrap();
    // The server answers only after it has all 11 requests: a bridge that waited for each
    // response before forwarding the next request would time out here.
    let mut streams = Vec::new();
    for _ in 0..11 {
        let (version, op, stream, _) = read_frame(&mut c).await.expect("response");
        assert_eq!((version, op), (0x84, opcode::RESULT));
        streams.push(stream);
    }
    assert_eq!(streams, [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 10]);
    assert!(log.lock().unwrap().iter().all(|(v, _, _)| *v == 0x03));

    c.write_all(&frame(0x04, 11, opcode::OPTIONS, &[]))
        .await
        .unwrap();
    let (_, op, _, body) = read_frame(&mut c).await.unwrap();
    assert_eq!(
        (op, &body[..]),
        (
            opcode::SUPPORTED,
            &[
                0, 1, 0, 11, b'C', b'O', b'M', b'P', b'R', b'E', b'S', b'S', b'I', b'O', b'N', 0, 0
            ][..]
        )
    );
    bridge.shutdown().await.unwrap();
}

#[tokio::test]
async fn refusals_are_answered_by_the_bridge_without_forwarding() {
    let (bridge, log) = bridge_to_mock(1 << 20).await;
    let mut c = TcpStream::connect(bridge.local_addr()).await.unwrap();
    // Unset value in a QUERY.
    let mut q = query("INSERT y", &[]);
    q.truncate(q.len() - 1);
    q.extend_from_slice(&[1, 0, 1, 0xff, 0xff, 0xff, 0xfe]);
    c.write_all(&frame(0x04, 1, opcode::QUERY, &q))
        .await
        .unwrap();
    let (v, op, stream, body) = read_frame(&mut c).await.unwrap();
    assert_eq!(
        (v, op, stream, error_code_of(&body)),
        (0x84, opcode::ERROR, 1, error_code::INVALID)
    );
    // Custom payload flag.
    let mut f = frame(0x04, 2, opcode::QUERY, &query("SELECT 1", &[]));
    f[1] = 0x04;
    c.write_all(&f).await.unwrap();
    let (_, op, stream, body) = read_frame(&mut c).await.unwrap();
    assert_eq!(
        (op, stream, error_code_of(&body)),
        (opcode::ERROR, 2, error_code::PROTOCOL)
    );
    // Still usable, and the server never saw the refused frames.
    c.write_all(&frame(0x04, 3, opcode::OPTIONS, &[]))
        .await
        .unwrap();
    assert_eq!(read_frame(&mut c).await.unwrap().1, opcode::SUPPORTED);
    assert_eq!(*log.lock().unwrap(), vec![(0x03, opcode::OPTIONS, 3)]);
    bridge.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_frames_close_only_their_own_connection() {
    let (bridge, _log) = bridge_to_mock(1024).await;
    let mut healthy = TcpStream::connect(bridge.local_addr()).await.unwrap();
    healthy
        .write_all(&frame(0x04, 0, opcode::OPTIONS, &[]))
        .await
        .unwrap();
    assert_eq!(read_frame(&mut healthy).await.unwrap().1, opcode::SUPPORTED);

    // Malformed body: protocol error, then close.
    let mut bad = TcpStream::connect(bridge.local_addr()).await.unwrap();
    bad.write_all(&frame(0x04, 5, opcode::QUERY, &[0, 0, 0, 99, b'x']))
        .await
        .unwrap();
    let (_, op, stream, body) = read_frame(&mut bad).await.unwrap();
    assert_eq!(
        (op, stream, error_code_of(&body)),
        (opcode::ERROR, 5, error_code::PROTOCOL)
    );
    assert_closed(&mut bad).await;

    // Oversized: refused from the header alone.
    let mut big = TcpStream::connect(bridge.local_addr()).await.unwrap();
    big.write_all(&[0x04, 0, 0, 6, opcode::QUERY, 0, 0, 0x08, 0])
        .await
        .unwrap();
    let (_, op, stream, _) = read_frame(&mut big).await.unwrap();
    assert_eq!((op, stream), (opcode::ERROR, 6));
    assert_closed(&mut big).await;

    // Wrong protocol version (a v3 client).
    let mut v3 = TcpStream::connect(bridge.local_addr()).await.unwrap();
    v3.write_all(&frame(0x03, 7, opcode::OPTIONS, &[]))
        .await
        .unwrap();
    assert_eq!(read_frame(&mut v3).await.unwrap().1, opcode::ERROR);
    assert_closed(&mut v3).await;

    // Truncated: half a header, then EOF.
    let mut cut = TcpStream::connect(bridge.local_addr()).await.unwrap();
    cut.write_all(&[0x04, 0, 0]).await.unwrap();
    cut.shutdown().await.unwrap();
    assert_closed(&mut cut).await;

    healthy
        .write_all(&frame(0x04, 1, opcode::OPTIONS, &[]))
        .await
        .unwrap();
    assert_eq!(read_frame(&mut healthy).await.unwrap().1, opcode::SUPPORTED);
    bridge.shutdown().await.unwrap();
}

#[tokio::test]
async fn unreachable_upstream_closes_the_client() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let bridge = spawn_ephemeral(BridgeConfig::new(port)).await.unwrap();
    let mut c = TcpStream::connect(bridge.local_addr()).await.unwrap();
    let _ = c.write_all(&frame(0x04, 0, opcode::OPTIONS, &[])).await;
    assert_closed(&mut c).await;
    bridge.shutdown().await.unwrap();
}
