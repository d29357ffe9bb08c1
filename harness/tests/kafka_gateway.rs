//! The Kafka gateway against a real broker (Tansu) that advertises an address nobody can reach: clients work only if every connection goes through the fault proxy and the gateway.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::net::TcpStream;
use tokio::time::timeout;

mod support;

use roadtest::targets::kafka_gateway::{BrokerRoutes, KafkaGateway};
use roadtest::targets::proxy::{FaultProxy, NetworkCondition};
use support::{Tansu, free_port, loopback};

/// What Tansu advertises: `.invalid` never resolves, so a client that connects where the broker
/// says (instead of where the gateway's rewrite says) fails.
const ADVERTISED_HOST: &str = "tansu-unreachable.invalid";
const ADVERTISED_PORT: u16 = 9092;
const TOPIC: &str = "gateway-test";
const PARTITIONS: i32 = 3;
const MESSAGES: usize = 1000;
/// The longest any step waits for something that should happen.
const WAIT: Duration = Duration::from_secs(30);
/// How long a message sent during a blackhole must stay unacknowledged.
const BLACKHOLE_QUIET: Duration = Duration::from_secs(2);

fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

/// The brokers (host, port) a metadata request through `bootstrap` returns, as librdkafka sees them.
async fn brokers_seen(bootstrap: &str) -> Vec<(String, i32)> {
    let client: BaseConsumer = client_config(bootstrap).create().expect("metadata client");
    tokio::task::spawn_blocking(move || {
        let metadata = client.fetch_metadata(None, WAIT).expect("metadata in time");
        metadata
            .brokers()
            .iter()
            .map(|broker| (broker.host().to_owned(), broker.port()))
            .collect()
    })
    .await
    .expect("metadata task")
}

/// The brokers (host, port) the broker at `address` advertises, read with one raw Metadata v1
/// request on one connection. librdkafka cannot be asked this reliably: after its first metadata
/// answer it may send the next request to the broker it just learned, which is unreachable here
/// by design, and time out.
async fn brokers_advertised(address: SocketAddr) -> Vec<(String, i32)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const CLIENT_ID: &[u8] = b"gateway-test";
    let mut request = Vec::new();
    request.extend_from_slice(&3i16.to_be_bytes()); // api key: Metadata
    request.extend_from_slice(&1i16.to_be_bytes()); // version 1
    request.extend_from_slice(&7i32.to_be_bytes()); // correlation id
    request.extend_from_slice(&(CLIENT_ID.len() as i16).to_be_bytes());
    request.extend_from_slice(CLIENT_ID);
    request.extend_from_slice(&0i32.to_be_bytes()); // no topics: brokers only
    let exchange = async {
        let mut stream = TcpStream::connect(address).await?;
        stream
            .write_all(&(request.len() as i32).to_be_bytes())
            .await?;
        stream.write_all(&request).await?;
        let length = stream.read_i32().await?;
        let mut body = vec![0; usize::try_from(length).unwrap_or(0)];
        stream.read_exact(&mut body).await?;
        std::io::Result::Ok(body)
    };
    let body = timeout(WAIT, exchange)
        .await
        .expect("metadata answered in time")
        .expect("metadata exchange");
    parse_metadata_v1_brokers(&body)
}

/// The broker list of a Metadata v1 response body (correlation id first).
fn parse_metadata_v1_brokers(body: &[u8]) -> Vec<(String, i32)> {
    let mut at = 0;
    let mut take = |count: usize| {
        let bytes = body
            .get(at..at + count)
            .unwrap_or_else(|| panic!("metadata response cut short at byte {at}: {body:?}"));
        at += count;
        bytes
    };
    let int16 = |bytes: &[u8]| i16::from_be_bytes(bytes.try_into().expect("two bytes"));
    let int32 = |bytes: &[u8]| i32::from_be_bytes(bytes.try_into().expect("four bytes"));
    assert_eq!(int32(take(4)), 7, "correlation id");
    let broker_count = int32(take(4));
    (0..broker_count)
        .map(|_| {
            let _node_id = take(4);
            let host_length = usize::try_from(int16(take(2))).expect("a host");
            let host = String::from_utf8_lossy(take(host_length)).into_owned();
            let port = int32(take(4));
            let rack_length = int16(take(2));
            if rack_length > 0 {
                take(rack_length as usize);
            }
            (host, port)
        })
        .collect()
}

async fn create_topic(bootstrap: &str) {
    let admin: AdminClient<DefaultClientContext> =
        client_config(bootstrap).create().expect("admin client");
    let topic = NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(WAIT));
    let results = timeout(WAIT, admin.create_topics([&topic], &options))
        .await
        .expect("topic created in time")
        .expect("create topic");
    for result in results {
        result.unwrap_or_else(|(name, code)| panic!("create topic {name}: {code}"));
    }
}

fn producer(bootstrap: &str) -> FutureProducer {
    client_config(bootstrap)
        .set("acks", "all")
        // Tansu 0.6 lacks idempotent producers.
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer")
}

/// Sends `key` -> `payload` and returns its delivery, not yet awaited.
fn send(producer: &FutureProducer, key: &str, payload: &str) -> rdkafka::producer::DeliveryFuture {
    let record = FutureRecord::to(TOPIC).key(key).payload(payload);
    producer
        .send_result(record)
        .unwrap_or_else(|(error, _)| panic!("enqueue {key}: {error}"))
}

/// Consumes with a group until `count` distinct keys arrived; returns key -> payload.
async fn consume(bootstrap: &str, count: usize) -> HashMap<String, String> {
    let consumer: StreamConsumer = client_config(bootstrap)
        .set("group.id", "gateway-test-group")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[TOPIC]).expect("subscribe");
    let mut received = HashMap::new();
    // Tansu's first group join takes about 3 s.
    let deadline = Instant::now() + 2 * WAIT;
    while received.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = timeout(left, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} messages arrived", received.len()))
            .expect("consume");
        let text =
            |bytes: Option<&[u8]>| String::from_utf8_lossy(bytes.unwrap_or_default()).into_owned();
        received.insert(text(message.key()), text(message.payload()));
    }
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_reach_a_broker_advertising_elsewhere_only_through_proxy_and_gateway() {
    let tansu_port = free_port();
    let tansu = Tansu::start(
        tansu_port,
        &format!("{ADVERTISED_HOST}:{ADVERTISED_PORT}"),
        "kafka-gateway",
    )
    .await;
    // The proxy forwards to the gateway and the gateway's routes name the proxy: reserve the
    // gateway's port, start the proxy towards it, then start the gateway on it.
    let gateway_address = loopback(free_port());
    let proxy = FaultProxy::start("kafka", loopback(0), gateway_address, 1)
        .await
        .expect("start the proxy");
    let proxy_port = proxy.local_addr().port();
    let routes = BrokerRoutes::new([(
        (ADVERTISED_HOST.to_owned(), ADVERTISED_PORT),
        ("127.0.0.1".to_owned(), proxy_port),
    )]);
    let upstream = ("127.0.0.1".to_owned(), tansu_port);
    let _gateway = KafkaGateway::start("kafka", gateway_address, upstream, Arc::new(routes))
        .await
        .expect("start the gateway");
    let bootstrap = proxy.local_addr().to_string();

    // Without the gateway clients learn the unreachable address; through it, the proxy's.
    let direct = brokers_advertised(loopback(tansu_port)).await;
    let advertised = (ADVERTISED_HOST.to_owned(), i32::from(ADVERTISED_PORT));
    assert_eq!(direct, [advertised]);
    let rewritten = brokers_seen(&bootstrap).await;
    assert_eq!(rewritten, [("127.0.0.1".to_owned(), i32::from(proxy_port))]);

    create_topic(&bootstrap).await;
    let producer = producer(&bootstrap);
    let deliveries: Vec<_> = (0..MESSAGES)
        .map(|i| send(&producer, &format!("key-{i}"), &format!("value-{i}")))
        .collect();
    let delivered = timeout(2 * WAIT, futures_util::future::join_all(deliveries))
        .await
        .expect("every message acknowledged in time");
    for (i, delivery) in delivered.into_iter().enumerate() {
        match delivery {
            Ok(Ok(_)) => {}
            Ok(Err((error, _))) => panic!("message {i} failed: {error}"),
            Err(_) => panic!("message {i}: the producer dropped its delivery"),
        }
    }

    let received = consume(&bootstrap, MESSAGES).await;
    assert_eq!(received.len(), MESSAGES);
    for i in 0..MESSAGES {
        let payload = received.get(&format!("key-{i}")).map(String::as_str);
        assert_eq!(payload, Some(format!("value-{i}").as_str()), "message {i}");
    }

    // A partition at the proxy holds the next message back; healing it delivers the message.
    proxy.set(NetworkCondition::Blackhole);
    let mut late = send(&producer, "late", "during a blackhole");
    let early = timeout(BLACKHOLE_QUIET, &mut late).await;
    assert!(
        early.is_err(),
        "acknowledged through a blackhole: {early:?}"
    );
    proxy.set(NetworkCondition::Healthy);
    let healed = timeout(WAIT, late)
        .await
        .expect("acknowledged after the blackhole");
    assert!(matches!(healed, Ok(Ok(_))), "{healed:?}");

    let stats = proxy.stats();
    assert!(stats.to_client_bytes > 0, "{stats:?}");
    assert_eq!(stats.upstream_connect_failures, 0, "{stats:?}");
    tansu.remove_log();
}
