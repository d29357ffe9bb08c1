//! Cassandra's memory without JMX: the JVM's own garbage-collection log (unified logging,
//! `-Xlog:gc*:file=DIR/gc-%p-%t.log:time,uptime,level,tags`, one file per JVM start), read while
//! it grows. Each collection's summary line gives the pause and the heap
//! before and after it:
//!
//! ```text
//! [2026-12-01T17:57:52.643+0000][0.708s][info][gc          ] GC(0) Pause Young (Allocation Failure) 12M->3M(62M) 16.192ms
//! ```
//!
//! and `gc,init`'s `Heap Max Capacity: 256M` gives the limit. The report's
//! `memory.gc.cassandra` section ([`GcSection`]) and the live metrics come from these.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One collection, from its summary line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Collection {
    /// Wall-clock time the line was logged (the end of the pause), ms since the Unix epoch.
    pub at_epoch_ms: i64,
    /// A full collection (`Pause Full`) rather than a young one.
    pub full: bool,
    /// Heap used before and after, and the heap's capacity then, MB.
    pub before_mb: f64,
    pub after_mb: f64,
    pub capacity_mb: f64,
    pub pause_ms: f64,
}

/// `memory.gc.<service>` of the report: what the JVM's GC log says about the run's window.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GcSection {
    /// Collections during the run, and how many of them were full ones.
    pub collections: u64,
    pub full_collections: u64,
    /// Pause times of those collections, ms.
    pub pause_ms: PauseSummary,
    /// Time spent paused, % of the run's wall-clock time.
    pub gc_time_percent: f64,
    /// The heap's limit (`-Xmx`), MB.
    pub heap_max_mb: f64,
    /// The heap used before and after each collection, seconds since the run start.
    pub heap_used_mb: Vec<HeapPoint>,
}

/// p50, p99 and max of the pauses, ms (nearest rank; all 0 without a collection).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct PauseSummary {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// The heap around one collection.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct HeapPoint {
    pub at_s: f64,
    pub before: f64,
    pub after: f64,
}

/// Megabytes of a JVM size like `12M`, `512K` or `2G`.
fn megabytes(text: &str) -> Option<f64> {
    let (number, unit) = text.split_at(text.len().checked_sub(1)?);
    let value: f64 = number.parse().ok()?;
    match unit {
        "K" => Some(value / 1_024.0),
        "M" => Some(value),
        "G" => Some(value * 1_024.0),
        "B" => Some(value / 1_048_576.0),
        _ => None,
    }
}

/// The wall-clock time of a line (its first decoration), ms since the epoch.
fn line_time(line: &str) -> Option<i64> {
    let stamp = line.strip_prefix('[')?.split(']').next()?;
    crate::time::parse_rfc3339_ms(stamp)
}

/// A collection's summary line (tag `gc` alone: `... GC(7) Pause Young (...) 24M->12M(62M) 2.359ms`).
pub fn parse_collection(line: &str) -> Option<Collection> {
    let (_, message) = line.split_once("][gc ")?;
    let message = message.trim_start().strip_prefix(']')?.trim();
    let rest = message.strip_prefix("GC(")?.split_once(") Pause ")?.1;
    let full = rest.starts_with("Full");
    let mut words = rest.rsplit(' ');
    let pause_ms: f64 = words.next()?.strip_suffix("ms")?.parse().ok()?;
    let (before, after_capacity) = words.next()?.split_once("->")?;
    let (after, capacity) = after_capacity.strip_suffix(')')?.split_once('(')?;
    Some(Collection {
        at_epoch_ms: line_time(line)?,
        full,
        before_mb: megabytes(before)?,
        after_mb: megabytes(after)?,
        capacity_mb: megabytes(capacity)?,
        pause_ms,
    })
}

/// The heap limit from `gc,init`'s `Heap Max Capacity: 256M`.
pub fn parse_heap_max(line: &str) -> Option<f64> {
    megabytes(line.split_once("Heap Max Capacity: ")?.1.trim())
}

/// Reads the GC logs (`gc-*.log`) of one folder as they grow: every poll parses the complete
/// lines written since the last one.
#[derive(Debug, Clone)]
pub struct GcFollower {
    dir: PathBuf,
    /// Bytes of each file already parsed (up to its last complete line).
    offsets: BTreeMap<PathBuf, u64>,
    heap_max_mb: Option<f64>,
    collections: Vec<Collection>,
}

impl GcFollower {
    /// Follows `dir` (which may not exist yet).
    pub fn new(dir: impl Into<PathBuf>) -> GcFollower {
        GcFollower {
            dir: dir.into(),
            offsets: BTreeMap::new(),
            heap_max_mb: None,
            collections: Vec::new(),
        }
    }

    /// Parses what was written since the last poll; returns the new collections, in order.
    pub fn poll(&mut self) -> &[Collection] {
        let already = self.collections.len();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|path| is_gc_log(path));
        files.sort();
        for path in files {
            let offset = self.offsets.get(&path).copied().unwrap_or(0);
            let Some((text, consumed)) = read_complete_lines(&path, offset) else {
                continue;
            };
            self.offsets.insert(path, offset + consumed);
            for line in text.lines() {
                if let Some(collection) = parse_collection(line) {
                    self.collections.push(collection);
                } else if let Some(max_mb) = parse_heap_max(line) {
                    self.heap_max_mb = Some(max_mb);
                }
            }
        }
        // Two files (a restart) interleave nothing, but keep the whole list in time order.
        self.collections[already..].sort_by_key(|c| c.at_epoch_ms);
        &self.collections[already..]
    }

    /// The heap limit, once a log has said it.
    pub fn heap_max_mb(&self) -> Option<f64> {
        self.heap_max_mb
    }

    /// The section of the report for the collections in `[start, end]` (epoch ms); `None`
    /// when no GC log was found at all.
    pub fn section(&self, start_epoch_ms: i64, end_epoch_ms: i64) -> Option<GcSection> {
        if self.offsets.is_empty() {
            return None;
        }
        let during: Vec<&Collection> = (self.collections.iter())
            .filter(|c| (start_epoch_ms..=end_epoch_ms).contains(&c.at_epoch_ms))
            .collect();
        let mut pauses: Vec<f64> = during.iter().map(|c| c.pause_ms).collect();
        pauses.sort_by(f64::total_cmp);
        let window_ms = (end_epoch_ms - start_epoch_ms).max(1) as f64;
        let heap_max_mb = self
            .heap_max_mb
            .unwrap_or_else(|| during.iter().map(|c| c.capacity_mb).fold(0.0, f64::max));
        Some(GcSection {
            collections: during.len() as u64,
            full_collections: during.iter().filter(|c| c.full).count() as u64,
            pause_ms: PauseSummary {
                p50: nearest_rank(&pauses, 0.50),
                p99: nearest_rank(&pauses, 0.99),
                max: pauses.last().copied().unwrap_or(0.0),
            },
            // A fold from +0.0: the sum of no floats is -0.0, which would print as "-0.00%".
            gc_time_percent: pauses.iter().fold(0.0, |sum, pause| sum + pause) / window_ms * 100.0,
            heap_max_mb,
            heap_used_mb: (during.iter())
                .map(|c| HeapPoint {
                    at_s: (c.at_epoch_ms - start_epoch_ms) as f64 / 1_000.0,
                    before: c.before_mb,
                    after: c.after_mb,
                })
                .collect(),
        })
    }
}

fn is_gc_log(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("");
    name.starts_with("gc-") && name.ends_with(".log")
}

/// The text from `offset` up to the file's last newline, and its length in bytes.
fn read_complete_lines(path: &Path, offset: u64) -> Option<(String, u64)> {
    let mut file = std::fs::File::open(path).ok()?;
    // A file shorter than what was read of it was written anew: nothing new can be told apart.
    if file.metadata().ok()?.len() < offset {
        return None;
    }
    file.seek(SeekFrom::Start(offset)).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    let complete = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |at| at + 1);
    bytes.truncate(complete);
    Some((
        String::from_utf8_lossy(&bytes).into_owned(),
        complete as u64,
    ))
}

/// The nearest-rank quantile of sorted values (0 when empty).
fn nearest_rank(sorted: &[f64], quantile: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
#[path = "gc_tests.rs"]
mod tests;
