//! Bounds-checked readers and writers for the CQL native protocol's primitive notations
//! ([short], [int], [string], [bytes], [option], ...). Pure, no I/O, never panics on bad input.

use std::fmt;

/// Why a body could not be parsed: a short, static description plus the byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// What was being read when the body ran out or held an invalid value.
    pub what: &'static str,
    /// Offset into the body where the problem was found.
    pub offset: usize,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed body: {} at byte {}", self.what, self.offset)
    }
}

impl std::error::Error for Malformed {}

/// Result of a parse step.
pub type ParseResult<T> = Result<T, Malformed>;

/// A cursor over a frame body. Every read checks bounds and reports [`Malformed`] instead of
/// panicking.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Current offset from the start of the buffer.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// The bytes consumed since offset `start` (empty if `start` is ahead of the cursor).
    pub fn since(&self, start: usize) -> &'a [u8] {
        self.buf.get(start..self.pos).unwrap_or(&[])
    }

    /// Whether every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// An error at the current position.
    pub fn malformed(&self, what: &'static str) -> Malformed {
        Malformed {
            what,
            offset: self.pos,
        }
    }

    /// Fails unless the whole buffer has been consumed.
    pub fn expect_end(&self, what: &'static str) -> ParseResult<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.malformed(what))
        }
    }

    /// Takes `n` raw bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> ParseResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| self.malformed(what))?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.malformed(what))?;
        self.pos = end;
        Ok(out)
    }

    /// A [byte].
    pub fn u8(&mut self, what: &'static str) -> ParseResult<u8> {
        Ok(self.take(1, what)?[0])
    }

    /// A [short] (unsigned 16-bit, big endian).
    pub fn u16(&mut self, what: &'static str) -> ParseResult<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// An [int] (signed 32-bit, big endian).
    pub fn i32(&mut self, what: &'static str) -> ParseResult<i32> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An [int] that must not be negative, as a count or length.
    pub fn count(&mut self, what: &'static str) -> ParseResult<usize> {
        let start = self.pos;
        let n = self.i32(what)?;
        usize::try_from(n).map_err(|_| Malformed {
            what,
            offset: start,
        })
    }

    /// A [string]: [short] length then UTF-8 bytes.
    pub fn string(&mut self, what: &'static str) -> ParseResult<&'a str> {
        let n = usize::from(self.u16(what)?);
        let start = self.pos;
        let raw = self.take(n, what)?;
        std::str::from_utf8(raw).map_err(|_| Malformed {
            what,
            offset: start,
        })
    }

    /// A [long string]: [int] length then UTF-8 bytes.
    pub fn long_string(&mut self, what: &'static str) -> ParseResult<&'a str> {
        let n = self.count(what)?;
        let start = self.pos;
        let raw = self.take(n, what)?;
        std::str::from_utf8(raw).map_err(|_| Malformed {
            what,
            offset: start,
        })
    }

    /// [short bytes]: [short] length then raw bytes.
    pub fn short_bytes(&mut self, what: &'static str) -> ParseResult<&'a [u8]> {
        let n = usize::from(self.u16(what)?);
        self.take(n, what)
    }

    /// [bytes]: [int] length then raw bytes; a negative length means null (`None`).
    pub fn bytes(&mut self, what: &'static str) -> ParseResult<Option<&'a [u8]>> {
        let n = self.i32(what)?;
        match usize::try_from(n) {
            Ok(n) => Ok(Some(self.take(n, what)?)),
            Err(_) => Ok(None),
        }
    }

    /// A v4 [value]: [int] length then bytes; -1 is null, -2 is "not set", anything below is
    /// invalid.
    pub fn value(&mut self, what: &'static str) -> ParseResult<Value<'a>> {
        let start = self.pos;
        let n = self.i32(what)?;
        match n {
            -1 => Ok(Value::Null),
            -2 => Ok(Value::Unset),
            n if n < -2 => Err(Malformed {
                what: "value length below -2",
                offset: start,
            }),
            n => Ok(Value::Bytes(self.take(n.unsigned_abs() as usize, what)?)),
        }
    }

    /// A [string list]: [short] count then that many [string]s.
    pub fn string_list(&mut self, what: &'static str) -> ParseResult<Vec<&'a str>> {
        let n = self.u16(what)?;
        (0..n).map(|_| self.string(what)).collect()
    }

    /// A [string map]: [short] count then key/value [string] pairs, order preserved.
    pub fn string_map(&mut self, what: &'static str) -> ParseResult<Vec<(&'a str, &'a str)>> {
        let n = self.u16(what)?;
        (0..n)
            .map(|_| Ok((self.string(what)?, self.string(what)?)))
            .collect()
    }

    /// A [string multimap]: [short] count then [string] keys each with a [string list].
    pub fn string_multimap(
        &mut self,
        what: &'static str,
    ) -> ParseResult<Vec<(&'a str, Vec<&'a str>)>> {
        let n = self.u16(what)?;
        (0..n)
            .map(|_| Ok((self.string(what)?, self.string_list(what)?)))
            .collect()
    }
}

/// A bound value as it appears in QUERY, EXECUTE and BATCH requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// Length -1.
    Null,
    /// Length -2 (v4 only: "leave this column unchanged").
    Unset,
    /// A regular value.
    Bytes(&'a [u8]),
}

/// Appends a [short].
pub fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends an [int].
pub fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Converts a length to the [short] the protocol needs, or reports it does not fit.
fn short_len(len: usize, what: &'static str) -> ParseResult<u16> {
    u16::try_from(len).map_err(|_| Malformed { what, offset: 0 })
}

/// Appends a [string]; fails if longer than 65535 bytes.
pub fn put_string(out: &mut Vec<u8>, s: &str) -> ParseResult<()> {
    put_u16(out, short_len(s.len(), "string longer than 65535 bytes")?);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Appends a [long string]; fails if longer than `i32::MAX` bytes.
pub fn put_long_string(out: &mut Vec<u8>, s: &str) -> ParseResult<()> {
    let n = i32::try_from(s.len()).map_err(|_| Malformed {
        what: "long string too long",
        offset: 0,
    })?;
    put_i32(out, n);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Appends a [string map] in the given order.
pub fn put_string_map(out: &mut Vec<u8>, map: &[(&str, &str)]) -> ParseResult<()> {
    put_u16(out, short_len(map.len(), "string map too long")?);
    for (k, v) in map {
        put_string(out, k)?;
        put_string(out, v)?;
    }
    Ok(())
}

/// Appends a [string multimap] in the given order.
pub fn put_string_multimap(out: &mut Vec<u8>, map: &[(&str, Vec<&str>)]) -> ParseResult<()> {
    put_u16(out, short_len(map.len(), "string multimap too long")?);
    for (k, list) in map {
        put_string(out, k)?;
        put_u16(out, short_len(list.len(), "string list too long")?);
        for item in list {
            put_string(out, item)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_primitives_and_reports_truncation() {
        let mut buf = Vec::new();
        put_u16(&mut buf, 7);
        put_i32(&mut buf, -2);
        put_string(&mut buf, "abc").unwrap();
        let mut r = Reader::new(&buf);
        assert_eq!(r.u16("a").unwrap(), 7);
        assert_eq!(r.value("b").unwrap(), Value::Unset);
        assert_eq!(r.string("c").unwrap(), "abc");
        assert!(r.is_empty());
        assert_eq!(r.u8("d").unwrap_err().what, "d");
    }

    #[test]
    fn rejects_lengths_past_the_end_and_bad_values() {
        let mut r = Reader::new(&[0, 0, 0, 9, 1]);
        assert!(r.bytes("x").is_err());
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xfd]);
        assert!(r.value("v").is_err());
        let mut r = Reader::new(&[0x80, 0, 0, 0]);
        assert!(r.count("n").is_err());
        let mut r = Reader::new(&[0, 2, 0xff, 0xfe]);
        assert!(r.string("s").is_err(), "invalid UTF-8");
    }

    #[test]
    fn multimap_round_trip_keeps_order() {
        let mut buf = Vec::new();
        let map = vec![("B", vec!["x", "y"]), ("A", vec![])];
        put_string_multimap(&mut buf, &map).unwrap();
        let mut r = Reader::new(&buf);
        assert_eq!(r.string_multimap("m").unwrap(), map);
        r.expect_end("end").unwrap();
    }
}
