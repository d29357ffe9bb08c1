//! Request-body checks and rewrites (client v4 -> server v3): STARTUP's CQL_VERSION and
//! compression, statement text of QUERY/PREPARE, and the scan of QUERY/EXECUTE/BATCH values for
//! v4-only "unset" markers and flags v3 lacks. Pure functions over byte slices.

use crate::frame::error_code;
use crate::wire::{Malformed, ParseResult, Reader, Value, put_long_string, put_string_map};

/// CQL version a Cassandra 2.1 server accepts.
pub const V3_CQL_VERSION: &str = "3.0.0";

/// Message of the Invalid error answering a request with unset values.
pub const UNSET_MESSAGE: &str = "unset values (v4 [value] length -2) are not supported through the cql-bridge: \
     the v3 server has no unset (Cassandra 2.1 would write a null); bind every value";

/// Why a request is not forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    /// The body does not parse as v4: the connection is closed after an error reply.
    Malformed(Malformed),
    /// The body is valid v4 but cannot be carried faithfully over v3: answered with an ERROR
    /// frame of `code`, connection kept.
    Refuse {
        /// ERROR code.
        code: i32,
        /// ERROR message.
        message: String,
    },
}

impl From<Malformed> for Reject {
    fn from(m: Malformed) -> Self {
        Reject::Malformed(m)
    }
}

impl Reject {
    /// A protocol-error refusal.
    pub fn protocol(message: impl Into<String>) -> Self {
        Reject::Refuse {
            code: error_code::PROTOCOL,
            message: message.into(),
        }
    }

    fn unset() -> Self {
        Reject::Refuse {
            code: error_code::INVALID,
            message: UNSET_MESSAGE.to_owned(),
        }
    }
}

/// Rewrites a STARTUP body: `CQL_VERSION` becomes [`V3_CQL_VERSION`]; any `COMPRESSION`
/// option is refused; other options pass unchanged and in order.
pub fn rewrite_startup(body: &[u8]) -> Result<Vec<u8>, Reject> {
    let mut r = Reader::new(body);
    let mut options = r.string_map("STARTUP options")?;
    r.expect_end("trailing bytes after STARTUP options")?;
    if let Some((_, algo)) = options.iter().find(|(k, _)| *k == "COMPRESSION") {
        return Err(Reject::protocol(format!(
            "compression ({algo}) is not supported through the cql-bridge; connect without compression"
        )));
    }
    for (k, v) in &mut options {
        if *k == "CQL_VERSION" {
            *v = V3_CQL_VERSION;
        }
    }
    let mut out = Vec::with_capacity(body.len());
    put_string_map(&mut out, &options)?;
    Ok(out)
}

/// QUERY parameter flags of v4 (one byte).
mod qflags {
    pub const VALUES: u8 = 0x01;
    pub const PAGE_SIZE: u8 = 0x04;
    pub const PAGING_STATE: u8 = 0x08;
    pub const SERIAL_CONSISTENCY: u8 = 0x10;
    pub const DEFAULT_TIMESTAMP: u8 = 0x20;
    pub const NAMES_FOR_VALUES: u8 = 0x40;
    /// Every bit v4 defines (0x02 is skip_metadata).
    pub const KNOWN: u8 = 0x7F;
}

/// Scans `count` values (optionally each preceded by a name); reports whether any was unset.
fn scan_values(r: &mut Reader<'_>, count: u16, names: bool) -> ParseResult<bool> {
    let mut unset = false;
    for _ in 0..count {
        if names {
            r.string("value name")?;
        }
        unset |= r.value("bound value")? == Value::Unset;
    }
    Ok(unset)
}

/// Scans v4 <query_parameters> to the end of the body.
fn scan_query_parameters(r: &mut Reader<'_>) -> Result<(), Reject> {
    r.u16("consistency")?;
    let flags = r.u8("query flags")?;
    if flags & !qflags::KNOWN != 0 {
        return Err(Reject::protocol(format!(
            "query flags 0x{flags:02x} include bits protocol v4 does not define"
        )));
    }
    let mut unset = false;
    if flags & qflags::VALUES != 0 {
        let n = r.u16("value count")?;
        unset = scan_values(r, n, flags & qflags::NAMES_FOR_VALUES != 0)?;
    }
    if flags & qflags::PAGE_SIZE != 0 {
        r.i32("result_page_size")?;
    }
    if flags & qflags::PAGING_STATE != 0 {
        r.bytes("paging_state")?;
    }
    if flags & qflags::SERIAL_CONSISTENCY != 0 {
        r.u16("serial_consistency")?;
    }
    if flags & qflags::DEFAULT_TIMESTAMP != 0 {
        r.take(8, "default timestamp")?;
    }
    r.expect_end("trailing bytes after query parameters")?;
    if unset {
        return Err(Reject::unset());
    }
    Ok(())
}

/// A parsed QUERY: statement text and where its parameters start in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query<'a> {
    /// The statement text.
    pub text: &'a str,
    /// Offset of <query_parameters> in the body.
    pub params_at: usize,
}

/// Checks a QUERY body (parameters well-formed, no unset values) and returns its text.
pub fn check_query(body: &[u8]) -> Result<Query<'_>, Reject> {
    let mut r = Reader::new(body);
    let text = r.long_string("query string")?;
    let params_at = r.pos();
    scan_query_parameters(&mut r)?;
    Ok(Query { text, params_at })
}

/// Checks a PREPARE body (v4: just the statement) and returns the text.
pub fn check_prepare(body: &[u8]) -> Result<&str, Reject> {
    let mut r = Reader::new(body);
    let text = r.long_string("query string")?;
    r.expect_end("trailing bytes after PREPARE query (v4 PREPARE has no flags)")?;
    Ok(text)
}

/// Checks an EXECUTE body (parameters well-formed, no unset values) and returns the id.
pub fn check_execute(body: &[u8]) -> Result<&[u8], Reject> {
    let mut r = Reader::new(body);
    let id = r.short_bytes("prepared id")?;
    scan_query_parameters(&mut r)?;
    Ok(id)
}

/// Checks a BATCH body: every statement's values, then the trailing consistency and flags.
pub fn check_batch(body: &[u8]) -> Result<(), Reject> {
    let mut r = Reader::new(body);
    let batch_type = r.u8("batch type")?;
    if batch_type > 2 {
        return Err(r.malformed("batch type").into());
    }
    let n = r.u16("batch statement count")?;
    // Values are scanned without names first: v4's "names for values" flag sits after the
    // statements and the spec itself says it cannot work (CASSANDRA-10246); it is refused below.
    let mut unset = false;
    for _ in 0..n {
        match r.u8("batch statement kind")? {
            0 => {
                r.long_string("batch query string")?;
            }
            1 => {
                r.short_bytes("batch prepared id")?;
            }
            _ => return Err(r.malformed("batch statement kind").into()),
        }
        let count = r.u16("batch value count")?;
        unset |= scan_values(&mut r, count, false)?;
    }
    r.u16("batch consistency")?;
    let flags = r.u8("batch flags")?;
    if flags & qflags::NAMES_FOR_VALUES != 0 {
        return Err(Reject::protocol(
            "BATCH with names for values is not supported through the cql-bridge (CASSANDRA-10246)",
        ));
    }
    if flags & !(qflags::SERIAL_CONSISTENCY | qflags::DEFAULT_TIMESTAMP) != 0 {
        return Err(Reject::protocol(format!(
            "batch flags 0x{flags:02x} include bits protocol v4 does not define for BATCH"
        )));
    }
    if flags & qflags::SERIAL_CONSISTENCY != 0 {
        r.u16("batch serial_consistency")?;
    }
    if flags & qflags::DEFAULT_TIMESTAMP != 0 {
        r.take(8, "batch default timestamp")?;
    }
    r.expect_end("trailing bytes after BATCH")?;
    if unset {
        return Err(Reject::unset());
    }
    Ok(())
}

/// A QUERY body with its statement text replaced (parameters copied unchanged).
pub fn replace_query_text(body: &[u8], query: &Query<'_>, text: &str) -> ParseResult<Vec<u8>> {
    let params = body.get(query.params_at..).unwrap_or(&[]);
    let mut out = Vec::with_capacity(4 + text.len() + params.len());
    put_long_string(&mut out, text)?;
    out.extend_from_slice(params);
    Ok(out)
}

/// A PREPARE body for `text`.
pub fn prepare_body(text: &str) -> ParseResult<Vec<u8>> {
    let mut out = Vec::with_capacity(4 + text.len());
    put_long_string(&mut out, text)?;
    Ok(out)
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
