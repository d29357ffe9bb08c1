//! RESULT body surgery: the v4 `pk_count` insertion into PREPARED metadata, and re-inserting the
//! `rpc_address inet` column (spec and per-row value) into PREPARED and ROWS results of the
//! rewritten `system.local` statement. Pure functions over byte slices.

use std::net::Ipv4Addr;

use crate::system_local::ColumnLayout;
use crate::wire::{Malformed, ParseResult, Reader, put_i32, put_string, put_u16};

/// RESULT kinds.
pub mod kind {
    /// Void.
    pub const VOID: i32 = 0x0001;
    /// Rows.
    pub const ROWS: i32 = 0x0002;
    /// Set_keyspace.
    pub const SET_KEYSPACE: i32 = 0x0003;
    /// Prepared.
    pub const PREPARED: i32 = 0x0004;
    /// Schema_change.
    pub const SCHEMA_CHANGE: i32 = 0x0005;
}

const GLOBAL_TABLES_SPEC: i32 = 0x0001;
const HAS_MORE_PAGES: i32 = 0x0002;
const NO_METADATA: i32 = 0x0004;

/// Type id of `inet`.
const INET: u16 = 0x0010;
/// Deepest type nesting accepted (collections of UDTs of tuples...); deeper is treated as
/// malformed so hostile input cannot exhaust the stack.
const MAX_TYPE_DEPTH: u32 = 32;

/// Skips one [option] type description.
fn skip_type(r: &mut Reader<'_>, depth: u32) -> ParseResult<()> {
    if depth > MAX_TYPE_DEPTH {
        return Err(r.malformed("type nesting too deep"));
    }
    let start = r.pos();
    match r.u16("type id")? {
        0x0000 => {
            r.string("custom type class")?;
        }
        0x0001..=0x0014 => {}
        0x0020 | 0x0022 => skip_type(r, depth + 1)?,
        0x0021 => {
            skip_type(r, depth + 1)?;
            skip_type(r, depth + 1)?;
        }
        0x0030 => {
            r.string("udt keyspace")?;
            r.string("udt name")?;
            for _ in 0..r.u16("udt field count")? {
                r.string("udt field name")?;
                skip_type(r, depth + 1)?;
            }
        }
        0x0031 => {
            for _ in 0..r.u16("tuple arity")? {
                skip_type(r, depth + 1)?;
            }
        }
        _ => {
            return Err(Malformed {
                what: "unknown type id",
                offset: start,
            });
        }
    }
    Ok(())
}

/// Skips `count` column specs (with or without keyspace/table prefixes).
fn skip_col_specs(r: &mut Reader<'_>, count: usize, global: bool) -> ParseResult<()> {
    for _ in 0..count {
        if !global {
            r.string("column keyspace")?;
            r.string("column table")?;
        }
        r.string("column name")?;
        skip_type(r, 0)?;
    }
    Ok(())
}

fn client_count(layout: &ColumnLayout) -> ParseResult<i32> {
    i32::try_from(layout.client_columns()).map_err(|_| Malformed {
        what: "too many columns",
        offset: 0,
    })
}

/// Reads a v3 result metadata block from `r` and appends it to `out` with the injected
/// `rpc_address` columns of `layout`. Fails if the server's column count does not match.
fn rewrite_result_metadata(
    r: &mut Reader<'_>,
    out: &mut Vec<u8>,
    layout: &ColumnLayout,
) -> ParseResult<()> {
    let flags = r.i32("metadata flags")?;
    let count_at = r.pos();
    let count = r.count("columns_count")?;
    if count != layout.server_columns() {
        return Err(Malformed {
            what: "column count differs from the rewritten system.local statement",
            offset: count_at,
        });
    }
    put_i32(out, flags);
    put_i32(out, client_count(layout)?);
    if flags & HAS_MORE_PAGES != 0 {
        let start = r.pos();
        r.bytes("paging_state")?;
        out.extend_from_slice(r.since(start));
    }
    if flags & NO_METADATA != 0 {
        return Ok(());
    }
    let global = flags & GLOBAL_TABLES_SPEC != 0;
    if global {
        let start = r.pos();
        r.string("global keyspace")?;
        r.string("global table")?;
        out.extend_from_slice(r.since(start));
    }
    for &injected in layout.slots() {
        if injected {
            if !global {
                put_string(out, "system")?;
                put_string(out, "local")?;
            }
            put_string(out, "rpc_address")?;
            put_u16(out, INET);
        } else {
            let start = r.pos();
            skip_col_specs(r, 1, global)?;
            out.extend_from_slice(r.since(start));
        }
    }
    Ok(())
}

/// Rewrites a v3 PREPARED result body (starting at the kind [int]) into v4: inserts
/// `pk_count = 0` after `columns_count`, and if `layout` is given, injects the `rpc_address`
/// column into the result metadata. Returns the new body and the prepared statement id.
pub fn rewrite_prepared(
    body: &[u8],
    layout: Option<&ColumnLayout>,
) -> ParseResult<(Vec<u8>, Vec<u8>)> {
    let mut r = Reader::new(body);
    if r.i32("result kind")? != kind::PREPARED {
        return Err(r.malformed("not a PREPARED result"));
    }
    let id = r.short_bytes("prepared id")?.to_vec();
    let flags = r.i32("prepared metadata flags")?;
    let count = r.count("prepared columns_count")?;
    let mut out = Vec::with_capacity(body.len() + 4 + 64);
    out.extend_from_slice(r.since(0));
    put_i32(&mut out, 0); // pk_count: unknown to a v3 server; 0 is valid v4.
    let Some(layout) = layout else {
        out.extend_from_slice(r.remaining());
        return Ok((out, id));
    };
    let start = r.pos();
    let global = flags & GLOBAL_TABLES_SPEC != 0;
    if global {
        r.string("global keyspace")?;
        r.string("global table")?;
    }
    skip_col_specs(&mut r, count, global)?;
    out.extend_from_slice(r.since(start));
    rewrite_result_metadata(&mut r, &mut out, layout)?;
    r.expect_end("trailing bytes after PREPARED result metadata")?;
    Ok((out, id))
}

/// Rewrites a v3 ROWS result body (starting at the kind [int]) for a rewritten `system.local`
/// statement: adds the `rpc_address` column spec (unless the metadata was skipped) and the
/// 4-byte `ip` value at the right position of every row.
pub fn rewrite_rows(body: &[u8], layout: &ColumnLayout, ip: Ipv4Addr) -> ParseResult<Vec<u8>> {
    let mut r = Reader::new(body);
    if r.i32("result kind")? != kind::ROWS {
        return Err(r.malformed("not a ROWS result"));
    }
    let mut out = Vec::with_capacity(body.len() + 64);
    put_i32(&mut out, kind::ROWS);
    rewrite_result_metadata(&mut r, &mut out, layout)?;
    let rows = r.count("rows_count")?;
    out.extend_from_slice(&(rows as i32).to_be_bytes());
    for _ in 0..rows {
        for &injected in layout.slots() {
            if injected {
                put_i32(&mut out, 4);
                out.extend_from_slice(&ip.octets());
            } else {
                let start = r.pos();
                r.bytes("row value")?;
                out.extend_from_slice(r.since(start));
            }
        }
    }
    r.expect_end("trailing bytes after rows")?;
    Ok(out)
}

/// The kind of a RESULT body, if it has one.
pub fn result_kind(body: &[u8]) -> ParseResult<i32> {
    Reader::new(body).i32("result kind")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A v3 column spec without keyspace/table.
    pub(crate) fn spec(out: &mut Vec<u8>, name: &str, type_id: u16) {
        put_string(out, name).unwrap();
        put_u16(out, type_id);
    }

    /// v3 PREPARED body: no bind markers, result metadata with `cols` (global spec).
    pub(crate) fn v3_prepared(id: &[u8], bind: &[(&str, u16)], cols: &[(&str, u16)]) -> Vec<u8> {
        let mut b = Vec::new();
        put_i32(&mut b, kind::PREPARED);
        put_u16(&mut b, id.len() as u16);
        b.extend_from_slice(id);
        for group in [bind, cols] {
            put_i32(&mut b, GLOBAL_TABLES_SPEC);
            put_i32(&mut b, group.len() as i32);
            put_string(&mut b, "system").unwrap();
            put_string(&mut b, "local").unwrap();
            for (n, t) in group {
                spec(&mut b, n, *t);
            }
        }
        b
    }

    #[test]
    fn prepared_gets_pk_count_after_columns_count() {
        let v3 = v3_prepared(b"ID", &[("k", 0x000D)], &[("v", 0x0009)]);
        let (v4, id) = rewrite_prepared(&v3, None).unwrap();
        assert_eq!(id, b"ID");
        // kind(4) id(2+2) flags(4) count(4) then pk_count(4) = 0.
        let at = 4 + 4 + 4 + 4;
        assert_eq!(&v4[..at], &v3[..at]);
        assert_eq!(&v4[at..at + 4], &[0, 0, 0, 0]);
        assert_eq!(&v4[at + 4..], &v3[at..]);
    }

    #[test]
    fn prepared_with_layout_gets_rpc_address_in_result_metadata() {
        let v3 = v3_prepared(b"ID", &[], &[("host_id", 0x000C), ("rack", 0x000D)]);
        let layout = ColumnLayout::new(vec![false, true, false]);
        let (v4, _) = rewrite_prepared(&v3, Some(&layout)).unwrap();
        let expected = {
            let mut b = Vec::new();
            put_i32(&mut b, kind::PREPARED);
            put_u16(&mut b, 2);
            b.extend_from_slice(b"ID");
            put_i32(&mut b, GLOBAL_TABLES_SPEC);
            put_i32(&mut b, 0);
            put_i32(&mut b, 0); // pk_count
            put_string(&mut b, "system").unwrap();
            put_string(&mut b, "local").unwrap();
            put_i32(&mut b, GLOBAL_TABLES_SPEC);
            put_i32(&mut b, 3);
            put_string(&mut b, "system").unwrap();
            put_string(&mut b, "local").unwrap();
            spec(&mut b, "host_id", 0x000C);
            spec(&mut b, "rpc_address", INET);
            spec(&mut b, "rack", 0x000D);
            b
        };
        assert_eq!(v4, expected);
    }

    #[test]
    fn rows_get_rpc_address_spec_and_values() {
        let layout = ColumnLayout::new(vec![true, false, false]);
        let ip = Ipv4Addr::new(10, 1, 2, 3);
        // Per-column specs (no global flag) with a nested map type, 2 rows, one null value.
        let mut v3 = Vec::new();
        put_i32(&mut v3, kind::ROWS);
        put_i32(&mut v3, 0);
        put_i32(&mut v3, 2);
        for (n, t) in [
            ("a", &[0x00, 0x09][..]),
            ("m", &[0x00, 0x21, 0, 0x0D, 0, 0x20, 0, 0x09]),
        ] {
            put_string(&mut v3, "system").unwrap();
            put_string(&mut v3, "local").unwrap();
            put_string(&mut v3, n).unwrap();
            v3.extend_from_slice(t);
        }
        put_i32(&mut v3, 2);
        for row in [
            [Some(&[1u8, 2, 3, 4][..]), None],
            [Some(&[][..]), Some(&[9][..])],
        ] {
            for v in row {
                match v {
                    Some(v) => {
                        put_i32(&mut v3, v.len() as i32);
                        v3.extend_from_slice(v);
                    }
                    None => put_i32(&mut v3, -1),
                }
            }
        }
        let v4 = rewrite_rows(&v3, &layout, ip).unwrap();
        let mut r = Reader::new(&v4);
        assert_eq!(r.i32("k").unwrap(), kind::ROWS);
        assert_eq!(r.i32("f").unwrap(), 0);
        assert_eq!(r.i32("c").unwrap(), 3);
        let mut names = Vec::new();
        for _ in 0..3 {
            assert_eq!(r.string("ks").unwrap(), "system");
            assert_eq!(r.string("t").unwrap(), "local");
            names.push(r.string("n").unwrap());
            skip_type(&mut r, 0).unwrap();
        }
        assert_eq!(names, ["rpc_address", "a", "m"]);
        assert_eq!(r.i32("rows").unwrap(), 2);
        let mut values = Vec::new();
        for _ in 0..6 {
            values.push(r.bytes("v").unwrap().map(<[u8]>::to_vec));
        }
        r.expect_end("end").unwrap();
        assert_eq!(values[0].as_deref(), Some(&[10, 1, 2, 3][..]));
        assert_eq!(values[1].as_deref(), Some(&[1, 2, 3, 4][..]));
        assert_eq!(values[2], None);
        assert_eq!(values[3].as_deref(), Some(&[10, 1, 2, 3][..]));
        assert_eq!(values[5].as_deref(), Some(&[9][..]));
    }

    #[test]
    fn rows_without_metadata_and_with_paging_state() {
        let layout = ColumnLayout::new(vec![false, true]);
        let mut v3 = Vec::new();
        put_i32(&mut v3, kind::ROWS);
        put_i32(&mut v3, NO_METADATA | HAS_MORE_PAGES);
        put_i32(&mut v3, 1);
        put_i32(&mut v3, 3);
        v3.extend_from_slice(b"pst");
        put_i32(&mut v3, 1);
        put_i32(&mut v3, 1);
        v3.push(7);
        let v4 = rewrite_rows(&v3, &layout, Ipv4Addr::LOCALHOST).unwrap();
        let mut expected = Vec::new();
        put_i32(&mut expected, kind::ROWS);
        put_i32(&mut expected, NO_METADATA | HAS_MORE_PAGES);
        put_i32(&mut expected, 2);
        put_i32(&mut expected, 3);
        expected.extend_from_slice(b"pst");
        put_i32(&mut expected, 1);
        put_i32(&mut expected, 1);
        expected.push(7);
        put_i32(&mut expected, 4);
        expected.extend_from_slice(&[127, 0, 0, 1]);
        assert_eq!(v4, expected);
    }

    #[test]
    fn mismatched_or_truncated_results_are_errors() {
        let layout = ColumnLayout::new(vec![false, true]);
        let v3 = v3_prepared(b"ID", &[], &[("a", 9), ("b", 9)]);
        assert!(
            rewrite_prepared(&v3, Some(&layout)).is_err(),
            "2 server columns, 1 expected"
        );
        let v3 = v3_prepared(b"ID", &[], &[("a", 9)]);
        for cut in 0..v3.len() {
            assert!(rewrite_prepared(&v3[..cut], Some(&layout)).is_err());
        }
        let mut deep = Vec::new();
        put_i32(&mut deep, kind::ROWS);
        put_i32(&mut deep, GLOBAL_TABLES_SPEC);
        put_i32(&mut deep, 1);
        put_string(&mut deep, "k").unwrap();
        put_string(&mut deep, "t").unwrap();
        put_string(&mut deep, "c").unwrap();
        for _ in 0..1000 {
            put_u16(&mut deep, 0x0020);
        }
        assert_eq!(
            rewrite_rows(&deep, &layout, Ipv4Addr::LOCALHOST)
                .unwrap_err()
                .what,
            "type nesting too deep"
        );
    }
}
