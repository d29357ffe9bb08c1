//! The reference consumer: its decision core (no I/O), the rdkafka/scylla adapters that drive it, and what it reports.

mod alerter;
mod args;
pub mod core;
mod lag;
pub mod service;
pub mod stats;
