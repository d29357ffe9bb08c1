//! Unit tests of the table layout: types from either schema dialect, every check naming its field, the DDL and the verification query.

use super::*;
use crate::scenario::RecordSettings;

fn column(name: &str, kind: ColumnKind, column_type: &str) -> SchemaColumn {
    SchemaColumn {
        name: name.to_string(),
        kind,
        column_type: ColumnType::parse(column_type),
    }
}

/// A user's table: its own names, a float humidity, no format_version column.
fn readings() -> (TableSettings, Vec<SchemaColumn>) {
    let settings = TableSettings {
        name: "readings".into(),
        create: false,
        vehicle_id: "vin".into(),
        timestamp: "recorded_at".into(),
        seq: "sequence".into(),
        latitude: "lat".into(),
        longitude: "lon".into(),
        format_version: String::new(),
        ..TableSettings::default()
    };
    let columns = vec![
        column("vin", ColumnKind::Partition(0), "text"),
        column("recorded_at", ColumnKind::Clustering(0), "timestamp"),
        column("sequence", ColumnKind::Regular, "int"),
        column("lat", ColumnKind::Regular, "double"),
        column("lon", ColumnKind::Regular, "double"),
        column("speed", ColumnKind::Regular, "double"),
        column("temperature", ColumnKind::Regular, "double"),
        column("humidity", ColumnKind::Regular, "float"),
        column("note", ColumnKind::Regular, "text"),
    ];
    (settings, columns)
}

fn all_sent() -> RecordFormat {
    RecordFormat::default()
}

#[test]
fn types_read_the_same_from_cql_names_and_cassandra_2_validators() {
    let pairs = [
        (
            "text",
            "org.apache.cassandra.db.marshal.UTF8Type",
            ColumnType::Text,
        ),
        (
            "double",
            "org.apache.cassandra.db.marshal.DoubleType",
            ColumnType::Double,
        ),
        (
            "float",
            "org.apache.cassandra.db.marshal.FloatType",
            ColumnType::Float,
        ),
        (
            "int",
            "org.apache.cassandra.db.marshal.Int32Type",
            ColumnType::Int,
        ),
        (
            "bigint",
            "org.apache.cassandra.db.marshal.LongType",
            ColumnType::BigInt,
        ),
        (
            "timestamp",
            "org.apache.cassandra.db.marshal.ReversedType(org.apache.cassandra.db.marshal.TimestampType)",
            ColumnType::Timestamp,
        ),
    ];
    for (cql, validator, expected) in pairs {
        assert_eq!(ColumnType::parse(cql), expected, "{cql}");
        assert_eq!(ColumnType::parse(validator), expected, "{validator}");
    }
    assert_eq!(ColumnType::parse("uuid"), ColumnType::Other("uuid".into()));
}

#[test]
fn a_users_table_is_read_by_its_own_names_and_types() {
    let (settings, columns) = readings();
    let layout = TableLayout::check(&settings, &all_sent(), &columns).expect("a valid table");
    assert_eq!(
        layout.select("ks"),
        "SELECT recorded_at, sequence, lat, lon, speed, temperature, humidity, WRITETIME(sequence) \
         FROM ks.readings WHERE vin = ? ORDER BY recorded_at ASC"
    );
    assert_eq!(
        layout.values[5],
        ("humidity", "humidity".to_string(), ColumnType::Float)
    );
    // A field the message leaves out is not read, even with a column.
    let no_seq = RecordFormat::new(&RecordSettings {
        seq: String::new(),
        ..RecordSettings::default()
    });
    let layout = TableLayout::check(&settings, &no_seq, &columns).expect("a valid table");
    assert_eq!(layout.write_time_column(), "lat");
    assert!(layout.values.iter().all(|(field, _, _)| *field != "seq"));
}

#[test]
fn every_mismatch_names_its_field_and_column() {
    let (settings, columns) = readings();
    let problem = |settings: &TableSettings, columns: &[SchemaColumn]| {
        TableLayout::check(settings, &all_sent(), columns)
            .expect_err("refused")
            .to_string()
    };
    let missing = TableSettings {
        latitude: "latitude_deg".into(),
        ..settings.clone()
    };
    let text = problem(&missing, &columns);
    assert!(text.starts_with("pipeline.table.latitude: column `latitude_deg` is not in table `readings` (its columns: vin, recorded_at,"), "{text}");
    let mut wrong_type = columns.clone();
    wrong_type[3] = column("lat", ColumnKind::Regular, "text");
    let text = problem(&settings, &wrong_type);
    assert_eq!(
        text,
        "pipeline.table.latitude: column `lat` is text; latitude needs double or float"
    );
    let mut text_seq = columns.clone();
    text_seq[2] = column("sequence", ColumnKind::Regular, "varchar");
    assert!(problem(&settings, &text_seq).contains("seq needs int or bigint"));
    let mut two_keys = columns.clone();
    two_keys.push(column("day", ColumnKind::Partition(1), "text"));
    assert!(problem(&settings, &two_keys).contains("the only partition key"));
    let mut unclustered = columns.clone();
    unclustered[1] = column("recorded_at", ColumnKind::Regular, "timestamp");
    let text = problem(&settings, &unclustered);
    assert!(
        text.starts_with("pipeline.table.timestamp: column `recorded_at`"),
        "{text}"
    );
    let mut not_text = columns.clone();
    not_text[0] = column("vin", ColumnKind::Partition(0), "bigint");
    assert!(problem(&settings, &not_text).contains("a text partition key"));
    let keys_only = TableSettings {
        seq: String::new(),
        latitude: String::new(),
        longitude: String::new(),
        speed: String::new(),
        temperature: String::new(),
        humidity: String::new(),
        ..settings
    };
    assert!(problem(&keys_only, &columns).contains("no field besides vehicle_id and timestamp"));
}

#[test]
fn roadtests_table_is_created_as_it_always_was() {
    assert_eq!(
        ddl(&TableSettings::default(), "ks"),
        "CREATE TABLE IF NOT EXISTS ks.telemetry (vehicle_id text, timestamp timestamp, seq \
         bigint, latitude double, longitude double, speed double, temperature double, humidity \
         double, format_version int, PRIMARY KEY ((vehicle_id), timestamp)) WITH CLUSTERING \
         ORDER BY (timestamp DESC)"
    );
    let (settings, _) = readings();
    assert_eq!(
        ddl(&settings, "ks"),
        "CREATE TABLE IF NOT EXISTS ks.readings (vin text, recorded_at timestamp, sequence \
         bigint, lat double, lon double, speed double, temperature double, humidity double, \
         PRIMARY KEY ((vin), recorded_at)) WITH CLUSTERING ORDER BY (recorded_at DESC)"
    );
}

#[test]
fn tamper_statements_name_the_users_columns() {
    let (settings, columns) = readings();
    let layout = TableLayout::check(&settings, &all_sent(), &columns).expect("a valid table");
    assert_eq!(
        layout.select_before("ks", 100),
        "SELECT recorded_at, sequence, lat, lon, speed, temperature, humidity FROM ks.readings \
         WHERE vin = ? AND recorded_at < ? ORDER BY recorded_at DESC LIMIT 100"
    );
    assert_eq!(
        layout.upsert("ks"),
        "INSERT INTO ks.readings (vin, recorded_at, sequence, lat, lon, speed, temperature, \
         humidity) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    );
    assert_eq!(
        layout.delete("ks"),
        "DELETE FROM ks.readings WHERE vin = ? AND recorded_at = ?"
    );
}

#[test]
fn a_row_is_written_in_each_columns_type_and_reads_back_the_same() {
    let (settings, columns) = readings();
    let layout = TableLayout::check(&settings, &all_sent(), &columns).expect("a valid table");
    let fields = RowFields::from_columns(7, [52.5, 13.4, 31.25, -2.5, 0.1], 1);
    let row = layout.row("veh-0003", 1_767_225_600_123, &fields);
    assert_eq!(
        row,
        vec![
            CqlValue::Text("veh-0003".into()),
            CqlValue::Timestamp(CqlTimestamp(1_767_225_600_123)),
            CqlValue::Int(7),
            CqlValue::Double(52.5),
            CqlValue::Double(13.4),
            CqlValue::Double(31.25),
            CqlValue::Double(-2.5),
            CqlValue::Float(0.1),
        ]
    );
    let mut values = row.into_iter().skip(2).map(Some);
    let read = layout.read_values(&mut values);
    // format_version has no column: never compared, read as the value that cannot match.
    let expected = RowFields {
        humidity: f64::from(0.1_f32),
        format_version: u32::MAX,
        ..fields
    };
    assert_eq!(format!("{read:?}"), format!("{expected:?}"));
    // A seq beyond an int column's range is stored as its largest value, never wrapped.
    let big = RowFields {
        seq: u64::from(u32::MAX),
        ..fields
    };
    assert_eq!(layout.row("v", 0, &big)[2], CqlValue::Int(i32::MAX));
}
