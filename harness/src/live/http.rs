//! A minimal HTTP/1.1 responder for `GET /metrics`: one request per connection, then close.
//! Prometheus needs nothing more, and it keeps a web framework out of the binary.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The content type of the OpenMetrics text prometheus-client writes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics address could not be listened on.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot serve metrics on {address}: {source} (is another roadtest or exporter using the port? \
     choose another with --metrics-listen, or port 0 for any free one)"
)]
pub struct MetricsError {
    pub address: SocketAddr,
    pub source: std::io::Error,
}

/// Listens on `address` (port 0: any free port; the listener knows which).
pub async fn bind(address: SocketAddr) -> Result<TcpListener, MetricsError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| MetricsError { address, source })
}

/// Serves `registry` at `/metrics` (404 elsewhere) until the task is dropped or aborted.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(answer(stream, Arc::clone(&registry)));
    }
}

async fn answer(mut stream: TcpStream, registry: Arc<Registry>) {
    let response = match read_request(&mut stream, 0).await {
        Ok(request) if request.method == "GET" && request.path == "/metrics" => {
            response("200 OK", CONTENT_TYPE, &super::text(&registry))
        }
        _ => response(
            "404 Not Found",
            "text/plain; charset=utf-8",
            "roadtest serves its metrics at GET /metrics\n",
        ),
    };
    let _ = stream.write_all(response.as_bytes()).await;
}

/// One HTTP request as read: its method, its path without the query, and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Request {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) body: Vec<u8>,
}

/// The largest request head read (a larger one is cut there and fails to parse).
const HEAD_MAX: usize = 16 * 1024;

/// Why no request was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadError {
    /// The peer closed the connection before sending a byte (a port probe): nothing to answer.
    Closed,
    /// Not an HTTP request, cut short, or a body over the limit.
    Bad,
}

/// Reads one request: the head, then up to `body_max` bytes of body (`content-length`; a longer
/// body is [`ReadError::Bad`]).
pub(super) async fn read_request(
    stream: &mut TcpStream,
    body_max: usize,
) -> Result<Request, ReadError> {
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buffer.len() >= HEAD_MAX {
            return Err(ReadError::Bad);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) if buffer.is_empty() => return Err(ReadError::Closed),
            Ok(0) | Err(_) => return Err(ReadError::Bad),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let (method, path) = request_line(&head).ok_or(ReadError::Bad)?;
    let length = content_length(&head).unwrap_or(0);
    if length > body_max {
        return Err(ReadError::Bad);
    }
    let mut body = buffer.split_off(head_end);
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(ReadError::Bad),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(length);
    Ok(Request { method, path, body })
}

/// The method and the path (without its query) of a request line.
fn request_line(head: &str) -> Option<(String, String)> {
    let mut words = head.lines().next()?.split(' ');
    let (method, target) = (words.next()?, words.next()?);
    let path = target.split('?').next()?;
    Some((method.to_string(), path.to_string()))
}

/// The `content-length` of a request head, if it has one.
fn content_length(head: &str) -> Option<usize> {
    head.lines().skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}

pub(super) fn response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_line_and_length_are_read_from_the_head() {
        let line = |head: &str| request_line(head).map(|(m, p)| format!("{m} {p}"));
        assert_eq!(
            line("GET /metrics?x=1 HTTP/1.1\r\n").as_deref(),
            Some("GET /metrics")
        );
        assert_eq!(line(""), None);
        let head = "POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n";
        assert_eq!(content_length(head), Some(12));
        assert_eq!(content_length("GET / HTTP/1.1\r\n\r\n"), None);
    }

    #[tokio::test]
    async fn serves_the_registry_over_loopback() {
        let listener = bind("127.0.0.1:0".parse().expect("an address"))
            .await
            .expect("bind");
        let address = listener.local_addr().expect("its address");
        let metrics = super::super::RunMetrics::new();
        metrics.progress(super::super::LiveProgress {
            produced: 7,
            ..Default::default()
        });
        let task = tokio::spawn(serve(listener, metrics.registry()));
        let get = |path: &'static str| async move {
            let mut stream = TcpStream::connect(address).await.expect("connect");
            let request = format!("GET {path} HTTP/1.1\r\nhost: roadtest\r\n\r\n");
            stream.write_all(request.as_bytes()).await.expect("send");
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.expect("read");
            answer
        };
        let metrics_page = get("/metrics").await;
        assert!(
            metrics_page.starts_with("HTTP/1.1 200 OK"),
            "{metrics_page}"
        );
        assert!(
            metrics_page.contains("\nroadtest_events_produced_total 7\n"),
            "{metrics_page}"
        );
        assert!(get("/").await.starts_with("HTTP/1.1 404"));
        task.abort();
    }

    #[tokio::test]
    async fn a_port_in_use_is_named_in_the_error() {
        let taken = bind("127.0.0.1:0".parse().expect("an address"))
            .await
            .expect("bind");
        let address = taken.local_addr().expect("its address");
        let error = bind(address).await.expect_err("the port is taken");
        assert!(error.to_string().contains(&address.to_string()), "{error}");
    }
}
