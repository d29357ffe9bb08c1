//! Tests of the GC log reader: lines as Java 17's unified logging writes them (SerialGC).

use super::*;

const YOUNG: &str = "[2026-12-01T17:57:52.643+0000][0.708s][info][gc          ] GC(0) Pause Young (Allocation Failure) 12M->3M(62M) 16.192ms";
const FULL: &str = "[2026-12-01T17:57:53.643+0000][0.897s][info][gc             ] GC(16) Pause Full (System.gc()) 27M->9M(62M) 9.819ms";
const START: &str = "[2026-12-01T17:57:52.627+0000][0.692s][info][gc,start    ] GC(0) Pause Young (Allocation Failure)";
const HEAP: &str = "[2026-12-01T17:57:51.960+0000][0.025s][info][gc,init] Heap Max Capacity: 256M";
const HEAP_PHASE: &str = "[2026-12-01T17:57:52.643+0000][0.708s][info][gc,heap     ] GC(0) DefNew: 12288K(14784K)->1600K(14784K) Eden: 12288K(13184K)->0K(13184K) From: 0K(1600K)->1600K(1600K)";

#[test]
fn a_summary_line_is_one_collection_and_nothing_else_is() {
    let young = parse_collection(YOUNG).expect("a young collection");
    assert_eq!(young.at_epoch_ms, 1_764_611_872_643 + 365 * 86_400_000);
    assert!(!young.full);
    assert_eq!(
        (young.before_mb, young.after_mb, young.capacity_mb),
        (12.0, 3.0, 62.0)
    );
    assert_eq!(young.pause_ms, 16.192);
    assert!(parse_collection(FULL).expect("a full one").full);
    for other in [
        START,
        HEAP,
        HEAP_PHASE,
        "",
        "GC(1) Pause Young 1M->0M(2M) 1ms",
    ] {
        assert_eq!(parse_collection(other), None, "{other}");
    }
    assert_eq!(parse_heap_max(HEAP), Some(256.0));
    assert_eq!(megabytes("512K"), Some(0.5));
    assert_eq!(megabytes("2G"), Some(2_048.0));
    assert_eq!(megabytes("2X"), None);
}

#[test]
fn the_follower_reads_only_complete_lines_across_restarts() {
    let dir = std::env::temp_dir().join(format!("roadtest-gc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a folder");
    let mut follower = GcFollower::new(&dir);
    assert!(follower.poll().is_empty());
    assert_eq!(follower.section(0, 1), None, "no log: no section");
    let first = dir.join("gc-100.log");
    // The second line is still being written: only the first counts for now.
    std::fs::write(&first, format!("{HEAP}\n{YOUNG}\n{}", &FULL[..40])).expect("write");
    assert_eq!(follower.poll().len(), 1);
    std::fs::write(&first, format!("{HEAP}\n{YOUNG}\n{FULL}\n")).expect("write");
    assert_eq!(follower.poll().len(), 1, "the rest of the line, once");
    // A restarted JVM writes a file of its own.
    std::fs::write(dir.join("gc-200.log"), format!("{YOUNG}\n")).expect("write");
    std::fs::write(dir.join("system.log"), format!("{YOUNG}\n")).expect("write");
    assert_eq!(follower.poll().len(), 1);
    assert!(follower.poll().is_empty());
    assert_eq!(follower.heap_max_mb(), Some(256.0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_section_covers_the_run_window_only() {
    let young = parse_collection(YOUNG).expect("young");
    let full = parse_collection(FULL).expect("full");
    let follower = GcFollower {
        dir: PathBuf::new(),
        offsets: BTreeMap::from([(PathBuf::from("gc-1.log"), 1)]),
        heap_max_mb: Some(256.0),
        collections: vec![young, full],
    };
    // A 10 s window starting 1 s before the young collection; the full one is 1 s later.
    let start = young.at_epoch_ms - 1_000;
    let section = follower.section(start, start + 10_000).expect("a section");
    assert_eq!((section.collections, section.full_collections), (2, 1));
    assert_eq!(section.pause_ms.max, 16.192);
    assert_eq!(section.pause_ms.p50, 9.819);
    assert!((section.gc_time_percent - (16.192 + 9.819) / 10_000.0 * 100.0).abs() < 1e-9);
    assert_eq!(section.heap_max_mb, 256.0);
    assert_eq!(
        section.heap_used_mb[0],
        HeapPoint {
            at_s: 1.0,
            before: 12.0,
            after: 3.0
        }
    );
    let later = follower
        .section(full.at_epoch_ms + 1, full.at_epoch_ms + 2)
        .expect("empty");
    assert_eq!(
        (later.collections, later.pause_ms.max, later.gc_time_percent),
        (0, 0.0, 0.0)
    );
}
