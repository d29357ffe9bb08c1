//! Unit tests of the request-body checks and rewrites, on bodies built by hand.

use super::*;
use crate::wire::{put_i32, put_string, put_u16};

/// A bound value for the builders: `None` = null, `Some(None)` = unset, else bytes.
type V<'a> = Option<Option<&'a [u8]>>;

/// <query_parameters> with the given values (`None` = null, `Some(None)` = unset).
fn params(values: &[V<'_>], extra_flags: u8, names: bool) -> Vec<u8> {
    let mut b = Vec::new();
    put_u16(&mut b, 0x0001); // ONE
    let mut flags = extra_flags;
    if !values.is_empty() {
        flags |= 0x01;
    }
    if names {
        flags |= 0x40;
    }
    b.push(flags);
    if !values.is_empty() {
        put_u16(&mut b, values.len() as u16);
        for (i, v) in values.iter().enumerate() {
            if names {
                put_string(&mut b, &format!("v{i}")).unwrap();
            }
            put_value(&mut b, *v);
        }
    }
    if flags & 0x04 != 0 {
        put_i32(&mut b, 5000);
    }
    if flags & 0x08 != 0 {
        put_i32(&mut b, 2);
        b.extend_from_slice(b"ps");
    }
    if flags & 0x10 != 0 {
        put_u16(&mut b, 0x0008);
    }
    if flags & 0x20 != 0 {
        b.extend_from_slice(&1_700_000_000_000_000i64.to_be_bytes());
    }
    b
}

fn put_value(b: &mut Vec<u8>, v: V<'_>) {
    match v {
        None => put_i32(b, -1),
        Some(None) => put_i32(b, -2),
        Some(Some(bytes)) => {
            put_i32(b, bytes.len() as i32);
            b.extend_from_slice(bytes);
        }
    }
}

fn query_body(text: &str, params: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    put_long_string(&mut b, text).unwrap();
    b.extend_from_slice(params);
    b
}

fn execute_body(id: &[u8], params: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    put_u16(&mut b, id.len() as u16);
    b.extend_from_slice(id);
    b.extend_from_slice(params);
    b
}

fn batch_body(statements: &[(&str, Vec<V<'_>>)], flags: u8) -> Vec<u8> {
    let mut b = vec![1]; // UNLOGGED
    put_u16(&mut b, statements.len() as u16);
    for (i, (text, values)) in statements.iter().enumerate() {
        if i % 2 == 0 {
            b.push(0);
            put_long_string(&mut b, text).unwrap();
        } else {
            b.push(1);
            put_u16(&mut b, 2);
            b.extend_from_slice(b"id");
        }
        put_u16(&mut b, values.len() as u16);
        for v in values {
            put_value(&mut b, *v);
        }
    }
    put_u16(&mut b, 0x000A); // LOCAL_ONE
    b.push(flags);
    if flags & 0x10 != 0 {
        put_u16(&mut b, 0x0009);
    }
    if flags & 0x20 != 0 {
        b.extend_from_slice(&42i64.to_be_bytes());
    }
    b
}

fn is_unset_refusal(r: &Reject) -> bool {
    matches!(r, Reject::Refuse { code, message } if *code == error_code::INVALID && message.contains("unset values"))
}

#[test]
fn startup_cql_version_becomes_3_0_0_and_other_options_stay() {
    let mut v4 = Vec::new();
    put_string_map(
        &mut v4,
        &[
            ("DRIVER_NAME", "scylla-rust-driver"),
            ("CQL_VERSION", "4.0.0"),
            ("DRIVER_VERSION", "1.9.0"),
        ],
    )
    .unwrap();
    let v3 = rewrite_startup(&v4).unwrap();
    let mut r = Reader::new(&v3);
    assert_eq!(
        r.string_map("m").unwrap(),
        vec![
            ("DRIVER_NAME", "scylla-rust-driver"),
            ("CQL_VERSION", "3.0.0"),
            ("DRIVER_VERSION", "1.9.0"),
        ]
    );
    assert!(r.is_empty());
}

#[test]
fn startup_with_compression_is_refused() {
    let mut v4 = Vec::new();
    put_string_map(&mut v4, &[("CQL_VERSION", "4.0.0"), ("COMPRESSION", "lz4")]).unwrap();
    match rewrite_startup(&v4) {
        Err(Reject::Refuse { code, message }) => {
            assert_eq!(code, error_code::PROTOCOL);
            assert!(message.contains("compression (lz4)"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        rewrite_startup(&v4[..v4.len() - 1]),
        Err(Reject::Malformed(_))
    ));
}

#[test]
fn query_with_all_parameters_passes() {
    let p = params(&[Some(Some(b"x")), None], 0x04 | 0x08 | 0x10 | 0x20, false);
    let body = query_body("SELECT * FROM t WHERE k = ? AND c = ?", &p);
    let q = check_query(&body).unwrap();
    assert_eq!(q.text, "SELECT * FROM t WHERE k = ? AND c = ?");
    assert_eq!(&body[q.params_at..], &p[..]);
    let named = params(&[Some(Some(b"x"))], 0x02, true);
    check_query(&query_body("SELECT 1", &named)).unwrap();
}

#[test]
fn unset_values_are_refused_in_query_execute_and_batch() {
    let unset = params(&[Some(Some(b"k")), Some(None)], 0x04, false);
    let r = check_query(&query_body("INSERT INTO t (k, v) VALUES (?, ?)", &unset)).unwrap_err();
    assert!(is_unset_refusal(&r), "{r:?}");
    let named_unset = params(&[Some(None)], 0, true);
    let r = check_query(&query_body("INSERT INTO t (k) VALUES (:k)", &named_unset)).unwrap_err();
    assert!(is_unset_refusal(&r), "{r:?}");

    let r = check_execute(&execute_body(b"abcd", &unset)).unwrap_err();
    assert!(is_unset_refusal(&r), "{r:?}");
    let ok = params(&[Some(Some(b"k")), None], 0, false);
    assert_eq!(check_execute(&execute_body(b"abcd", &ok)).unwrap(), b"abcd");

    let good: Vec<V<'_>> = vec![Some(Some(b"a")), None];
    let bad: Vec<V<'_>> = vec![Some(Some(b"a")), Some(None)];
    check_batch(&batch_body(
        &[("INSERT 1", good.clone()), ("", good.clone())],
        0x30,
    ))
    .unwrap();
    for stmts in [
        vec![("INSERT 1", bad.clone()), ("", good.clone())],
        vec![("INSERT 1", good.clone()), ("", bad.clone())],
    ] {
        let r = check_batch(&batch_body(&stmts, 0)).unwrap_err();
        assert!(is_unset_refusal(&r), "{r:?}");
    }
}

#[test]
fn flags_v4_does_not_define_are_refused() {
    let mut p = params(&[], 0, false);
    p[2] = 0x80;
    let r = check_query(&query_body("SELECT 1", &p)).unwrap_err();
    assert!(matches!(r, Reject::Refuse { code, .. } if code == error_code::PROTOCOL));
    let r = check_batch(&batch_body(&[("INSERT 1", vec![])], 0x40)).unwrap_err();
    assert!(matches!(&r, Reject::Refuse { message, .. } if message.contains("names for values")));
    let r = check_batch(&batch_body(&[("INSERT 1", vec![])], 0x01)).unwrap_err();
    assert!(matches!(r, Reject::Refuse { code, .. } if code == error_code::PROTOCOL));
}

#[test]
fn truncated_or_padded_bodies_are_malformed() {
    let p = params(&[Some(Some(b"abc")), None], 0x04 | 0x08 | 0x20, false);
    let q = query_body("SELECT 1", &p);
    let e = execute_body(b"id", &p);
    let b = batch_body(
        &[("INSERT 1", vec![Some(Some(b"a"))]), ("", vec![None])],
        0x30,
    );
    for cut in 0..q.len() {
        assert!(
            matches!(check_query(&q[..cut]), Err(Reject::Malformed(_))),
            "cut {cut}"
        );
    }
    for cut in 0..e.len() {
        assert!(
            matches!(check_execute(&e[..cut]), Err(Reject::Malformed(_))),
            "cut {cut}"
        );
    }
    for cut in 0..b.len() {
        assert!(
            matches!(check_batch(&b[..cut]), Err(Reject::Malformed(_))),
            "cut {cut}"
        );
    }
    let mut padded = q.clone();
    padded.push(0);
    assert!(matches!(check_query(&padded), Err(Reject::Malformed(_))));
    let mut prep = prepare_body("SELECT 1").unwrap();
    assert_eq!(check_prepare(&prep).unwrap(), "SELECT 1");
    prep.extend_from_slice(&[0, 0, 0, 0]); // v5-style PREPARE flags
    assert!(matches!(check_prepare(&prep), Err(Reject::Malformed(_))));
    // A value length below -2 is invalid in v4.
    let mut bad = params(&[None], 0, false);
    let n = bad.len();
    bad[n - 4..].copy_from_slice(&(-3i32).to_be_bytes());
    assert!(matches!(
        check_query(&query_body("SELECT 1", &bad)),
        Err(Reject::Malformed(_))
    ));
}

#[test]
fn query_text_replacement_keeps_parameters() {
    let p = params(&[Some(Some(b"v"))], 0x04, false);
    let body = query_body("SELECT a, rpc_address FROM system.local", &p);
    let q = check_query(&body).unwrap();
    let new = replace_query_text(&body, &q, "SELECT a FROM system.local").unwrap();
    assert_eq!(new, query_body("SELECT a FROM system.local", &p));
}
