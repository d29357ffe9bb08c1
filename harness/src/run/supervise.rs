//! The consumer's supervisor: a consumer under test that exits on its own during the run is
//! reported, and with `pipeline.consumer.restart = "on-failure"` started again, as systemd or
//! Kubernetes would restart it.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::scenario::RestartPolicy;
use crate::targets::{Role, Target};

/// How long after an exit the consumer is started again (a crash loop stays slow).
const RESTART_AFTER: Duration = Duration::from_secs(1);

/// Watches the consumer's exits across the producing phase and the drain.
#[derive(Debug)]
pub(super) struct Supervisor {
    policy: RestartPolicy,
    run_start: Instant,
    restarts: i64,
    /// What the report's errors say of each exit.
    errors: Vec<String>,
    /// An exit seen and reported, and when the restart is due (None: not restarted).
    pending: Option<(ExitStatus, Option<Instant>)>,
}

impl Supervisor {
    pub(super) fn new(policy: RestartPolicy, run_start: Instant) -> Supervisor {
        Supervisor {
            policy,
            run_start,
            restarts: 0,
            errors: Vec::new(),
            pending: None,
        }
    }

    /// What the report's errors say of the consumer's exits since the last call, in order.
    pub(super) fn take_errors(&mut self) -> Vec<String> {
        std::mem::take(&mut self.errors)
    }

    /// One look at the consumer: a new exit of its own is noted for the report, and started
    /// again when the policy says so and its time has come. Returns whether the consumer is
    /// down for good (exited, and no restart is coming).
    pub(super) async fn look(&mut self, target: &mut Target) -> bool {
        let errors = &mut self.errors;
        if self.pending.is_none()
            && let Some(status) = target.consumer_exited()
        {
            let elapsed_s = self.run_start.elapsed().as_secs_f64();
            let restart = restarts_on(self.policy, self.restarts, status);
            let next = if restart {
                "; started again (pipeline.consumer.restart = \"on-failure\")".to_string()
            } else if self.policy == RestartPolicy::OnFailure && !status.success() {
                format!(
                    "; not started again: it was restarted {} times",
                    self.restarts
                )
            } else {
                String::new()
            };
            errors.push(exit_error(target, status, elapsed_s, &next));
            let due = restart.then(|| Instant::now() + RESTART_AFTER);
            self.pending = Some((status, due));
        }
        match self.pending {
            None => false,
            Some((_, None)) => true,
            Some((_, Some(due))) if Instant::now() < due => false,
            Some((status, Some(_))) => {
                self.restarts += 1;
                self.pending = None;
                if let Err(error) = target.restart(Role::Consumer).await {
                    errors.push(format!(
                        "the consumer could not be started again after it exited ({status}): \
                         {error}"
                    ));
                    self.pending = Some((status, None));
                    return true;
                }
                false
            }
        }
    }
}

/// Whether an exit with `status`, after `restarts` restarts, is followed by another.
fn restarts_on(policy: RestartPolicy, restarts: i64, status: ExitStatus) -> bool {
    policy == RestartPolicy::OnFailure && !status.success() && restarts < RestartPolicy::RETRIES_MAX
}

/// The report's words for a consumer that exited on its own: when, how, what follows, and the
/// end of its log.
fn exit_error(target: &Target, status: ExitStatus, elapsed_s: f64, next: &str) -> String {
    let log = target.dir().join("consumer.log");
    let tail = crate::targets::process::log_tail(&log, 5);
    format!(
        "the consumer exited during the run, {elapsed_s:.1} s in ({status}){next}; the end of \
         {}:\n{tail}",
        log.display()
    )
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    #[test]
    fn only_a_failure_under_on_failure_is_restarted_and_only_so_often() {
        let segfault = ExitStatus::from_raw(11);
        let error = ExitStatus::from_raw(2 << 8);
        let success = ExitStatus::from_raw(0);
        let on_failure = RestartPolicy::OnFailure;
        assert!(restarts_on(on_failure, 0, segfault));
        assert!(restarts_on(on_failure, 0, error));
        assert!(!restarts_on(on_failure, 0, success));
        assert!(!restarts_on(RestartPolicy::No, 0, segfault));
        let max = RestartPolicy::RETRIES_MAX;
        assert!(restarts_on(on_failure, max - 1, segfault));
        assert!(!restarts_on(on_failure, max, segfault));
    }
}
