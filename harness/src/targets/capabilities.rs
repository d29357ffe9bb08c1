//! What a target can do, so the run and the fault executor ask the target instead of naming a broker or matching on the kind of target.

use super::{Role, TargetKind};
use crate::scenario::{BrokerStorage, FaultAction, Scenario};

/// What one kind of target can do. Broker- and database-specific facts live here and in the
/// targets themselves, never in `run/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The broker keeps its log and topics across a restart. The local target's Tansu keeps
    /// nothing unless `pipeline.broker_storage = "durable"`: on memory storage the target
    /// recreates the run's topics after a restart.
    pub broker_keeps_data: bool,
    /// The broker storages the target can start (`pipeline.broker_storage`).
    pub broker_storages: &'static [BrokerStorage],
    /// Services roadtest can kill, stop and pause (network faults need only a proxy).
    pub process_faults: &'static [Role],
    /// The clusters outlive the run: a passed run removes what it created there; a failed run
    /// keeps it as evidence. (Elsewhere the target itself is discarded.)
    pub shared_clusters: bool,
    /// The broker supports idempotent producers (Tansu 0.6 does not; real Kafka does).
    pub idempotent_producer: bool,
}

impl Capabilities {
    /// The capabilities of a kind of target, known before it starts.
    pub fn of(kind: TargetKind) -> Capabilities {
        match kind {
            TargetKind::Local => Capabilities {
                broker_keeps_data: false,
                broker_storages: &[BrokerStorage::Memory, BrokerStorage::Durable],
                process_faults: &[
                    Role::Broker,
                    Role::Cassandra,
                    Role::Postgres,
                    Role::Consumer,
                ],
                shared_clusters: false,
                idempotent_producer: false,
            },
            TargetKind::Containers => Capabilities {
                broker_keeps_data: true,
                broker_storages: &[BrokerStorage::Memory],
                process_faults: &[
                    Role::Broker,
                    Role::Cassandra,
                    Role::Postgres,
                    Role::Consumer,
                ],
                shared_clusters: false,
                idempotent_producer: true,
            },
            TargetKind::External => Capabilities {
                broker_keeps_data: true,
                broker_storages: &[BrokerStorage::Memory],
                process_faults: &[Role::Consumer],
                shared_clusters: true,
                // Unknown brokers: the settings every Kafka-protocol broker accepts.
                idempotent_producer: false,
            },
        }
    }

    /// Refuses a scenario whose broker storage (`pipeline.broker_storage`) this target cannot
    /// start: the containers target's image holds Tansu on memory storage, and the external
    /// target uses the user's broker as it is.
    pub fn refuse_unsupported_broker_storage(
        &self,
        kind: TargetKind,
        scenario: &Scenario,
    ) -> Result<(), String> {
        let storage = scenario.pipeline.broker_storage;
        if self.broker_storages.contains(&storage) {
            return Ok(());
        }
        Err(format!(
            "pipeline.broker_storage = \"{}\": the {kind} target does not start a broker on \
             durable storage ({}); use --target local (or --target sim), or leave the key out",
            storage.name(),
            match kind {
                TargetKind::External => "it uses your broker as it is configured",
                _ => "its broker image runs Tansu on memory storage",
            }
        ))
    }

    /// Refuses a scenario with a process fault (kill, stop, pause) on a service this target does
    /// not control; the message names the first such fault and what works instead.
    pub fn refuse_unsupported_faults(
        &self,
        kind: TargetKind,
        scenario: &Scenario,
    ) -> Result<(), String> {
        for (index, fault) in scenario.faults.iter().enumerate() {
            let role = Role::from(fault.service);
            let process_fault = !fault.action.is_network() && fault.action != FaultAction::Tamper;
            if process_fault && !self.process_faults.contains(&role) {
                let allowed: Vec<&str> = self.process_faults.iter().map(|r| r.name()).collect();
                return Err(format!(
                    "faults[{index}]: the {kind} target cannot {} the {role}: roadtest does not \
                     run it. On this target, kill/stop/pause act on the {} only, and the network \
                     faults (latency, bandwidth, blackhole, reset) act on the broker and \
                     Cassandra through roadtest's proxy; use --target local or containers for \
                     process faults on the {role}",
                    fault.action.name(),
                    allowed.join(", ")
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const REAL_TARGETS: [TargetKind; 3] = [
        TargetKind::Local,
        TargetKind::Containers,
        TargetKind::External,
    ];

    fn scenario(pipeline: &str) -> Scenario {
        let text = format!(
            "name = \"t\"\nseed = 1\nduration_s = 30\n[fleet]\nvehicle_count = 2\n[pipeline]\n{pipeline}"
        );
        Scenario::parse(&text, Path::new("t.toml")).expect("valid scenario")
    }

    #[test]
    fn a_durable_broker_is_started_by_the_local_target_only() {
        let durable = scenario("broker_storage = \"durable\"\n");
        let memory = scenario("");
        for kind in REAL_TARGETS {
            let capabilities = Capabilities::of(kind);
            assert_eq!(
                capabilities.refuse_unsupported_broker_storage(kind, &memory),
                Ok(())
            );
            let durable = capabilities.refuse_unsupported_broker_storage(kind, &durable);
            match kind {
                TargetKind::Local => assert_eq!(durable, Ok(())),
                _ => {
                    let error = durable.expect_err("durable storage refused");
                    assert!(
                        error.starts_with("pipeline.broker_storage = \"durable\"")
                            && error.contains("--target local"),
                        "{error}"
                    );
                }
            }
        }
    }

    #[test]
    fn postgres_is_faulted_wherever_roadtest_runs_it() {
        for kind in REAL_TARGETS {
            let faults = Capabilities::of(kind)
                .process_faults
                .contains(&Role::Postgres);
            assert_eq!(faults, kind != TargetKind::External, "{kind}");
        }
    }

    #[test]
    fn broker_storage_takes_memory_or_durable_and_defaults_to_memory() {
        assert_eq!(scenario("").pipeline.broker_storage, BrokerStorage::Memory);
        let text = "name = \"t\"\nseed = 1\nduration_s = 30\n[fleet]\nvehicle_count = 2\n[pipeline]\nbroker_storage = \"disk\"\n";
        let error = Scenario::parse(text, Path::new("t.toml")).expect_err("an unknown storage");
        let error = error.to_string();
        assert!(
            error.contains("broker_storage") && error.contains("durable"),
            "{error}"
        );
    }
}
