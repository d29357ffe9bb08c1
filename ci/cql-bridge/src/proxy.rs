//! The thin tokio I/O layer: accepts client connections, opens one upstream connection per
//! client, and pumps frames both ways through a [`Translator`] with requests and responses
//! pipelined (any number of streams in flight). Write batching: a buffer is flushed once no
//! further complete frame is already buffered.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{Instrument, debug, error, info_span, warn};

use crate::BridgeConfig;
use crate::frame::{self, Direction, FrameError, error_code};
use crate::translate::{RequestAction, Translator};

/// How long to wait for the upstream TCP connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to keep relaying responses after the client closed its side.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Read chunk / write batch size.
const CHUNK: usize = 64 * 1024;

/// Messages from the request pump to the client writer.
#[derive(Debug)]
enum ToClient {
    /// A bridge-generated ERROR frame.
    Frame(Bytes),
    /// Flush and close the client connection.
    Close,
}

/// How a pump ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    ClientClosed,
    UpstreamClosed,
    ClosedByBridge,
}

/// Accepts connections until `shutdown` resolves, then aborts the open ones.
pub(crate) async fn serve_until(
    listener: TcpListener,
    config: BridgeConfig,
    shutdown: impl Future<Output = ()>,
) {
    let config = Arc::new(config);
    let mut conns = JoinSet::new();
    let mut next_id: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    next_id += 1;
                    let span = info_span!("conn", id = next_id, %peer);
                    conns.spawn(handle_connection(socket, Arc::clone(&config)).instrument(span));
                }
                Err(e) => {
                    // EMFILE and friends are transient: back off instead of spinning.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(joined) = conns.join_next(), if !conns.is_empty() => {
                if let Err(e) = joined
                    && e.is_panic()
                {
                    error!("connection task panicked: {e}");
                }
            }
        }
    }
    conns.shutdown().await;
}

async fn handle_connection(client: TcpStream, config: Arc<BridgeConfig>) {
    let upstream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(config.upstream))
        .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            warn!(upstream = %config.upstream, "closing client connection: cannot connect upstream: {e}");
            return;
        }
        Err(_) => {
            warn!(upstream = %config.upstream, "closing client connection: upstream connect timed out after {CONNECT_TIMEOUT:?}");
            return;
        }
    };
    // Latency matters more than packet count for a request/response protocol.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    debug!(upstream = %config.upstream, "connected");

    let translator = Translator::new(config.advertise_ip);
    let (client_rd, client_wr) = client.into_split();
    let (up_rd, up_wr) = upstream.into_split();
    let (tx, rx) = mpsc::channel(256);
    let max = config.max_frame_bytes;

    let requests = pump_requests(client_rd, up_wr, &translator, tx, max);
    let responses = pump_responses(up_rd, client_wr, &translator, rx, max);
    tokio::pin!(requests, responses);
    let outcome = tokio::select! {
        r = &mut requests => {
            if matches!(r, Ok(_) | Err((End::ClosedByBridge, _))) {
                // The client finished sending, or the bridge refused its stream: keep relaying
                // responses (and deliver the bridge's error reply) until upstream is done.
                match tokio::time::timeout(DRAIN_TIMEOUT, &mut responses).await {
                    Ok(Err((_, reason))) => warn!("while draining responses: {reason}"),
                    Ok(Ok(_)) => {}
                    Err(_) => debug!("stopped draining responses after {DRAIN_TIMEOUT:?}"),
                }
            }
            r
        }
        r = &mut responses => r,
    };
    match outcome {
        Ok(end) => debug!(?end, "connection closed"),
        Err((_, reason)) => warn!("connection closed: {reason}"),
    }
}

type PumpResult = Result<End, (End, String)>;

fn bridge_close(reason: impl Into<String>) -> PumpResult {
    Err((End::ClosedByBridge, reason.into()))
}

/// Client -> upstream: decode v4 frames, translate, forward v3 frames; bridge-made replies go
/// to the client writer through `tx`.
async fn pump_requests(
    mut rd: OwnedReadHalf,
    mut wr: OwnedWriteHalf,
    translator: &Translator,
    tx: mpsc::Sender<ToClient>,
    max: usize,
) -> PumpResult {
    let mut inbuf = BytesMut::with_capacity(CHUNK);
    let mut out = BytesMut::with_capacity(CHUNK);
    let upstream_err = |e: std::io::Error| (End::UpstreamClosed, format!("write upstream: {e}"));
    loop {
        loop {
            let frame = match frame::decode_frame(&mut inbuf, Direction::Request, max) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    wr.write_all(&out).await.map_err(upstream_err)?;
                    let reply = match &e {
                        FrameError::BadVersion { stream, .. }
                        | FrameError::TooLarge { stream, .. } => Some(frame::error_frame(
                            *stream,
                            error_code::PROTOCOL,
                            &e.to_string(),
                        )),
                        FrameError::Truncated { .. } => None,
                    };
                    close_client(&tx, reply).await;
                    return bridge_close(format!("bad client frame: {e}"));
                }
            };
            match translator.on_request(&frame, &mut out) {
                RequestAction::Forwarded => {
                    if out.len() >= CHUNK {
                        wr.write_all(&out).await.map_err(upstream_err)?;
                        out.clear();
                    }
                }
                RequestAction::Reply(reply) => {
                    if tx.send(ToClient::Frame(reply)).await.is_err() {
                        return Ok(End::ClosedByBridge);
                    }
                }
                RequestAction::Close { reply, reason } => {
                    wr.write_all(&out).await.map_err(upstream_err)?;
                    close_client(&tx, reply).await;
                    return bridge_close(reason);
                }
            }
        }
        if !out.is_empty() {
            wr.write_all(&out).await.map_err(upstream_err)?;
            out.clear();
        }
        if inbuf.capacity() - inbuf.len() < CHUNK / 4 {
            inbuf.reserve(CHUNK);
        }
        let n = rd
            .read_buf(&mut inbuf)
            .await
            .map_err(|e| (End::ClientClosed, format!("read from client: {e}")))?;
        if n == 0 {
            if let Err(e) = frame::check_eof(&inbuf) {
                return Err((End::ClientClosed, format!("client frame: {e}")));
            }
            let _ = wr.shutdown().await;
            return Ok(End::ClientClosed);
        }
    }
}

async fn close_client(tx: &mpsc::Sender<ToClient>, reply: Option<Bytes>) {
    if let Some(reply) = reply {
        let _ = tx.send(ToClient::Frame(reply)).await;
    }
    let _ = tx.send(ToClient::Close).await;
}

/// Translates every whole v3 frame in `inbuf` into `out` (v4), writing `out` to the client
/// whenever it fills a chunk. A frame the bridge cannot read or translate ends the connection.
async fn translate_buffered(
    inbuf: &mut BytesMut,
    out: &mut BytesMut,
    wr: &mut OwnedWriteHalf,
    translator: &Translator,
    max: usize,
) -> Result<(), (End, String)> {
    loop {
        let frame = match frame::decode_frame(inbuf, Direction::Response, max) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(()),
            Err(e) => {
                let _ = wr.write_all(out).await;
                let _ = wr.shutdown().await;
                return Err((End::UpstreamClosed, format!("bad server frame: {e}")));
            }
        };
        if let Err(reason) = translator.on_response(&frame, out) {
            let _ = wr.write_all(out).await;
            let _ = wr.shutdown().await;
            return Err((End::UpstreamClosed, reason));
        }
        if out.len() >= CHUNK {
            wr.write_all(out)
                .await
                .map_err(|e| (End::ClientClosed, format!("write to client: {e}")))?;
            out.clear();
        }
    }
}

/// Upstream -> client: decode v3 frames, translate to v4, and interleave the bridge's own
/// replies from `rx`.
async fn pump_responses(
    mut rd: OwnedReadHalf,
    mut wr: OwnedWriteHalf,
    translator: &Translator,
    mut rx: mpsc::Receiver<ToClient>,
    max: usize,
) -> PumpResult {
    let mut inbuf = BytesMut::with_capacity(CHUNK);
    let mut out = BytesMut::with_capacity(CHUNK);
    let client_err = |e: std::io::Error| (End::ClientClosed, format!("write to client: {e}"));
    let mut rx_open = true;
    loop {
        translate_buffered(&mut inbuf, &mut out, &mut wr, translator, max).await?;
        while let Ok(msg) = rx.try_recv() {
            match msg {
                ToClient::Frame(f) => out.extend_from_slice(&f),
                ToClient::Close => {
                    wr.write_all(&out).await.map_err(client_err)?;
                    let _ = wr.shutdown().await;
                    return Ok(End::ClosedByBridge);
                }
            }
        }
        if !out.is_empty() {
            wr.write_all(&out).await.map_err(client_err)?;
            out.clear();
        }
        if inbuf.capacity() - inbuf.len() < CHUNK / 4 {
            inbuf.reserve(CHUNK);
        }
        tokio::select! {
            msg = rx.recv(), if rx_open => match msg {
                Some(ToClient::Frame(f)) => out.extend_from_slice(&f),
                Some(ToClient::Close) => {
                    let _ = wr.shutdown().await;
                    return Ok(End::ClosedByBridge);
                }
                None => rx_open = false,
            },
            n = rd.read_buf(&mut inbuf) => {
                let n = n.map_err(|e| (End::UpstreamClosed, format!("read from upstream: {e}")))?;
                if n == 0 {
                    let _ = wr.shutdown().await;
                    if let Err(e) = frame::check_eof(&inbuf) {
                        return Err((End::UpstreamClosed, format!("server frame: {e}")));
                    }
                    debug!("upstream closed the connection");
                    return Ok(End::UpstreamClosed);
                }
            }
        }
    }
}
