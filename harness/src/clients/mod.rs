//! Thin, shared setup of the real clients: Kafka (rdkafka) and CQL (scylla), with bounded waits for each service.

pub mod cql;
pub mod kafka;
mod kafka_group;
pub mod pg;
pub mod pg_table;
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
         password (ROADTEST_CQL_PASSWORD / ROADTEST_KAFKA_PASSWORD / ROADTEST_POSTGRES_PASSWORD) \
         and the TLS files"
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

impl ClientError {
    /// What a connection that [`retry_unless`] gave up on says: `Refused` when its last error
    /// was one that waiting does not mend (`refused`), else `Unreachable`.
    pub(crate) fn gave_up(
        service: &'static str,
        address: String,
        (waited, last_error): (Duration, String),
        refused: impl Fn(&str) -> bool,
    ) -> ClientError {
        if refused(&last_error) {
            ClientError::Refused {
                service,
                address,
                message: last_error,
            }
        } else {
            ClientError::Unreachable {
                service,
                address,
                waited,
                last_error,
            }
        }
    }
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

/// The longest one attempt may take. An attempt that hangs (a connection the server accepted and
/// never answered, as a database's can while it restarts) is abandoned and made again, instead of
/// using up the whole deadline: every attempt of roadtest's own is far shorter.
const ATTEMPT_MAX: Duration = Duration::from_secs(20);

/// [`retry`], but an error for which `hopeless` holds (bad credentials, say) ends it at once.
pub(crate) async fn retry_unless<T, E: std::fmt::Display, F, Fut>(
    deadline: Duration,
    attempt: F,
    hopeless: impl Fn(&E) -> bool,
) -> Result<T, (Duration, String)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    retry_bounded(deadline, ATTEMPT_MAX, attempt, hopeless).await
}

/// [`retry_unless`] with each attempt bounded to `attempt_max`.
async fn retry_bounded<T, E: std::fmt::Display, F, Fut>(
    deadline: Duration,
    attempt_max: Duration,
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
            .max(Duration::from_secs(1))
            .min(attempt_max);
        let last_error = match tokio::time::timeout(remaining, attempt()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) if hopeless(&error) => {
                return Err((started.elapsed(), error.to_string()));
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("an attempt got no answer within {remaining:?}"),
        };
        if started.elapsed() + backoff >= deadline {
            return Err((started.elapsed(), last_error));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn an_attempt_that_hangs_is_abandoned_and_made_again() {
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let outcome = super::retry_bounded(
            std::time::Duration::from_secs(5),
            std::time::Duration::from_millis(50),
            || async {
                if attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0 {
                    std::future::pending::<()>().await;
                }
                Ok::<_, String>("answered")
            },
            |_| false,
        )
        .await;
        assert_eq!(outcome, Ok("answered"));
        assert_eq!(attempts.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_deadline_that_passes_while_attempts_hang_says_so() {
        let outcome = super::retry_bounded(
            std::time::Duration::from_millis(200),
            std::time::Duration::from_millis(50),
            std::future::pending::<Result<(), String>>,
            |_| false,
        )
        .await;
        let (_, last_error) = outcome.expect_err("nothing ever answers");
        assert!(last_error.contains("no answer"), "{last_error}");
    }

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
