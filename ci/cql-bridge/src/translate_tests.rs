//! Frame-level unit tests of the translator in both directions, with frames built by hand,
//! plus a property test that arbitrary bytes never panic the decoder or translator.

use super::*;
use crate::frame::{Direction, FrameError};
use crate::frame::{Header, V3_RESPONSE, V4_REQUEST, decode_frame};
use crate::system_local::SCYLLA_1_9_TOPOLOGY_QUERY;
use crate::wire::{Reader, put_i32, put_long_string, put_string, put_string_map, put_u16};
use proptest::prelude::*;

const IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 7);

fn frame(version: u8, flags: u8, stream: i16, op: u8, body: &[u8]) -> Frame {
    Frame {
        header: Header {
            version,
            flags,
            stream,
            opcode: op,
        },
        body: Bytes::copy_from_slice(body),
    }
}

fn req(stream: i16, op: u8, body: &[u8]) -> Frame {
    frame(V4_REQUEST, 0, stream, op, body)
}

fn resp(stream: i16, op: u8, body: &[u8]) -> Frame {
    frame(V3_RESPONSE, 0, stream, op, body)
}

/// Runs a request through the translator; returns the forwarded frame (decoded back).
fn forward(t: &Translator, f: &Frame) -> Frame {
    let mut out = BytesMut::new();
    assert_eq!(t.on_request(f, &mut out), RequestAction::Forwarded);
    assert_eq!(out[0], 0x03, "requests go upstream as v3");
    let mut out2 = out.clone();
    out2[0] = V4_REQUEST; // decode_frame checks the direction's arrival version
    let back = decode_frame(&mut out2, Direction::Request, usize::MAX)
        .unwrap()
        .unwrap();
    assert!(out2.is_empty());
    back
}

/// Runs a response through the translator; returns the v4 frame (version checked).
fn translate_back(t: &Translator, f: &Frame) -> Frame {
    let mut out = BytesMut::new();
    t.on_response(f, &mut out).unwrap();
    assert_eq!(out[0], 0x84, "responses go to the client as v4");
    out[0] = V3_RESPONSE;
    decode_frame(&mut out, Direction::Response, usize::MAX)
        .unwrap()
        .unwrap()
}

fn error_of(reply: &[u8]) -> (i16, i32, String) {
    assert_eq!(reply[0], 0x84);
    assert_eq!(reply[4], opcode::ERROR);
    let stream = i16::from_be_bytes([reply[2], reply[3]]);
    let mut r = Reader::new(&reply[9..]);
    (
        stream,
        r.i32("code").unwrap(),
        r.string("msg").unwrap().to_owned(),
    )
}

fn reply_of(action: RequestAction) -> (i16, i32, String) {
    match action {
        RequestAction::Reply(b) => error_of(&b),
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn no_values_params() -> Vec<u8> {
    vec![0, 1, 0] // consistency ONE, no flags
}

#[test]
fn request_version_and_length_are_rewritten_bodies_kept() {
    let t = Translator::new(IP);
    let mut body = Vec::new();
    put_long_string(&mut body, "SELECT * FROM ks.t").unwrap();
    body.extend_from_slice(&no_values_params());
    let f = frame(V4_REQUEST, flags::TRACING, 42, opcode::QUERY, &body);
    let mut out = BytesMut::new();
    assert_eq!(t.on_request(&f, &mut out), RequestAction::Forwarded);
    let mut expected = vec![0x03, flags::TRACING, 0, 42, opcode::QUERY];
    expected.extend_from_slice(&(body.len() as u32).to_be_bytes());
    expected.extend_from_slice(&body);
    assert_eq!(&out[..], &expected[..]);
    for op in [opcode::OPTIONS, opcode::REGISTER, opcode::AUTH_RESPONSE] {
        let f = req(1, op, b"\x00\x00");
        assert_eq!(forward(&t, &f).body, f.body);
    }
}

#[test]
fn startup_is_rewritten_with_new_length() {
    let t = Translator::new(IP);
    let mut body = Vec::new();
    put_string_map(&mut body, &[("CQL_VERSION", "4.0.0.1")]).unwrap();
    let fwd = forward(&t, &req(0, opcode::STARTUP, &body));
    let mut expected = Vec::new();
    put_string_map(&mut expected, &[("CQL_VERSION", "3.0.0")]).unwrap();
    assert_eq!(&fwd.body[..], &expected[..]);
    let mut body = Vec::new();
    put_string_map(
        &mut body,
        &[("CQL_VERSION", "4.0.0"), ("COMPRESSION", "snappy")],
    )
    .unwrap();
    let (stream, code, _) =
        reply_of(t.on_request(&req(3, opcode::STARTUP, &body), &mut BytesMut::new()));
    assert_eq!((stream, code), (3, error_code::PROTOCOL));
}

#[test]
fn compression_custom_payload_and_unknown_flags_are_answered_not_forwarded() {
    let t = Translator::new(IP);
    for (flag, needle) in [
        (flags::COMPRESSION, "compressed"),
        (flags::CUSTOM_PAYLOAD, "custom payload"),
        (flags::CUSTOM_PAYLOAD | flags::TRACING, "custom payload"),
        (flags::WARNING, "flags 0x08"),
        (0x10, "flags 0x10"),
    ] {
        let mut out = BytesMut::new();
        let f = frame(V4_REQUEST, flag, 9, opcode::QUERY, b"\xff garbage");
        let (stream, code, msg) = reply_of(t.on_request(&f, &mut out));
        assert_eq!((stream, code), (9, error_code::PROTOCOL));
        assert!(msg.contains(needle), "{msg}");
        assert!(out.is_empty(), "nothing forwarded");
    }
    let (_, code, _) = reply_of(t.on_request(&req(1, opcode::RESULT, b""), &mut BytesMut::new()));
    assert_eq!(code, error_code::PROTOCOL);
}

#[test]
fn unset_values_are_answered_with_invalid() {
    let t = Translator::new(IP);
    let mut body = Vec::new();
    put_u16(&mut body, 2);
    body.extend_from_slice(b"id");
    body.extend_from_slice(&[0, 1, 0x01, 0, 1]);
    put_i32(&mut body, -2);
    let mut out = BytesMut::new();
    let (stream, code, msg) = reply_of(t.on_request(&req(5, opcode::EXECUTE, &body), &mut out));
    assert_eq!((stream, code), (5, error_code::INVALID));
    assert!(
        msg.contains("unset values") && msg.contains("not supported"),
        "{msg}"
    );
    assert!(out.is_empty());
}

#[test]
fn malformed_request_closes_with_a_protocol_error() {
    let t = Translator::new(IP);
    let mut out = BytesMut::new();
    match t.on_request(&req(4, opcode::QUERY, &[0, 0, 0, 50, b'x']), &mut out) {
        RequestAction::Close {
            reply: Some(reply),
            reason,
        } => {
            assert_eq!(error_of(&reply).1, error_code::PROTOCOL);
            assert!(reason.contains("malformed QUERY"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(out.is_empty());
}

#[test]
fn responses_get_v4_version_and_supported_loses_compression() {
    let t = Translator::new(IP);
    let ready = translate_back(&t, &resp(0, opcode::READY, b""));
    assert_eq!(ready.header.opcode, opcode::READY);
    let event = translate_back(&t, &resp(-1, opcode::EVENT, b"\x00\x01E"));
    assert_eq!(
        (event.header.stream, &event.body[..]),
        (-1, &b"\x00\x01E"[..])
    );
    let mut body = Vec::new();
    crate::wire::put_string_multimap(
        &mut body,
        &[
            ("COMPRESSION", vec!["snappy", "lz4"]),
            ("CQL_VERSION", vec!["3.2.0"]),
        ],
    )
    .unwrap();
    let sup = translate_back(&t, &resp(0, opcode::SUPPORTED, &body));
    let mut expected = Vec::new();
    crate::wire::put_string_multimap(
        &mut expected,
        &[("COMPRESSION", vec![]), ("CQL_VERSION", vec!["3.2.0"])],
    )
    .unwrap();
    assert_eq!(&sup.body[..], &expected[..]);
    // Compressed or payload-carrying server frames cannot be translated: close.
    for flag in [flags::COMPRESSION, flags::CUSTOM_PAYLOAD, flags::WARNING] {
        let f = frame(V3_RESPONSE, flag, 1, opcode::RESULT, b"\0\0\0\x01");
        assert!(t.on_response(&f, &mut BytesMut::new()).is_err());
    }
}

#[test]
fn ordinary_prepared_gets_pk_count() {
    let t = Translator::new(IP);
    let v3 = crate::metadata::tests::v3_prepared(b"PID", &[("k", 0x000D)], &[]);
    let v4 = translate_back(&t, &resp(7, opcode::RESULT, &v3));
    assert_eq!(v4.body.len(), v3.len() + 4);
    let at = 4 + 2 + 3 + 4 + 4;
    assert_eq!(&v4.body[at..at + 4], &[0, 0, 0, 0]);
    // A traced PREPARED keeps its tracing id in front.
    let mut traced = vec![0xAB; 16];
    traced.extend_from_slice(&v3);
    let f = frame(V3_RESPONSE, flags::TRACING, 8, opcode::RESULT, &traced);
    let v4t = translate_back(&t, &f);
    assert_eq!(&v4t.body[..16], &[0xAB; 16]);
    assert_eq!(&v4t.body[16..], &v4.body[..]);
}

fn v3_local_rows(rows: usize) -> Vec<u8> {
    let mut b = Vec::new();
    put_i32(&mut b, crate::metadata::kind::ROWS);
    put_i32(&mut b, 1); // global tables spec
    put_i32(&mut b, 5);
    put_string(&mut b, "system").unwrap();
    put_string(&mut b, "local").unwrap();
    for (n, ty) in [
        ("host_id", 0x000C),
        ("data_center", 0x000D),
        ("rack", 0x000D),
        ("tokens", 0x0022),
        ("cluster_name", 0x000D),
    ] {
        put_string(&mut b, n).unwrap();
        put_u16(&mut b, ty);
        if ty == 0x0022 {
            put_u16(&mut b, 0x000D);
        }
    }
    put_i32(&mut b, rows as i32);
    for _ in 0..rows {
        for v in [&[7u8; 16][..], b"dc1", b"r1", b"\0\0\0\0", b"Test Cluster"] {
            put_i32(&mut b, v.len() as i32);
            b.extend_from_slice(v);
        }
    }
    b
}

/// The 6 column names and the rpc_address values of a v4 ROWS body.
fn names_and_ips(body: &[u8]) -> (Vec<String>, Vec<Vec<u8>>) {
    let mut r = Reader::new(body);
    assert_eq!(r.i32("kind").unwrap(), 2);
    let flags = r.i32("flags").unwrap();
    let n = r.count("n").unwrap();
    let mut names = Vec::new();
    if flags & 4 == 0 {
        r.string("ks").unwrap();
        r.string("t").unwrap();
        for _ in 0..n {
            names.push(r.string("name").unwrap().to_owned());
            let ty = r.u16("ty").unwrap();
            if ty == 0x0022 {
                r.u16("elem").unwrap();
            }
        }
    }
    let rows = r.count("rows").unwrap();
    let mut ips = Vec::new();
    for _ in 0..rows {
        for c in 0..n {
            let v = r.bytes("v").unwrap().unwrap().to_vec();
            if c == 1 {
                ips.push(v);
            }
        }
    }
    assert!(r.is_empty());
    (names, ips)
}

#[test]
fn system_local_prepare_and_execute_round_trip() {
    let t = Translator::new(IP);
    let mut body = Vec::new();
    put_long_string(&mut body, SCYLLA_1_9_TOPOLOGY_QUERY).unwrap();
    let fwd = forward(&t, &req(11, opcode::PREPARE, &body));
    let mut r = Reader::new(&fwd.body);
    assert_eq!(
        r.long_string("q").unwrap(),
        "SELECT host_id, data_center, rack, tokens, cluster_name FROM system.local WHERE key='local'"
    );
    assert_eq!(t.pending_rewrites(), 1);

    // PREPARED: no bind markers; result metadata has the 5 server columns.
    let cols: Vec<(&str, u16)> = vec![
        ("host_id", 0x000C),
        ("data_center", 0x000D),
        ("rack", 0x000D),
        ("cluster_name", 0x000D),
        ("x", 0x0009),
    ];
    let v3 = crate::metadata::tests::v3_prepared(b"LOCALID", &[], &cols);
    let v4 = translate_back(&t, &resp(11, opcode::RESULT, &v3));
    assert_eq!(t.pending_rewrites(), 0);
    let mut r = Reader::new(&v4.body);
    r.i32("kind").unwrap();
    assert_eq!(r.short_bytes("id").unwrap(), b"LOCALID");
    assert_eq!(
        (
            r.i32("f").unwrap(),
            r.i32("c").unwrap(),
            r.i32("pk").unwrap()
        ),
        (1, 0, 0)
    );
    r.string("ks").unwrap();
    r.string("t").unwrap();
    assert_eq!((r.i32("f").unwrap(), r.i32("c").unwrap()), (1, 6));
    r.string("ks").unwrap();
    r.string("t").unwrap();
    let names: Vec<_> = (0..6)
        .map(|_| {
            let n = r.string("n").unwrap();
            r.u16("t").unwrap();
            n
        })
        .collect();
    assert_eq!(
        names,
        [
            "host_id",
            "rpc_address",
            "data_center",
            "rack",
            "cluster_name",
            "x"
        ]
    );

    // EXECUTE of that id (on another stream) gets rpc_address in every row.
    let mut exec = Vec::new();
    put_u16(&mut exec, 7);
    exec.extend_from_slice(b"LOCALID");
    exec.extend_from_slice(&no_values_params());
    let fwd = forward(&t, &req(12, opcode::EXECUTE, &exec));
    assert_eq!(&fwd.body[..], &exec[..], "EXECUTE itself is unchanged");
    let rows = translate_back(&t, &resp(12, opcode::RESULT, &v3_local_rows(2)));
    let (names, ips) = names_and_ips(&rows.body);
    assert_eq!(
        names,
        [
            "host_id",
            "rpc_address",
            "data_center",
            "rack",
            "tokens",
            "cluster_name"
        ]
    );
    assert_eq!(ips, vec![vec![127, 0, 0, 7]; 2]);

    // Other statements' ROWS on the same stream id are untouched.
    forward(
        &t,
        &req(12, opcode::EXECUTE, &{
            let mut e = Vec::new();
            put_u16(&mut e, 5);
            e.extend_from_slice(b"OTHER");
            e.extend_from_slice(&no_values_params());
            e
        }),
    );
    let plain = v3_local_rows(1);
    assert_eq!(
        &translate_back(&t, &resp(12, opcode::RESULT, &plain)).body[..],
        &plain[..]
    );
}

#[test]
fn system_local_query_rows_get_rpc_address() {
    let t = Translator::new(IP);
    let mut body = Vec::new();
    put_long_string(&mut body, SCYLLA_1_9_TOPOLOGY_QUERY).unwrap();
    body.extend_from_slice(&no_values_params());
    let fwd = forward(&t, &req(3, opcode::QUERY, &body));
    let mut r = Reader::new(&fwd.body);
    assert!(!r.long_string("q").unwrap().contains("rpc_address"));
    assert_eq!(r.remaining(), &no_values_params()[..]);
    let rows = translate_back(&t, &resp(3, opcode::RESULT, &v3_local_rows(1)));
    let (names, ips) = names_and_ips(&rows.body);
    assert_eq!(names[1], "rpc_address");
    assert_eq!(ips, vec![vec![127, 0, 0, 7]]);
    // An ERROR response clears the in-flight entry.
    forward(&t, &req(4, opcode::QUERY, &body));
    translate_back(&t, &resp(4, opcode::ERROR, b"\0\0\x22\0\0\0"));
    assert_eq!(t.pending_rewrites(), 0);
}

#[test]
fn malformed_tracked_rows_close_the_connection() {
    let t = Translator::new(IP);
    let mut body = Vec::new();
    put_long_string(&mut body, SCYLLA_1_9_TOPOLOGY_QUERY).unwrap();
    body.extend_from_slice(&no_values_params());
    forward(&t, &req(3, opcode::QUERY, &body));
    let rows = v3_local_rows(1);
    let err = t.on_response(
        &resp(3, opcode::RESULT, &rows[..rows.len() - 1]),
        &mut BytesMut::new(),
    );
    assert!(err.unwrap_err().contains("cannot translate server RESULT"));
}

#[test]
fn oversized_and_bad_version_frames_are_errors() {
    let mut buf = BytesMut::from(&[4u8, 0, 0, 1, 7, 0, 0x10, 0, 1][..]);
    assert!(matches!(
        decode_frame(&mut buf, Direction::Request, 1 << 20),
        Err(FrameError::TooLarge { stream: 1, .. })
    ));
    let mut buf = BytesMut::from(&[3u8, 0, 0, 1, 5, 0, 0, 0, 0][..]);
    assert!(matches!(
        decode_frame(&mut buf, Direction::Request, 1 << 20),
        Err(FrameError::BadVersion { found: 3, .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary bytes, split into frames with arbitrary headers, never panic the decoder or
    /// either direction of the translator.
    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600), op in any::<u8>(), fl in any::<u8>(), stream in any::<i16>()) {
        for dir in [Direction::Request, Direction::Response] {
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = decode_frame(&mut buf, dir, 512) {}
        }
        let t = Translator::new(IP);
        let mut out = BytesMut::new();
        let _ = t.on_request(&frame(V4_REQUEST, fl, stream, op, &data), &mut out);
        let _ = t.on_response(&frame(V3_RESPONSE, fl, stream, op, &data), &mut out);
        // Also with the system.local statement in flight, so ROWS/PREPARED surgery runs.
        let mut body = Vec::new();
        put_long_string(&mut body, SCYLLA_1_9_TOPOLOGY_QUERY).unwrap();
        let _ = t.on_request(&req(stream, opcode::PREPARE, &body), &mut out);
        let mut result = vec![0, 0, 0, if op % 2 == 0 { 2 } else { 4 }];
        result.extend_from_slice(&data);
        let _ = t.on_response(&resp(stream, opcode::RESULT, &result), &mut out);
    }

    /// Random tails after valid prefixes of each request opcode never panic.
    #[test]
    fn random_request_bodies_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300), op in 0u8..0x12) {
        let t = Translator::new(IP);
        let _ = t.on_request(&req(1, op, &data), &mut BytesMut::new());
    }
}
