//! The table a pipeline writes ([`TableSettings`]): the DDL roadtest creates it with, its columns and types as the database's schema gives them, and the layout verification reads it by, checked before any load is sent.

use std::time::{Duration, Instant};

use scylla::client::session::Session;
use scylla::value::{CqlTimestamp, CqlValue};

pub use crate::scenario::FLOAT_FIELDS;
use crate::scenario::TableSettings;
use crate::wire::{RecordFormat, RowFields};

pub use crate::scenario::VALUE_FIELDS;

/// A column's CQL type, as far as verification cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Timestamp,
    Int,
    BigInt,
    Double,
    Float,
    Other(String),
}

impl ColumnType {
    /// The type of a CQL type name (`double`) or of a Cassandra 2.x validator class
    /// (`org.apache.cassandra.db.marshal.DoubleType`, `ReversedType(...)` unwrapped).
    pub fn parse(text: &str) -> ColumnType {
        let inner = text
            .strip_prefix("org.apache.cassandra.db.marshal.ReversedType(")
            .and_then(|rest| rest.strip_suffix(')'))
            .unwrap_or(text);
        let name = inner.rsplit('.').next().unwrap_or(inner);
        match name {
            "text" | "varchar" | "UTF8Type" => ColumnType::Text,
            "timestamp" | "TimestampType" | "DateType" => ColumnType::Timestamp,
            "int" | "Int32Type" => ColumnType::Int,
            "bigint" | "LongType" => ColumnType::BigInt,
            "double" | "DoubleType" => ColumnType::Double,
            "float" | "FloatType" => ColumnType::Float,
            _ => ColumnType::Other(text.to_string()),
        }
    }

    fn name(&self) -> &str {
        match self {
            ColumnType::Text => "text",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Int => "int",
            ColumnType::BigInt => "bigint",
            ColumnType::Double => "double",
            ColumnType::Float => "float",
            ColumnType::Other(text) => text,
        }
    }
}

/// What a column is in its table's primary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Partition key column number n.
    Partition(i32),
    /// Clustering column number n.
    Clustering(i32),
    Regular,
}

/// One column of a table, as the schema describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaColumn {
    pub name: String,
    pub kind: ColumnKind,
    pub column_type: ColumnType,
}

/// Which of a row's fields the merge compares: those the message carries and the table has a
/// column for (vehicle and timestamp always: they find the row); and which columns are `float`,
/// holding the sent double rounded to single precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    compared: [bool; 7],
    single: [bool; 7],
}

impl Checked {
    /// The fields in the order [`Checked`] holds them.
    pub const FIELDS: [&'static str; 7] = VALUE_FIELDS;
    /// Every field, exactly (roadtest's record into roadtest's table).
    pub const ALL: Checked = Checked {
        compared: [true; 7],
        single: [false; 7],
    };

    /// The fields `format` sends (into columns that hold them exactly).
    pub fn of(format: &RecordFormat) -> Checked {
        Checked {
            compared: Checked::FIELDS.map(|field| format.sends(field)),
            single: [false; 7],
        }
    }

    /// The fields a table layout reads, `float` columns compared in single precision.
    pub fn of_layout(layout: &TableLayout) -> Checked {
        let column = |field: &str| layout.values.iter().find(|(name, _, _)| *name == field);
        Checked {
            compared: Checked::FIELDS.map(|field| column(field).is_some()),
            single: Checked::FIELDS
                .map(|field| column(field).is_some_and(|(_, _, kind)| *kind == ColumnType::Float)),
        }
    }

    fn index(field: &str) -> Option<usize> {
        Checked::FIELDS.iter().position(|name| *name == field)
    }

    /// Whether `field` (one of [`Checked::FIELDS`]) is compared.
    pub fn checks(self, field: &str) -> bool {
        Checked::index(field).is_some_and(|index| self.compared[index])
    }

    /// Whether `field` is stored in single precision.
    pub fn single(self, field: &str) -> bool {
        Checked::index(field).is_some_and(|index| self.single[index])
    }
}

/// The table does not hold what the scenario says, or never appeared: exit 2, naming the
/// scenario key, the table and the column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error(
        "pipeline.table: {keyspace}.{table} did not appear within {waited_s} s; with create = \
         false the system under test creates the keyspace and the table (ROADTEST_KEYSPACE, \
         ROADTEST_TABLE) before roadtest sends anything"
    )]
    Missing {
        keyspace: String,
        table: String,
        waited_s: u64,
    },
    #[error("pipeline.table.{field}: {message}")]
    Column {
        field: &'static str,
        message: String,
    },
}

/// Where verification finds each field, and which fields it compares: those the message sends
/// and the table has a column for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLayout {
    pub table: String,
    pub vehicle: String,
    pub timestamp: String,
    /// (field, column, type) of each compared value field, in [`VALUE_FIELDS`] order.
    pub values: Vec<(&'static str, String, ColumnType)>,
    /// Only rows with timestamps in `[start, end)` ms are this run's (a table with fixed names
    /// holds earlier runs' rows too); `None`: every row is.
    pub window: Option<(i64, i64)>,
    /// PostgreSQL: the column holding each row's write time (`pipeline.table.write_time`);
    /// `None`: the commit time of the transaction that wrote it.
    pub write_time: Option<String>,
}

impl TableLayout {
    /// Checks `settings` against the table's `columns` and returns the layout; the error names
    /// the first field whose column is missing, of a type that cannot hold it, or not in the
    /// key where verification needs it.
    pub fn check(
        settings: &TableSettings,
        format: &RecordFormat,
        columns: &[SchemaColumn],
    ) -> Result<TableLayout, TableError> {
        let vehicle = column_of(settings, "vehicle_id", columns)?;
        let partition_keys = columns
            .iter()
            .filter(|c| matches!(c.kind, ColumnKind::Partition(_)))
            .count();
        if vehicle.column_type != ColumnType::Text || vehicle.kind != ColumnKind::Partition(0) {
            return Err(key_problem("vehicle_id", vehicle, "a text partition key"));
        }
        if partition_keys != 1 {
            return Err(key_problem("vehicle_id", vehicle, "the only partition key"));
        }
        let timestamp = column_of(settings, "timestamp", columns)?;
        if timestamp.column_type != ColumnType::Timestamp
            || timestamp.kind != ColumnKind::Clustering(0)
        {
            return Err(key_problem(
                "timestamp",
                timestamp,
                "a timestamp, the first clustering column",
            ));
        }
        let values = value_columns(settings, format, columns)?;
        if values.is_empty() {
            return Err(TableError::Column {
                field: "seq",
                message: "no field besides vehicle_id and timestamp is both sent and stored; \
                          verification needs one (its write time is the row's)"
                    .into(),
            });
        }
        Ok(TableLayout {
            table: settings.name.clone(),
            vehicle: vehicle.name.clone(),
            timestamp: timestamp.name.clone(),
            values,
            window: None,
            write_time: write_time_of(settings, columns)?,
        })
    }

    /// The column whose write time is the row's: the first compared value column.
    pub fn write_time_column(&self) -> &str {
        self.values.first().map_or("", |(_, column, _)| column)
    }

    /// The verification query of one vehicle: timestamp, the compared columns, the write time;
    /// bound to the vehicle, and to the window's start and end when there is one.
    pub fn select(&self, keyspace: &str) -> String {
        let columns: Vec<&str> = self.values.iter().map(|(_, c, _)| c.as_str()).collect();
        format!(
            "SELECT {}, {}, WRITETIME({}) FROM {keyspace}.{} WHERE {} = ?{} ORDER BY {} ASC",
            self.timestamp,
            columns.join(", "),
            self.write_time_column(),
            self.table,
            self.vehicle,
            self.window_condition(),
            self.timestamp
        )
    }

    fn window_condition(&self) -> String {
        match self.window {
            Some(_) => format!(" AND {0} >= ? AND {0} < ?", self.timestamp),
            None => String::new(),
        }
    }

    /// The value fields of a row whose next columns are the compared ones, in layout order:
    /// values out of range or null become ones that cannot match (a negative or null `seq` or
    /// `format_version` becomes the largest, a null float NaN; fields not read are never
    /// compared).
    pub fn read_values(&self, columns: &mut impl Iterator<Item = Option<CqlValue>>) -> RowFields {
        let (mut seq, mut floats, mut version) = (-1_i64, [f64::NAN; 5], -1_i32);
        for (field, _, _) in &self.values {
            let value = columns.next().flatten();
            let integer = match value {
                Some(CqlValue::Int(v)) => Some(i64::from(v)),
                Some(CqlValue::BigInt(v)) => Some(v),
                _ => None,
            };
            let float = match value {
                Some(CqlValue::Double(v)) => v,
                Some(CqlValue::Float(v)) => f64::from(v),
                _ => f64::NAN,
            };
            match *field {
                "seq" => seq = integer.unwrap_or(-1),
                "format_version" => {
                    version = integer.and_then(|v| i32::try_from(v).ok()).unwrap_or(-1);
                }
                other => {
                    if let Some(index) = FLOAT_FIELDS.iter().position(|name| *name == other) {
                        floats[index] = float;
                    }
                }
            }
        }
        RowFields::from_columns(seq, floats, version)
    }

    /// The newest rows of one vehicle before a timestamp (bound: vehicle, timestamp), at most
    /// `limit`: the timestamp, then the compared columns.
    pub fn select_before(&self, keyspace: &str, limit: usize) -> String {
        let columns: Vec<&str> = self.values.iter().map(|(_, c, _)| c.as_str()).collect();
        format!(
            "SELECT {}, {} FROM {keyspace}.{} WHERE {} = ? AND {} < ? ORDER BY {} DESC LIMIT {limit}",
            self.timestamp,
            columns.join(", "),
            self.table,
            self.vehicle,
            self.timestamp,
            self.timestamp
        )
    }

    /// Writes one row's vehicle, timestamp and compared columns (bound: [`TableLayout::row`]);
    /// columns it does not name keep what they hold.
    pub fn upsert(&self, keyspace: &str) -> String {
        let columns: Vec<&str> = self.values.iter().map(|(_, c, _)| c.as_str()).collect();
        let marks = vec!["?"; columns.len() + 2];
        format!(
            "INSERT INTO {keyspace}.{} ({}, {}, {}) VALUES ({})",
            self.table,
            self.vehicle,
            self.timestamp,
            columns.join(", "),
            marks.join(", ")
        )
    }

    /// Removes one row (bound: vehicle, timestamp).
    pub fn delete(&self, keyspace: &str) -> String {
        format!(
            "DELETE FROM {keyspace}.{} WHERE {} = ? AND {} = ?",
            self.table, self.vehicle, self.timestamp
        )
    }

    /// The values [`TableLayout::upsert`] binds, each in its column's type (an integer out of
    /// an `int` column's range is stored as its largest value).
    pub fn row(&self, vehicle_id: &str, timestamp_ms: i64, fields: &RowFields) -> Vec<CqlValue> {
        let mut row = vec![
            CqlValue::Text(vehicle_id.to_string()),
            CqlValue::Timestamp(CqlTimestamp(timestamp_ms)),
        ];
        let float = |field: &str| fields.float(field).unwrap_or(f64::NAN);
        for (field, _, column_type) in &self.values {
            let integer = match *field {
                "seq" => Some(fields.seq),
                "format_version" => Some(u64::from(fields.format_version)),
                _ => None,
            };
            let value = match (integer, column_type) {
                (Some(v), ColumnType::Int) => CqlValue::Int(i32::try_from(v).unwrap_or(i32::MAX)),
                (Some(v), _) => CqlValue::BigInt(i64::try_from(v).unwrap_or(i64::MAX)),
                (None, ColumnType::Float) => CqlValue::Float(float(field) as f32),
                (None, _) => CqlValue::Double(float(field)),
            };
            row.push(value);
        }
        row
    }

    /// How many of the run's rows the table holds (a full scan; filtered to the window).
    pub async fn count_rows(
        &self,
        session: &Session,
        keyspace: &str,
        timeout: Duration,
    ) -> Result<u64, String> {
        let text = match self.window {
            Some(_) => format!(
                "SELECT COUNT(*) FROM {keyspace}.{} WHERE {} >= ? AND {} < ? ALLOW FILTERING",
                self.table, self.timestamp, self.timestamp
            ),
            None => format!("SELECT COUNT(*) FROM {keyspace}.{}", self.table),
        };
        let mut statement = scylla::statement::Statement::new(text);
        statement.set_request_timeout(Some(timeout));
        let result = match self.window {
            Some((start, end)) => {
                let bounds = (CqlTimestamp(start), CqlTimestamp(end));
                session.query_unpaged(statement, bounds).await
            }
            None => session.query_unpaged(statement, ()).await,
        };
        let rows = result
            .map_err(|e| e.to_string())?
            .into_rows_result()
            .map_err(|e| e.to_string())?;
        let (count,) = rows.first_row::<(i64,)>().map_err(|e| e.to_string())?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

fn column_of<'a>(
    settings: &TableSettings,
    field: &'static str,
    columns: &'a [SchemaColumn],
) -> Result<&'a SchemaColumn, TableError> {
    let name = settings.column(field).unwrap_or_default();
    columns.iter().find(|c| c.name == name).ok_or_else(|| {
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        TableError::Column {
            field,
            message: format!(
                "column `{name}` is not in table `{}` (its columns: {})",
                settings.name,
                names.join(", ")
            ),
        }
    })
}

/// (field, column, type) of each value field the message sends and the table has a column for,
/// in [`VALUE_FIELDS`] order; the error names the first whose column is missing or cannot hold it.
fn value_columns(
    settings: &TableSettings,
    format: &RecordFormat,
    columns: &[SchemaColumn],
) -> Result<Vec<(&'static str, String, ColumnType)>, TableError> {
    let mut values = Vec::new();
    for field in VALUE_FIELDS {
        if settings.column(field).is_none() || !format.sends(field) {
            continue;
        }
        let column = column_of(settings, field, columns)?;
        let fits = match field {
            "seq" | "format_version" => {
                matches!(column.column_type, ColumnType::Int | ColumnType::BigInt)
            }
            _ => matches!(column.column_type, ColumnType::Double | ColumnType::Float),
        };
        if !fits {
            let wanted = match field {
                "seq" | "format_version" => "int or bigint",
                _ => "double or float",
            };
            return Err(TableError::Column {
                field,
                message: format!(
                    "column `{}` is {}; {field} needs {wanted}",
                    column.name,
                    column.column_type.name()
                ),
            });
        }
        values.push((field, column.name.clone(), column.column_type.clone()));
    }
    Ok(values)
}

/// The write-time column `settings` names, which must be a timestamp column of the table.
fn write_time_of(
    settings: &TableSettings,
    columns: &[SchemaColumn],
) -> Result<Option<String>, TableError> {
    let name = settings.write_time.as_str();
    if name.is_empty() {
        return Ok(None);
    }
    match columns.iter().find(|c| c.name == name) {
        Some(column) if column.column_type == ColumnType::Timestamp => Ok(Some(name.to_string())),
        found => Err(TableError::Column {
            field: "write_time",
            message: match found {
                Some(column) => format!(
                    "column `{name}` is {}; a write time needs timestamptz",
                    column.column_type.name()
                ),
                None => format!("column `{name}` is not in table `{}`", settings.name),
            },
        }),
    }
}

fn key_problem(field: &'static str, column: &SchemaColumn, wanted: &str) -> TableError {
    TableError::Column {
        field,
        message: format!(
            "column `{}` ({}, {:?}) must be {wanted}: verification reads each vehicle's rows in \
             timestamp order",
            column.name,
            column.column_type.name(),
            column.kind
        ),
    }
}

/// The table as roadtest creates it (`create = true`): every mapped field's column, partition
/// key the vehicle, clustering key the timestamp newest first. The default is roadtest's
/// `telemetry` table.
pub fn ddl(settings: &TableSettings, keyspace: &str) -> String {
    let columns: Vec<String> = settings
        .columns()
        .into_iter()
        .filter(|(_, column)| !column.is_empty())
        .map(|(field, column)| {
            let cql_type = match field {
                "vehicle_id" => "text",
                "timestamp" => "timestamp",
                "seq" => "bigint",
                "format_version" => "int",
                _ => "double",
            };
            format!("{column} {cql_type}")
        })
        .collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {keyspace}.{} ({}, PRIMARY KEY (({}), {})) WITH CLUSTERING \
         ORDER BY ({} DESC)",
        settings.name,
        columns.join(", "),
        settings.vehicle_id,
        settings.timestamp,
        settings.timestamp
    )
}

/// The table's columns, or `None` while it does not exist. Asks `system_schema` (Cassandra 3+,
/// ScyllaDB), then Cassandra 2.x's `system.schema_columns`.
pub async fn read_columns(
    session: &Session,
    keyspace: &str,
    table: &str,
) -> Result<Option<Vec<SchemaColumn>>, String> {
    let modern = "SELECT column_name, kind, position, type FROM system_schema.columns \
                  WHERE keyspace_name = ? AND table_name = ?";
    let legacy = "SELECT column_name, type, component_index, validator FROM system.schema_columns \
                  WHERE keyspace_name = ? AND columnfamily_name = ?";
    let rows = match query_columns(session, modern, keyspace, table).await {
        Ok(rows) => rows,
        Err(_) => query_columns(session, legacy, keyspace, table).await?,
    };
    let columns: Vec<SchemaColumn> = rows
        .into_iter()
        .map(|(name, kind, position, column_type)| SchemaColumn {
            name,
            kind: match kind.as_str() {
                "partition_key" => ColumnKind::Partition(position.unwrap_or(0).max(0)),
                "clustering" | "clustering_key" => {
                    ColumnKind::Clustering(position.unwrap_or(0).max(0))
                }
                _ => ColumnKind::Regular,
            },
            column_type: ColumnType::parse(&column_type),
        })
        .collect();
    Ok((!columns.is_empty()).then_some(columns))
}

type ColumnRow = (String, String, Option<i32>, String);

async fn query_columns(
    session: &Session,
    query: &str,
    keyspace: &str,
    table: &str,
) -> Result<Vec<ColumnRow>, String> {
    let result = session
        .query_unpaged(query, (keyspace, table))
        .await
        .map_err(|e| e.to_string())?;
    let rows = result.into_rows_result().map_err(|e| e.to_string())?;
    rows.rows::<ColumnRow>()
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

/// Waits (up to `deadline`) until the table exists in Cassandra, then checks it against
/// `settings`.
pub async fn wait_and_check(
    session: &Session,
    keyspace: &str,
    settings: &TableSettings,
    format: &RecordFormat,
    deadline: Duration,
) -> Result<TableLayout, TableError> {
    let read = || async { read_columns(session, keyspace, &settings.name).await };
    wait_for_columns(keyspace, settings, format, deadline, read).await
}

/// Asks `read` for the table's columns until it finds them (up to `deadline`; a failed read
/// counts as not yet), then checks them against `settings`.
pub async fn wait_for_columns<F, E>(
    keyspace: &str,
    settings: &TableSettings,
    format: &RecordFormat,
    deadline: Duration,
    read: impl Fn() -> F,
) -> Result<TableLayout, TableError>
where
    F: std::future::Future<Output = Result<Option<Vec<SchemaColumn>>, E>>,
{
    let started = Instant::now();
    loop {
        if let Ok(Some(columns)) = read().await {
            return TableLayout::check(settings, format, &columns);
        }
        if started.elapsed() > deadline {
            return Err(TableError::Missing {
                keyspace: keyspace.to_string(),
                table: settings.name.clone(),
                waited_s: deadline.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
