"""A telemetry consumer of the kind roadtest puts under test: Kafka in, Cassandra or PostgreSQL out.

It is written the way many such services are: confluent-kafka and the DataStax
cassandra-driver (or psycopg 3), rows buffered and written in batches. Its messages have field
names of their own (vin, sequence, recorded_at as RFC 3339, lat, lon, speed_kmh, temperature_c,
humidity_pct), and it creates its own table at start (vehicle_readings: an int sequence, a float
humidity; in PostgreSQL also written_at, the time each row was written); the scenarios beside it
tell roadtest so in [pipeline.record] and [pipeline.table]. It has two commit modes:

  --commit after-write  offsets are committed once the batch is in Cassandra (at-least-once)
  --commit auto         the library's auto-commit (its default): offsets of polled messages are
                        committed every half second, written or not, so a crash between a commit
                        and the write loses the buffered rows

Everything it needs comes from roadtest's environment contract (README, "Your own consumer"):
ROADTEST_KAFKA_BOOTSTRAP, ROADTEST_TOPIC, ROADTEST_GROUP, ROADTEST_SINK, ROADTEST_CQL_CONTACT (or
ROADTEST_POSTGRES_URL, with ROADTEST_POSTGRES_PASSWORD when the server wants one),
ROADTEST_KEYSPACE (PostgreSQL: the schema), ROADTEST_TABLE and ROADTEST_SESSION_TIMEOUT_MS. SIGTERM
flushes, commits and
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


def create_cassandra_schema(session, keyspace, table):
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


class Batch:
    """Buffers decoded records until they are due to be written."""

    def __init__(self):
        self.rows = []
        self.oldest = None

    def add(self, message):
        if self.oldest is None:
            self.oldest = time.monotonic()
        self.rows.append((
            message["vin"], message["recorded_at"], message["sequence"], message["lat"],
            message["lon"], message["speed_kmh"], message["temperature_c"],
            message["humidity_pct"],
        ))

    def due(self):
        return len(self.rows) >= BATCH_ROWS or (
            self.oldest is not None and time.monotonic() - self.oldest >= BATCH_AGE_S
        )

    def flush(self):
        """Writes every buffered row (retrying until it is written); returns how many."""
        if self.rows:
            self.write(self.rows)
        written = len(self.rows)
        self.rows = []
        self.oldest = None
        return written


class CassandraWriter(Batch):
    """Writes a batch as one round of concurrent inserts."""

    def __init__(self, contact, keyspace, table):
        super().__init__()
        self.cluster, self.session = connect_cassandra(contact)
        create_cassandra_schema(self.session, keyspace, table)
        self.insert = self.session.prepare(
            f"INSERT INTO {keyspace}.{table} (vin, recorded_at, sequence, lat, lon, speed_kmh, "
            "temperature_c, humidity_pct) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )

    def write(self, rows):
        rows = [(row[0], epoch_ms(row[1])) + row[2:] for row in rows]
        pending = [self.session.execute_async(self.insert, row) for row in rows]
        for row, future in zip(rows, pending):
            while True:
                try:
                    future.result()
                    break
                except Exception as error:  # the driver raises many kinds; all are retried
                    LOG.warning("write of %s failed (%s); retrying", row[0], error)
                    time.sleep(0.5)
                    future = self.session.execute_async(self.insert, row)

    def close(self):
        self.cluster.shutdown()


class PostgresWriter(Batch):
    """Writes a batch as one transaction of upserts, stamping each row's written_at."""

    def __init__(self, url, schema, table):
        super().__init__()
        self.url = url
        self.connection = self.connect()
        with self.connection.transaction():
            self.connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            self.connection.execute(
                f"CREATE TABLE IF NOT EXISTS {schema}.{table} (vin text NOT NULL, "
                "recorded_at timestamptz NOT NULL, sequence integer, lat double precision, "
                "lon double precision, speed_kmh double precision, temperature_c double "
                "precision, humidity_pct real, written_at timestamptz, "
                "PRIMARY KEY (vin, recorded_at))"
            )
        values = ("sequence", "lat", "lon", "speed_kmh", "temperature_c", "humidity_pct")
        self.upsert = (
            f"INSERT INTO {schema}.{table} (vin, recorded_at, {', '.join(values)}, written_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, clock_timestamp()) "
            "ON CONFLICT (vin, recorded_at) DO UPDATE SET "
            + ", ".join(f"{v} = EXCLUDED.{v}" for v in values + ("written_at",))
        )

    def connect(self):
        """Retries until the database answers: the consumer must not crash-loop while it starts."""
        import psycopg  # only this sink needs it

        password = os.environ.get("ROADTEST_POSTGRES_PASSWORD")
        extra = {"password": password} if password else {}
        deadline = time.monotonic() + CONNECT_DEADLINE_S
        while True:
            try:
                return psycopg.connect(self.url, connect_timeout=5, **extra)
            except psycopg.OperationalError as error:
                if time.monotonic() > deadline:
                    raise
                LOG.warning("postgresql not ready (%s); retrying", error)
                time.sleep(1)

    def write(self, rows):
        rows = [(row[0], datetime.datetime.fromisoformat(row[1])) + row[2:] for row in rows]
        while True:
            try:
                with self.connection.transaction():
                    with self.connection.cursor() as cursor:
                        cursor.executemany(self.upsert, rows)
                return
            except Exception as error:  # a lost connection, a restart: reconnect and retry
                LOG.warning("write of %d rows failed (%s); retrying", len(rows), error)
                time.sleep(0.5)
                if self.connection.closed or self.connection.broken:
                    self.connection = self.connect()

    def close(self):
        self.connection.close()


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
    keyspace, table = environment("ROADTEST_KEYSPACE"), environment("ROADTEST_TABLE")
    if os.environ.get("ROADTEST_SINK", "cassandra") == "postgres":
        writer = PostgresWriter(environment("ROADTEST_POSTGRES_URL"), keyspace, table)
    else:
        writer = CassandraWriter(environment("ROADTEST_CQL_CONTACT"), keyspace, table)
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
    writer.close()
    LOG.info("stopped cleanly after writing %d rows", written)


def commit(consumer):
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as error:
        # Nothing consumed since the last commit is not a problem.
        LOG.debug("commit: %s", error)


if __name__ == "__main__":
    main()
