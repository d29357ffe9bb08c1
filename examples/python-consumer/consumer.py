"""A telemetry consumer of the kind roadtest puts under test: Kafka in, Cassandra out.

It is written the way many such services are: confluent-kafka and the DataStax
cassandra-driver, rows buffered and written in batches. Its messages have field names of their own
(vin, sequence, recorded_at as RFC 3339, lat, lon, speed_kmh, temperature_c, humidity_pct), and it
creates its own table at start (vehicle_readings: an int sequence, a float humidity); the scenarios
beside it tell roadtest so in [pipeline.record] and [pipeline.table]. It has two commit modes:

  --commit after-write  offsets are committed once the batch is in Cassandra (at-least-once)
  --commit auto         the library's auto-commit (its default): offsets of polled messages are
                        committed every half second, written or not, so a crash between a commit
                        and the write loses the buffered rows

Everything it needs comes from roadtest's environment contract (README, "Your own consumer"):
ROADTEST_KAFKA_BOOTSTRAP, ROADTEST_TOPIC, ROADTEST_GROUP, ROADTEST_CQL_CONTACT,
ROADTEST_KEYSPACE, ROADTEST_TABLE and ROADTEST_SESSION_TIMEOUT_MS. SIGTERM flushes, commits and
exits 0. LOG_LEVEL (default INFO) sets how much it logs; COMMIT (after-write or auto) is the
default of --commit, for its image (Dockerfile), whose arguments a scenario does not set.
"""

import argparse
import calendar
import datetime
import json
import logging
import os
import signal
import sys
import time

from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
from cassandra.policies import WhiteListRoundRobinPolicy
from confluent_kafka import Consumer, KafkaException

LOG = logging.getLogger("python-consumer")

# A batch is written when it holds this many rows or is this old, whichever comes first.
BATCH_ROWS = 2000
BATCH_AGE_S = 1.0
# How long the database may take to come up before the consumer gives up (no crash loop).
CONNECT_DEADLINE_S = 120.0


def environment(name):
    value = os.environ.get(name)
    if not value:
        sys.exit(f"python-consumer: {name} is not set (roadtest sets it for a managed consumer)")
    return value


def connect_cassandra(contact):
    """Retries until the database answers: the consumer must not crash-loop while it starts."""
    host, _, port = contact.rpartition(":")
    deadline = time.monotonic() + CONNECT_DEADLINE_S
    while True:
        # Only the contact point roadtest gave: faults are injected on that path.
        profile = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([host]))
        cluster = Cluster(
            [host],
            port=int(port),
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            connect_timeout=5,
            protocol_version=4,
            # The table is given; reading every keyspace's schema would only slow the start.
            schema_metadata_enabled=False,
        )
        try:
            return cluster, cluster.connect()
        except NoHostAvailable as error:
            cluster.shutdown()
            if time.monotonic() > deadline:
                raise
            LOG.warning("cassandra at %s not ready (%s); retrying", contact, error)
            time.sleep(1)


def epoch_ms(text):
    """Milliseconds since the epoch of an RFC 3339 timestamp like 2026-01-01T00:00:00.123Z."""
    moment = datetime.datetime.fromisoformat(text)
    return calendar.timegm(moment.utctimetuple()) * 1000 + moment.microsecond // 1000


def create_schema(session, keyspace, table):
    """The pipeline's own init step: keyspace and table, if they are not there yet."""
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    session.execute(
        f"CREATE TABLE IF NOT EXISTS {keyspace}.{table} (vin text, recorded_at timestamp, "
        "sequence int, lat double, lon double, speed_kmh double, temperature_c double, "
        "humidity_pct float, PRIMARY KEY ((vin), recorded_at)) "
        "WITH CLUSTERING ORDER BY (recorded_at DESC)"
    )


class Writer:
    """Buffers decoded records and writes them as one round of concurrent inserts."""

    def __init__(self, session, keyspace, table):
        self.session = session
        self.insert = session.prepare(
            f"INSERT INTO {keyspace}.{table} (vin, recorded_at, sequence, lat, lon, speed_kmh, "
            "temperature_c, humidity_pct) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self.rows = []
        self.oldest = None

    def add(self, message):
        if self.oldest is None:
            self.oldest = time.monotonic()
        self.rows.append((
            message["vin"], epoch_ms(message["recorded_at"]), message["sequence"], message["lat"],
            message["lon"], message["speed_kmh"], message["temperature_c"],
            message["humidity_pct"],
        ))

    def due(self):
        return len(self.rows) >= BATCH_ROWS or (
            self.oldest is not None and time.monotonic() - self.oldest >= BATCH_AGE_S
        )

    def flush(self):
        """Writes every buffered row; retries a failed one until it is written."""
        pending = [self.session.execute_async(self.insert, row) for row in self.rows]
        for row, future in zip(self.rows, pending):
            while True:
                try:
                    future.result()
                    break
                except Exception as error:  # the driver raises many kinds; all are retried
                    LOG.warning("write of %s failed (%s); retrying", row[0], error)
                    time.sleep(0.5)
                    future = self.session.execute_async(self.insert, row)
        written = len(self.rows)
        self.rows = []
        self.oldest = None
        return written


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--commit",
        choices=["after-write", "auto"],
        default=os.environ.get("COMMIT", "after-write"),
        help="when offsets are committed (default: $COMMIT, else after-write)",
    )
    parser.add_argument("--verbose", action="store_true", help="log at DEBUG (else $LOG_LEVEL)")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    auto = args.commit == "auto"
    consumer = Consumer({
        "bootstrap.servers": environment("ROADTEST_KAFKA_BOOTSTRAP"),
        "group.id": environment("ROADTEST_GROUP"),
        "auto.offset.reset": "earliest",
        "enable.auto.commit": auto,
        "auto.commit.interval.ms": 500,
        # roadtest's scenario sets the session timeout; a short one makes the first join quick.
        "session.timeout.ms": int(os.environ.get("ROADTEST_SESSION_TIMEOUT_MS", "10000")),
        "heartbeat.interval.ms": 500,
        # A topic created after the consumer subscribed is found within two seconds.
        "topic.metadata.refresh.interval.ms": 2000,
    })
    cluster, session = connect_cassandra(environment("ROADTEST_CQL_CONTACT"))
    keyspace, table = environment("ROADTEST_KEYSPACE"), environment("ROADTEST_TABLE")
    create_schema(session, keyspace, table)
    writer = Writer(session, keyspace, table)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    consumer.subscribe([environment("ROADTEST_TOPIC")])
    LOG.info("consuming %s with commit mode %s", environment("ROADTEST_TOPIC"), args.commit)
    written = 0
    while not stopping:
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            writer.add(json.loads(message.value()))
        elif message is not None:
            LOG.warning("kafka: %s", message.error())
        if writer.due():
            written += writer.flush()
            if not auto:
                commit(consumer)
    written += writer.flush()
    commit(consumer)
    consumer.close()
    cluster.shutdown()
    LOG.info("stopped cleanly after writing %d rows", written)


def commit(consumer):
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as error:
        # Nothing consumed since the last commit is not a problem.
        LOG.debug("commit: %s", error)


if __name__ == "__main__":
    main()
