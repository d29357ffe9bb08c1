//! Tamper faults on the real database: after the drain and the consumer's stop, roadtest changes, deletes or inserts the seeded rows through its own CQL session and the table's layout (roadtest's table or the user's own), before verification.

use std::collections::BTreeSet;

use futures_util::TryStreamExt;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlTimestamp, CqlValue, Row};

use crate::clients::ClientError;
use crate::faults::tamper::{
    Candidate, ROWS_PER_VEHICLE, TamperDraw, TamperOp, TamperRecord, plans,
};
use crate::fleet::FleetPlan;
use crate::scenario::Scenario;
use crate::table::{Checked, TableLayout};
use crate::wire::vehicle_id;

/// The statements a tamper fault uses.
struct Statements {
    read: PreparedStatement,
    write: PreparedStatement,
    delete: PreparedStatement,
}

/// Carries out the scenario's tamper faults on the table `layout` describes, in the file's
/// order, through its columns (only fields verification compares are changed); returns what
/// they did. Call when no consumer writes any more.
pub async fn tamper(
    session: &Session,
    keyspace: &str,
    layout: &TableLayout,
    scenario: &Scenario,
    fleet: &FleetPlan,
) -> Result<Vec<TamperRecord>, ClientError> {
    let plans = plans(scenario);
    if plans.is_empty() {
        return Ok(Vec::new());
    }
    let statements = prepare(session, keyspace, layout).await?;
    let mut touched = BTreeSet::new();
    let mut records = Vec::new();
    for plan in plans {
        let mut draw = TamperDraw::new(scenario.seed, plan).changing(Checked::of_layout(layout));
        let vehicles = draw.vehicles(fleet.vehicle_count);
        let mut candidates = Vec::new();
        for &vehicle in &vehicles {
            let rows = read(session, &statements, layout, vehicle, plan.before_ms).await?;
            candidates.extend(rows);
        }
        for (op, record) in draw.choose(candidates, fleet, &vehicles, &touched) {
            touched.insert(op.key());
            apply(session, &statements, layout, op).await?;
            records.push(record);
        }
        tracing::info!(entry = plan.entry, kind = ?plan.kind, rows = records.len(), "tampered");
    }
    Ok(records)
}

async fn prepare(
    session: &Session,
    keyspace: &str,
    layout: &TableLayout,
) -> Result<Statements, ClientError> {
    let texts = [
        layout.select_before(keyspace, ROWS_PER_VEHICLE),
        layout.upsert(keyspace),
        layout.delete(keyspace),
    ];
    let mut prepared = Vec::with_capacity(texts.len());
    for text in texts {
        let statement = session
            .prepare(text)
            .await
            .map_err(|e| error("prepare a tamper statement", e))?;
        prepared.push(statement);
    }
    let [read, write, delete] = <[PreparedStatement; 3]>::try_from(prepared)
        .map_err(|_| error("prepare the tamper statements", "three statements expected"))?;
    Ok(Statements {
        read,
        write,
        delete,
    })
}

/// The newest stored rows of `vehicle` before `before_ms`.
async fn read(
    session: &Session,
    statements: &Statements,
    layout: &TableLayout,
    vehicle: u32,
    before_ms: i64,
) -> Result<Vec<Candidate>, ClientError> {
    let id = vehicle_id(vehicle);
    let what = format!("read the rows of {id} to tamper with");
    let pager = session
        .execute_iter(
            statements.read.clone(),
            (id.as_str(), CqlTimestamp(before_ms)),
        )
        .await
        .map_err(|e| error(&what, e))?;
    let rows: Vec<Row> = pager
        .rows_stream::<Row>()
        .map_err(|e| error(&what, e))?
        .try_collect()
        .await
        .map_err(|e| error(&what, e))?;
    let candidate = |row: Row| {
        let mut columns = row.columns.into_iter();
        let timestamp_ms = match columns.next().flatten() {
            Some(CqlValue::Timestamp(timestamp)) => timestamp.0,
            _ => i64::MAX,
        };
        Candidate {
            vehicle,
            timestamp_ms,
            fields: layout.read_values(&mut columns),
        }
    };
    Ok(rows.into_iter().map(candidate).collect())
}

/// One write of a tamper fault.
async fn apply(
    session: &Session,
    statements: &Statements,
    layout: &TableLayout,
    op: TamperOp,
) -> Result<(), ClientError> {
    match op {
        TamperOp::Write(row) => {
            let id = vehicle_id(row.vehicle);
            let values = layout.row(&id, row.timestamp_ms, &row.fields);
            session
                .execute_unpaged(&statements.write, values)
                .await
                .map(drop)
        }
        TamperOp::Delete {
            vehicle,
            timestamp_ms,
        } => {
            let id = vehicle_id(vehicle);
            let values = (id.as_str(), CqlTimestamp(timestamp_ms));
            session
                .execute_unpaged(&statements.delete, values)
                .await
                .map(drop)
        }
    }
    .map_err(|e| error("write a tampered row", e))
}

fn error(what: &str, source: impl Into<crate::clients::BoxError>) -> ClientError {
    ClientError::Cql {
        address: String::from("(session)"),
        what: what.to_string(),
        source: source.into(),
    }
}
