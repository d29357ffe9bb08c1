//! The simulated fleet: per-vehicle generators and their merge into one stream in emission-time order.

pub mod motion;
mod vehicle;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use vehicle::VehicleState;
pub use vehicle::{FleetPlan, Vehicle, WHOLE_GENERATORS_MAX};

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
            speeding_share: fleet.speeding_share,
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

    /// About the most samples one vehicle sends in the whole run (its own interval is at most
    /// half the jitter shorter than the fleet's): a capacity hint, not a count.
    pub fn samples_per_vehicle_max(&self) -> usize {
        let shortest_ms = self.interval_ms * (1.0 - 0.5 * self.jitter_fraction);
        ((self.end_ms - self.start_ms) as f64 / shortest_ms.max(1.0)) as usize + 2
    }

    /// How many events the fleet has sent by scenario time `scenario_ms` (ms after scenario time
    /// zero; events stamped before it): exact, ramp and jitter included, because it walks every
    /// vehicle's own schedule. The one count of expected events (validate's plan, the run's
    /// progress). Costs one pass of the generator over those events, less than sending them.
    pub fn expected_events_by(&self, scenario_ms: i64) -> u64 {
        let until_ms = self.start_ms.saturating_add(scenario_ms).min(self.end_ms);
        (0..self.vehicle_count)
            .map(|index| {
                let mut vehicle = self.vehicle(index);
                let mut count = 0;
                while vehicle.peek_timestamp_ms().is_some_and(|at| at < until_ms) {
                    vehicle.next();
                    count += 1;
                }
                count
            })
            .sum()
    }
}

/// A k-way merge of vehicle streams by (timestamp, vehicle index). Per vehicle it keeps its
/// [`VehicleState`] (208 bytes; its whole generator, 304 more, in fleets of up to
/// [`WHOLE_GENERATORS_MAX`] vehicles) and one heap entry (16 bytes), both allocated once at
/// their final size: a million vehicles stream in about 225 MB.
#[derive(Debug)]
pub struct EventStream {
    vehicles: Vec<VehicleState>,
    region: crate::scenario::Region,
    end_ms: i64,
    /// (next timestamp, vehicle index, position in `vehicles`).
    heap: BinaryHeap<Reverse<(i64, u32, u32)>>,
}

impl EventStream {
    fn new(plan: &FleetPlan, indices: impl IntoIterator<Item = u32>) -> EventStream {
        let indices = indices.into_iter();
        let mut vehicles =
            Vec::with_capacity(indices.size_hint().0.min(plan.vehicle_count as usize));
        vehicles.extend(
            indices
                .filter(|&index| index < plan.vehicle_count)
                .map(|index| VehicleState::new(plan, index)),
        );
        vehicles.shrink_to_fit();
        let mut heap = BinaryHeap::with_capacity(vehicles.len());
        for (slot, vehicle) in vehicles.iter().enumerate() {
            if let Some(timestamp) = vehicle.peek_timestamp_ms(plan.end_ms) {
                let slot = u32::try_from(slot).expect("at most u32::MAX vehicles");
                heap.push(Reverse((timestamp, vehicle.index(), slot)));
            }
        }
        EventStream {
            vehicles,
            region: plan.region,
            end_ms: plan.end_ms,
            heap,
        }
    }
}

impl Iterator for EventStream {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        let Reverse((_, index, slot)) = self.heap.pop()?;
        let vehicle = &mut self.vehicles[slot as usize];
        let event = vehicle.next_event(&self.region, self.end_ms);
        if let Some(timestamp) = vehicle.peek_timestamp_ms(self.end_ms) {
            self.heap.push(Reverse((timestamp, index, slot)));
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn scenario(extra_fleet: &str) -> Scenario {
        let text = format!(
            "name = \"count\"\nseed = 11\nduration_s = 40\n[fleet]\nvehicle_count = 30\n\
             rate_hz = 3.0\ninterval_jitter_percent = 20\n{extra_fleet}"
        );
        let file = Path::new("count.toml");
        let scenario = Scenario::parse(&text, file).expect("parses");
        scenario.validate(file).expect("valid");
        scenario
    }

    /// Counts from the merged stream, the way the producer sees the events.
    fn stream_count(plan: &FleetPlan, scenario_ms: i64) -> u64 {
        plan.events()
            .filter(|event| event.timestamp_ms < plan.start_ms + scenario_ms)
            .count() as u64
    }

    #[test]
    fn a_vehicle_between_samples_takes_208_bytes() {
        assert_eq!(std::mem::size_of::<VehicleState>(), 208);
    }

    #[test]
    fn the_expected_count_is_what_the_fleet_sends_by_then() {
        for fleet in ["", "ramp = { start_vehicle_count = 4, ramp_s = 25 }"] {
            let plan = FleetPlan::from_scenario(&scenario(fleet));
            for scenario_ms in [-5, 0, 1, 333, 7_500, 20_001, 39_999, 40_000, 90_000] {
                assert_eq!(
                    plan.expected_events_by(scenario_ms),
                    stream_count(&plan, scenario_ms),
                    "{fleet} at {scenario_ms} ms"
                );
            }
        }
    }

    #[test]
    fn a_ramping_fleet_sends_less_than_the_whole_fleet_would() {
        let whole = FleetPlan::from_scenario(&scenario(""));
        let ramping =
            FleetPlan::from_scenario(&scenario("ramp = { start_vehicle_count = 4, ramp_s = 25 }"));
        // 26 vehicles join evenly over 25 s, so they miss about half of the ramp:
        // 26 x 13 s at 3 Hz, about 1,010 events.
        let missed = whole.expected_events_by(40_000) - ramping.expected_events_by(40_000);
        assert!((900..1_100).contains(&missed), "{missed}");
        // In the first second only the 4 starting vehicles (at most 4 samples each: intervals
        // are at least 270 ms) and the first to join (at 0.96 s) send.
        assert!(ramping.expected_events_by(1_000) <= 4 * 4 + 1);
        assert!(whole.expected_events_by(1_000) >= 30 * 2);
        assert_eq!(ramping.expected_events_by(0), 0);
    }
}
