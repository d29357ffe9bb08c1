//! The table a pipeline writes in PostgreSQL ([`TableSettings`]): the DDL roadtest creates it
//! with, its columns as the catalog gives them (checked by [`TableLayout::check`], as
//! Cassandra's are), waiting for a table the system under test creates, the verification query
//! and the row count that shows a consumer of the user's own writing.

use tokio_postgres::Client;

use crate::scenario::TableSettings;
use crate::table::{ColumnKind, ColumnType, SchemaColumn, TableLayout};

/// `CREATE TABLE` for `settings` in `schema`: text vehicle and timestamptz keys, bigint `seq`,
/// integer `format_version`, double precision values, and the write-time column if named.
pub fn ddl(settings: &TableSettings, schema: &str) -> String {
    let mut columns: Vec<String> = settings
        .columns()
        .into_iter()
        .filter(|(_, column)| !column.is_empty())
        .map(|(field, column)| {
            let sql_type = match field {
                "vehicle_id" => "text NOT NULL",
                "timestamp" => "timestamptz NOT NULL",
                "seq" => "bigint",
                "format_version" => "integer",
                _ => "double precision",
            };
            format!("{column} {sql_type}")
        })
        .collect();
    if !settings.write_time.is_empty() {
        columns.push(format!("{} timestamptz", settings.write_time));
    }
    format!(
        "CREATE TABLE IF NOT EXISTS {schema}.{} ({}, PRIMARY KEY ({}, {}))",
        settings.name,
        columns.join(", "),
        settings.vehicle_id,
        settings.timestamp
    )
}

/// A catalog type (`format_type`) as verification sees it.
fn column_type(name: &str) -> ColumnType {
    match name {
        "text" | "character varying" => ColumnType::Text,
        "timestamp with time zone" | "timestamp without time zone" => ColumnType::Timestamp,
        "integer" => ColumnType::Int,
        "bigint" => ColumnType::BigInt,
        "double precision" => ColumnType::Double,
        "real" => ColumnType::Float,
        _ if name.starts_with("character varying(") => ColumnType::Text,
        _ => ColumnType::Other(name.to_string()),
    }
}

/// The primary key's first column (position 0) plays Cassandra's partition key, the next ones
/// its clustering columns: verification reads each vehicle's rows in timestamp order.
fn column_kind(key_position: Option<i32>) -> ColumnKind {
    match key_position {
        Some(0) => ColumnKind::Partition(0),
        Some(n) if n > 0 => ColumnKind::Clustering(n - 1),
        _ => ColumnKind::Regular,
    }
}

/// The table's columns, or `None` while it does not exist.
pub async fn read_columns(
    client: &Client,
    schema: &str,
    table: &str,
) -> Result<Option<Vec<SchemaColumn>>, tokio_postgres::Error> {
    // indkey is an int2vector, whose subscripts start at 0.
    let query = "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
                 (array_position(i.indkey::int2[], a.attnum) \
                  - array_lower(i.indkey::int2[], 1))::int4 \
                 FROM pg_attribute a \
                 JOIN pg_class c ON c.oid = a.attrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary \
                 WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 \
                 AND NOT a.attisdropped ORDER BY a.attnum";
    let rows = client.query(query, &[&schema, &table]).await?;
    let columns = rows
        .iter()
        .map(|row| {
            Ok(SchemaColumn {
                name: row.try_get(0)?,
                column_type: column_type(row.try_get::<_, String>(1)?.as_str()),
                kind: column_kind(row.try_get(2)?),
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok((!columns.is_empty()).then_some(columns))
}

/// One vehicle's rows (bound: the vehicle id) in timestamp order: the timestamp in ms, `seq`,
/// the five doubles and `format_version` (NULL where the table has no column for a field), then
/// the write time in µs since the epoch (0 when unknown).
pub fn select(layout: &TableLayout, schema: &str) -> String {
    let column = |field: &str| {
        layout
            .values
            .iter()
            .find(|(name, _, _)| *name == field)
            .map(|(_, column, _)| column.as_str())
    };
    let values: Vec<String> = crate::scenario::VALUE_FIELDS
        .iter()
        .map(|&field| {
            let sql_type = match field {
                "seq" => "bigint",
                "format_version" => "integer",
                _ => "float8",
            };
            format!("{}::{sql_type}", column(field).unwrap_or("NULL"))
        })
        .collect();
    let written = match &layout.write_time {
        Some(column) => column.clone(),
        None => String::from("pg_xact_commit_timestamp(xmin)"),
    };
    format!(
        "SELECT round(EXTRACT(EPOCH FROM {ts}) * 1000)::bigint, {}, \
         COALESCE(round(EXTRACT(EPOCH FROM {written}) * 1000000)::bigint, 0) \
         FROM {schema}.{} WHERE {} = $1 ORDER BY {ts} ASC",
        values.join(", "),
        layout.table,
        layout.vehicle,
        ts = layout.timestamp,
    )
}

/// The rows the table holds.
pub async fn count_rows(
    client: &Client,
    schema: &str,
    layout: &TableLayout,
) -> Result<u64, tokio_postgres::Error> {
    let count = format!("SELECT count(*) FROM {schema}.{}", layout.table);
    let row = client.query_one(&count, &[]).await?;
    Ok(u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roadtests_table_is_created_as_before_and_a_mapped_one_with_its_names() {
        let ddl = ddl(&TableSettings::default(), "s");
        assert_eq!(
            ddl,
            "CREATE TABLE IF NOT EXISTS s.telemetry (vehicle_id text NOT NULL, timestamp \
             timestamptz NOT NULL, seq bigint, latitude double precision, longitude double \
             precision, speed double precision, temperature double precision, humidity double \
             precision, format_version integer, PRIMARY KEY (vehicle_id, timestamp))"
        );
        let mapped = TableSettings {
            name: "readings".into(),
            vehicle_id: "vin".into(),
            timestamp: "at".into(),
            format_version: String::new(),
            write_time: "written_at".into(),
            ..TableSettings::default()
        };
        let ddl = super::ddl(&mapped, "s");
        assert!(ddl.starts_with("CREATE TABLE IF NOT EXISTS s.readings (vin text NOT NULL"));
        assert!(
            ddl.ends_with("written_at timestamptz, PRIMARY KEY (vin, at))"),
            "{ddl}"
        );
        assert!(!ddl.contains("format_version"), "{ddl}");
    }

    #[test]
    fn the_catalogs_types_and_key_positions_map_to_what_verification_checks() {
        assert_eq!(column_type("character varying(17)"), ColumnType::Text);
        assert_eq!(
            column_type("timestamp with time zone"),
            ColumnType::Timestamp
        );
        assert_eq!(column_type("real"), ColumnType::Float);
        assert_eq!(
            column_type("numeric"),
            ColumnType::Other("numeric".to_string())
        );
        assert_eq!(column_kind(Some(0)), ColumnKind::Partition(0));
        assert_eq!(column_kind(Some(1)), ColumnKind::Clustering(0));
        assert_eq!(column_kind(None), ColumnKind::Regular);
    }

    #[test]
    fn the_query_reads_mapped_columns_nulls_for_the_rest_and_the_write_time_column() {
        let layout = TableLayout {
            table: "readings".into(),
            vehicle: "vin".into(),
            timestamp: "at".into(),
            values: vec![("seq", "sequence".into(), ColumnType::Int)],
            window: None,
            write_time: Some("written_at".into()),
        };
        let select = select(&layout, "s");
        assert!(
            select.contains("sequence::bigint, NULL::float8")
                && select.contains("NULL::integer, COALESCE(round(EXTRACT(EPOCH FROM written_at)")
                && select.ends_with("FROM s.readings WHERE vin = $1 ORDER BY at ASC"),
            "{select}"
        );
        let committed = TableLayout {
            write_time: None,
            ..layout
        };
        let committed = super::select(&committed, "s");
        assert!(
            committed.contains("pg_xact_commit_timestamp(xmin)"),
            "{committed}"
        );
    }
}
