//! Signals that ask a roadtest process to stop: the future every long-running command selects on.

/// Resolves when SIGTERM or Ctrl-C (SIGINT) arrives; only Ctrl-C if SIGTERM cannot be watched.
pub async fn termination() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
