//! Kafka wire parsing for the gateway: request headers, and Metadata / FindCoordinator responses with their broker addresses rewritten.

use std::collections::HashMap;

/// The largest frame (without its 4-byte size prefix) the gateway relays or rewrites; Kafka's
/// own limits (`socket.request.max.bytes`, librdkafka's `receive.message.max.bytes`) are 100 MB.
pub const FRAME_BYTES_MAX: usize = 100 * 1024 * 1024;
pub const METADATA_API_KEY: i16 = 3;
pub const FIND_COORDINATOR_API_KEY: i16 = 10;
/// The newest Metadata version in Apache Kafka 4.x (v13 adds a top-level error code after the
/// topics); librdkafka 2.12 asks for up to v13.
pub(super) const METADATA_VERSION_MAX: i16 = 13;
pub(super) const FIND_COORDINATOR_VERSION_MAX: i16 = 6;
/// The bytes of a request header read before forwarding: api_key, api_version, correlation_id.
pub(super) const REQUEST_HEAD_BYTES: usize = 8;

/// Where clients must connect instead of each real broker: `(advertised host, port)` to
/// `(host, port)`. Hosts match ASCII case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerRoutes {
    /// Keyed by the lower-cased advertised host and its port.
    routes: HashMap<(String, u16), (String, u16)>,
}

impl BrokerRoutes {
    /// The routes from `(advertised, replacement)` pairs; a later pair for the same advertised
    /// address replaces an earlier one.
    pub fn new(routes: impl IntoIterator<Item = ((String, u16), (String, u16))>) -> BrokerRoutes {
        let routes = routes
            .into_iter()
            .map(|((host, port), to)| ((host.to_ascii_lowercase(), port), to))
            .collect();
        BrokerRoutes { routes }
    }

    /// Where clients must connect instead of `host:port`, if it is routed.
    pub fn route(&self, host: &str, port: u16) -> Option<(&str, u16)> {
        self.routes
            .get(&(host.to_ascii_lowercase(), port))
            .map(|(host, port)| (host.as_str(), *port))
    }

    /// [`BrokerRoutes::route`] for a host as it is on the wire (not UTF-8: never routed).
    fn route_wire(&self, host: &[u8], port: i32) -> Option<(&str, u16)> {
        let host = std::str::from_utf8(host).ok()?;
        self.route(host, u16::try_from(port).ok()?)
    }
}

/// The fields every request header version (0 to 2) starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

/// The start of the header of `frame`, a request without its size prefix; `None` when the frame
/// is shorter than 8 bytes.
pub fn request_header(frame: &[u8]) -> Option<RequestHeader> {
    let head = frame.get(..REQUEST_HEAD_BYTES)?;
    Some(RequestHeader {
        api_key: i16::from_be_bytes([head[0], head[1]]),
        api_version: i16::from_be_bytes([head[2], head[3]]),
        correlation_id: i32::from_be_bytes([head[4], head[5], head[6], head[7]]),
    })
}

/// A response could not be rewritten; it says which response, which field and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    #[error(
        "{api} v{version} response is truncated: {what} at byte {at} runs past the end of the \
         {len}-byte frame"
    )]
    Truncated {
        api: &'static str,
        version: i16,
        what: &'static str,
        at: usize,
        len: usize,
    },
    #[error("{api} v{version} response is malformed: {what} at byte {at}: {problem}")]
    Malformed {
        api: &'static str,
        version: i16,
        what: &'static str,
        at: usize,
        problem: String,
    },
    #[error("{api} v{version} responses are not supported (this gateway reads v0 to v{known_max})")]
    Unsupported {
        api: &'static str,
        version: i16,
        known_max: i16,
    },
    #[error(
        "{api} v{version} response of {len} bytes (or its rewrite) is larger than \
         FRAME_BYTES_MAX ({FRAME_BYTES_MAX})"
    )]
    TooLarge {
        api: &'static str,
        version: i16,
        len: usize,
    },
    #[error("the route to {host}:{port} has a {len}-byte host; a Kafka string holds 32767")]
    RouteHostTooLong { host: String, port: u16, len: usize },
}

/// Rewrites `frame`, the response (without its size prefix) to a request `api_key` version
/// `api_version`: every broker address in it that `routes` maps is replaced, every other byte
/// is copied as it is. `Ok(None)` when nothing changes (another API, or no routed broker).
///
/// Reads Metadata v0 to v13 up to the end of its brokers array (the rest is copied unparsed)
/// and FindCoordinator v0 to v6 whole; lengths in the frame are checked, never trusted.
pub fn rewrite_response(
    api_key: i16,
    api_version: i16,
    frame: &[u8],
    routes: &BrokerRoutes,
) -> Result<Option<Vec<u8>>, RewriteError> {
    let (api, known_max, first_flexible) = match api_key {
        METADATA_API_KEY => ("Metadata", METADATA_VERSION_MAX, 9),
        FIND_COORDINATOR_API_KEY => ("FindCoordinator", FIND_COORDINATOR_VERSION_MAX, 3),
        _ => return Ok(None),
    };
    let version = api_version;
    if !(0..=known_max).contains(&version) {
        return Err(RewriteError::Unsupported {
            api,
            version,
            known_max,
        });
    }
    let mut rewriter = Rewriter {
        frame,
        at: 0,
        api,
        version,
        flexible: version >= first_flexible,
        routes,
        copied_to: 0,
        out: None,
    };
    if frame.len() > FRAME_BYTES_MAX {
        return Err(rewriter.too_large(frame.len()));
    }
    if api_key == METADATA_API_KEY {
        rewriter.metadata()?;
    } else {
        rewriter.find_coordinator()?;
    }
    rewriter.finish()
}

/// Reads one response field by field (every read bounds-checked) and builds its rewrite.
struct Rewriter<'a> {
    frame: &'a [u8],
    at: usize,
    api: &'static str,
    version: i16,
    /// Compact strings and arrays, tagged fields, response header v1.
    flexible: bool,
    routes: &'a BrokerRoutes,
    /// `frame[..copied_to]` is in `out` already, rewritten; `out` is created by the first
    /// replacement, so a response with nothing to replace allocates nothing.
    copied_to: usize,
    out: Option<Vec<u8>>,
}

/// Which classic (non-compact) length encoding a field uses.
#[derive(Clone, Copy)]
enum Length {
    /// int16, as STRING and NULLABLE_STRING.
    String,
    /// int32, as ARRAY.
    Array,
}

impl<'a> Rewriter<'a> {
    /// Metadata: header, throttle_time_ms (v3+), then the brokers array; the rest is not read.
    fn metadata(&mut self) -> Result<(), RewriteError> {
        self.response_header()?;
        if self.version >= 3 {
            self.int::<4>("throttle_time_ms")?;
        }
        // Each entry consumes bytes or fails, so a lying count stops at the frame's end.
        for _ in 0..self.array_count("brokers array length")? {
            self.int::<4>("broker node_id")?;
            self.address("broker host", "broker port")?;
            if self.version >= 1 {
                self.nullable_string("broker rack")?;
            }
            self.tagged_fields_if_flexible("broker tagged fields")?;
        }
        Ok(())
    }

    /// FindCoordinator, read to its end: one coordinator (v0-3) or an array of them (v4+).
    fn find_coordinator(&mut self) -> Result<(), RewriteError> {
        self.response_header()?;
        if self.version >= 1 {
            self.int::<4>("throttle_time_ms")?;
        }
        if self.version <= 3 {
            self.int::<2>("error_code")?;
            if self.version >= 1 {
                self.nullable_string("error_message")?;
            }
            self.int::<4>("node_id")?;
            self.address("host", "port")?;
        } else {
            for _ in 0..self.array_count("coordinators array length")? {
                self.string("coordinator key")?;
                self.int::<4>("coordinator node_id")?;
                self.address("coordinator host", "coordinator port")?;
                self.int::<2>("coordinator error_code")?;
                self.nullable_string("coordinator error_message")?;
                self.tagged_fields_if_flexible("coordinator tagged fields")?;
            }
        }
        self.tagged_fields_if_flexible("response tagged fields")?;
        match self.frame.len() - self.at {
            0 => Ok(()),
            extra => Err(self.malformed(
                "end",
                self.at,
                format!("{extra} bytes follow the last field"),
            )),
        }
    }

    /// Response header v0 (correlation_id), or v1 (plus tagged fields) when flexible.
    fn response_header(&mut self) -> Result<(), RewriteError> {
        self.int::<4>("correlation_id")?;
        self.tagged_fields_if_flexible("response header tagged fields")
    }

    /// Reads a host and the port right after it (adjacent in every layout here) and replaces
    /// both when the routes map them.
    fn address(
        &mut self,
        host_label: &'static str,
        port_label: &'static str,
    ) -> Result<(), RewriteError> {
        let start = self.at;
        let host = self.string(host_label)?;
        let port = i32::from_be_bytes(self.int::<4>(port_label)?);
        let Some((to_host, to_port)) = self.routes.route_wire(host, port) else {
            return Ok(());
        };
        let host_length =
            i16::try_from(to_host.len()).map_err(|_| RewriteError::RouteHostTooLong {
                host: to_host.to_owned(),
                port: to_port,
                len: to_host.len(),
            })?;
        let (frame, flexible) = (self.frame, self.flexible);
        let out = self
            .out
            .get_or_insert_with(|| Vec::with_capacity(frame.len() + 64));
        out.extend_from_slice(&frame[self.copied_to..start]);
        if flexible {
            put_varint(out, host_length as u32 + 1);
        } else {
            out.extend_from_slice(&host_length.to_be_bytes());
        }
        out.extend_from_slice(to_host.as_bytes());
        out.extend_from_slice(&i32::from(to_port).to_be_bytes());
        self.copied_to = self.at;
        let written = out.len();
        if written > FRAME_BYTES_MAX {
            return Err(self.too_large(written));
        }
        Ok(())
    }

    /// The rewritten frame, if anything was replaced.
    fn finish(mut self) -> Result<Option<Vec<u8>>, RewriteError> {
        let Some(mut out) = self.out.take() else {
            return Ok(None);
        };
        let rest = &self.frame[self.copied_to..];
        if out.len() + rest.len() > FRAME_BYTES_MAX {
            return Err(self.too_large(out.len() + rest.len()));
        }
        out.extend_from_slice(rest);
        Ok(Some(out))
    }

    fn take(&mut self, length: usize, what: &'static str) -> Result<&'a [u8], RewriteError> {
        let end = self
            .at
            .checked_add(length)
            .filter(|&end| end <= self.frame.len());
        let Some(end) = end else {
            return Err(RewriteError::Truncated {
                api: self.api,
                version: self.version,
                what,
                at: self.at,
                len: self.frame.len(),
            });
        };
        let bytes = &self.frame[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    /// The big-endian bytes of an N-byte integer.
    fn int<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], RewriteError> {
        let mut bytes = [0u8; N];
        bytes.copy_from_slice(self.take(N, what)?);
        Ok(bytes)
    }

    /// An unsigned varint of at most 32 bits (5 bytes).
    fn varint(&mut self, what: &'static str) -> Result<u32, RewriteError> {
        let start = self.at;
        let mut value = 0u32;
        for shift in [0, 7, 14, 21, 28] {
            let [byte] = self.int::<1>(what)?;
            if shift == 28 && byte > 0x0f {
                break;
            }
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.malformed(what, start, "varint longer than 32 bits".into()))
    }

    /// A length, `None` for null: compact (varint of length + 1, 0 = null) when flexible, else
    /// classic (-1 = null).
    fn length(
        &mut self,
        classic: Length,
        what: &'static str,
    ) -> Result<Option<usize>, RewriteError> {
        let start = self.at;
        let length = match classic {
            _ if self.flexible => i64::from(self.varint(what)?) - 1,
            Length::String => i64::from(i16::from_be_bytes(self.int::<2>(what)?)),
            Length::Array => i64::from(i32::from_be_bytes(self.int::<4>(what)?)),
        };
        match length {
            -1 => Ok(None),
            length if length < -1 => Err(self.malformed(what, start, format!("length {length}"))),
            length => Ok(Some(length as usize)),
        }
    }

    /// A non-null string.
    fn string(&mut self, what: &'static str) -> Result<&'a [u8], RewriteError> {
        let start = self.at;
        match self.length(Length::String, what)? {
            Some(length) => self.take(length, what),
            None => Err(self.malformed(what, start, "null where a string is required".into())),
        }
    }

    fn nullable_string(&mut self, what: &'static str) -> Result<(), RewriteError> {
        if let Some(length) = self.length(Length::String, what)? {
            self.take(length, what)?;
        }
        Ok(())
    }

    /// The element count of a non-null array.
    fn array_count(&mut self, what: &'static str) -> Result<usize, RewriteError> {
        let start = self.at;
        self.length(Length::Array, what)?
            .ok_or_else(|| self.malformed(what, start, "null where an array is required".into()))
    }

    /// Tagged fields (a count, then each field's tag, size and bytes), present when flexible.
    fn tagged_fields_if_flexible(&mut self, what: &'static str) -> Result<(), RewriteError> {
        if !self.flexible {
            return Ok(());
        }
        for _ in 0..self.varint(what)? {
            self.varint(what)?;
            let size = self.varint(what)?;
            self.take(size as usize, what)?;
        }
        Ok(())
    }

    fn malformed(&self, what: &'static str, at: usize, problem: String) -> RewriteError {
        RewriteError::Malformed {
            api: self.api,
            version: self.version,
            what,
            at,
            problem,
        }
    }

    fn too_large(&self, len: usize) -> RewriteError {
        RewriteError::TooLarge {
            api: self.api,
            version: self.version,
            len,
        }
    }
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}
