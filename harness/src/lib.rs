//! roadtest: a seeded simulation and load-testing harness for vehicle-telemetry pipelines.
//!
//! A [`Scenario`] plus a seed fully determines the simulated fleet ([`fleet`]), the events it
//! sends ([`wire`]) and the fault schedule; roadtest drives them through a real
//! Kafka -> consumer -> Cassandra pipeline and checks what arrived.

pub mod alerts;
pub mod assemble;
pub mod cli;
pub mod clients;
pub mod drive;
pub mod faults;
pub mod fleet;
pub mod gate_settings;
pub mod ingest;
pub mod knee;
pub mod live;
pub mod measure;
pub mod notify;
pub mod report;
pub mod run;
pub mod scenario;
mod scenario_rules;
pub mod seed;
pub mod services;
pub mod shutdown;
pub mod sim;
pub mod table;
pub mod targets;
pub mod time;
pub mod verify;
pub mod wire;

pub use scenario::{Overrides, Scenario, ScenarioError};
