//! Tamper faults on the real database: after the drain and the consumer's stop, roadtest changes, deletes or inserts the seeded rows through its own CQL session, before verification.

use std::collections::BTreeSet;

use futures_util::TryStreamExt;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;

use crate::clients::{ClientError, cql};
use crate::faults::tamper::{
    Candidate, ROWS_PER_VEHICLE, TamperDraw, TamperOp, TamperRecord, plans,
};
use crate::fleet::FleetPlan;
use crate::scenario::Scenario;
use crate::wire::RowFields;
use crate::wire::vehicle_id;

/// The statements a tamper fault uses.
struct Statements {
    read: PreparedStatement,
    write: PreparedStatement,
    delete: PreparedStatement,
}

/// A row as the candidate query reads it.
type Row = (CqlTimestamp, i64, f64, f64, f64, f64, f64, i32);

/// Carries out the scenario's tamper faults on `keyspace.telemetry`, in the file's order; returns
/// what they did. Call when no consumer writes any more.
pub async fn tamper(
    session: &Session,
    keyspace: &str,
    scenario: &Scenario,
    fleet: &FleetPlan,
) -> Result<Vec<TamperRecord>, ClientError> {
    let plans = plans(scenario);
    if plans.is_empty() {
        return Ok(Vec::new());
    }
    let statements = prepare(session, keyspace).await?;
    let mut touched = BTreeSet::new();
    let mut records = Vec::new();
    for plan in plans {
        let mut draw = TamperDraw::new(scenario.seed, plan);
        let vehicles = draw.vehicles(fleet.vehicle_count);
        let mut candidates = Vec::new();
        for &vehicle in &vehicles {
            candidates.extend(read(session, &statements, vehicle, plan.before_ms).await?);
        }
        for (op, record) in draw.choose(candidates, fleet, &vehicles, &touched) {
            touched.insert(op.key());
            apply(session, &statements, op).await?;
            records.push(record);
        }
        tracing::info!(entry = plan.entry, kind = ?plan.kind, rows = records.len(), "tampered");
    }
    Ok(records)
}

async fn prepare(session: &Session, keyspace: &str) -> Result<Statements, ClientError> {
    let texts = [
        format!(
            "SELECT timestamp, seq, latitude, longitude, speed, temperature, humidity, \
             format_version FROM {keyspace}.telemetry WHERE vehicle_id = ? AND timestamp < ? \
             LIMIT {ROWS_PER_VEHICLE}"
        ),
        cql::insert_statement(keyspace),
        format!("DELETE FROM {keyspace}.telemetry WHERE vehicle_id = ? AND timestamp = ?"),
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

/// The newest stored rows of `vehicle` before `before_ms` (the clustering order is newest first).
async fn read(
    session: &Session,
    statements: &Statements,
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
    let candidate =
        |(timestamp, seq, latitude, longitude, speed, temperature, humidity, version): Row| {
            Candidate {
                vehicle,
                timestamp_ms: timestamp.0,
                fields: RowFields::from_columns(
                    seq,
                    [latitude, longitude, speed, temperature, humidity],
                    version,
                ),
            }
        };
    Ok(rows.into_iter().map(candidate).collect())
}

/// One write of a tamper fault.
async fn apply(
    session: &Session,
    statements: &Statements,
    op: TamperOp,
) -> Result<(), ClientError> {
    match op {
        TamperOp::Write(row) => {
            let id = vehicle_id(row.vehicle);
            let fields = row.fields;
            let values = (
                id.as_str(),
                CqlTimestamp(row.timestamp_ms),
                i64::try_from(fields.seq).unwrap_or(i64::MAX),
                fields.latitude,
                fields.longitude,
                fields.speed,
                fields.temperature,
                fields.humidity,
                i32::try_from(fields.format_version).unwrap_or(i32::MAX),
            );
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
