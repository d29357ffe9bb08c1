//! Unit and property tests of the ingest decision core.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::wire::Event;

const POISON: &[u8] = b"{not json";

fn settings(batch_size: usize) -> IngestSettings {
    IngestSettings {
        batch_size,
        max_in_flight_batches: 8,
        linger_ms: 20,
        commit: CommitPolicy::AfterWrite,
        commit_interval_ms: 0,
        retry_backoff_initial_ms: 50,
        retry_backoff_max_ms: 150,
    }
}

fn core_with(settings: IngestSettings) -> IngestCore {
    let mut core = IngestCore::new(settings).expect("valid settings");
    core.on_partitions_assigned(&[0, 1, 2]);
    core
}

fn payload(seq: u64) -> Vec<u8> {
    let event = Event {
        vehicle_index: 7,
        seq,
        timestamp_ms: 1_767_225_600_000 + seq as i64,
        latitude: 52.5,
        longitude: 13.4,
        speed_kmh: 40.0,
        temperature_c: 20.0,
        humidity_pct: 50.0,
    };
    event.to_json()
}

fn drain(core: &mut IngestCore) -> Vec<Action> {
    std::iter::from_fn(|| core.next_action()).collect()
}

/// A `Write` in short: batch id, attempt, and (partition, offset) of each row.
type WriteSummary = (u64, u32, Vec<(i32, i64)>);

fn writes(actions: &[Action]) -> Vec<WriteSummary> {
    let mut found = Vec::new();
    for action in actions {
        if let Action::Write {
            batch_id,
            attempt,
            rows,
        } = action
        {
            let keys = rows.iter().map(|row| (row.partition, row.offset)).collect();
            found.push((*batch_id, *attempt, keys));
        }
    }
    found
}

fn commits(actions: &[Action]) -> Vec<Vec<(i32, i64)>> {
    let mut found = Vec::new();
    for action in actions {
        if let Action::Commit { offsets } = action {
            found.push(offsets.clone());
        }
    }
    found
}

#[test]
fn settings_from_consumer_have_the_documented_defaults_and_ranges_are_checked() {
    let settings = IngestSettings::from_consumer(&ConsumerSettings::default());
    assert_eq!(
        (settings.batch_size, settings.max_in_flight_batches),
        (100, 64)
    );
    assert_eq!((settings.linger_ms, settings.commit_interval_ms), (20, 200));
    assert_eq!(
        (
            settings.retry_backoff_initial_ms,
            settings.retry_backoff_max_ms
        ),
        (50, 5_000)
    );
    assert_eq!(settings.commit, CommitPolicy::AfterWrite);
    assert!(settings.validate().is_ok());
    let error = IngestCore::new(IngestSettings {
        batch_size: 0,
        ..settings.clone()
    })
    .unwrap_err();
    assert_eq!(error.key, "batch_size");
    let inverted = IngestSettings {
        retry_backoff_max_ms: 10,
        ..settings
    };
    assert_eq!(inverted.validate().unwrap_err().key, "retry_backoff_max_ms");
}

#[test]
fn batches_are_sealed_by_size() {
    let mut core = core_with(settings(3));
    for offset in 0..7 {
        core.on_record(1, offset, &payload(offset as u64), 1_000 + offset as u64);
    }
    let actions = drain(&mut core);
    assert_eq!(
        writes(&actions),
        vec![
            (0, 1, vec![(1, 0), (1, 1), (1, 2)]),
            (1, 1, vec![(1, 3), (1, 4), (1, 5)])
        ]
    );
    let Action::Write { rows, .. } = &actions[1] else {
        panic!("expected a write")
    };
    assert_eq!(
        (
            rows[2].received_at_ms,
            rows[2].vehicle_index,
            rows[2].record.seq
        ),
        (1_005, 7, 5)
    );
    assert_eq!(core.stats().consumed, 7);
    assert_eq!(core.stats().in_flight_batches, 2);
}

#[test]
fn a_partial_batch_is_sealed_after_linger() {
    let mut core = core_with(settings(10));
    core.on_record(0, 0, &payload(0), 100);
    core.on_record(0, 1, &payload(1), 110);
    assert_eq!(core.next_deadline_ms(), Some(120));
    core.on_tick(119);
    assert!(writes(&drain(&mut core)).is_empty());
    core.on_tick(120);
    assert_eq!(
        writes(&drain(&mut core)),
        vec![(0, 1, vec![(0, 0), (0, 1)])]
    );
}

#[test]
fn after_write_commits_only_written_offsets_and_stops_at_a_gap() {
    let mut core = core_with(settings(2));
    for offset in 10..16 {
        core.on_record(0, offset, &payload(0), 0);
    }
    assert_eq!(writes(&drain(&mut core)).len(), 3);
    core.on_tick(1);
    assert!(
        commits(&drain(&mut core)).is_empty(),
        "nothing written, nothing committed"
    );
    core.on_write_ok(2, 2);
    core.on_tick(3);
    assert!(
        commits(&drain(&mut core)).is_empty(),
        "batch 0 unwritten blocks the commit"
    );
    core.on_write_ok(0, 4);
    core.on_tick(5);
    assert_eq!(
        commits(&drain(&mut core)),
        vec![vec![(0, 12)]],
        "stops at the gap of batch 1"
    );
    core.on_write_ok(1, 6);
    core.on_tick(7);
    assert_eq!(commits(&drain(&mut core)), vec![vec![(0, 16)]]);
    core.on_tick(8);
    assert!(
        commits(&drain(&mut core)).is_empty(),
        "nothing new, no commit"
    );
    assert_eq!(core.stats().written, 6);
    assert_eq!(core.stats().committed, BTreeMap::from([(0, 16)]));
}

#[test]
fn periodic_commits_respect_the_interval() {
    let mut core = core_with(IngestSettings {
        commit_interval_ms: 200,
        ..settings(1)
    });
    core.on_record(0, 0, &payload(0), 0);
    core.on_write_ok(0, 0);
    core.on_tick(1_000);
    assert_eq!(commits(&drain(&mut core)), vec![vec![(0, 1)]]);
    core.on_record(0, 1, &payload(1), 1_000);
    core.on_write_ok(1, 1_000);
    assert_eq!(core.next_deadline_ms(), Some(1_200));
    core.on_tick(1_199);
    assert!(commits(&drain(&mut core)).is_empty());
    core.on_tick(1_200);
    assert_eq!(commits(&drain(&mut core)), vec![vec![(0, 2)]]);
}

#[test]
fn before_write_commits_on_receipt_before_any_write() {
    let mut core = core_with(IngestSettings {
        commit: CommitPolicy::BeforeWrite,
        ..settings(10)
    });
    core.on_record(2, 0, &payload(0), 0);
    core.on_record(2, 1, &payload(1), 1);
    core.on_tick(2);
    let actions = drain(&mut core);
    assert!(writes(&actions).is_empty(), "the batch still lingers");
    assert_eq!(commits(&actions), vec![vec![(2, 2)]]);
    assert_eq!(core.stats().written, 0);
}

#[test]
fn a_poison_record_is_dead_lettered_and_committed_only_after_its_acknowledgement() {
    let mut core = core_with(settings(10));
    core.on_record(0, 0, &payload(0), 0);
    core.on_record(0, 1, POISON, 0);
    core.on_record(0, 2, &payload(2), 0);
    let actions = drain(&mut core);
    let Some(Action::DeadLetter {
        partition,
        offset,
        payload: bytes,
        reason,
    }) = actions.first()
    else {
        panic!("expected a dead letter, got {actions:?}")
    };
    assert_eq!((*partition, *offset, bytes.as_slice()), (0, 1, POISON));
    assert!(reason.contains("not a telemetry record"), "{reason}");
    core.on_tick(20);
    assert_eq!(
        writes(&drain(&mut core)),
        vec![(0, 1, vec![(0, 0), (0, 2)])],
        "it kept going"
    );
    core.on_write_ok(0, 21);
    core.on_tick(22);
    assert_eq!(
        commits(&drain(&mut core)),
        vec![vec![(0, 1)]],
        "the dead letter is not acked yet"
    );
    core.on_dead_letter_failed(0, 1, "broker down", 30);
    core.on_tick(79);
    assert!(
        drain(&mut core)
            .iter()
            .all(|action| matches!(action, Action::Log { .. }))
    );
    core.on_tick(80);
    assert!(matches!(
        drain(&mut core).as_slice(),
        [Action::DeadLetter { offset: 1, .. }]
    ));
    core.on_dead_letter_ok(0, 1);
    core.on_tick(81);
    assert_eq!(commits(&drain(&mut core)), vec![vec![(0, 3)]]);
    let stats = core.stats();
    assert_eq!(
        (
            stats.dead_lettered,
            stats.dead_letter_failures,
            stats.consumed
        ),
        (1, 1, 3)
    );
}

#[test]
fn failed_writes_are_retried_with_growing_capped_backoff_then_committed() {
    let mut core = core_with(settings(1));
    core.on_record(0, 0, &payload(0), 0);
    drain(&mut core);
    let mut now_ms = 0;
    for (attempt, backoff_ms) in [(1, 50), (2, 100), (3, 150), (4, 150)] {
        core.on_write_failed(0, "timeout", now_ms);
        let actions = drain(&mut core);
        let [
            Action::Log {
                level: LogLevel::Warn,
                message,
            },
        ] = actions.as_slice()
        else {
            panic!("expected one warning, got {actions:?}")
        };
        assert!(
            message.contains(&format!("in {backoff_ms} ms")),
            "{message}"
        );
        assert_eq!(core.next_deadline_ms(), Some(now_ms + backoff_ms));
        core.on_tick(now_ms + backoff_ms - 1);
        assert!(drain(&mut core).is_empty(), "no commit, no early retry");
        now_ms += backoff_ms;
        core.on_tick(now_ms);
        assert_eq!(
            writes(&drain(&mut core)),
            vec![(0, attempt + 1, vec![(0, 0)])]
        );
    }
    core.on_write_ok(0, now_ms);
    core.on_tick(now_ms);
    assert_eq!(commits(&drain(&mut core)), vec![vec![(0, 1)]]);
    let stats = core.stats();
    assert_eq!(
        (stats.write_failures, stats.retries, stats.written),
        (4, 4, 1)
    );
    assert_eq!(stats.in_flight_batches, 0);
}

#[test]
fn fetching_pauses_at_the_in_flight_limit() {
    let mut core = core_with(IngestSettings {
        max_in_flight_batches: 2,
        ..settings(1)
    });
    core.on_record(0, 0, &payload(0), 0);
    assert!(!core.should_pause());
    core.on_record(0, 1, &payload(1), 0);
    assert!(core.should_pause());
    core.on_write_failed(0, "overloaded", 0);
    assert!(
        core.should_pause(),
        "a batch waiting for retry still counts"
    );
    core.on_write_ok(1, 0);
    assert!(!core.should_pause());
}

#[test]
fn revoke_commits_done_work_and_forgets_pending_rows() {
    let mut core = core_with(settings(2));
    core.on_record(0, 0, &payload(0), 0);
    core.on_record(0, 1, &payload(1), 0);
    core.on_record(0, 2, &payload(2), 0);
    core.on_record(1, 0, &payload(0), 0);
    core.on_record(1, 1, &payload(1), 0);
    core.on_record(0, 3, &payload(3), 0);
    assert_eq!(writes(&drain(&mut core)).len(), 3);
    core.on_write_ok(0, 1);
    core.on_partitions_revoked(&[0]);
    assert_eq!(
        commits(&drain(&mut core)),
        vec![vec![(0, 2)]],
        "done work, even without a tick"
    );
    core.on_tick(100);
    assert!(
        writes(&drain(&mut core)).is_empty(),
        "the open row of partition 0 was dropped"
    );
    core.on_write_failed(1, "timeout", 100);
    core.on_tick(150);
    assert_eq!(
        writes(&drain(&mut core)),
        vec![(1, 2, vec![(1, 0)])],
        "retry without revoked rows"
    );
    core.on_record(0, 2, &payload(2), 150);
    assert_eq!(core.stats().ignored, 1, "partition 0 is no longer ours");
    core.on_write_ok(1, 151);
    core.on_write_ok(2, 152);
    core.on_tick(153);
    assert_eq!(commits(&drain(&mut core)), vec![vec![(1, 2)]]);
    core.on_partitions_assigned(&[0]);
    core.on_record(0, 2, &payload(2), 154);
    core.on_tick(200);
    assert_eq!(writes(&drain(&mut core)), vec![(3, 1, vec![(0, 2)])]);
    core.on_write_ok(3, 201);
    core.on_tick(202);
    assert_eq!(commits(&drain(&mut core)), vec![vec![(0, 3)]]);
}

#[test]
fn revoke_drops_the_open_rows_and_dead_letters_of_revoked_partitions_only() {
    let mut core = core_with(settings(10));
    core.on_record(0, 0, &payload(0), 0);
    core.on_record(1, 0, &payload(0), 0);
    core.on_record(0, 1, POISON, 0);
    core.on_record(1, 1, POISON, 0);
    let letters = drain(&mut core);
    assert_eq!(
        letters
            .iter()
            .filter(|action| matches!(action, Action::DeadLetter { .. }))
            .count(),
        2
    );
    core.on_partitions_revoked(&[0]);
    drain(&mut core);
    // Linger seals the open rows: only partition 1's is left.
    core.on_tick(20);
    assert_eq!(writes(&drain(&mut core)), vec![(0, 1, vec![(1, 0)])]);
    // Partition 1's dead letter is still tracked: a failure schedules its retry.
    core.on_dead_letter_failed(1, 1, "broker down", 30);
    core.on_tick(80);
    assert!(
        drain(&mut core).iter().any(|action| matches!(
            action,
            Action::DeadLetter {
                partition: 1,
                offset: 1,
                ..
            }
        )),
        "the dead letter of a partition still ours is retried"
    );
    // Partition 0's was forgotten: its failure schedules nothing.
    core.on_dead_letter_failed(0, 1, "broker down", 80);
    core.on_tick(200);
    assert!(
        !drain(&mut core)
            .iter()
            .any(|action| matches!(action, Action::DeadLetter { partition: 0, .. })),
        "a revoked partition's dead letter is not retried"
    );
}

#[test]
fn revoke_keeps_a_retry_of_rows_that_are_still_ours() {
    let mut core = core_with(settings(1));
    core.on_record(1, 0, &payload(0), 0);
    drain(&mut core);
    core.on_write_failed(0, "timeout", 0);
    drain(&mut core);
    core.on_partitions_revoked(&[0]);
    drain(&mut core);
    core.on_tick(50);
    assert_eq!(
        writes(&drain(&mut core)),
        vec![(0, 2, vec![(1, 0)])],
        "partition 1's batch waiting for its retry survives partition 0's revocation"
    );
}

#[test]
fn rows_of_an_earlier_assignment_are_not_retried_after_the_partition_comes_back() {
    let mut core = core_with(settings(2));
    core.on_record(0, 0, &payload(0), 0);
    core.on_record(1, 0, &payload(0), 0);
    drain(&mut core);
    core.on_partitions_revoked(&[0]);
    core.on_partitions_assigned(&[0]);
    drain(&mut core);
    // The batch was in flight across both; its partition-0 row belongs to the old assignment
    // (the new owner starts from the committed offset).
    core.on_write_failed(0, "timeout", 0);
    core.on_tick(50);
    assert_eq!(writes(&drain(&mut core)), vec![(0, 2, vec![(1, 0)])]);
}

#[test]
fn a_lost_log_writes_the_rows_read_and_commits_only_the_new_log() {
    let mut core = core_with(settings(3));
    for offset in 100..104 {
        core.on_record(0, offset, &payload(offset as u64), 0);
    }
    core.on_record(1, 7, &payload(7), 0);
    assert_eq!(writes(&drain(&mut core)).len(), 1, "(0, 100) to (0, 102)");
    let lost = LogLost {
        partition: 0,
        end_before: 104,
        end_after: 4,
    };
    core.on_log_lost(lost);
    core.on_log_lost(LogLost {
        partition: 5,
        ..lost
    });
    let actions = drain(&mut core);
    assert_eq!(
        writes(&actions),
        vec![(1, 1, vec![(0, 103), (1, 7)])],
        "the open rows are sealed before the partition starts over"
    );
    assert!(actions.iter().any(|action| matches!(action,
        Action::Log { level: LogLevel::Warn, message } if message.contains("partition 0"))));
    assert_eq!(
        core.stats().logs_lost,
        vec![lost],
        "partition 5 is not ours"
    );
    // A failed write of the old log's rows is retried: nobody will read them again.
    core.on_write_failed(0, "timeout", 10);
    core.on_tick(60);
    assert_eq!(
        writes(&drain(&mut core)),
        vec![(0, 2, vec![(0, 100), (0, 101), (0, 102)])]
    );
    core.on_write_ok(0, 61);
    core.on_write_ok(1, 61);
    // The new log from its beginning: its offsets are committed, the old ones never.
    for offset in 0..3 {
        core.on_record(0, offset, &payload(200 + offset as u64), 70);
    }
    assert_eq!(
        writes(&drain(&mut core)),
        vec![(2, 1, vec![(0, 0), (0, 1), (0, 2)])]
    );
    core.on_write_ok(2, 71);
    core.on_tick(72);
    assert_eq!(commits(&drain(&mut core)), vec![vec![(0, 3), (1, 8)]]);
}

#[test]
fn nothing_is_due_once_everything_is_committed() {
    let mut core = core_with(settings(1));
    core.on_record(0, 0, &payload(0), 0);
    drain(&mut core);
    core.on_write_ok(0, 1);
    core.on_tick(1);
    assert_eq!(commits(&drain(&mut core)), vec![vec![(0, 1)]]);
    assert_eq!(core.next_deadline_ms(), None);
}

/// The text of the `Log` actions among `actions`.
fn logged(actions: &[Action]) -> String {
    let mut text = String::new();
    for action in actions {
        if let Action::Log { message, .. } = action {
            text.push_str(message);
            text.push('\n');
        }
    }
    text
}

#[test]
fn a_dead_letter_failing_again_backs_off_longer() {
    let mut core = core_with(settings(10));
    core.on_record(0, 0, POISON, 0);
    drain(&mut core);
    core.on_dead_letter_failed(0, 0, "broker down", 0);
    let first = logged(&drain(&mut core));
    assert!(
        first.contains("failed on attempt 1") && first.contains("retrying in 50 ms"),
        "{first}"
    );
    core.on_tick(50);
    drain(&mut core);
    core.on_dead_letter_failed(0, 0, "broker down", 50);
    let second = logged(&drain(&mut core));
    assert!(
        second.contains("failed on attempt 2") && second.contains("retrying in 100 ms"),
        "{second}"
    );
}

#[test]
fn reports_of_unknown_or_already_failed_writes_and_dead_letters_are_counted_stale() {
    let mut core = core_with(settings(1));
    core.on_write_ok(99, 0);
    core.on_write_failed(98, "timeout", 0);
    assert_eq!(core.stats().stale_reports, 2);
    core.on_record(0, 0, &payload(0), 0);
    drain(&mut core);
    core.on_write_failed(0, "timeout", 0);
    // Already waiting for its retry: a second failure report is stale.
    core.on_write_failed(0, "timeout", 1);
    assert_eq!(core.stats().stale_reports, 3);
    assert_eq!(core.stats().write_failures, 1);
    // Dead letters nobody asked for, and a second failure of one already waiting.
    core.on_dead_letter_ok(0, 77);
    core.on_dead_letter_failed(0, 78, "broker down", 2);
    assert_eq!(core.stats().stale_reports, 5);
    core.on_record(1, 0, POISON, 2);
    drain(&mut core);
    core.on_dead_letter_failed(1, 0, "broker down", 3);
    core.on_dead_letter_failed(1, 0, "broker down", 4);
    assert_eq!(core.stats().stale_reports, 6);
    assert_eq!(core.stats().dead_letter_failures, 1);
}

#[test]
fn shutdown_seals_drains_and_commits_once_at_the_end() {
    let mut core = core_with(settings(10));
    for offset in 0..3 {
        core.on_record(0, offset, &payload(0), 0);
    }
    core.on_record(1, 5, POISON, 0);
    core.begin_shutdown(1);
    let actions = drain(&mut core);
    assert_eq!(writes(&actions), vec![(0, 1, vec![(0, 0), (0, 1), (0, 2)])]);
    assert!(!core.is_drained());
    core.on_record(0, 3, &payload(3), 2);
    assert_eq!(core.stats().ignored, 1, "no new records while draining");
    core.on_write_ok(0, 3);
    assert!(!core.is_drained(), "the dead letter is still in flight");
    core.on_dead_letter_ok(1, 5);
    assert!(core.is_drained());
    assert_eq!(
        drain(&mut core),
        vec![Action::Commit {
            offsets: vec![(0, 3), (1, 6)]
        }]
    );
}

/// What an adapter holds while actions are in flight, for the property test.
#[derive(Debug, Default)]
struct Harness {
    writes: Vec<(u64, Vec<(i32, i64)>)>,
    dead_letters: Vec<(i32, i64)>,
    done: BTreeSet<(i32, i64)>,
    seen: BTreeMap<i32, Vec<i64>>,
    committed: BTreeMap<i32, i64>,
}

impl Harness {
    /// Carries out queued actions, checking every commit against what is durably handled.
    fn run(&mut self, core: &mut IngestCore) {
        while let Some(action) = core.next_action() {
            match action {
                Action::Write { batch_id, rows, .. } => {
                    let keys = rows.iter().map(|row| (row.partition, row.offset)).collect();
                    self.writes.push((batch_id, keys));
                }
                Action::DeadLetter {
                    partition, offset, ..
                } => self.dead_letters.push((partition, offset)),
                Action::Commit { offsets } => {
                    for (partition, next) in offsets {
                        for &offset in &self.seen[&partition] {
                            assert!(
                                offset >= next || self.done.contains(&(partition, offset)),
                                "committed {next} on {partition} with {offset} unhandled"
                            );
                        }
                        let before = self.committed.insert(partition, next);
                        assert!(
                            before.is_none_or(|before| before <= next),
                            "commit went back"
                        );
                    }
                }
                Action::Log { .. } => {}
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn after_write_commits_never_pass_an_unhandled_record_and_end_at_the_last_offset(
        steps in prop::collection::vec((0u8..8, any::<u16>()), 1..400),
        batch_size in 1usize..6,
        max_in_flight_batches in 1usize..5,
    ) {
        let mut core = core_with(IngestSettings {
            max_in_flight_batches,
            retry_backoff_initial_ms: 10,
            retry_backoff_max_ms: 80,
            ..settings(batch_size)
        });
        let mut harness = Harness::default();
        let mut next_offset = [0i64; 3];
        let mut now_ms = 0;
        for (kind, value) in steps {
            let value = usize::from(value);
            match kind {
                0..=2 if !core.should_pause() => {
                    let partition = value % 3;
                    let offset = next_offset[partition];
                    next_offset[partition] += 1 + i64::from(value % 5 == 0); // compacted gaps
                    let bytes = if value % 7 == 0 { POISON.to_vec() } else { payload(value as u64) };
                    harness.seen.entry(partition as i32).or_default().push(offset);
                    core.on_record(partition as i32, offset, &bytes, now_ms);
                }
                3 if !harness.writes.is_empty() => {
                    let (batch_id, keys) = harness.writes.remove(value % harness.writes.len());
                    harness.done.extend(keys);
                    core.on_write_ok(batch_id, now_ms);
                }
                4 if !harness.writes.is_empty() => {
                    let (batch_id, _) = harness.writes.remove(value % harness.writes.len());
                    core.on_write_failed(batch_id, "injected", now_ms);
                }
                5 if !harness.dead_letters.is_empty() => {
                    let key = harness.dead_letters.remove(value % harness.dead_letters.len());
                    harness.done.insert(key);
                    core.on_dead_letter_ok(key.0, key.1);
                }
                _ => {
                    now_ms += value as u64 % 60;
                    core.on_tick(now_ms);
                }
            }
            harness.run(&mut core);
        }
        core.begin_shutdown(now_ms);
        for _ in 0..1_000 {
            harness.run(&mut core);
            if core.is_drained() {
                break;
            }
            for (batch_id, keys) in std::mem::take(&mut harness.writes) {
                harness.done.extend(keys);
                core.on_write_ok(batch_id, now_ms);
            }
            for (partition, offset) in std::mem::take(&mut harness.dead_letters) {
                harness.done.insert((partition, offset));
                core.on_dead_letter_ok(partition, offset);
            }
            now_ms += 100;
            core.on_tick(now_ms);
        }
        prop_assert!(core.is_drained());
        for (partition, offsets) in &harness.seen {
            let last = *offsets.last().expect("seen partitions have offsets");
            prop_assert_eq!(harness.committed.get(partition), Some(&(last + 1)));
        }
        prop_assert_eq!(core.stats().committed, harness.committed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The simulation hands the core events (`on_event`), the consumer hands it bytes
    /// (`on_record`): for roadtest's record both must lead to the same actions and stats.
    #[test]
    fn an_event_and_its_encoding_lead_to_the_same_actions(
        events in prop::collection::vec(
            (0u32..2_000_000, any::<u32>(), -90.0..90.0f64, -180.0..180.0f64, 0.0..300.0f64),
            1..60,
        ),
    ) {
        let mut from_bytes = core_with(settings(7));
        let mut from_events = core_with(settings(7));
        for (offset, &(vehicle_index, seq, latitude, longitude, speed_kmh)) in
            events.iter().enumerate()
        {
            let event = Event {
                vehicle_index,
                seq: u64::from(seq),
                timestamp_ms: 1_767_225_600_000 + i64::from(seq),
                latitude,
                longitude,
                speed_kmh,
                temperature_c: latitude / 3.0,
                humidity_pct: longitude.abs() / 1.8,
            };
            let (partition, offset, now_ms) = ((offset % 3) as i32, offset as i64, offset as u64);
            from_bytes.on_record(partition, offset, &event.to_json(), now_ms);
            from_events.on_event(partition, offset, &event, now_ms);
        }
        from_bytes.on_tick(1_000);
        from_events.on_tick(1_000);
        prop_assert_eq!(drain(&mut from_bytes), drain(&mut from_events));
        prop_assert_eq!(from_bytes.stats(), from_events.stats());
    }
}
