//! CQL frame envelope: the 9-byte header, incremental frame decoding with a size bound, frame
//! encoding with a rewritten version byte, and the ERROR frames the bridge answers with itself.

use bytes::{Buf, Bytes, BytesMut};

/// Length of the v3/v4 frame header.
pub const HEADER_LEN: usize = 9;

/// Version byte of a v4 request (what clients send to the bridge).
pub const V4_REQUEST: u8 = 0x04;
/// Version byte of a v3 request (what the bridge sends upstream).
pub const V3_REQUEST: u8 = 0x03;
/// Version byte of a v3 response (what the server sends to the bridge).
pub const V3_RESPONSE: u8 = 0x83;
/// Version byte of a v4 response (what the bridge sends to clients).
pub const V4_RESPONSE: u8 = 0x84;

/// Header flag bits.
pub mod flags {
    /// Body is compressed.
    pub const COMPRESSION: u8 = 0x01;
    /// Tracing requested (request) / tracing id prepended to the body (response).
    pub const TRACING: u8 = 0x02;
    /// v4: a custom payload precedes the body.
    pub const CUSTOM_PAYLOAD: u8 = 0x04;
    /// v4: a warning list precedes the body (responses only).
    pub const WARNING: u8 = 0x08;
}

/// Opcodes (v3 and v4 use the same numbers).
pub mod opcode {
    /// ERROR response.
    pub const ERROR: u8 = 0x00;
    /// STARTUP request.
    pub const STARTUP: u8 = 0x01;
    /// READY response.
    pub const READY: u8 = 0x02;
    /// AUTHENTICATE response.
    pub const AUTHENTICATE: u8 = 0x03;
    /// OPTIONS request.
    pub const OPTIONS: u8 = 0x05;
    /// SUPPORTED response.
    pub const SUPPORTED: u8 = 0x06;
    /// QUERY request.
    pub const QUERY: u8 = 0x07;
    /// RESULT response.
    pub const RESULT: u8 = 0x08;
    /// PREPARE request.
    pub const PREPARE: u8 = 0x09;
    /// EXECUTE request.
    pub const EXECUTE: u8 = 0x0A;
    /// REGISTER request.
    pub const REGISTER: u8 = 0x0B;
    /// EVENT response.
    pub const EVENT: u8 = 0x0C;
    /// BATCH request.
    pub const BATCH: u8 = 0x0D;
    /// AUTH_CHALLENGE response.
    pub const AUTH_CHALLENGE: u8 = 0x0E;
    /// AUTH_RESPONSE request.
    pub const AUTH_RESPONSE: u8 = 0x0F;
    /// AUTH_SUCCESS response.
    pub const AUTH_SUCCESS: u8 = 0x10;
}

/// ERROR frame codes the bridge emits.
pub mod error_code {
    /// Protocol error: the frame is not acceptable (here: not translatable to v3).
    pub const PROTOCOL: i32 = 0x000A;
    /// Invalid: the request is syntactically fine but cannot be executed.
    pub const INVALID: i32 = 0x2200;
}

/// Which way a frame travels; decides the expected version byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server: expected version byte 0x04.
    Request,
    /// Server to client: expected version byte 0x83.
    Response,
}

impl Direction {
    /// The version byte a frame in this direction must carry on arrival.
    pub fn expected_version(self) -> u8 {
        match self {
            Direction::Request => V4_REQUEST,
            Direction::Response => V3_RESPONSE,
        }
    }
}

/// The header fields that survive translation (the length is derived from the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Version byte as received.
    pub version: u8,
    /// Flag bits.
    pub flags: u8,
    /// Stream id (negative for server-initiated events).
    pub stream: i16,
    /// Opcode.
    pub opcode: u8,
}

/// One complete frame: header plus body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The header as received.
    pub header: Header,
    /// The body, exactly `length` bytes.
    pub body: Bytes,
}

/// Why a byte stream could not be split into frames. Any of these closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The version byte is not the one this direction expects.
    #[error("unsupported protocol version byte 0x{found:02x} (expected 0x{expected:02x})")]
    BadVersion {
        /// What arrived.
        found: u8,
        /// What was expected.
        expected: u8,
        /// Stream id if it could be read (for the error reply).
        stream: i16,
    },
    /// The declared body length is negative or above the configured bound.
    #[error("frame body of {declared} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Declared length (as unsigned).
        declared: u64,
        /// Configured bound.
        max: usize,
        /// Stream id of the offending frame.
        stream: i16,
    },
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a frame ({buffered} bytes of an incomplete frame)")]
    Truncated {
        /// Bytes buffered when the stream ended.
        buffered: usize,
    },
}

/// Tries to split one frame off the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed. Never panics, whatever `buf` holds; the
/// header is validated (version for `dir`, length within `max_body`) before any body byte is
/// awaited, so a bad peer cannot make the bridge buffer more than `max_body` bytes.
pub fn decode_frame(
    buf: &mut BytesMut,
    dir: Direction,
    max_body: usize,
) -> Result<Option<Frame>, FrameError> {
    let Some(&version) = buf.first() else {
        return Ok(None);
    };
    let stream = match (buf.get(2), buf.get(3)) {
        (Some(&a), Some(&b)) => i16::from_be_bytes([a, b]),
        _ => 0,
    };
    let expected = dir.expected_version();
    if version != expected {
        return Err(FrameError::BadVersion {
            found: version,
            expected,
            stream,
        });
    }
    if buf.len() < HEADER_LEN {
        buf.reserve(HEADER_LEN - buf.len());
        return Ok(None);
    }
    let declared = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]);
    let body_len = usize::try_from(declared).unwrap_or(usize::MAX);
    if declared > i32::MAX as u32 || body_len > max_body {
        return Err(FrameError::TooLarge {
            declared: u64::from(declared),
            max: max_body,
            stream,
        });
    }
    let total = HEADER_LEN + body_len;
    if buf.len() < total {
        // Grow in steps so a peer announcing a huge frame and then stalling does not get
        // the whole allocation up front.
        buf.reserve((total - buf.len()).min(1 << 20));
        return Ok(None);
    }
    let header = Header {
        version,
        flags: buf[1],
        stream,
        opcode: buf[4],
    };
    buf.advance(HEADER_LEN);
    let body = buf.split_to(body_len).freeze();
    Ok(Some(Frame { header, body }))
}

/// Called when the peer closed its side: leftover bytes mean a truncated frame.
pub fn check_eof(buf: &BytesMut) -> Result<(), FrameError> {
    if buf.is_empty() {
        Ok(())
    } else {
        Err(FrameError::Truncated {
            buffered: buf.len(),
        })
    }
}

/// Whether `buf` already holds at least one complete frame (used to batch writes: flush only
/// when no further frame can be processed without waiting for the network).
pub fn has_complete_frame(buf: &[u8]) -> bool {
    if buf.len() < HEADER_LEN {
        return false;
    }
    let len = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) as usize;
    buf.len() - HEADER_LEN >= len
}

/// Appends a frame to `out` with the given version byte and header fields; the length is
/// taken from `body`.
pub fn encode_frame(out: &mut BytesMut, version: u8, header: &Header, body: &[u8]) {
    // Bodies come from frames bounded by `max_body` (< 2^31) plus a few bytes of rewrite;
    // saturate rather than wrap if a rewrite ever exceeded that.
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    out.reserve(HEADER_LEN + body.len());
    out.extend_from_slice(&[version, header.flags]);
    out.extend_from_slice(&header.stream.to_be_bytes());
    out.extend_from_slice(&[header.opcode]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
}

/// A complete v4 ERROR response frame on `stream` with `code` and `message`.
pub fn error_frame(stream: i16, code: i32, message: &str) -> Bytes {
    let msg = truncate_utf8(message, usize::from(u16::MAX));
    let mut body = Vec::with_capacity(6 + msg.len());
    body.extend_from_slice(&code.to_be_bytes());
    body.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    body.extend_from_slice(msg.as_bytes());
    let header = Header {
        version: V4_RESPONSE,
        flags: 0,
        stream,
        opcode: opcode::ERROR,
    };
    let mut out = BytesMut::with_capacity(HEADER_LEN + body.len());
    encode_frame(&mut out, V4_RESPONSE, &header, &body);
    out.freeze()
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(version: u8, flags: u8, stream: i16, op: u8, body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        let h = Header {
            version,
            flags,
            stream,
            opcode: op,
        };
        encode_frame(&mut b, version, &h, body);
        b
    }

    #[test]
    fn decodes_back_to_back_frames_and_waits_for_more() {
        let mut buf = raw(V4_REQUEST, 0, 7, opcode::OPTIONS, b"");
        buf.extend_from_slice(&raw(V4_REQUEST, 2, -1, opcode::QUERY, b"abc"));
        let tail = buf.split_off(buf.len() - 1);
        let f1 = decode_frame(&mut buf, Direction::Request, 100)
            .unwrap()
            .unwrap();
        assert_eq!(f1.header.stream, 7);
        assert!(f1.body.is_empty());
        assert_eq!(decode_frame(&mut buf, Direction::Request, 100), Ok(None));
        assert!(check_eof(&buf).is_err());
        buf.extend_from_slice(&tail);
        let f2 = decode_frame(&mut buf, Direction::Request, 100)
            .unwrap()
            .unwrap();
        assert_eq!((f2.header.flags, f2.header.stream), (2, -1));
        assert_eq!(&f2.body[..], b"abc");
        assert!(buf.is_empty());
        check_eof(&buf).unwrap();
    }

    #[test]
    fn rejects_wrong_version_for_direction() {
        let mut buf = raw(V3_RESPONSE, 0, 1, opcode::READY, b"");
        assert!(matches!(
            decode_frame(&mut buf, Direction::Request, 100),
            Err(FrameError::BadVersion { found: 0x83, .. })
        ));
        let mut buf = raw(V4_REQUEST, 0, 1, opcode::OPTIONS, b"");
        assert!(decode_frame(&mut buf, Direction::Response, 100).is_err());
        // A lone version byte is enough to reject.
        let mut buf = BytesMut::from(&[0x05u8][..]);
        assert!(decode_frame(&mut buf, Direction::Request, 100).is_err());
    }

    #[test]
    fn rejects_oversized_and_negative_lengths_before_buffering_the_body() {
        let mut buf = BytesMut::from(&[4u8, 0, 0, 1, 7, 0, 0, 1, 0][..]);
        assert!(matches!(
            decode_frame(&mut buf, Direction::Request, 255),
            Err(FrameError::TooLarge { declared: 256, .. })
        ));
        let mut buf = BytesMut::from(&[4u8, 0, 0, 1, 7, 0xff, 0xff, 0xff, 0xff][..]);
        assert!(decode_frame(&mut buf, Direction::Request, usize::MAX).is_err());
    }

    #[test]
    fn complete_frame_detection() {
        let f = raw(V3_RESPONSE, 0, 1, opcode::RESULT, b"xyz");
        assert!(has_complete_frame(&f));
        assert!(!has_complete_frame(&f[..f.len() - 1]));
        assert!(!has_complete_frame(&f[..5]));
    }

    #[test]
    fn error_frame_layout() {
        let f = error_frame(-3, error_code::INVALID, "no");
        assert_eq!(
            &f[..],
            &[
                0x84, 0, 0xff, 0xfd, 0, 0, 0, 0, 8, 0, 0, 0x22, 0, 0, 2, b'n', b'o'
            ]
        );
    }
}
