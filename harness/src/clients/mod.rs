//! Thin, shared setup of the real clients: Kafka (rdkafka) and CQL (scylla), with bounded waits for each service.

pub mod cql;
pub mod kafka;
mod kafka_group;
pub mod pg;
pub mod security;

pub use security::{CqlConnection, KafkaConnection};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A driver's error, kept whole (with its own sources) inside a [`ClientError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A service could not be used; the message names the service, its address and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "{service} at {address} did not answer within {waited:?} (last error: {last_error}); \
         is it running, and are the address and the security settings right? For the local \
         services: `roadtest services up`"
    )]
    Unreachable {
        service: &'static str,
        address: String,
        waited: Duration,
        last_error: String,
    },
    #[error(
        "{service} at {address} refused the connection: {message}; check the user name, its \
         password (ROADTEST_CQL_PASSWORD / ROADTEST_KAFKA_PASSWORD) and the TLS files"
    )]
    Refused {
        service: &'static str,
        address: String,
        message: String,
    },
    #[error("Kafka at {address}: {what}: {source}")]
    Kafka {
        address: String,
        what: String,
        #[source]
        source: BoxError,
    },
    #[error("Cassandra at {address}: {what}: {source}")]
    Cql {
        address: String,
        what: String,
        #[source]
        source: BoxError,
    },
    #[error("PostgreSQL at {address}: {what}: {source}")]
    Postgres {
        address: String,
        what: String,
        #[source]
        source: BoxError,
    },
    #[error(transparent)]
    Security(#[from] security::SecurityError),
}

/// A suffix unique to this run: milliseconds since the epoch in base 36 plus the pid.
pub fn unique_suffix() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    format!(
        "{}_{}",
        base36(millis),
        base36(u64::from(std::process::id()))
    )
}

fn base36(mut value: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(value % 36) as usize]);
        value /= 36;
        if value == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Retries `attempt` with backoff (20 ms growing to 1 s) until it succeeds or `deadline` passes.
pub(crate) async fn retry<T, E: std::fmt::Display, F, Fut>(
    deadline: Duration,
    attempt: F,
) -> Result<T, (Duration, String)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    retry_unless(deadline, attempt, |_| false).await
}

/// [`retry`], but an error for which `hopeless` holds (bad credentials, say) ends it at once.
pub(crate) async fn retry_unless<T, E: std::fmt::Display, F, Fut>(
    deadline: Duration,
    mut attempt: F,
    hopeless: impl Fn(&E) -> bool,
) -> Result<T, (Duration, String)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let started = tokio::time::Instant::now();
    let mut backoff = Duration::from_millis(20);
    loop {
        // Each attempt is bounded too: a client that never answers must not outlive the deadline.
        let remaining = deadline
            .saturating_sub(started.elapsed())
            .max(Duration::from_secs(1));
        let outcome = tokio::time::timeout(remaining, attempt()).await;
        let Ok(outcome) = outcome else {
            let waited = started.elapsed();
            return Err((waited, format!("no answer within {waited:?}")));
        };
        match outcome {
            Ok(value) => return Ok(value),
            Err(error) if hopeless(&error) || started.elapsed() + backoff >= deadline => {
                return Err((started.elapsed(), error.to_string()));
            }
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_identifiers() {
        let suffix = unique_suffix();
        assert!(
            suffix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        );
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
    }
}
