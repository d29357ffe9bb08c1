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
    // Read the request head (bounded), then answer by its path.
    let mut request = [0u8; 4096];
    let mut read = 0;
    while read < request.len() {
        match stream.read(&mut request[read..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
        if request[..read].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&request[..read]);
    let response = match request_path(&head) {
        Some("/metrics") => response("200 OK", CONTENT_TYPE, &super::text(&registry)),
        _ => response(
            "404 Not Found",
            "text/plain; charset=utf-8",
            "roadtest serves its metrics at /metrics\n",
        ),
    };
    let _ = stream.write_all(response.as_bytes()).await;
}

/// The path of a `GET` request line, without its query.
fn request_path(head: &str) -> Option<&str> {
    let mut words = head.lines().next()?.split(' ');
    let (method, target) = (words.next()?, words.next()?);
    let path = target.split('?').next()?;
    (method == "GET").then_some(path)
}

fn response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_get_of_metrics_is_answered_with_metrics() {
        assert_eq!(
            request_path("GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n"),
            Some("/metrics")
        );
        assert_eq!(
            request_path("GET /metrics?x=1 HTTP/1.1\r\n"),
            Some("/metrics")
        );
        assert_eq!(request_path("POST /metrics HTTP/1.1\r\n"), None);
        assert_eq!(request_path(""), None);
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
