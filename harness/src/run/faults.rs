//! The fault executor: injects the planned faults into a running target when their triggers fire, recovers the service after `duration_s`, and measures recovery.

use std::time::{Duration, Instant};

use crate::faults::{self, FaultRecord, NetworkFault, PlannedFault, Trigger, resolve};
use crate::scenario::{FaultAction, Scenario, Service};
use crate::targets::proxy::NetworkCondition;
use crate::targets::{Role, Target};

/// How long a stop (SIGTERM) may take before the service is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// The proxy condition that carries out a network fault.
fn condition(fault: NetworkFault) -> NetworkCondition {
    match fault {
        NetworkFault::Latency {
            delay_ms,
            jitter_ms,
        } => NetworkCondition::Latency {
            delay_ms,
            jitter_ms,
        },
        NetworkFault::Bandwidth { bytes_per_s } => NetworkCondition::Bandwidth { bytes_per_s },
        NetworkFault::Blackhole => NetworkCondition::Blackhole,
        NetworkFault::Reset => NetworkCondition::Reset,
    }
}

#[derive(Debug)]
struct Pending {
    record: usize,
    due: Instant,
}

/// Injects the schedule into a running target and measures recovery.
#[derive(Debug)]
pub struct FaultExecutor {
    planned: Vec<PlannedFault>,
    fired: Vec<bool>,
    records: Vec<FaultRecord>,
    pending: Vec<Pending>,
    /// Waiting for the consumer of this record to be consuming again.
    consumer_ready_wait: Vec<(usize, Instant)>,
    speedup: f64,
    latency_threshold_ms: f64,
}

impl FaultExecutor {
    pub fn new(scenario: &Scenario) -> FaultExecutor {
        let planned = resolve(scenario);
        FaultExecutor {
            fired: vec![false; planned.len()],
            planned,
            records: Vec::new(),
            pending: Vec::new(),
            consumer_ready_wait: Vec::new(),
            speedup: scenario.pipeline.speedup,
            latency_threshold_ms: faults::latency_threshold_ms(scenario),
        }
    }

    /// (Faults in effect now, that is waiting for their recovery; faults started so far.)
    pub fn counts(&self) -> (usize, usize) {
        let started = self.fired.iter().filter(|fired| **fired).count();
        (self.pending.len(), started)
    }

    /// Whether any fault of the schedule acts on `service`.
    pub fn touches(&self, service: Service) -> bool {
        self.planned.iter().any(|fault| fault.service == service)
    }

    /// Whether a fault restarted the broker (on memory storage it keeps nothing).
    pub fn restarts_broker(&self) -> bool {
        self.records.iter().any(|record| {
            record.service == Service::Broker
                && matches!(record.action, FaultAction::Kill | FaultAction::Stop)
        })
    }

    /// Fires due faults, carries out due recoveries and tracks recovery. Call every few tens of ms
    /// with the events sent so far, the pipeline's backlog (events sent and not failed that no
    /// consumer has written yet) and whether the running consumer is consuming.
    pub async fn tick(
        &mut self,
        target: &mut Target,
        run_start: Instant,
        sent: u64,
        backlog: i64,
        consuming: bool,
    ) {
        let now = Instant::now();
        let elapsed_s = now.duration_since(run_start).as_secs_f64();
        for index in 0..self.planned.len() {
            if self.fired[index] {
                continue;
            }
            let fault = self.planned[index].clone();
            let due = match fault.trigger {
                Trigger::AtS(at_s) => elapsed_s >= at_s / self.speedup,
                Trigger::AfterEvents(events) => sent >= events,
            };
            if due {
                self.fired[index] = true;
                self.inject(target, &fault, elapsed_s, backlog).await;
            }
        }
        self.recover_due(target, run_start, false).await;
        self.track(run_start, backlog, consuming);
    }

    /// Carries out every recovery still pending (at its due time), then waits (bounded) for the
    /// consumer to be consuming again. Call after the producer has finished.
    /// `consuming` tells whether the running consumer is consuming.
    pub async fn finish(
        &mut self,
        target: &mut Target,
        run_start: Instant,
        mut consuming: impl FnMut(&mut Target) -> bool,
    ) {
        self.recover_due(target, run_start, true).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.consumer_ready_wait.is_empty() && Instant::now() < deadline {
            let consuming = consuming(target);
            self.track(run_start, i64::MAX, consuming);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn inject(
        &mut self,
        target: &mut Target,
        fault: &PlannedFault,
        elapsed_s: f64,
        backlog: i64,
    ) {
        let role = Role::from(fault.service);
        tracing::info!(action = ?fault.action, service = %fault.service, at_s = elapsed_s, "injecting fault");
        let result = match (fault.action, fault.network) {
            (_, Some(network)) => target.set_network(role, condition(network)),
            (FaultAction::Kill, None) => target.kill(role).await,
            (FaultAction::Stop, None) => target.stop(role, STOP_GRACE).await.map(|_| ()),
            (_, None) => target.pause(role).await,
        };
        let record = FaultRecord {
            at_s: Some(elapsed_s),
            lag_before: Some(backlog),
            error: result.err().map(|e| e.to_string()),
            ..FaultRecord::planned(fault, self.latency_threshold_ms)
        };
        self.records.push(record);
        self.pending.push(Pending {
            record: self.records.len() - 1,
            due: Instant::now() + Duration::from_secs_f64(fault.duration_s / self.speedup),
        });
    }

    async fn recover_due(&mut self, target: &mut Target, run_start: Instant, all: bool) {
        self.pending.sort_by_key(|pending| pending.due);
        while let Some(first) = self.pending.first() {
            if !all && first.due > Instant::now() {
                break;
            }
            let pending = self.pending.remove(0);
            tokio::time::sleep_until(pending.due.into()).await;
            let started = Instant::now();
            let record = &mut self.records[pending.record];
            let role = Role::from(record.service);
            record.recovery_started_at_s = Some(started.duration_since(run_start).as_secs_f64());
            let outcome = match record.action {
                FaultAction::Pause => target.resume(role).await.map(|()| Duration::ZERO),
                FaultAction::Kill | FaultAction::Stop => target.restart(role).await,
                // Tamper faults are never scheduled here (they act after the drain).
                FaultAction::Reset | FaultAction::Tamper => Ok(Duration::ZERO),
                FaultAction::Latency | FaultAction::Bandwidth | FaultAction::Blackhole => target
                    .set_network(role, NetworkCondition::Healthy)
                    .map(|()| Duration::ZERO),
            };
            match outcome {
                Ok(_) if role == Role::Consumer => {
                    self.consumer_ready_wait.push((pending.record, started));
                }
                Ok(ready_after) => record.ready_after_s = Some(ready_after.as_secs_f64()),
                Err(error) => {
                    record.error = Some(error.to_string());
                }
            }
        }
    }

    /// Notes consumer readiness and lag recovery.
    fn track(&mut self, run_start: Instant, backlog: i64, consuming: bool) {
        let elapsed_s = run_start.elapsed().as_secs_f64();
        let records = &mut self.records;
        self.consumer_ready_wait.retain(|&(index, started)| {
            if consuming {
                records[index].ready_after_s = Some(started.elapsed().as_secs_f64());
            }
            !consuming
        });
        for record in records.iter_mut() {
            let (Some(at_s), Some(before), None) =
                (record.at_s, record.lag_before, record.lag_recovered_after_s)
            else {
                continue;
            };
            let recovered = record.recovery_started_at_s.is_some()
                && record.ready_after_s.is_some()
                && backlog <= before + (before / 10).max(10);
            if recovered {
                record.lag_recovered_after_s = Some(elapsed_s - at_s);
            }
        }
    }

    /// The records of the faults that fired (completed by the report's assembly with what only
    /// the verification knows).
    pub fn into_records(self) -> Vec<FaultRecord> {
        self.records
    }
}
