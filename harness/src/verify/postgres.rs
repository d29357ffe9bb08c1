//! Verification against PostgreSQL: each vehicle's rows read back in timestamp order (with the
//! table's write-time column, else the commit time of the transaction that wrote each, as its
//! write time) through the same merge as Cassandra's, then the vehicles nobody sent.

use futures_util::{StreamExt, TryStreamExt};
use tokio_postgres::Client;

use super::{
    Checked, FoundRow, RowFields, VehicleMerge, VerifyOutcome, in_fleet, read_again_on_failure,
};
use crate::clients::ClientError;
use crate::clients::pg::{self, StoredRow};
use crate::fleet::FleetPlan;
use crate::measure::RunClock;
use crate::table::TableLayout;
use crate::wire::{Event, vehicle_id};

/// Vehicles read at once over the one connection (its queries are pipelined).
const VEHICLES_IN_FLIGHT: usize = 16;

/// Verifies every vehicle of `plan` against the table `layout` describes in `schema`.
pub async fn verify_postgres(
    client: &Client,
    url: &str,
    schema: &str,
    plan: &FleetPlan,
    clock: RunClock,
    layout: &TableLayout,
) -> Result<VerifyOutcome, ClientError> {
    let checked = Checked::of_layout(layout);
    let read = |id: String, expected: Option<u32>| async move {
        read_again_on_failure(&id, || async {
            let rows = pg::vehicle_rows(client, url, schema, layout, &id).await?;
            let mut outcome = VerifyOutcome::default();
            let events: Box<dyn Iterator<Item = Event> + '_> = match expected {
                Some(vehicle) => Box::new(plan.vehicle(vehicle)),
                None => Box::new(std::iter::empty()),
            };
            let mut merge = VehicleMerge::new(&id, events, &clock, &mut outcome).checking(checked);
            for row in &rows {
                merge.push_row(&found_row(row, &clock));
            }
            merge.finish();
            Ok(outcome)
        })
        .await
    };
    let mut total = VerifyOutcome::default();
    let mut fleet = futures_util::stream::iter(0..plan.vehicle_count)
        .map(|vehicle| read(vehicle_id(vehicle), Some(vehicle)))
        .buffered(VEHICLES_IN_FLIGHT);
    while let Some(outcome) = fleet.try_next().await? {
        total.merge(outcome);
    }
    let listed = read_again_on_failure("the vehicles with rows", || {
        pg::vehicles(client, url, schema, layout)
    });
    for id in listed.await?.into_iter().filter(|id| !in_fleet(id, plan)) {
        total.merge(read(id, None).await?);
    }
    total.keep_first_discrepancies();
    Ok(total)
}

/// A stored row as the merge reads it: nulls become values that cannot match (as with CQL), a
/// commit before the run's start (or unknown) is 0.
fn found_row(row: &StoredRow, clock: &RunClock) -> FoundRow {
    let floats = row.floats.map(|value| value.unwrap_or(f64::NAN));
    let seq = row.seq.filter(|seq| *seq >= 0).unwrap_or(-1);
    let version = row.format_version.filter(|v| *v >= 0).unwrap_or(-1);
    FoundRow {
        timestamp_ms: row.timestamp_ms,
        fields: RowFields::from_columns(seq, floats, version),
        written_us: u64::try_from(row.committed_us)
            .unwrap_or(0)
            .saturating_sub(clock.start_epoch_us),
    }
}
