//! Verification: the expected events, regenerated from the seed, against the rows found in Cassandra.
//!
//! Vehicle by vehicle, the rows are read in timestamp order and fed to the vehicle's
//! [`VehicleMerge`] (the merge-join the simulation uses too, see [`merge`]), so memory stays at
//! one page of rows per vehicle in flight, whatever the run's length. Each row is found
//! (identical), corrupt (a field differs), or unexpected (nobody sent it); each expected event
//! without a row is lost. The row's `WRITETIME` against the event's intended send time gives its
//! end-to-end latency. Rows of vehicles outside the fleet (found by listing the table's
//! partitions) are all unexpected.

pub mod merge;
mod postgres;

use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlTimestamp, CqlValue, Row};
use tokio::task::JoinSet;

use crate::clients::{BoxError, ClientError};
use crate::fleet::FleetPlan;
use crate::measure::{LatencyRecorder, RunClock, ThroughputSeries};
use crate::report::{DISCREPANCY_COUNT_MAX, Discrepancy, Report, VerifySection};
use crate::table::TableLayout;
use crate::wire::{Event, vehicle_id};

pub use crate::table::Checked;
pub use crate::wire::RowFields;
pub use merge::{FoundRow, Timeline, VehicleMerge};
pub use postgres::verify_postgres;

/// Vehicles verified at once.
const VEHICLES_IN_FLIGHT: usize = 16;

/// The verdict of one run's data.
#[derive(Debug, Clone, Default)]
pub struct VerifyOutcome {
    pub expected: u64,
    pub found: u64,
    pub lost: u64,
    pub corrupt: u64,
    pub unexpected: u64,
    /// The first discrepancies in (vehicle, seq) order.
    pub discrepancies: Vec<Discrepancy>,
    /// Intended send time -> row write time, per event found.
    pub e2e: LatencyRecorder,
    /// Rows by the second (of the run) Cassandra wrote them in.
    pub written: ThroughputSeries,
    /// Lost events by the second (of the run) they were meant to be sent in.
    pub lost_by_intended_second: ThroughputSeries,
}

impl VerifyOutcome {
    fn merge(&mut self, other: VerifyOutcome) {
        self.expected += other.expected;
        self.found += other.found;
        self.lost += other.lost;
        self.corrupt += other.corrupt;
        self.unexpected += other.unexpected;
        self.discrepancies.extend(other.discrepancies);
        self.e2e.merge(&other.e2e);
        self.written.merge(&other.written);
        self.lost_by_intended_second
            .merge(&other.lost_by_intended_second);
    }

    /// Writes the verification and what it measured into `report`: `verify`, the end-to-end
    /// latency, and the rows written per second over `span_s` seconds. `written_by_consumer` (rows
    /// the consumers reported writing) gives the redelivery lower bound.
    pub fn fill_report(&self, report: &mut Report, written_by_consumer: u64, span_s: f64) {
        report.latency.e2e_ms = self.e2e.summary();
        report.latency.e2e_intervals = self.e2e.intervals();
        report.latency.e2e_percentiles = self.e2e.percentile_curve();
        report.throughput.written_per_s = self.written.mean_per_s(span_s);
        report.throughput.peak_written_per_s = self.written.peak_per_s();
        report.throughput.written = self.written.per_second();
        report.verify = VerifySection {
            expected: self.expected,
            found: self.found,
            lost: self.lost,
            corrupt: self.corrupt,
            unexpected: self.unexpected,
            // A lower bound: rows written beyond one per event sent (killed consumers may not have
            // reported their last writes; events lost before the consumer hide redeliveries).
            duplicates_written: written_by_consumer.saturating_sub(self.expected),
            discrepancies: self.discrepancies.clone(),
        };
    }

    /// Keeps the first [`DISCREPANCY_COUNT_MAX`] discrepancies in (vehicle, seq) order.
    pub(crate) fn keep_first_discrepancies(&mut self) {
        self.discrepancies
            .sort_by(|a, b| (&a.vehicle_id, a.seq).cmp(&(&b.vehicle_id, b.seq)));
        self.discrepancies.truncate(DISCREPANCY_COUNT_MAX);
    }
}

impl Timeline for RunClock {
    fn intended_offset_us(&self, timestamp_ms: i64) -> u64 {
        RunClock::intended_offset_us(self, timestamp_ms)
    }
}

/// How long one vehicle's read is tried again after it failed.
pub const READ_RETRY_FOR: Duration = Duration::from_secs(120);

/// Verifies every vehicle of `plan` against the table `layout` describes in `keyspace`,
/// comparing the fields it reads (those the message sends and the table has a column for).
pub async fn verify(
    session: Arc<Session>,
    keyspace: &str,
    plan: &FleetPlan,
    clock: RunClock,
    layout: &TableLayout,
) -> Result<VerifyOutcome, ClientError> {
    let checked = Checked::of_layout(layout);
    let statement = layout.select(keyspace);
    let mut prepared = session
        .prepare(statement)
        .await
        .map_err(|e| cql_error("prepare the verification query", e))?;
    prepared.set_page_size(1000);
    let mut total = VerifyOutcome::default();
    let mut tasks = JoinSet::new();
    let mut next_vehicle = 0u32;
    loop {
        while tasks.len() < VEHICLES_IN_FLIGHT && next_vehicle < plan.vehicle_count {
            let (session, prepared, plan) = (Arc::clone(&session), prepared.clone(), *plan);
            let vehicle = next_vehicle;
            let read = Read {
                prepared,
                clock,
                checked,
                layout: layout.clone(),
            };
            tasks.spawn(async move { verify_vehicle(&session, &read, &plan, vehicle).await });
            next_vehicle += 1;
        }
        match tasks.join_next().await {
            Some(Ok(outcome)) => total.merge(outcome?),
            Some(Err(join_error)) => {
                return Err(ClientError::Cql {
                    address: String::from("(verification task)"),
                    what: String::from("verify a vehicle"),
                    source: join_error.into(),
                });
            }
            None => break,
        }
    }
    let read = Read {
        prepared,
        clock,
        checked,
        layout: layout.clone(),
    };
    let strangers = read_again_on_failure("the vehicles outside the fleet", || async {
        let mut outcome = VerifyOutcome::default();
        verify_strangers(&session, keyspace, &read, plan, &mut outcome).await?;
        Ok(outcome)
    })
    .await?;
    total.merge(strangers);
    total.keep_first_discrepancies();
    Ok(total)
}

/// How a vehicle's rows are read and compared.
#[derive(Debug, Clone)]
struct Read {
    prepared: PreparedStatement,
    clock: RunClock,
    checked: Checked,
    layout: TableLayout,
}

/// Reads the rows of one vehicle, in timestamp order, into its merge.
async fn verify_vehicle(
    session: &Session,
    read: &Read,
    plan: &FleetPlan,
    vehicle: u32,
) -> Result<VerifyOutcome, ClientError> {
    let id = vehicle_id(vehicle);
    read_again_on_failure(&id, || async {
        let mut outcome = VerifyOutcome::default();
        let expected = plan.vehicle(vehicle);
        merge_rows(session, read, &id, expected, &mut outcome).await?;
        Ok(outcome)
    })
    .await
}

/// Runs `attempt`; one that fails (the database restarted under it, say) runs again from the
/// start, for up to [`READ_RETRY_FOR`]: reading is idempotent, and no consumer writes any more.
async fn read_again_on_failure<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let started = std::time::Instant::now();
    let mut backoff = Duration::from_millis(200);
    loop {
        match attempt().await {
            Ok(outcome) => return Ok(outcome),
            Err(error) if started.elapsed() < READ_RETRY_FOR => {
                tracing::warn!(%error, what, "reading again after {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(error) => return Err(error),
        }
    }
}

/// Reads the rows of vehicle `id`, in timestamp order, into its merge against `expected`.
async fn merge_rows(
    session: &Session,
    read: &Read,
    id: &str,
    expected: impl Iterator<Item = Event>,
    outcome: &mut VerifyOutcome,
) -> Result<(), ClientError> {
    let what = format!("read the rows of {id}");
    let pager = match read.layout.window {
        Some((start, end)) => {
            let bounds = (id, CqlTimestamp(start), CqlTimestamp(end));
            session.execute_iter(read.prepared.clone(), bounds).await
        }
        None => session.execute_iter(read.prepared.clone(), (id,)).await,
    }
    .map_err(|e| cql_error(&what, e))?;
    let mut rows = pager
        .rows_stream::<Row>()
        .map_err(|e| cql_error(&what, e))?;
    let mut merge = VehicleMerge::new(id, expected, &read.clock, outcome).checking(read.checked);
    while let Some(row) = rows.try_next().await.map_err(|e| cql_error(&what, e))? {
        merge.push_row(&found_row(row, &read.layout, &read.clock));
    }
    merge.finish();
    Ok(())
}

/// Rows of vehicles outside the fleet are all unexpected: the table's partitions are listed and
/// every one the fleet does not have is read like a vehicle that sent nothing.
async fn verify_strangers(
    session: &Session,
    keyspace: &str,
    read: &Read,
    plan: &FleetPlan,
    outcome: &mut VerifyOutcome,
) -> Result<(), ClientError> {
    let what = "list the vehicles with rows";
    let layout = &read.layout;
    let listing = format!(
        "SELECT DISTINCT {} FROM {keyspace}.{}",
        layout.vehicle, layout.table
    );
    let pager = session
        .query_iter(listing, ())
        .await
        .map_err(|e| cql_error(what, e))?;
    let ids: Vec<(String,)> = pager
        .rows_stream::<(String,)>()
        .map_err(|e| cql_error(what, e))?
        .try_collect()
        .await
        .map_err(|e| cql_error(what, e))?;
    let mut strangers: Vec<String> = ids
        .into_iter()
        .map(|(id,)| id)
        .filter(|id| !in_fleet(id, plan))
        .collect();
    strangers.sort();
    for id in strangers {
        let nothing = std::iter::empty::<Event>();
        merge_rows(session, read, &id, nothing, outcome).await?;
    }
    Ok(())
}

/// Whether `id` is the id of one of the plan's vehicles (a row of any other id is unexpected).
fn in_fleet(id: &str, plan: &FleetPlan) -> bool {
    let index = id.strip_prefix("veh-").and_then(|n| n.parse::<u32>().ok());
    index.is_some_and(|index| index < plan.vehicle_count && vehicle_id(index) == id)
}

/// A row as the merge reads it, by the layout's columns (timestamp, the compared fields, the
/// write time, values read by [`TableLayout::read_values`]): a write time before the run's start
/// (or none) is 0.
fn found_row(row: Row, layout: &TableLayout, clock: &RunClock) -> FoundRow {
    let mut columns = row.columns.into_iter();
    let timestamp_ms = match columns.next().flatten() {
        Some(CqlValue::Timestamp(timestamp)) => timestamp.0,
        _ => i64::MIN,
    };
    let fields = layout.read_values(&mut columns);
    let write_us = match columns.next().flatten() {
        Some(CqlValue::BigInt(us)) => us,
        _ => 0,
    };
    FoundRow {
        timestamp_ms,
        fields,
        written_us: u64::try_from(write_us)
            .unwrap_or(0)
            .saturating_sub(clock.start_epoch_us),
    }
}

fn cql_error(what: &str, error: impl Into<BoxError>) -> ClientError {
    ClientError::Cql {
        address: String::from("(session)"),
        what: what.to_string(),
        source: error.into(),
    }
}

#[cfg(test)]
mod tests;
