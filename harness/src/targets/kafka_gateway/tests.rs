//! Tests of the Kafka gateway: response rewriting on hand-built frames, and the relay on loopback sockets.

use std::net::{Ipv4Addr, SocketAddr};

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::rewrite::put_varint;
use super::*;

/// The longest any test waits for something that should happen.
const WAIT: Duration = Duration::from_secs(10);
/// Tagged fields written wherever a flexible version has them: a 1-byte and a 2-byte tag.
const TAGS: &[(u32, &[u8])] = &[(0, b"abc"), (300, b"")];
/// What a Metadata response carries after its brokers array (cluster id, controller, topics...),
/// opaque to the gateway.
const METADATA_REST: &[u8] = b"\x00\x07cluster\x00\x00\x00\x01\x00\x00\x00\x00rest";

// ---- encoders -------------------------------------------------------------------------------

/// Writes Kafka primitive types, compact ones when `flexible`.
struct Encoder {
    bytes: Vec<u8>,
    flexible: bool,
}

impl Encoder {
    fn new(flexible: bool) -> Encoder {
        Encoder {
            bytes: Vec::new(),
            flexible,
        }
    }

    fn i16(&mut self, value: i16) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }

    fn i32(&mut self, value: i32) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }

    fn varint(&mut self, value: u32) {
        put_varint(&mut self.bytes, value);
    }

    fn string(&mut self, value: &str) {
        if self.flexible {
            self.varint(value.len() as u32 + 1);
        } else {
            self.i16(value.len() as i16);
        }
        self.bytes.extend_from_slice(value.as_bytes());
    }

    fn nullable_string(&mut self, value: Option<&str>) {
        match value {
            Some(value) => self.string(value),
            None if self.flexible => self.varint(0),
            None => self.i16(-1),
        }
    }

    fn array_length(&mut self, length: usize) {
        if self.flexible {
            self.varint(length as u32 + 1);
        } else {
            self.i32(length as i32);
        }
    }

    /// The tagged fields of a flexible version (nothing otherwise).
    fn tags(&mut self) {
        if !self.flexible {
            return;
        }
        self.varint(TAGS.len() as u32);
        for (tag, data) in TAGS {
            self.varint(*tag);
            self.varint(data.len() as u32);
            self.bytes.extend_from_slice(data);
        }
    }
}

#[derive(Debug, Clone)]
struct Broker {
    node_id: i32,
    host: &'static str,
    port: i32,
    rack: Option<&'static str>,
}

fn broker(node_id: i32, host: &'static str, port: i32) -> Broker {
    Broker {
        node_id,
        host,
        port,
        rack: (node_id % 2 == 0).then_some("rack-a"),
    }
}

/// A Metadata response and the offset where its brokers array ends.
fn metadata(version: i16, correlation_id: i32, brokers: &[Broker]) -> (Vec<u8>, usize) {
    let mut out = Encoder::new(version >= 9);
    out.i32(correlation_id);
    out.tags();
    if version >= 3 {
        out.i32(25); // throttle_time_ms
    }
    out.array_length(brokers.len());
    for broker in brokers {
        out.i32(broker.node_id);
        out.string(broker.host);
        out.i32(broker.port);
        if version >= 1 {
            out.nullable_string(broker.rack);
        }
        out.tags();
    }
    let brokers_end = out.bytes.len();
    out.bytes.extend_from_slice(METADATA_REST);
    (out.bytes, brokers_end)
}

#[derive(Debug, Clone)]
struct Coordinator {
    key: &'static str,
    node_id: i32,
    host: &'static str,
    port: i32,
    error_code: i16,
    error_message: Option<&'static str>,
}

fn coordinator(key: &'static str, node_id: i32, host: &'static str, port: i32) -> Coordinator {
    Coordinator {
        key,
        node_id,
        host,
        port,
        error_code: 0,
        error_message: None,
    }
}

/// A FindCoordinator response; v0-3 carry the first coordinator only.
fn find_coordinator(version: i16, coordinators: &[Coordinator]) -> Vec<u8> {
    let mut out = Encoder::new(version >= 3);
    out.i32(77); // correlation_id
    out.tags();
    if version >= 1 {
        out.i32(0); // throttle_time_ms
    }
    if version <= 3 {
        let only = &coordinators[0];
        out.i16(only.error_code);
        if version >= 1 {
            out.nullable_string(only.error_message);
        }
        out.i32(only.node_id);
        out.string(only.host);
        out.i32(only.port);
    } else {
        out.array_length(coordinators.len());
        for each in coordinators {
            out.string(each.key);
            out.i32(each.node_id);
            out.string(each.host);
            out.i32(each.port);
            out.i16(each.error_code);
            out.nullable_string(each.error_message);
            out.tags();
        }
    }
    out.tags();
    out.bytes
}

fn routes() -> BrokerRoutes {
    BrokerRoutes::new([
        (
            ("Broker-1.example".into(), 9092),
            ("127.0.0.1".into(), 40001),
        ),
        (
            ("broker-2.example".into(), 9092),
            ("proxy-two.local".into(), 40002),
        ),
    ])
}

/// Brokers of which the 1st and 3rd are routed, the 2nd (other port) and 4th are not.
fn mixed_brokers() -> Vec<Broker> {
    vec![
        broker(1, "BROKER-1.example", 9092),
        broker(2, "broker-2.example", 9093),
        broker(3, "broker-2.example", 9092),
        broker(4, "broker-4.example", 9092),
    ]
}

/// [`mixed_brokers`] as clients must see them.
fn mixed_brokers_routed() -> Vec<Broker> {
    let mut brokers = mixed_brokers();
    (brokers[0].host, brokers[0].port) = ("127.0.0.1", 40001);
    (brokers[2].host, brokers[2].port) = ("proxy-two.local", 40002);
    brokers
}

fn unrouted_brokers() -> Vec<Broker> {
    vec![
        broker(1, "elsewhere", 9092),
        broker(2, "broker-1.example", 1),
    ]
}

const METADATA_VERSIONS: [i16; 6] = [0, 1, 8, 9, 12, 13];
const FIND_COORDINATOR_VERSIONS: [i16; 6] = [0, 2, 3, 4, 5, 6];

fn rewrite(api_key: i16, version: i16, frame: &[u8]) -> Result<Option<Vec<u8>>, RewriteError> {
    rewrite_response(api_key, version, frame, &routes())
}

// ---- routes and request headers -------------------------------------------------------------

#[test]
fn routes_match_hosts_case_insensitively_and_ports_exactly() {
    let routes = routes();
    assert_eq!(
        routes.route("broker-1.EXAMPLE", 9092),
        Some(("127.0.0.1", 40001))
    );
    assert_eq!(
        routes.route("Broker-2.Example", 9092),
        Some(("proxy-two.local", 40002))
    );
    assert_eq!(routes.route("broker-1.example", 9093), None);
    assert_eq!(routes.route("broker-1", 9092), None);
    let later_wins = BrokerRoutes::new([
        (("a".into(), 1), ("first".into(), 2)),
        (("A".into(), 1), ("second".into(), 3)),
    ]);
    assert_eq!(later_wins.route("a", 1), Some(("second", 3)));
}

#[test]
fn request_header_reads_key_version_and_correlation_id() {
    let mut frame = vec![0x00, 0x03, 0x00, 0x0c, 0x12, 0x34, 0x56, 0x78];
    frame.extend_from_slice(b"\x00\x06client");
    let expected = RequestHeader {
        api_key: 3,
        api_version: 12,
        correlation_id: 0x1234_5678,
    };
    assert_eq!(request_header(&frame), Some(expected));
    assert_eq!(request_header(&frame[..8]), Some(expected));
    for cut in 0..8 {
        assert_eq!(request_header(&frame[..cut]), None, "cut at {cut}");
    }
    let negative = request_header(&[0xff, 0xff, 0x80, 0x00, 0xff, 0xff, 0xff, 0xfe]);
    assert_eq!(
        negative,
        Some(RequestHeader {
            api_key: -1,
            api_version: i16::MIN,
            correlation_id: -2,
        })
    );
}

// ---- Metadata -------------------------------------------------------------------------------

#[test]
fn metadata_routed_brokers_are_replaced_and_everything_else_kept() {
    for version in METADATA_VERSIONS {
        let (frame, _) = metadata(version, 5, &mixed_brokers());
        let (expected, expected_end) = metadata(version, 5, &mixed_brokers_routed());
        let rewritten = rewrite(METADATA_API_KEY, version, &frame)
            .unwrap_or_else(|e| panic!("v{version}: {e}"))
            .unwrap_or_else(|| panic!("v{version}: nothing rewritten"));
        assert_eq!(rewritten, expected, "v{version}");
        assert_eq!(&rewritten[expected_end..], METADATA_REST, "v{version}");
    }
}

#[test]
fn metadata_without_routed_brokers_is_left_alone() {
    for version in METADATA_VERSIONS {
        for brokers in [unrouted_brokers(), Vec::new()] {
            let (frame, _) = metadata(version, 5, &brokers);
            assert_eq!(
                rewrite(METADATA_API_KEY, version, &frame),
                Ok(None),
                "v{version}"
            );
        }
        let (frame, _) = metadata(version, 5, &mixed_brokers());
        let no_routes =
            rewrite_response(METADATA_API_KEY, version, &frame, &BrokerRoutes::default());
        assert_eq!(no_routes, Ok(None), "v{version}");
    }
}

#[test]
fn a_longer_or_shorter_host_moves_the_rest_and_flexible_lengths_grow() {
    // A 200-byte host needs a 2-byte compact length where the original needed 1.
    let long_host: &'static str = "h".repeat(200).leak();
    let routes = BrokerRoutes::new([(("b".into(), 1), (long_host.to_owned(), 2))]);
    for version in METADATA_VERSIONS {
        let (frame, _) = metadata(version, 5, &[broker(1, "b", 1), broker(2, "c", 1)]);
        let (expected, _) = metadata(version, 5, &[broker(1, long_host, 2), broker(2, "c", 1)]);
        let rewritten = rewrite_response(METADATA_API_KEY, version, &frame, &routes);
        assert_eq!(rewritten, Ok(Some(expected)), "v{version}");
    }
}

#[test]
fn metadata_cut_anywhere_before_the_end_of_its_brokers_is_truncated() {
    for version in METADATA_VERSIONS {
        let (frame, brokers_end) = metadata(version, 5, &mixed_brokers());
        for cut in 0..brokers_end {
            let result = rewrite(METADATA_API_KEY, version, &frame[..cut]);
            assert!(
                matches!(result, Err(RewriteError::Truncated { .. })),
                "v{version} cut at {cut}: {result:?}"
            );
        }
        // The rest is copied unparsed, so a cut there still rewrites what precedes it.
        let cut = rewrite(METADATA_API_KEY, version, &frame[..brokers_end]);
        assert!(matches!(cut, Ok(Some(_))), "v{version}: {cut:?}");
    }
}

// ---- FindCoordinator ------------------------------------------------------------------------

fn mixed_coordinators() -> Vec<Coordinator> {
    let mut failed = coordinator("group-c", -1, "", -1);
    (failed.error_code, failed.error_message) = (15, Some("COORDINATOR_NOT_AVAILABLE"));
    vec![
        coordinator("group-a", 1, "broker-1.example", 9092),
        coordinator("group-b", 4, "broker-4.example", 9092),
        failed,
        coordinator("group-d", 3, "BROKER-2.example", 9092),
    ]
}

#[test]
fn find_coordinator_routed_coordinators_are_replaced() {
    for version in FIND_COORDINATOR_VERSIONS {
        let frame = find_coordinator(version, &mixed_coordinators());
        let mut routed = mixed_coordinators();
        (routed[0].host, routed[0].port) = ("127.0.0.1", 40001);
        (routed[3].host, routed[3].port) = ("proxy-two.local", 40002);
        let rewritten = rewrite(FIND_COORDINATOR_API_KEY, version, &frame);
        let expected = find_coordinator(version, &routed);
        assert_eq!(rewritten, Ok(Some(expected)), "v{version}");
    }
}

#[test]
fn find_coordinator_without_a_routed_coordinator_is_left_alone() {
    for version in FIND_COORDINATOR_VERSIONS {
        // v0-3 carry only the first: here an unrouted one, then an error without an address.
        let coordinators = mixed_coordinators();
        for first in [1, 2] {
            let frame = find_coordinator(version, &coordinators[first..3]);
            let result = rewrite(FIND_COORDINATOR_API_KEY, version, &frame);
            assert_eq!(result, Ok(None), "v{version} from {first}");
        }
    }
    let empty = find_coordinator(4, &[]);
    assert_eq!(rewrite(FIND_COORDINATOR_API_KEY, 4, &empty), Ok(None));
}

#[test]
fn find_coordinator_cut_anywhere_is_truncated_and_extra_bytes_are_malformed() {
    for version in FIND_COORDINATOR_VERSIONS {
        let frame = find_coordinator(version, &mixed_coordinators());
        for cut in 0..frame.len() {
            let result = rewrite(FIND_COORDINATOR_API_KEY, version, &frame[..cut]);
            assert!(
                matches!(result, Err(RewriteError::Truncated { .. })),
                "v{version} cut at {cut}: {result:?}"
            );
        }
        let mut longer = frame.clone();
        longer.push(0);
        let result = rewrite(FIND_COORDINATOR_API_KEY, version, &longer);
        assert!(
            matches!(result, Err(RewriteError::Malformed { what: "end", .. })),
            "v{version}: {result:?}"
        );
    }
}

// ---- what cannot be parsed ------------------------------------------------------------------

#[test]
fn other_apis_pass_and_unknown_versions_are_unsupported() {
    assert_eq!(rewrite(18, 3, b"anything at all"), Ok(None));
    assert_eq!(rewrite(0, 9, &[]), Ok(None));
    for (api_key, version) in [(3, 14), (3, -1), (10, 7), (10, i16::MIN)] {
        let result = rewrite(api_key, version, &[]);
        assert!(
            matches!(result, Err(RewriteError::Unsupported { .. })),
            "api {api_key} v{version}: {result:?}"
        );
    }
}

#[test]
fn lying_lengths_are_errors_not_allocations() {
    let truncated = |result: Result<Option<Vec<u8>>, RewriteError>| {
        assert!(
            matches!(result, Err(RewriteError::Truncated { .. })),
            "{result:?}"
        );
    };
    let malformed = |result: Result<Option<Vec<u8>>, RewriteError>, problem: &str| match result {
        Err(RewriteError::Malformed { problem: got, .. }) => {
            assert!(got.contains(problem), "{got}")
        }
        other => panic!("expected malformed ({problem}), got {other:?}"),
    };
    // Metadata v0: correlation_id, then brokers.
    let header = 5i32.to_be_bytes();
    let with = |tail: &[u8]| [&header[..], tail].concat();
    truncated(rewrite(3, 0, &with(&i32::MAX.to_be_bytes())));
    malformed(
        rewrite(3, 0, &with(&(-1i32).to_be_bytes())),
        "null where an array",
    );
    malformed(rewrite(3, 0, &with(&(-7i32).to_be_bytes())), "length -7");
    // One broker whose host claims 32767 bytes, or is null, or has a negative length.
    let broker_with_host = |host_length: i16| {
        with(
            &[
                &1i32.to_be_bytes()[..],
                &1i32.to_be_bytes(),
                &host_length.to_be_bytes(),
            ]
            .concat(),
        )
    };
    truncated(rewrite(3, 0, &broker_with_host(i16::MAX)));
    malformed(rewrite(3, 0, &broker_with_host(-1)), "null where a string");
    malformed(rewrite(3, 0, &broker_with_host(-2)), "length -2");
    // Metadata v9: correlation_id, header tagged fields, throttle, compact brokers array.
    let flexible = |tail: &[u8]| [&header[..], &[0], &[0, 0, 0, 0], tail].concat();
    truncated(rewrite(3, 9, &flexible(&[0xff, 0xff, 0xff, 0xff, 0x0f])));
    malformed(
        rewrite(3, 9, &flexible(&[0xff, 0xff, 0xff, 0xff, 0x10])),
        "varint",
    );
    malformed(
        rewrite(3, 9, &flexible(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01])),
        "varint",
    );
    malformed(rewrite(3, 9, &flexible(&[0])), "null where an array");
    // Header tagged fields claiming many fields, or one huge field.
    truncated(rewrite(
        3,
        9,
        &[&header[..], &[0xff, 0xff, 0xff, 0xff, 0x0f]].concat(),
    ));
    truncated(rewrite(
        3,
        9,
        &[&header[..], &[1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]].concat(),
    ));
}

#[test]
fn oversized_frames_and_route_hosts_are_rejected() {
    let oversized = vec![0u8; FRAME_BYTES_MAX + 1];
    let result = rewrite(METADATA_API_KEY, 0, &oversized);
    assert!(
        matches!(result, Err(RewriteError::TooLarge { .. })),
        "{result:?}"
    );
    let long_host = "h".repeat(32768);
    let routes = BrokerRoutes::new([(("b".into(), 1), (long_host, 2))]);
    let (frame, _) = metadata(12, 5, &[broker(1, "b", 1)]);
    let result = rewrite_response(METADATA_API_KEY, 12, &frame, &routes);
    assert!(
        matches!(
            result,
            Err(RewriteError::RouteHostTooLong { len: 32768, .. })
        ),
        "{result:?}"
    );
}

#[test]
fn errors_name_the_response_and_the_field() {
    let (frame, _) = metadata(12, 5, &mixed_brokers());
    let message = rewrite(METADATA_API_KEY, 12, &frame[..20])
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("Metadata v12 response is truncated"),
        "{message}"
    );
    assert!(message.contains("broker"), "{message}");
    let message = rewrite(FIND_COORDINATOR_API_KEY, 9, &[])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("FindCoordinator v9") && message.contains("v0 to v6"),
        "{message}"
    );
}

#[test]
fn random_and_mutated_frames_never_panic() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x6761_7465);
    let mut valid = Vec::new();
    for version in METADATA_VERSIONS {
        valid.push((
            METADATA_API_KEY,
            version,
            metadata(version, 5, &mixed_brokers()).0,
        ));
    }
    for version in FIND_COORDINATOR_VERSIONS {
        valid.push((
            FIND_COORDINATOR_API_KEY,
            version,
            find_coordinator(version, &mixed_coordinators()),
        ));
    }
    let routes = routes();
    let mut outcomes = [0usize; 3];
    for round in 0..20_000 {
        let pick = rng.next_u64() as usize;
        let (api_key, version, mut frame) = valid[pick % valid.len()].clone();
        if round % 2 == 0 {
            // Random bytes of a random length.
            frame = vec![0u8; (rng.next_u32() % 160) as usize];
            rng.fill_bytes(&mut frame);
        } else {
            // A valid frame with a few bytes overwritten.
            for _ in 0..=(rng.next_u32() % 4) {
                let at = rng.next_u32() as usize % frame.len();
                frame[at] = rng.next_u32() as u8;
            }
        }
        let outcome = rewrite_response(api_key, version, &frame, &routes);
        match outcome {
            Ok(None) => outcomes[0] += 1,
            Ok(Some(rewritten)) => {
                // Every replacement host here is shorter than the host it replaces.
                assert!(rewritten.len() < frame.len(), "grew");
                outcomes[1] += 1;
            }
            Err(_) => outcomes[2] += 1,
        }
    }
    // Both the rewriting and the rejecting paths were exercised.
    assert!(outcomes.iter().all(|&count| count > 100), "{outcomes:?}");
}

// ---- the relay ------------------------------------------------------------------------------

fn any_port() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn sized(frame: &[u8]) -> Vec<u8> {
    [&(frame.len() as i32).to_be_bytes()[..], frame].concat()
}

fn request(api_key: i16, api_version: i16, correlation_id: i32) -> Vec<u8> {
    let mut out = Encoder::new(false);
    out.i16(api_key);
    out.i16(api_version);
    out.i32(correlation_id);
    out.string("roadtest-test");
    out.bytes.push(0); // request header v2 tagged fields
    sized(&out.bytes)
}

/// Reads one size-prefixed frame (with its prefix).
async fn read_sized(stream: &mut TcpStream) -> Vec<u8> {
    let mut prefix = [0u8; 4];
    timeout(WAIT, stream.read_exact(&mut prefix))
        .await
        .expect("a frame in time")
        .expect("a frame");
    let mut frame = vec![0u8; i32::from_be_bytes(prefix) as usize];
    stream
        .read_exact(&mut frame)
        .await
        .expect("the frame's body");
    [&prefix[..], &frame].concat()
}

/// Expects the stream to end (EOF or reset) in time.
async fn expect_closed(stream: &mut TcpStream) {
    let mut byte = [0u8; 1];
    match timeout(WAIT, stream.read(&mut byte)).await {
        Ok(Ok(0) | Err(_)) => {}
        Ok(Ok(_)) => panic!("unexpected data"),
        Err(_) => panic!("the stream stayed open"),
    }
}

/// A broker stand-in for one connection: answers the i-th request frame with `responses[i]`
/// (sized), then returns every byte it received up to the client's end of stream.
async fn fake_broker(responses: Vec<Vec<u8>>) -> (SocketAddr, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind(any_port())
        .await
        .expect("bind fake broker");
    let address = listener.local_addr().expect("fake broker address");
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut received = Vec::new();
        for response in responses {
            received.extend(read_sized(&mut stream).await);
            stream.write_all(&sized(&response)).await.expect("respond");
        }
        stream
            .read_to_end(&mut received)
            .await
            .expect("read to end");
        received
    });
    (address, task)
}

async fn gateway_to(upstream: SocketAddr) -> KafkaGateway {
    let upstream = (upstream.ip().to_string(), upstream.port());
    KafkaGateway::start("test", any_port(), upstream, Arc::new(routes()))
        .await
        .expect("start gateway")
}

async fn connect(gateway: &KafkaGateway) -> TcpStream {
    timeout(WAIT, TcpStream::connect(gateway.local_addr()))
        .await
        .expect("connect in time")
        .expect("connect")
}

#[tokio::test]
async fn the_relay_rewrites_only_answers_to_metadata_and_find_coordinator() {
    let (metadata_response, _) = metadata(12, 7, &mixed_brokers());
    let (expected_metadata, _) = metadata(12, 7, &mixed_brokers_routed());
    let other = b"\x00\x00\x00\x08 an ApiVersions answer mentioning broker-1.example".to_vec();
    let broken = b"\x00\x00\x00\x09\x00".to_vec(); // a Metadata answer cut short
    let mut coordinator_response = find_coordinator(4, &mixed_coordinators());
    coordinator_response[..4].copy_from_slice(&10i32.to_be_bytes());
    let responses = vec![
        metadata_response,
        other.clone(),
        broken.clone(),
        coordinator_response.clone(),
    ];
    let (broker, received) = fake_broker(responses).await;
    let gateway = gateway_to(broker).await;
    let mut client = connect(&gateway).await;
    let requests = [
        request(3, 12, 7),
        request(18, 3, 8),
        request(3, 12, 9),
        request(10, 4, 10),
    ]
    .concat();
    // Pipelined, as librdkafka does: all requests before any response.
    client.write_all(&requests).await.expect("send requests");
    assert_eq!(read_sized(&mut client).await, sized(&expected_metadata));
    assert_eq!(read_sized(&mut client).await, sized(&other));
    assert_eq!(read_sized(&mut client).await, sized(&broken));
    let routed = rewrite(FIND_COORDINATOR_API_KEY, 4, &coordinator_response);
    let routed = routed.expect("parses").expect("routed");
    assert_eq!(read_sized(&mut client).await, sized(&routed));
    // The client's end of stream reaches the broker, whose end reaches the client.
    client.shutdown().await.expect("shutdown");
    let received = timeout(WAIT, received)
        .await
        .expect("broker done")
        .expect("broker task");
    assert_eq!(received, requests, "requests pass unchanged");
    expect_closed(&mut client).await;
}

#[tokio::test]
async fn a_large_frame_streams_through_unchanged() {
    // Produce (api key 0) requests and their answers are not looked into.
    let mut large = vec![0u8; 3 * COPY_CHUNK_BYTES + 17];
    ChaCha8Rng::seed_from_u64(3).fill_bytes(&mut large);
    large[..2].copy_from_slice(&0i16.to_be_bytes());
    let (broker, received) = fake_broker(vec![large.clone()]).await;
    let gateway = gateway_to(broker).await;
    let mut client = connect(&gateway).await;
    client.write_all(&sized(&large)).await.expect("send");
    assert_eq!(read_sized(&mut client).await, sized(&large));
    client.shutdown().await.expect("shutdown");
    let received = timeout(WAIT, received).await.expect("broker done");
    assert_eq!(received.expect("broker task"), sized(&large));
}

#[tokio::test]
async fn a_frame_size_out_of_bounds_ends_the_connection() {
    for size in [-1i32, (FRAME_BYTES_MAX + 1) as i32] {
        let (broker, _received) = fake_broker(Vec::new()).await;
        let gateway = gateway_to(broker).await;
        let mut client = connect(&gateway).await;
        client.write_all(&size.to_be_bytes()).await.expect("send");
        expect_closed(&mut client).await;
    }
}

#[tokio::test]
async fn an_unreachable_upstream_closes_the_client() {
    let closed = TcpListener::bind(any_port()).await.expect("bind");
    let address = closed.local_addr().expect("address");
    drop(closed);
    let gateway = gateway_to(address).await;
    let mut client = connect(&gateway).await;
    expect_closed(&mut client).await;
}

#[tokio::test]
async fn dropping_the_gateway_closes_its_connections() {
    let (broker, _received) = fake_broker(vec![b"\x00\x00\x00\x01".to_vec()]).await;
    let gateway = gateway_to(broker).await;
    let mut client = connect(&gateway).await;
    client.write_all(&request(18, 3, 1)).await.expect("send");
    read_sized(&mut client).await;
    drop(gateway);
    expect_closed(&mut client).await;
}

#[tokio::test]
async fn listening_on_a_taken_address_is_an_error_naming_it() {
    let taken = TcpListener::bind(any_port()).await.expect("bind");
    let address = taken.local_addr().expect("address");
    let upstream = ("127.0.0.1".to_owned(), 9);
    let error = KafkaGateway::start("busy", address, upstream, Arc::new(routes()))
        .await
        .expect_err("the address is taken");
    let message = error.to_string();
    assert!(
        message.contains("busy") && message.contains(&address.to_string()),
        "{message}"
    );
}
