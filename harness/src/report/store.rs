//! Writing and reading `report.json`: pretty JSON, written atomically, errors naming the file.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Report, SCHEMA_VERSION};

/// The file name of a report inside its run directory.
pub const REPORT_FILE_NAME: &str = "report.json";

/// A report that could not be written or read; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The report could not be turned into JSON (a map key that is not a string, for example).
    #[error("{file}: cannot serialize the report: {source}")]
    Serialize {
        file: PathBuf,
        source: serde_json::Error,
    },
    /// The directory or file could not be created, written or renamed into place.
    #[error("{file}: cannot write the report: {source}")]
    Write {
        file: PathBuf,
        source: std::io::Error,
    },
    /// The file could not be read.
    #[error("{file}: cannot read the report: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// The file is not JSON, or a key is missing or has the wrong type.
    #[error("{file}: {key}: {message}")]
    Parse {
        file: PathBuf,
        key: String,
        message: String,
    },
    /// The report has a layout this roadtest does not read.
    #[error(
        "{file}: schema_version {found} is not supported (this roadtest reads {supported}); \
         use the roadtest version that wrote it"
    )]
    SchemaVersion {
        file: PathBuf,
        found: String,
        supported: u32,
    },
}

impl Report {
    /// Writes `dir/report.json` (pretty-printed), creating `dir` if needed, and returns its path.
    ///
    /// The JSON goes to a temporary file in `dir` first, is flushed to disk and then renamed over
    /// `report.json`, so a reader never sees half a report.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, ReportError> {
        let file = dir.join(REPORT_FILE_NAME);
        let mut json =
            serde_json::to_vec_pretty(self).map_err(|source| ReportError::Serialize {
                file: file.clone(),
                source,
            })?;
        json.push(b'\n');
        std::fs::create_dir_all(dir).map_err(|source| ReportError::Write {
            file: dir.to_path_buf(),
            source,
        })?;
        let temporary = dir.join(format!(".{REPORT_FILE_NAME}.{}.tmp", std::process::id()));
        let written = write_synced(&temporary, &json)
            .and_then(|()| std::fs::rename(&temporary, &file))
            .map_err(|source| ReportError::Write {
                file: file.clone(),
                source,
            });
        if written.is_err() {
            // Best effort: the error about the real file is what matters.
            let _ = std::fs::remove_file(&temporary);
        }
        written.map(|()| file)
    }

    /// Reads a report from a `report.json` file, or from the run directory holding one.
    pub fn read(path: &Path) -> Result<Report, ReportError> {
        let (file, text) = read_text(path)?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|error| ReportError::Parse {
                file: file.clone(),
                key: "(syntax)".to_string(),
                message: error.to_string(),
            })?;
        match value.get("schema_version") {
            Some(version) if version.as_u64() == Some(u64::from(SCHEMA_VERSION)) => {}
            found => {
                return Err(ReportError::SchemaVersion {
                    file,
                    found: found.map_or_else(|| "(missing)".to_string(), ToString::to_string),
                    supported: SCHEMA_VERSION,
                });
            }
        }
        serde_path_to_error::deserialize(value).map_err(|error| ReportError::Parse {
            file,
            key: match error.path().to_string() {
                path if path == "." => "(top level)".to_string(),
                path => path,
            },
            message: error.inner().to_string(),
        })
    }
}

fn write_synced(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::fs::File::create(file)?;
    out.write_all(bytes)?;
    out.sync_all()
}

/// The text of a `report.json` file, or of the one in a run directory, and the file's path.
pub(super) fn read_text(path: &Path) -> Result<(PathBuf, String), ReportError> {
    let file = if path.is_dir() {
        path.join(REPORT_FILE_NAME)
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|source| ReportError::Read {
        file: file.clone(),
        source,
    })?;
    Ok((file, text))
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample_report;
    use super::*;

    /// A fresh, empty directory under the system temp dir, removed when dropped.
    struct TemporaryDir(PathBuf);

    impl TemporaryDir {
        fn new(name: &str) -> TemporaryDir {
            let dir = std::env::temp_dir().join(format!(
                "roadtest-report-{name}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            TemporaryDir(dir)
        }
    }

    impl Drop for TemporaryDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn write_then_read_from_file_or_directory() {
        let dir = TemporaryDir::new("round-trip");
        let run_dir = dir.0.join("runs").join("unit-42");
        let report = sample_report();
        let file = report.write(&run_dir).unwrap();
        assert_eq!(file, run_dir.join("report.json"));
        assert_eq!(Report::read(&file).unwrap(), report);
        assert_eq!(Report::read(&run_dir).unwrap(), report);
        let leftovers: Vec<_> = std::fs::read_dir(&run_dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["report.json"], "no temporary file left");
        // Writing again replaces the report.
        let mut changed = report.clone();
        changed.seed = 7;
        changed.write(&run_dir).unwrap();
        assert_eq!(Report::read(&run_dir).unwrap().seed, 7);
    }

    #[test]
    fn read_errors_name_the_file_and_key() {
        let dir = TemporaryDir::new("errors");
        std::fs::create_dir_all(&dir.0).unwrap();

        let missing = Report::read(&dir.0).unwrap_err().to_string();
        assert!(missing.contains("report.json"), "{missing}");

        let file = dir.0.join("report.json");
        std::fs::write(&file, "{ not json").unwrap();
        let syntax = Report::read(&file).unwrap_err().to_string();
        assert!(
            syntax.contains("report.json") && syntax.contains("(syntax)"),
            "{syntax}"
        );

        let mut value = serde_json::to_value(sample_report()).unwrap();
        value["verify"]["lost"] = serde_json::json!("many");
        std::fs::write(&file, value.to_string()).unwrap();
        let wrong_type = Report::read(&file).unwrap_err().to_string();
        assert!(wrong_type.contains("verify.lost"), "{wrong_type}");

        value["schema_version"] = serde_json::json!(2);
        std::fs::write(&file, value.to_string()).unwrap();
        let version = Report::read(&file).unwrap_err();
        assert!(
            matches!(version, ReportError::SchemaVersion { ref found, .. } if found == "2"),
            "{version}"
        );
    }

    #[test]
    fn write_error_names_the_file() {
        let dir = TemporaryDir::new("blocked");
        std::fs::create_dir_all(&dir.0).unwrap();
        // A plain file where the run directory should be.
        let blocked = dir.0.join("not-a-dir");
        std::fs::write(&blocked, "x").unwrap();
        let error = sample_report().write(&blocked).unwrap_err().to_string();
        assert!(error.contains("not-a-dir"), "{error}");
    }
}
