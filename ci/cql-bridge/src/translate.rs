//! Per-connection translation state machine: decides for every client frame whether it is
//! forwarded (rewritten to v3), answered by the bridge with an ERROR, or closes the connection,
//! and rewrites every server frame to v4. Tracks the rewritten `system.local` statements by
//! stream id while in flight and by prepared id afterwards. No I/O.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};

use crate::frame::{self, Frame, V3_REQUEST, V4_RESPONSE, error_code, flags, opcode};
use crate::metadata::{self, kind};
use crate::request::{self, Reject};
use crate::response;
use crate::system_local::{self, ColumnLayout};
use crate::wire::Malformed;

/// What to do with one client frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestAction {
    /// The v3 frame was appended to the upstream buffer.
    Forwarded,
    /// Not forwarded: send this v4 ERROR frame back to the client; the connection stays up.
    Reply(Bytes),
    /// Not forwarded and the connection must close (after sending `reply`, if any).
    Close {
        /// ERROR frame to send before closing.
        reply: Option<Bytes>,
        /// Why, for the log.
        reason: String,
    },
}

/// A rewritten `system.local` statement waiting for its response.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    /// A PREPARE: the PREPARED result gets the column, and its id is remembered.
    Prepare(ColumnLayout),
    /// A QUERY or EXECUTE: the ROWS result gets the column and values.
    Rows(ColumnLayout),
}

#[derive(Debug, Default)]
struct State {
    /// In-flight rewritten statements by stream id.
    pending: HashMap<i16, Pending>,
    /// Prepared ids of rewritten statements on this connection.
    prepared: HashMap<Vec<u8>, ColumnLayout>,
}

/// Translation state of one client connection (shared by its reader and writer halves).
#[derive(Debug)]
pub struct Translator {
    advertise_ip: Ipv4Addr,
    state: Mutex<State>,
}

fn protocol_error(stream: i16, message: &str) -> Bytes {
    frame::error_frame(stream, error_code::PROTOCOL, message)
}

impl Translator {
    /// A fresh connection state; `advertise_ip` is the `rpc_address` value injected into
    /// `system.local` results.
    pub fn new(advertise_ip: Ipv4Addr) -> Self {
        Self {
            advertise_ip,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another task panicked mid-update of plain maps; the maps
        // are still usable, and the bridge must not cascade the panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of statements in flight that the bridge rewrote (for tests and diagnostics).
    pub fn pending_rewrites(&self) -> usize {
        self.state().pending.len()
    }

    /// Handles one client (v4) frame; on `Forwarded` the v3 frame was appended to `upstream`.
    pub fn on_request(&self, frame: &Frame, upstream: &mut BytesMut) -> RequestAction {
        let h = &frame.header;
        let stream = h.stream;
        if h.flags & flags::COMPRESSION != 0 {
            return RequestAction::Reply(protocol_error(
                stream,
                "compressed frames are not supported through the cql-bridge (compression is never negotiated)",
            ));
        }
        if h.flags & flags::CUSTOM_PAYLOAD != 0 {
            return RequestAction::Reply(protocol_error(
                stream,
                "custom payloads (frame flag 0x04) are not supported through the cql-bridge: protocol v3 has none",
            ));
        }
        if h.flags & !flags::TRACING != 0 {
            return RequestAction::Reply(protocol_error(
                stream,
                &format!(
                    "frame flags 0x{:02x} are not valid in a protocol v4 request",
                    h.flags
                ),
            ));
        }
        let body = &frame.body[..];
        let result = match h.opcode {
            opcode::OPTIONS | opcode::REGISTER | opcode::AUTH_RESPONSE => Ok(None),
            opcode::STARTUP => request::rewrite_startup(body).map(Some),
            opcode::QUERY => self.query(stream, body),
            opcode::PREPARE => self.prepare(stream, body),
            opcode::EXECUTE => self.execute(stream, body).map(|()| None),
            opcode::BATCH => request::check_batch(body).map(|()| None),
            other => Err(Reject::protocol(format!(
                "opcode 0x{other:02x} is not a protocol v4 request"
            ))),
        };
        match result {
            Ok(rewritten) => {
                let out_body = rewritten.as_deref().unwrap_or(body);
                frame::encode_frame(upstream, V3_REQUEST, h, out_body);
                RequestAction::Forwarded
            }
            Err(Reject::Refuse { code, message }) => {
                RequestAction::Reply(frame::error_frame(stream, code, &message))
            }
            Err(Reject::Malformed(m)) => {
                let reason = format!(
                    "malformed {} request on stream {stream}: {m}",
                    opcode_name(h.opcode)
                );
                RequestAction::Close {
                    reply: Some(protocol_error(stream, &reason)),
                    reason,
                }
            }
        }
    }

    fn query(&self, stream: i16, body: &[u8]) -> Result<Option<Vec<u8>>, Reject> {
        let query = request::check_query(body)?;
        let Some(rw) = system_local::rewrite(query.text) else {
            return Ok(None);
        };
        let new_body = request::replace_query_text(body, &query, &rw.text)?;
        self.state()
            .pending
            .insert(stream, Pending::Rows(rw.layout));
        Ok(Some(new_body))
    }

    fn prepare(&self, stream: i16, body: &[u8]) -> Result<Option<Vec<u8>>, Reject> {
        let text = request::check_prepare(body)?;
        let Some(rw) = system_local::rewrite(text) else {
            return Ok(None);
        };
        let new_body = request::prepare_body(&rw.text)?;
        self.state()
            .pending
            .insert(stream, Pending::Prepare(rw.layout));
        Ok(Some(new_body))
    }

    fn execute(&self, stream: i16, body: &[u8]) -> Result<(), Reject> {
        let id = request::check_execute(body)?;
        let mut state = self.state();
        if let Some(layout) = state.prepared.get(id).cloned() {
            state.pending.insert(stream, Pending::Rows(layout));
        }
        Ok(())
    }

    /// Handles one server (v3) frame, appending the v4 frame to `client`. An error means the
    /// server sent something the bridge cannot translate: the connection must close.
    pub fn on_response(&self, frame: &Frame, client: &mut BytesMut) -> Result<(), String> {
        let h = &frame.header;
        if h.flags & !flags::TRACING != 0 {
            return Err(format!(
                "server frame on stream {} has flags 0x{:02x}; a v3 server that was never offered \
                 compression may only set the tracing flag",
                h.stream, h.flags
            ));
        }
        let pending = if h.stream >= 0 {
            let mut state = self.state();
            if state.pending.is_empty() {
                None
            } else {
                state.pending.remove(&h.stream)
            }
        } else {
            None
        };
        // A traced response starts with the 16-byte tracing id, copied as is.
        let prefix_len = if h.flags & flags::TRACING != 0 { 16 } else { 0 };
        let (prefix, body) = frame.body.split_at_checked(prefix_len).ok_or_else(|| {
            format!(
                "traced response on stream {} lacks its tracing id",
                h.stream
            )
        })?;
        let rewritten = match h.opcode {
            opcode::SUPPORTED => Some(response::rewrite_supported(body)),
            opcode::RESULT => self.result(body, pending),
            _ => None,
        };
        match rewritten {
            None => frame::encode_frame(client, V4_RESPONSE, h, &frame.body),
            Some(Ok(new_body)) => {
                let mut full = Vec::with_capacity(prefix.len() + new_body.len());
                full.extend_from_slice(prefix);
                full.extend_from_slice(&new_body);
                frame::encode_frame(client, V4_RESPONSE, h, &full);
            }
            Some(Err(m)) => {
                return Err(format!(
                    "cannot translate server {} on stream {}: {m}",
                    opcode_name(h.opcode),
                    h.stream
                ));
            }
        }
        Ok(())
    }

    /// RESULT bodies that need rewriting; `None` = forward unchanged.
    fn result(&self, body: &[u8], pending: Option<Pending>) -> Option<Result<Vec<u8>, Malformed>> {
        let kind = match metadata::result_kind(body) {
            Ok(k) => k,
            Err(e) => return Some(Err(e)),
        };
        match (kind, pending) {
            (kind::PREPARED, pending) => {
                let layout = match pending {
                    Some(Pending::Prepare(l)) => Some(l),
                    _ => None,
                };
                Some(
                    metadata::rewrite_prepared(body, layout.as_ref()).map(|(out, id)| {
                        if let Some(layout) = layout {
                            self.state().prepared.insert(id, layout);
                        }
                        out
                    }),
                )
            }
            (kind::ROWS, Some(Pending::Rows(layout))) => {
                Some(metadata::rewrite_rows(body, &layout, self.advertise_ip))
            }
            _ => None,
        }
    }
}

/// A readable opcode name for log messages.
pub fn opcode_name(op: u8) -> &'static str {
    match op {
        opcode::ERROR => "ERROR",
        opcode::STARTUP => "STARTUP",
        opcode::READY => "READY",
        opcode::AUTHENTICATE => "AUTHENTICATE",
        opcode::OPTIONS => "OPTIONS",
        opcode::SUPPORTED => "SUPPORTED",
        opcode::QUERY => "QUERY",
        opcode::RESULT => "RESULT",
        opcode::PREPARE => "PREPARE",
        opcode::EXECUTE => "EXECUTE",
        opcode::REGISTER => "REGISTER",
        opcode::EVENT => "EVENT",
        opcode::BATCH => "BATCH",
        opcode::AUTH_CHALLENGE => "AUTH_CHALLENGE",
        opcode::AUTH_RESPONSE => "AUTH_RESPONSE",
        opcode::AUTH_SUCCESS => "AUTH_SUCCESS",
        _ => "unknown-opcode",
    }
}

#[cfg(test)]
#[path = "translate_tests.rs"]
mod tests;
