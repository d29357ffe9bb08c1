//! How to run the containers target: pinned images (overridable), memory caps per container, heap, deadlines.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use testcontainers::Image;
use testcontainers_modules::kafka::apache::Kafka;
use testcontainers_modules::scylladb::ScyllaDB;

use super::ContainersError;
use crate::scenario::Sink;
pub use crate::scenario::{CommitlogSync, ContainersSettings, RestartPolicy};
use crate::targets::Role;

/// The Cassandra image used unless overridden: a pinned release, never `latest`.
pub const CASSANDRA_IMAGE: &str = "cassandra";
pub const CASSANDRA_TAG: &str = "5.0.4";

/// The PostgreSQL image used unless overridden (`pipeline.sink = "postgres"`): Docker Hub's
/// official image, a pinned release of the major version the local target runs.
pub const POSTGRES_IMAGE: &str = "postgres";
pub const POSTGRES_TAG: &str = "15.14-bookworm";

/// roadtest's own images, built by `ci/images build` from the local target's artifacts (no
/// registry needed): Tansu in a Kafka image, Cassandra 2.1 with its node script. (Its PostgreSQL
/// image, `roadtest-local/postgres`, takes the official image's settings: no family of its own.)
pub const LOCAL_KAFKA_IMAGE: &str = "roadtest-local/kafka";
pub const LOCAL_CASSANDRA_IMAGE: &str = "roadtest-local/cassandra";
/// The file `ci/images build` writes: `ROADTEST_*_IMAGE=NAME:TAG` lines, read by
/// [`ContainersOptions::from_env`] for each variable the environment does not set.
pub const IMAGES_ENV_FILE: &str = "images.env";

/// How a Kafka image is run: each family has its own settings and ready line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaFamily {
    /// `apache/kafka-native` (GraalVM native image): the module's KRaft settings.
    ApacheNative,
    /// `apache/kafka` and other JVM images: the same, plus a heap within the memory cap.
    ApacheJvm,
    /// [`LOCAL_KAFKA_IMAGE`]: the Tansu binary alone, started with its own flags.
    Tansu,
}

impl KafkaFamily {
    pub fn of(image: &ImageRef) -> KafkaFamily {
        if image.name == LOCAL_KAFKA_IMAGE {
            KafkaFamily::Tansu
        } else if image.name.ends_with("-native") {
            KafkaFamily::ApacheNative
        } else {
            KafkaFamily::ApacheJvm
        }
    }
}

/// How a Cassandra image is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CassandraFamily {
    /// The Docker Hub `cassandra` image: its entrypoint, heap from the environment, CQL v4.
    Official,
    /// [`LOCAL_CASSANDRA_IMAGE`]: Cassandra 2.1 run by `cassandra-node`; it speaks CQL v3, so the
    /// CQL bridge runs on the host in front of it, as on the local target.
    Local,
}

impl CassandraFamily {
    pub fn of(image: &ImageRef) -> CassandraFamily {
        if image.name == LOCAL_CASSANDRA_IMAGE {
            CassandraFamily::Local
        } else {
            CassandraFamily::Official
        }
    }
}

/// Memory a Cassandra container needs beyond its heap (metaspace, direct buffers, thread stacks).
pub const CASSANDRA_OFF_HEAP_MB: u32 = 512;
/// Memory a ScyllaDB container keeps outside Scylla's own `--memory` (the supervisor, the OS).
pub const SCYLLA_RESERVE_MB: u32 = 256;
/// The smallest memory cap accepted for any container.
pub const CONTAINER_MEMORY_MB_MIN: u32 = 256;

/// An image name and its pinned tag (`apache/kafka-native` + `3.8.0`). A digest works too:
/// `cassandra@sha256:abc...` parses into name `cassandra@sha256` and tag `abc...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub name: String,
    pub tag: String,
}

impl ImageRef {
    pub fn new(name: impl Into<String>, tag: impl Into<String>) -> ImageRef {
        ImageRef {
            name: name.into(),
            tag: tag.into(),
        }
    }

    /// Rejects an empty name, an empty tag and `latest` (runs must be reproducible).
    pub fn check(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.contains(char::is_whitespace) {
            return Err(format!("`{self}`: the image name is empty or has spaces"));
        }
        if self.tag.is_empty() || self.tag.contains(['/', ' ']) {
            return Err(format!(
                "`{self}`: give a pinned tag, like `{}:1.2.3`",
                self.name
            ));
        }
        if self.tag == "latest" {
            return Err(format!(
                "`{self}`: `latest` changes under you; pin a release tag or a digest"
            ));
        }
        Ok(())
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

impl FromStr for ImageRef {
    type Err = String;

    /// `NAME:TAG` (a registry port in NAME is fine: `localhost:5000/cassandra:5.0.4`).
    fn from_str(text: &str) -> Result<ImageRef, String> {
        let image = match text.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => ImageRef::new(name, tag),
            _ => {
                return Err(format!(
                    "`{text}` has no tag; give NAME:TAG with a pinned tag, like cassandra:5.0.4"
                ));
            }
        };
        image.check()?;
        Ok(image)
    }
}

/// Which database runs in the database container: a CQL one (`ROADTEST_DATABASE`), or
/// PostgreSQL when the scenario says `pipeline.sink = "postgres"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Database {
    /// Apache Cassandra (a `GenericImage`: testcontainers-modules has no Cassandra module).
    #[default]
    Cassandra,
    /// ScyllaDB (image and readiness line from testcontainers-modules' `scylladb` module).
    Scylla,
    /// PostgreSQL (a `GenericImage`, run with the official image's settings).
    Postgres,
}

impl Database {
    pub fn name(self) -> &'static str {
        match self {
            Database::Cassandra => "cassandra",
            Database::Scylla => "scylla",
            Database::Postgres => "postgres",
        }
    }

    /// The service the container runs, as faults and reports name it: `cassandra` for either
    /// CQL database.
    pub fn role(self) -> Role {
        match self {
            Database::Cassandra | Database::Scylla => Role::Cassandra,
            Database::Postgres => Role::Postgres,
        }
    }
}

impl FromStr for Database {
    type Err = String;

    /// The CQL database of `ROADTEST_DATABASE`; PostgreSQL is the scenario's choice.
    fn from_str(text: &str) -> Result<Database, String> {
        match text {
            "cassandra" => Ok(Database::Cassandra),
            "scylla" | "scylladb" => Ok(Database::Scylla),
            "postgres" | "postgresql" => Err(format!(
                "`{text}`: PostgreSQL is chosen by the scenario (pipeline.sink = \"postgres\"), \
                 not here; allowed: cassandra, scylla"
            )),
            other => Err(format!(
                "`{other}` is not a database this target runs; allowed: cassandra, scylla"
            )),
        }
    }
}

/// How to run the containers target.
#[derive(Debug, Clone)]
pub struct ContainersOptions {
    /// The `roadtest` binary: the reference consumer runs on the host as `roadtest ingest`.
    pub roadtest_binary: PathBuf,
    /// The run directory (consumer and container logs); a fresh one under the temp dir by default.
    pub work_dir: Option<PathBuf>,
    /// Keep the run directory when the target is dropped.
    pub keep_work_dir: bool,
    /// The Kafka image (default: testcontainers-modules' `apache/kafka-native:3.8.0`). An image
    /// whose name does not end in `-native` is treated as a JVM image and gets `KAFKA_HEAP_OPTS`.
    pub kafka_image: ImageRef,
    pub database: Database,
    /// Default `cassandra:5.0.4`.
    pub cassandra_image: ImageRef,
    /// Default: testcontainers-modules' ScyllaDB image and tag.
    pub scylla_image: ImageRef,
    /// Default `postgres:15.14-bookworm`; any image that takes the official image's settings.
    pub postgres_image: ImageRef,
    /// PostgreSQL's `synchronous_commit` (`pipeline.postgres_synchronous_commit`).
    pub postgres_synchronous_commit: bool,
    /// Memory cap of the broker container, MB (no swap beyond it).
    pub broker_memory_mb: u32,
    /// Memory cap of the database container, MB (no swap beyond it). An uncapped Cassandra sizes
    /// its heap from the host's memory and can be killed by the kernel for lack of it.
    pub database_memory_mb: u32,
    /// Cassandra's heap (`MAX_HEAP_SIZE`; `HEAP_NEWSIZE` is a quarter of it), MB.
    pub cassandra_heap_mb: u32,
    /// Cassandra's commit-log durability (`batch` rewrites cassandra.yaml before start).
    pub commitlog_sync: CommitlogSync,
    /// Whether Docker starts the database container again when it exits on its own.
    pub database_restart: RestartPolicy,
    /// Bound on pulling one missing image.
    pub pull_timeout: Duration,
    /// Bound on one container's start: from `docker start` until its ready line is logged and
    /// its client probe answers (also used after a restart).
    pub ready_timeout: Duration,
    /// Root seed for the fault proxies' jitter.
    pub seed: u64,
}

impl ContainersOptions {
    /// Defaults for `roadtest_binary`: pinned images, 1 GB for the broker, 2 GB for the database
    /// (Cassandra heap 768 MB), periodic commit log.
    pub fn new(roadtest_binary: PathBuf) -> ContainersOptions {
        let kafka = Kafka::default();
        let scylla = ScyllaDB::default();
        ContainersOptions {
            roadtest_binary,
            work_dir: None,
            keep_work_dir: false,
            kafka_image: ImageRef::new(kafka.name(), kafka.tag()),
            database: Database::Cassandra,
            cassandra_image: ImageRef::new(CASSANDRA_IMAGE, CASSANDRA_TAG),
            scylla_image: ImageRef::new(scylla.name(), scylla.tag()),
            postgres_image: ImageRef::new(POSTGRES_IMAGE, POSTGRES_TAG),
            postgres_synchronous_commit: true,
            broker_memory_mb: ContainersSettings::BROKER_MEMORY_MB_DEFAULT,
            database_memory_mb: ContainersSettings::DATABASE_MEMORY_MB_DEFAULT,
            cassandra_heap_mb: ContainersSettings::CASSANDRA_HEAP_MB_DEFAULT,
            commitlog_sync: CommitlogSync::Periodic,
            database_restart: RestartPolicy::No,
            pull_timeout: Duration::from_secs(900),
            ready_timeout: Duration::from_secs(240),
            seed: 0,
        }
    }

    /// Defaults plus the environment: the roadtest binary as the local target finds it,
    /// `ROADTEST_KAFKA_IMAGE`, `ROADTEST_CASSANDRA_IMAGE`, `ROADTEST_SCYLLA_IMAGE`,
    /// `ROADTEST_POSTGRES_IMAGE` (each `NAME:TAG`) and `ROADTEST_DATABASE` (`cassandra` | `scylla`); a variable the environment
    /// does not set is taken from `$ROADTEST_HOME/images.env` when that file sets it.
    pub fn from_env() -> Result<ContainersOptions, ContainersError> {
        let binary = crate::targets::local::find_roadtest_binary();
        let mut options = ContainersOptions::new(binary);
        let path = crate::targets::local::roadtest_home().join(IMAGES_ENV_FILE);
        let file = std::fs::read_to_string(&path).unwrap_or_default();
        let from_file = parse_env_file(&file);
        options.apply_env(|key| {
            let set = std::env::var(key).ok().filter(|value| !value.is_empty());
            set.or_else(|| from_file.get(key).cloned())
        })?;
        Ok(options)
    }

    /// The scenario's database: PostgreSQL for `pipeline.sink = "postgres"`, else the CQL
    /// database already chosen (`ROADTEST_DATABASE`).
    pub fn apply_sink(&mut self, sink: Sink) {
        if sink == Sink::Postgres {
            self.database = Database::Postgres;
        }
    }

    /// The scenario's `[pipeline.containers]`: each cap and the heap it sets, and the
    /// database's restart policy.
    pub fn apply_scenario(&mut self, settings: &ContainersSettings) {
        let set = |value: Option<u32>, into: &mut u32| {
            if let Some(value) = value {
                *into = value;
            }
        };
        set(settings.broker_memory_mb, &mut self.broker_memory_mb);
        set(settings.database_memory_mb, &mut self.database_memory_mb);
        set(settings.cassandra_heap_mb, &mut self.cassandra_heap_mb);
        self.database_restart = settings.database_restart;
    }

    /// The Kafka image's family.
    pub fn kafka_family(&self) -> KafkaFamily {
        KafkaFamily::of(&self.kafka_image)
    }

    /// Whether the database speaks only CQL v3 and needs the CQL bridge on the host.
    pub fn database_needs_bridge(&self) -> bool {
        self.database == Database::Cassandra
            && CassandraFamily::of(&self.cassandra_image) == CassandraFamily::Local
    }

    /// Applies the `ROADTEST_*` overrides that `lookup` finds.
    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ContainersError> {
        let invalid =
            |key: &'static str| move |problem: String| ContainersError::Options { key, problem };
        for (key, image) in [
            ("ROADTEST_KAFKA_IMAGE", &mut self.kafka_image),
            ("ROADTEST_CASSANDRA_IMAGE", &mut self.cassandra_image),
            ("ROADTEST_SCYLLA_IMAGE", &mut self.scylla_image),
            ("ROADTEST_POSTGRES_IMAGE", &mut self.postgres_image),
        ] {
            if let Some(text) = lookup(key).filter(|text| !text.is_empty()) {
                *image = text.parse().map_err(invalid(key))?;
            }
        }
        if let Some(text) = lookup("ROADTEST_DATABASE").filter(|text| !text.is_empty()) {
            self.database = text.parse().map_err(invalid("ROADTEST_DATABASE"))?;
        }
        Ok(())
    }

    /// The image of the database container.
    pub fn database_image(&self) -> &ImageRef {
        match self.database {
            Database::Cassandra => &self.cassandra_image,
            Database::Scylla => &self.scylla_image,
            Database::Postgres => &self.postgres_image,
        }
    }

    /// A database container smaller than Cassandra's heap plus its off-heap needs can be killed
    /// by the kernel for lack of memory (what a memory-pressure scenario may want): said, not
    /// refused.
    pub fn memory_warning(&self) -> Option<String> {
        let needs = self.cassandra_heap_mb + CASSANDRA_OFF_HEAP_MB;
        (self.database == Database::Cassandra && needs > self.database_memory_mb).then(|| {
            format!(
                "the database container's {} MB cap is below its {} MB heap plus {CASSANDRA_OFF_HEAP_MB} MB \
                 off-heap: the kernel may kill it for lack of memory (exit 137, OOMKilled)",
                self.database_memory_mb, self.cassandra_heap_mb
            )
        })
    }

    /// Checks images, memory caps and heap; the error names the setting and the fix.
    pub fn validate(&self) -> Result<(), ContainersError> {
        let invalid =
            |key: &'static str, problem: String| ContainersError::Options { key, problem };
        for (key, image) in [
            ("kafka_image", &self.kafka_image),
            ("cassandra_image", &self.cassandra_image),
            ("scylla_image", &self.scylla_image),
            ("postgres_image", &self.postgres_image),
        ] {
            image.check().map_err(|problem| invalid(key, problem))?;
        }
        for (key, memory_mb) in [
            ("broker_memory_mb", self.broker_memory_mb),
            ("database_memory_mb", self.database_memory_mb),
        ] {
            if memory_mb < CONTAINER_MEMORY_MB_MIN {
                return Err(invalid(
                    key,
                    format!(
                        "{memory_mb} MB is too little; give at least {CONTAINER_MEMORY_MB_MIN}"
                    ),
                ));
            }
        }
        self.validate_database()
    }

    /// What the database of [`ContainersOptions::database`] needs of its cap and settings.
    fn validate_database(&self) -> Result<(), ContainersError> {
        let invalid =
            |key: &'static str, problem: String| ContainersError::Options { key, problem };
        match self.database {
            Database::Cassandra => {
                if self.cassandra_heap_mb < 256 {
                    return Err(invalid(
                        "cassandra_heap_mb",
                        format!(
                            "{} MB is too small; give at least 256",
                            self.cassandra_heap_mb
                        ),
                    ));
                }
                if self.cassandra_heap_mb >= self.database_memory_mb {
                    return Err(invalid(
                        "cassandra_heap_mb",
                        format!(
                            "a {} MB heap does not fit a {} MB container (database_memory_mb); \
                             give the heap and {CASSANDRA_OFF_HEAP_MB} MB off-heap, or lower the heap",
                            self.cassandra_heap_mb, self.database_memory_mb
                        ),
                    ));
                }
            }
            Database::Scylla => {
                if self.database_memory_mb < SCYLLA_RESERVE_MB + 512 {
                    return Err(invalid(
                        "database_memory_mb",
                        format!(
                            "ScyllaDB needs at least {} MB ({SCYLLA_RESERVE_MB} reserved + 512 for Scylla)",
                            SCYLLA_RESERVE_MB + 512
                        ),
                    ));
                }
                if self.commitlog_sync == CommitlogSync::Batch {
                    return Err(invalid(
                        "commitlog_sync",
                        "`batch` is implemented for Cassandra only on this target; use \
                         `periodic` with ScyllaDB, or Cassandra"
                            .to_string(),
                    ));
                }
            }
            // PostgreSQL sizes its buffers itself (64 MB shared buffers): any cap above the
            // minimum holds it.
            Database::Postgres => {}
        }
        Ok(())
    }
}

/// `NAME=VALUE` lines (blank lines and `#` comments skipped, one level of quotes removed).
pub fn parse_env_file(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| {
            let value = value.trim();
            let unquoted = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            (name.trim().to_string(), unquoted.to_string())
        })
        .collect()
}
