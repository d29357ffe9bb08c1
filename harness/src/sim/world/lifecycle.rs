//! Process lifecycles of the simulated pipeline: consumer starts and exits, fault injection and recovery, the final drain.

use crate::ingest::core::{IngestCore, LogLost};
use crate::scenario::{FaultAction, Service};

use super::{Condition, DRAIN_CHECK_US, DRAIN_LIMIT_US, Happening, LOST_LOG_NOTICED_US, World};

impl World {
    pub(super) fn consumer_start(&mut self) {
        if self.consumer.core.is_some() {
            // Still draining after a stop: it is killed now.
            self.consumer_exit(false);
        }
        let core = match IngestCore::new(self.settings.clone()) {
            Ok(core) => core,
            Err(error) => {
                self.out
                    .errors
                    .push(format!("the consumer cannot start: {error}"));
                self.finished = true;
                return;
            }
        };
        let partitions = self.broker.partition_count();
        self.consumer.incarnation += 1;
        self.consumer.core = Some(core);
        self.consumer.stopping = false;
        self.consumer.waiting = false;
        self.consumer.poll_at = None;
        self.consumer.tick_at = None;
        self.consumer.positions = (0..partitions).map(|p| self.broker.committed(p)).collect();
        let assigned: Vec<i32> = (0..partitions as i32).collect();
        if let Some(core) = self.consumer.core.as_mut() {
            core.on_partitions_assigned(&assigned);
        }
        self.after_core();
    }

    /// The consumer process ends; everything in its memory is gone.
    pub(super) fn consumer_exit(&mut self, clean: bool) {
        if let Some(core) = self.consumer.core.take() {
            self.out
                .consumers
                .push((self.consumer.incarnation, core.stats(), clean));
        }
        self.consumer.incarnation += 1;
        self.consumer.poll_at = None;
        self.consumer.tick_at = None;
        self.consumer.waiting = false;
    }

    pub(super) fn fault_start(&mut self, index: usize) {
        let fault = self.faults[index].clone();
        self.out.faults[index].at_s = Some(self.now_us as f64 / 1e6);
        let duration_us = (fault.duration_s * 1e6) as u64;
        let until_us = self.now_us + duration_us;
        let extra = match fault.network {
            Some(crate::faults::NetworkFault::Latency {
                delay_ms,
                jitter_ms,
            }) => Some((delay_ms * 1000, jitter_ms * 1000)),
            // About one batch of 100 rows of 200 bytes per request.
            Some(crate::faults::NetworkFault::Bandwidth { bytes_per_s }) => {
                Some((20_000_000_000 / bytes_per_s.max(1), 0))
            }
            _ => None,
        };
        match (fault.service, fault.action) {
            (Service::Consumer, FaultAction::Kill) => {
                self.consumer_exit(false);
            }
            (Service::Consumer, FaultAction::Stop) => {
                self.consumer.stopping = true;
                let now_ms = self.now_ms();
                if let Some(core) = self.consumer.core.as_mut() {
                    core.begin_shutdown(now_ms);
                }
                self.after_core();
            }
            (Service::Broker, FaultAction::Kill | FaultAction::Stop) => {
                self.broker_condition.down = true;
                self.broker_condition.stalled_until_us = until_us;
                if !self.broker_keeps_log {
                    self.broker_loses_everything();
                }
            }
            (Service::Cassandra | Service::Postgres, FaultAction::Kill) => {
                self.store.crash();
                self.database.down = true;
                self.database.incarnation += 1;
            }
            (Service::Cassandra | Service::Postgres, FaultAction::Stop) => {
                self.store.sync();
                self.database.down = true;
                self.database.incarnation += 1;
            }
            (Service::Cassandra | Service::Postgres, FaultAction::Reset) => {
                self.database.incarnation += 1
            }
            (_, FaultAction::Pause | FaultAction::Blackhole) => {
                self.condition_mut(fault.service).stalled_until_us = until_us;
            }
            (_, FaultAction::Latency | FaultAction::Bandwidth) => {
                self.condition_mut(fault.service).extra = extra;
            }
            // Tamper faults are never scheduled (they act on the store after the run).
            (_, FaultAction::Reset | FaultAction::Tamper) => {}
        }
        if fault.action != FaultAction::Reset {
            self.schedule(until_us, Happening::FaultEnd(index));
        }
    }

    pub(super) fn condition_mut(&mut self, service: Service) -> &mut Condition {
        match service {
            Service::Consumer => &mut self.consumer.condition,
            Service::Broker => &mut self.broker_condition,
            Service::Cassandra | Service::Postgres => &mut self.database,
        }
    }

    pub(super) fn fault_end(&mut self, index: usize) {
        let fault = self.faults[index].clone();
        self.out.faults[index].recovery_started_at_s = Some(self.now_us as f64 / 1e6);
        match (fault.service, fault.action) {
            (Service::Consumer, FaultAction::Kill | FaultAction::Stop) => {
                self.schedule(self.now_us, Happening::ConsumerStart);
            }
            (Service::Cassandra | Service::Postgres, FaultAction::Kill | FaultAction::Stop) => {
                self.database.down = false;
                let incarnation = self.database.incarnation;
                self.schedule(
                    self.now_us + self.sync_interval_us,
                    Happening::Sync { incarnation },
                );
            }
            (Service::Broker, FaultAction::Kill | FaultAction::Stop) => {
                self.broker_condition.down = false;
                if !self.broker_keeps_log {
                    self.schedule(
                        self.now_us + LOST_LOG_NOTICED_US,
                        Happening::LostLogsNoticed,
                    );
                }
            }
            (_, FaultAction::Latency | FaultAction::Bandwidth) => {
                self.condition_mut(fault.service).extra = None;
            }
            _ => {}
        }
        // Anything waiting on the service goes on.
        if self.consumer.poll_at.is_none() {
            self.want_poll();
        }
    }

    /// A restart on memory storage: the broker's logs and the group's offsets are gone.
    fn broker_loses_everything(&mut self) {
        self.broker.lose_everything();
        self.out.errors.push(format!(
            "the broker (simulated, memory storage) kept nothing across its restart at {:.1} s: \
             events it held that the consumer had not read yet were lost, and its logs began \
             again at offset 0",
            self.now_us as f64 / 1e6
        ));
    }

    /// The consumer sees which logs the broker lost, as the real one does: a partition whose
    /// position is beyond the new log's end is started over and read from offset 0; one whose
    /// new log already reached the position goes unnoticed and is read on from there.
    pub(super) fn lost_logs_noticed(&mut self) {
        let Some(ends_before) = self.broker.take_ends_before_loss() else {
            return;
        };
        let Some(core) = self.consumer.core.as_mut() else {
            return;
        };
        for (partition, end_before) in ends_before.into_iter().enumerate() {
            let end_after = self.broker.end_offset(partition);
            if self.consumer.positions[partition] <= end_after {
                continue;
            }
            core.on_log_lost(LogLost {
                partition: partition as i32,
                end_before,
                end_after,
            });
            self.consumer.positions[partition] = 0;
        }
        self.after_core();
    }

    /// Once the producer is done and every fault undone: drain the consumer, then end.
    pub(super) fn drain_check(&mut self) {
        if self.now_us > self.end_us + DRAIN_LIMIT_US {
            self.out.errors.push(format!(
                "the drain limit of {} s of virtual time passed before the consumer caught up",
                DRAIN_LIMIT_US / 1_000_000
            ));
            self.finished = true;
            return;
        }
        self.schedule(self.now_us + DRAIN_CHECK_US, Happening::DrainCheck);
        let faults_pending = self.out.faults.iter().any(|record| {
            record.at_s.is_some()
                && record.recovery_started_at_s.is_none()
                && record.action != FaultAction::Reset
        }) || self.database.down
            || self.broker_condition.down;
        let Some(core) = self.consumer.core.as_ref() else {
            return;
        };
        if faults_pending || self.consumer_stalled().is_some() {
            return;
        }
        if self.consumer.final_shutdown {
            if core.is_drained() {
                self.finished = true;
            }
            return;
        }
        if self.consumer.stopping {
            return;
        }
        let caught_up = (0..self.broker.partition_count())
            .all(|p| self.consumer.positions[p] >= self.broker.end_offset(p));
        if caught_up && core.stats().in_flight_batches == 0 {
            self.consumer.final_shutdown = true;
            self.consumer.stopping = true;
            let now_ms = self.now_ms();
            if let Some(core) = self.consumer.core.as_mut() {
                core.begin_shutdown(now_ms);
            }
            self.after_core();
        }
    }
}
