//! Ports for services roadtest starts itself, picked where the OS does not pick its own.
//!
//! A port found free by binding port 0 comes from the OS's ephemeral range, the same range every
//! outgoing connection and every other `bind(0)` draws from: between the check and the service's
//! own bind, a client connection or a proxy can take it (CI saw Tansu fail with "Address in use"
//! that way). So ports are drawn from below (or above) that range, checked by binding, and never
//! handed out twice by one process.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::ops::RangeInclusive;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Linux's default ephemeral range, used when /proc does not say.
const DEFAULT_EPHEMERAL: RangeInclusive<u16> = 32768..=60999;
/// The lowest port handed out: above the fixed ports of `roadtest services` (19042..19142).
const LOWEST: u16 = 20000;
/// How many candidates are tried before falling back to the OS's choice.
const TRIES: usize = 500;

/// Ports this process has handed out already.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A port of 127.0.0.1 that is free now, outside the OS's ephemeral range, and not handed out by
/// this process before. Nothing holds it afterwards: the caller's service binds it.
pub fn free_port() -> std::io::Result<u16> {
    let pool = candidate_pool(&ephemeral_range());
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !pool.is_empty() {
        let mut index = start_index(pool.len());
        for _ in 0..TRIES.min(pool.len()) {
            let port = pool[index];
            index = (index + STRIDE) % pool.len();
            if !handed_out.contains(&port) && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
            {
                handed_out.insert(port);
                return Ok(port);
            }
        }
    }
    // Everything outside the range is taken: let the OS pick (the old, racy way).
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port();
    handed_out.insert(port);
    Ok(port)
}

/// A prime step through the pool, so consecutive calls spread out.
const STRIDE: usize = 7919;

/// The OS's ephemeral port range (`/proc/sys/net/ipv4/ip_local_port_range`).
fn ephemeral_range() -> RangeInclusive<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| parse_range(&text))
        .unwrap_or(DEFAULT_EPHEMERAL)
}

/// "32768\t60999\n" -> 32768..=60999.
fn parse_range(text: &str) -> Option<RangeInclusive<u16>> {
    let mut numbers = text.split_whitespace().map(str::parse::<u16>);
    let low = numbers.next()?.ok()?;
    let high = numbers.next()?.ok()?;
    (low <= high).then_some(low..=high)
}

/// Every port from [`LOWEST`] up that lies outside `ephemeral`.
fn candidate_pool(ephemeral: &RangeInclusive<u16>) -> Vec<u16> {
    (LOWEST..=u16::MAX)
        .filter(|port| !ephemeral.contains(port))
        .collect()
}

/// Where to start in the pool: differs between processes and calls, so two roadtest processes
/// starting at once rarely try the same ports.
fn start_index(len: usize) -> usize {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (std::process::id() as usize)
        .wrapping_mul(2_654_435_761)
        .wrapping_add(nanos as usize)
        % len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_leaves_out_the_ephemeral_range_and_the_fixed_ports() {
        let pool = candidate_pool(&(32768..=60999));
        assert_eq!(pool.first(), Some(&20000));
        assert!(pool.contains(&32767));
        assert!(!pool.contains(&32768));
        assert!(!pool.contains(&60999));
        assert!(pool.contains(&61000));
        assert!(!pool.contains(&19092));
    }

    #[test]
    fn the_range_file_is_parsed_and_nonsense_is_refused() {
        assert_eq!(parse_range("32768\t60999\n"), Some(32768..=60999));
        assert_eq!(parse_range("1024 65535"), Some(1024..=65535));
        assert_eq!(parse_range("60999 32768"), None);
        assert_eq!(parse_range("many"), None);
    }

    #[test]
    fn ports_handed_out_are_distinct_bindable_and_outside_the_ephemeral_range() {
        let ephemeral = ephemeral_range();
        let ports: Vec<u16> = (0..50).map(|_| free_port().expect("a free port")).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            ports.len(),
            "a port was handed out twice: {ports:?}"
        );
        for port in ports {
            assert!(
                !ephemeral.contains(&port),
                "{port} is in the ephemeral range {ephemeral:?}"
            );
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("the port is free");
        }
    }
}
