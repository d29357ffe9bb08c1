//! The simulated fleet: per-vehicle generators and their merge into one stream in emission-time order.

pub mod motion;
mod vehicle;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

pub use vehicle::{FleetPlan, Vehicle};

use crate::scenario::Scenario;
use crate::wire::Event;

impl FleetPlan {
    /// The fleet a scenario describes.
    pub fn from_scenario(scenario: &Scenario) -> FleetPlan {
        let fleet = &scenario.fleet;
        FleetPlan {
            seed: scenario.seed,
            vehicle_count: fleet.vehicle_count,
            model: fleet.motion,
            region: fleet.region,
            start_ms: scenario.start_timestamp_ms,
            end_ms: scenario.start_timestamp_ms + scenario.duration_ms(),
            interval_ms: scenario.sample_interval_ms(),
            jitter_fraction: fleet.interval_jitter_percent / 100.0,
            ramp: fleet
                .ramp
                .map(|ramp| (ramp.start_vehicle_count, ramp.ramp_s as i64 * 1000)),
        }
    }

    /// The generator of one vehicle.
    pub fn vehicle(&self, index: u32) -> Vehicle {
        Vehicle::new(self, index)
    }

    /// All events of the fleet in emission-time order (ties by vehicle index).
    pub fn events(&self) -> EventStream {
        EventStream::new(self, 0..self.vehicle_count)
    }

    /// The events of some vehicles in emission-time order.
    pub fn events_of(&self, vehicles: impl IntoIterator<Item = u32>) -> EventStream {
        EventStream::new(self, vehicles)
    }
}

/// A k-way merge of vehicle streams by (timestamp, vehicle index).
#[derive(Debug)]
pub struct EventStream {
    vehicles: Vec<Vehicle>,
    /// (next timestamp, vehicle index, position in `vehicles`).
    heap: BinaryHeap<Reverse<(i64, u32, usize)>>,
}

impl EventStream {
    fn new(plan: &FleetPlan, indices: impl IntoIterator<Item = u32>) -> EventStream {
        let vehicles: Vec<Vehicle> = indices
            .into_iter()
            .filter(|&index| index < plan.vehicle_count)
            .map(|index| plan.vehicle(index))
            .collect();
        let heap = vehicles
            .iter()
            .enumerate()
            .filter_map(|(slot, vehicle)| {
                vehicle
                    .peek_timestamp_ms()
                    .map(|timestamp| Reverse((timestamp, vehicle.index(), slot)))
            })
            .collect();
        EventStream { vehicles, heap }
    }
}

impl Iterator for EventStream {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        let Reverse((_, index, slot)) = self.heap.pop()?;
        let vehicle = &mut self.vehicles[slot];
        let event = vehicle.next();
        if let Some(timestamp) = vehicle.peek_timestamp_ms() {
            self.heap.push(Reverse((timestamp, index, slot)));
        }
        event
    }
}
