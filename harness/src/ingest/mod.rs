//! The reference consumer: its decision core (no I/O), the rdkafka/scylla adapters that drive it, and what it reports.

pub mod core;
pub mod service;
pub mod stats;
