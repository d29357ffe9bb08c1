//! Kafka client setup: producer and consumer configurations, topic creation, waiting for the broker.
//!
//! Every client is built from a [`KafkaConnection`]: bootstrap servers plus security settings.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::security::KafkaProtocol;
use super::{ClientError, KafkaConnection, retry};

/// What a producer is allowed: idempotence, how long one message may wait for delivery, and how
/// much it may hold that the broker has not acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSettings {
    /// Idempotent produce, when the broker supports it (the target says: Tansu 0.6 does not,
    /// real Kafka does).
    pub idempotent: bool,
    /// librdkafka's `message.timeout.ms`: a message not acknowledged by then fails its delivery.
    pub message_timeout: Duration,
    /// librdkafka's `queue.buffering.max.kbytes`: keys and payloads not yet acknowledged, at
    /// most; a send waits while they would exceed it (and the run shows it as lateness).
    pub buffer_kb: u32,
}

impl ProducerSettings {
    /// A minute per message: a broker restart or a partition of some seconds costs no event.
    pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(60);

    pub fn new(idempotent: bool) -> ProducerSettings {
        ProducerSettings {
            idempotent,
            message_timeout: ProducerSettings::MESSAGE_TIMEOUT,
            buffer_kb: crate::scenario::PRODUCER_BUFFER_MB_DEFAULT * 1024,
        }
    }

    /// The same settings, holding at most `mb` MB the broker has not acknowledged.
    pub fn with_buffer_mb(self, mb: u32) -> ProducerSettings {
        ProducerSettings {
            buffer_kb: mb.saturating_mul(1024),
            ..self
        }
    }
}

/// Producer settings: acks from all replicas, small linger, and `settings`.
pub fn producer_config(kafka: &KafkaConnection, settings: ProducerSettings) -> ClientConfig {
    let mut config = kafka.client_config();
    config
        .set("acks", "all")
        .set("enable.idempotence", settings.idempotent.to_string())
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", settings.buffer_kb.to_string())
        .set(
            "message.timeout.ms",
            settings.message_timeout.as_millis().to_string(),
        )
        .set("compression.type", "none");
    config
}

/// Consumer-group settings: manual commits, earliest offsets, the session timeout Tansu needs.
pub fn consumer_config(
    kafka: &KafkaConnection,
    group: &str,
    session_timeout_ms: u32,
) -> ClientConfig {
    let mut config = kafka.client_config();
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", "500")
        .set("fetch.wait.max.ms", "50")
        .set("enable.partition.eof", "false");
    config
}

/// Asks the broker about one consumer group (how a run sees that a consumer of the user's own
/// has joined: roadtest cannot read its mind, only its group).
pub struct GroupWatch {
    client: BaseConsumer,
    bootstrap: String,
    plaintext: bool,
    group: String,
}

impl std::fmt::Debug for GroupWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupWatch")
            .field("group", &self.group)
            .finish()
    }
}

impl GroupWatch {
    pub fn new(kafka: &KafkaConnection, group: &str) -> Result<GroupWatch, ClientError> {
        let client = kafka
            .client_config()
            .create()
            .map_err(|e| kafka_error(&kafka.bootstrap, "create a client", e))?;
        Ok(GroupWatch {
            client,
            bootstrap: kafka.bootstrap.clone(),
            plaintext: kafka.security.protocol == KafkaProtocol::Plaintext,
            group: group.to_string(),
        })
    }

    /// The group's state as the broker says it (`Stable` once its members have their
    /// partitions); `None` while the broker does not know the group or does not answer in
    /// `timeout`. On a plaintext connection the coordinator is asked directly; librdkafka's
    /// listing (ListGroups first) is the fallback, and the way in with TLS or SASL.
    pub fn state(&self, timeout: Duration) -> Option<String> {
        if self.plaintext
            && let Ok(state) =
                super::kafka_group::group_state(&self.bootstrap, &self.group, timeout)
        {
            return Some(state);
        }
        let list = self
            .client
            .fetch_group_list(Some(&self.group), timeout)
            .ok()?;
        let group = list.groups().iter().find(|g| g.name() == self.group)?;
        Some(group.state().to_string())
    }
}

/// Waits until the broker answers a metadata request.
pub async fn wait_for_broker(
    kafka: &KafkaConnection,
    deadline: Duration,
) -> Result<(), ClientError> {
    brokers(kafka, deadline).await.map(|_| ())
}

/// Waits until the broker answers a metadata request; returns every broker's (id, host, port).
pub async fn brokers(
    kafka: &KafkaConnection,
    deadline: Duration,
) -> Result<Vec<(i32, String, u16)>, ClientError> {
    let bootstrap = kafka.bootstrap.as_str();
    let consumer: BaseConsumer = kafka
        .client_config()
        .create()
        .map_err(|e| kafka_error(bootstrap, "create a client", e))?;
    retry(deadline, || async {
        consumer
            .fetch_metadata(None, Duration::from_millis(500))
            .map(|metadata| {
                metadata
                    .brokers()
                    .iter()
                    .map(|broker| {
                        let port = u16::try_from(broker.port()).unwrap_or_default();
                        (broker.id(), broker.host().to_string(), port)
                    })
                    .collect()
            })
    })
    .await
    .map_err(|(waited, last_error)| ClientError::Unreachable {
        service: "Kafka broker",
        address: bootstrap.to_string(),
        waited,
        last_error,
    })
}

/// Creates topics, `(name, partitions)` each with `replication_factor` replicas (Tansu does not
/// create topics on produce), in one request after waiting for the broker.
pub async fn create_topics(
    kafka: &KafkaConnection,
    topics: &[(&str, u32)],
    replication_factor: i32,
    deadline: Duration,
) -> Result<(), ClientError> {
    wait_for_broker(kafka, deadline).await?;
    let bootstrap = kafka.bootstrap.as_str();
    let admin: AdminClient<DefaultClientContext> = kafka
        .client_config()
        .create()
        .map_err(|e| kafka_error(bootstrap, "create an admin client", e))?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|&(name, partitions)| {
            NewTopic::new(
                name,
                partitions as i32,
                TopicReplication::Fixed(replication_factor),
            )
        })
        .collect();
    let names: Vec<&str> = topics.iter().map(|&(name, _)| name).collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(|e| kafka_error(bootstrap, &format!("create topics {}", names.join(", ")), e))?;
    for result in results {
        // A fixed topic (`fresh_names = false`) may be there from an earlier run.
        if let Err((name, code)) = result
            && code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists
        {
            return Err(ClientError::Kafka {
                address: bootstrap.to_string(),
                what: format!("create topic {name}"),
                source: code.into(),
            });
        }
    }
    Ok(())
}

/// Deletes a topic; failures are ignored (cleanup is best effort).
pub async fn delete_topic(kafka: &KafkaConnection, topic: &str) {
    let admin: Result<AdminClient<DefaultClientContext>, _> = kafka.client_config().create();
    if let Ok(admin) = admin {
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
        let _ = admin.delete_topics(&[topic], &options).await;
    }
}

pub(crate) fn kafka_error(
    bootstrap: &str,
    what: &str,
    error: rdkafka::error::KafkaError,
) -> ClientError {
    ClientError::Kafka {
        address: bootstrap.to_string(),
        what: what.to_string(),
        source: error.into(),
    }
}
