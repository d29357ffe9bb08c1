//! The alert webhook a run listens on while it goes (its URL is handed to the pipeline as
//! `ROADTEST_ALERT_WEBHOOK`): every POST is one body of alerts, Alertmanager's payload (version 4)
//! or the plain `{vehicle_id, alert, at}` form ([`crate::alerts::parse_webhook`]). A body that is
//! neither is answered 400 with what is wrong, and counted.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::http::{ReadError, read_request, response};
use crate::alerts::{ReceivedAlert, parse_webhook};

/// The largest body taken (1 MiB: thousands of alerts).
const BODY_MAX: usize = 1 << 20;

/// How many refused posts are kept with their reason.
const ERRORS_KEPT: usize = 5;

/// What the webhook has received so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inbox {
    /// Every firing alert of every accepted post, in arrival order.
    pub received: Vec<ReceivedAlert>,
    /// Posts accepted.
    pub posts: u64,
    /// Posts refused (answered 400).
    pub malformed: u64,
    /// Why the first refused posts were refused.
    pub errors: Vec<String>,
    /// Arrival of the last post, accepted or not, ms since the Unix epoch.
    pub last_post_ms: Option<i64>,
}

/// The webhook's shared state: the server adds, the run reads.
#[derive(Debug, Default)]
pub struct AlertInbox(Mutex<Inbox>);

impl AlertInbox {
    /// What has arrived so far.
    pub fn snapshot(&self) -> Inbox {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Takes one body that arrived at `now_ms`: its alerts, or the reason it is refused.
    fn take(&self, body: Option<&[u8]>, now_ms: i64) -> Result<usize, String> {
        let parsed = match body {
            Some(body) => parse_webhook(body, now_ms).map_err(|error| error.to_string()),
            None => Err(format!(
                "not an HTTP request with a body of at most {BODY_MAX} bytes"
            )),
        };
        let mut inbox = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        inbox.last_post_ms = Some(now_ms);
        match parsed {
            Ok(alerts) => {
                inbox.posts += 1;
                let count = alerts.len();
                inbox.received.extend(alerts);
                Ok(count)
            }
            Err(reason) => {
                inbox.malformed += 1;
                if inbox.errors.len() < ERRORS_KEPT {
                    inbox.errors.push(reason.clone());
                }
                Err(reason)
            }
        }
    }
}

/// Takes alerts posted to any path until the task is dropped or aborted.
pub async fn serve_alerts(listener: TcpListener, inbox: Arc<AlertInbox>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(answer(stream, Arc::clone(&inbox)));
    }
}

async fn answer(mut stream: TcpStream, inbox: Arc<AlertInbox>) {
    let request = match read_request(&mut stream, BODY_MAX).await {
        Err(ReadError::Closed) => return,
        Err(ReadError::Bad) => None,
        Ok(request) => Some(request),
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64);
    let text = "text/plain; charset=utf-8";
    let reply = match &request {
        Some(request) if request.method != "POST" => {
            response("405 Method Not Allowed", text, "POST alerts here\n")
        }
        _ => match inbox.take(request.as_ref().map(|r| r.body.as_slice()), now_ms) {
            Ok(count) => response("200 OK", text, &format!("{count} alerts taken\n")),
            Err(reason) => response("400 Bad Request", text, &format!("{reason}\n")),
        },
    };
    let _ = stream.write_all(reply.as_bytes()).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_bare_connection_is_no_post_and_a_bad_body_gets_400() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("its address");
        let inbox = Arc::new(AlertInbox::default());
        let server = tokio::spawn(serve_alerts(listener, Arc::clone(&inbox)));
        // A port probe: connects, sends nothing, leaves.
        drop(TcpStream::connect(address).await.expect("connect"));
        let mut stream = TcpStream::connect(address).await.expect("connect");
        let body = "{\"alerts\": 3";
        let request = format!(
            "POST /alerts HTTP/1.1\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        let seen = inbox.snapshot();
        assert_eq!((seen.posts, seen.malformed), (0, 1), "{seen:?}");
        server.abort();
    }

    #[test]
    fn a_malformed_body_is_refused_counted_and_explained() {
        let inbox = AlertInbox::default();
        let plain = br#"{"vehicle_id": "v-1", "alert": "speeding", "at": 5}"#;
        assert_eq!(inbox.take(Some(plain), 10), Ok(1));
        assert!(inbox.take(Some(b"{not json"), 11).is_err());
        assert!(inbox.take(None, 12).is_err());
        let seen = inbox.snapshot();
        assert_eq!((seen.posts, seen.malformed, seen.received.len()), (1, 2, 1));
        assert_eq!(seen.received[0].received_at_ms, 10);
        assert_eq!(seen.last_post_ms, Some(12));
        assert_eq!(seen.errors.len(), 2);
        assert!(seen.errors[0].contains("JSON"), "{:?}", seen.errors);
    }
}
