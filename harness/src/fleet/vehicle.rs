//! One simulated vehicle: a deterministic generator of its samples, driven only by (seed, vehicle index).

use std::f64::consts::PI;

use super::motion::{self, HIGHWAY, HIGHWAY_SPEEDING, MotionProfile, URBAN};
use crate::scenario::{MotionModel, Region};
use crate::seed::{ParkedRng, SimRng};
use crate::wire::Event;

/// Everything a vehicle needs to know about the scenario, shared by the whole fleet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FleetPlan {
    pub seed: u64,
    pub vehicle_count: u32,
    pub model: MotionModel,
    pub region: Region,
    /// Scenario time zero, ms since the Unix epoch.
    pub start_ms: i64,
    /// First timestamp no sample may reach, ms since the Unix epoch.
    pub end_ms: i64,
    pub interval_ms: f64,
    /// Jitter as a fraction of the interval.
    pub jitter_fraction: f64,
    /// (vehicles active at start, ms over which the rest join).
    pub ramp: Option<(u32, i64)>,
    /// The share of the highway vehicles that drive the [`HIGHWAY_SPEEDING`] profile (0: none,
    /// and not a single draw changes).
    pub speeding_share: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Driving,
    Braking,
    Stopped { remaining_s: f64 },
}

/// The sample stream of one vehicle; an iterator of its events in seq order.
#[derive(Debug, Clone)]
pub struct Vehicle {
    state: VehicleState,
    region: Region,
    end_ms: i64,
}

/// What a vehicle keeps from one sample to the next, and no more (208 bytes, plus its whole
/// generator on the heap in fleets of up to [`WHOLE_GENERATORS_MAX`] vehicles: a million
/// vehicles take about 210 MB): the sample due next as the state it is made from, its motion
/// profile by reference. The region and the end of the run, the same for the whole fleet, are
/// the caller's.
#[derive(Debug, Clone)]
pub(super) struct VehicleState {
    index: u32,
    rng: VehicleRng,
    interval_ms: f64,
    jitter_ms: f64,
    seq: u64,
    timestamp_ms: i64,
    /// Average speed since the previous sample: the speed of the sample due at `timestamp_ms`.
    average_speed_mps: f64,
    motion: Motion,
}

/// Fleets of up to this many vehicles keep each vehicle's generator whole (304 bytes more per
/// vehicle, on the heap); larger ones park it (see [`VehicleRng`]).
pub const WHOLE_GENERATORS_MAX: u32 = 10_000;

/// A vehicle's generator: whole, or parked as its seed and position (40 bytes instead of 304;
/// resuming it costs one ChaCha refill per sample, about 80 ns). Both draw the same numbers.
#[derive(Debug, Clone)]
enum VehicleRng {
    Whole(Box<SimRng>),
    Parked(ParkedRng),
}

impl VehicleRng {
    /// `rng`, resumed from `start`, kept whole or parked where it stands.
    fn keep(rng: SimRng, mut start: ParkedRng, park: bool) -> VehicleRng {
        if park {
            start.park(&rng);
            VehicleRng::Parked(start)
        } else {
            VehicleRng::Whole(Box::new(rng))
        }
    }
}

/// Where a vehicle is, how it moves and what its sensors read.
#[derive(Debug, Clone)]
struct Motion {
    profile: &'static MotionProfile,
    latitude: f64,
    longitude: f64,
    heading_rad: f64,
    heading_rate: f64,
    turn_remaining_rad: f64,
    speed_mps: f64,
    cruise_mps: f64,
    phase: Phase,
    temperature_c: f64,
    temperature_mean_c: f64,
    humidity_pct: f64,
    humidity_mean_pct: f64,
}

/// Temperature reverts to its vehicle's mean over about ten minutes.
const TEMPERATURE_REVERSION_PER_S: f64 = 1.0 / 600.0;
const TEMPERATURE_SPREAD_C: f64 = 0.02;
const TEMPERATURE_RANGE_C: (f64, f64) = (-30.0, 50.0);
const HUMIDITY_REVERSION_PER_S: f64 = 1.0 / 900.0;
const HUMIDITY_SPREAD_PCT: f64 = 0.08;
const HUMIDITY_RANGE_PCT: (f64, f64) = (5.0, 100.0);
/// Vehicles turn back toward the centre when they come this close (fraction of the region) to its edge.
const EDGE_MARGIN: f64 = 0.08;

/// The profile of highway vehicle `index`: [`HIGHWAY_SPEEDING`] for the speeding share of them,
/// drawn from a generator of its own (component `speeding`), so the vehicle's own draws stay
/// what they are without the share; only the cruise speeds it draws change.
fn highway_profile(plan: &FleetPlan, index: u32) -> &'static MotionProfile {
    let speeding = plan.speeding_share > 0.0
        && crate::seed::rng_for(plan.seed, "speeding", u64::from(index))
            .chance(plan.speeding_share);
    if speeding {
        &HIGHWAY_SPEEDING
    } else {
        &HIGHWAY
    }
}

/// When vehicle `index` joins, ms after the scenario's start: at once, or evenly over the ramp
/// for the vehicles beyond its start count.
pub(crate) fn join_offset_ms(plan: &FleetPlan, index: u32) -> i64 {
    match plan.ramp {
        Some((start_count, ramp_ms)) if index >= start_count => {
            let joining = i64::from(plan.vehicle_count - start_count);
            let rank = i64::from(index - start_count) + 1;
            ramp_ms * rank / joining
        }
        _ => 0,
    }
}

impl Vehicle {
    /// The generator of vehicle `index`; depends only on the plan and the index.
    pub fn new(plan: &FleetPlan, index: u32) -> Vehicle {
        Vehicle {
            state: VehicleState::new(plan, index),
            region: plan.region,
            end_ms: plan.end_ms,
        }
    }

    /// The timestamp of the sample `next()` returns, if any.
    pub fn peek_timestamp_ms(&self) -> Option<i64> {
        self.state.peek_timestamp_ms(self.end_ms)
    }

    /// The fleet index of this vehicle.
    pub fn index(&self) -> u32 {
        self.state.index
    }
}

impl Iterator for Vehicle {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        self.state.next_event(&self.region, self.end_ms)
    }
}

impl VehicleState {
    /// Vehicle `index` before its first sample; depends only on the plan and the index.
    pub(super) fn new(plan: &FleetPlan, index: u32) -> VehicleState {
        Self::with_generator(plan, index, plan.vehicle_count > WHOLE_GENERATORS_MAX)
    }

    /// [`VehicleState::new`] with the generator parked or whole, as asked.
    fn with_generator(plan: &FleetPlan, index: u32, parked: bool) -> VehicleState {
        let start = ParkedRng::new(plan.seed, "vehicle", u64::from(index));
        let mut rng = start.resume();
        let profile = match plan.model {
            MotionModel::Urban => &URBAN,
            MotionModel::Highway => highway_profile(plan, index),
            MotionModel::Mixed if rng.chance(0.7) => &URBAN,
            MotionModel::Mixed => highway_profile(plan, index),
        };
        let region = plan.region;
        let pad = EDGE_MARGIN * 1.5;
        let lat_span = region.latitude_max - region.latitude_min;
        let lon_span = region.longitude_max - region.longitude_min;
        let latitude = rng.uniform(
            region.latitude_min + lat_span * pad,
            region.latitude_max - lat_span * pad,
        );
        let longitude = rng.uniform(
            region.longitude_min + lon_span * pad,
            region.longitude_max - lon_span * pad,
        );
        let heading_rad = rng.uniform(0.0, 2.0 * PI);
        let cruise_mps = rng.uniform(profile.cruise_speed_mps.0, profile.cruise_speed_mps.1);
        let speed_mps = if rng.chance(0.2) { 0.0 } else { cruise_mps };
        let phase = if speed_mps == 0.0 {
            Phase::Stopped {
                remaining_s: rng.uniform(profile.stop_s.0, profile.stop_s.1),
            }
        } else {
            Phase::Driving
        };
        // The vehicle's own interval: the scenario's, moved by up to half the jitter.
        let interval_ms = plan.interval_ms * (1.0 + 0.5 * plan.jitter_fraction * rng.signed_unit());
        let jitter_ms = 0.5 * plan.jitter_fraction * interval_ms;
        let join_ms = join_offset_ms(plan, index);
        let phase_ms = (rng.unit() * interval_ms) as i64;
        let temperature_mean_c = rng.uniform(5.0, 28.0);
        let humidity_mean_pct = rng.uniform(35.0, 80.0);
        let temperature_c = temperature_mean_c + rng.noise() * 2.0;
        let humidity_pct = (humidity_mean_pct + rng.noise() * 5.0)
            .clamp(HUMIDITY_RANGE_PCT.0, HUMIDITY_RANGE_PCT.1);
        let motion = Motion {
            profile,
            latitude,
            longitude,
            heading_rad,
            heading_rate: 0.0,
            turn_remaining_rad: 0.0,
            speed_mps,
            cruise_mps,
            phase,
            temperature_c,
            temperature_mean_c,
            humidity_pct,
            humidity_mean_pct,
        };
        VehicleState {
            index,
            rng: VehicleRng::keep(rng, start, parked),
            interval_ms,
            jitter_ms,
            seq: 0,
            timestamp_ms: plan.start_ms + join_ms + phase_ms,
            average_speed_mps: speed_mps,
            motion,
        }
    }

    /// The fleet index of this vehicle.
    pub(super) fn index(&self) -> u32 {
        self.index
    }

    /// The timestamp of the sample due next, if it comes before `end_ms`.
    pub(super) fn peek_timestamp_ms(&self, end_ms: i64) -> Option<i64> {
        (self.timestamp_ms < end_ms).then_some(self.timestamp_ms)
    }

    /// The sample due next (none at or after `end_ms`), the vehicle moved on to the one after.
    pub(super) fn next_event(&mut self, region: &Region, end_ms: i64) -> Option<Event> {
        let event = self.sample(end_ms)?;
        self.advance(region);
        Some(event)
    }

    fn sample(&self, end_ms: i64) -> Option<Event> {
        (self.timestamp_ms < end_ms).then_some(Event {
            vehicle_index: self.index,
            seq: self.seq,
            timestamp_ms: self.timestamp_ms,
            latitude: self.motion.latitude,
            longitude: self.motion.longitude,
            speed_kmh: self.average_speed_mps * 3.6,
            temperature_c: self.motion.temperature_c,
            humidity_pct: self.motion.humidity_pct,
        })
    }

    /// Advances the vehicle to its next sample time: its motion and sensors over the interval,
    /// drawn from its generator (a parked one resumed for the step and parked again).
    fn advance(&mut self, region: &Region) {
        let (dt_ms, average_speed_mps) = match &mut self.rng {
            VehicleRng::Whole(rng) => {
                self.motion
                    .step(rng, region, self.interval_ms, self.jitter_ms)
            }
            VehicleRng::Parked(parked) => {
                let mut rng = parked.resume();
                let step = self
                    .motion
                    .step(&mut rng, region, self.interval_ms, self.jitter_ms);
                parked.park(&rng);
                step
            }
        };
        self.average_speed_mps = average_speed_mps;
        self.seq += 1;
        self.timestamp_ms += dt_ms;
    }
}

impl Motion {
    /// One interval of `interval_ms` moved by up to `jitter_ms`: the vehicle driven and its
    /// sensors read; returns the interval's length in ms and the average speed over it.
    fn step(
        &mut self,
        rng: &mut SimRng,
        region: &Region,
        interval_ms: f64,
        jitter_ms: f64,
    ) -> (i64, f64) {
        let interval_ms = interval_ms + jitter_ms * rng.signed_unit();
        let dt_ms = (interval_ms.round() as i64).max(1);
        let dt_s = dt_ms as f64 / 1000.0;
        let average_speed_mps = self.drive(rng, region, dt_s);
        self.sense(rng, dt_s);
        (dt_ms, average_speed_mps)
    }

    /// Moves the vehicle for `dt_s` seconds; returns the average speed over that time.
    fn drive(&mut self, rng: &mut SimRng, region: &Region, dt_s: f64) -> f64 {
        let profile = self.profile;
        let target_mps = match self.phase {
            Phase::Stopped { remaining_s } if remaining_s > dt_s => {
                self.phase = Phase::Stopped {
                    remaining_s: remaining_s - dt_s,
                };
                0.0
            }
            Phase::Stopped { .. } => {
                self.phase = Phase::Driving;
                self.cruise_mps =
                    rng.uniform(profile.cruise_speed_mps.0, profile.cruise_speed_mps.1);
                self.cruise_mps
            }
            Phase::Braking => 0.0,
            Phase::Driving => {
                if rng.chance(profile.stop_rate_per_s * dt_s) {
                    self.phase = Phase::Braking;
                    0.0
                } else {
                    if rng.chance(profile.speed_change_rate_per_s * dt_s) {
                        self.cruise_mps =
                            rng.uniform(profile.cruise_speed_mps.0, profile.cruise_speed_mps.1);
                    }
                    self.cruise_mps
                }
            }
        };
        let limit = if target_mps > self.speed_mps {
            profile.acceleration_max_mps2
        } else {
            profile.deceleration_max_mps2
        };
        let new_speed_mps = motion::approach(self.speed_mps, target_mps, limit * dt_s);
        let average_speed_mps = (self.speed_mps + new_speed_mps) / 2.0;
        self.speed_mps = new_speed_mps;
        if self.phase == Phase::Braking && new_speed_mps == 0.0 {
            self.phase = Phase::Stopped {
                remaining_s: rng.uniform(profile.stop_s.0, profile.stop_s.1),
            };
        }
        let distance_m = average_speed_mps * dt_s;
        if distance_m > 0.0 {
            self.steer(rng, region, dt_s);
            let (mut latitude, mut longitude) =
                motion::step_position(self.latitude, self.longitude, self.heading_rad, distance_m);
            if !motion::inside(region, latitude, longitude, 0.0) {
                // About to leave the region: turn straight for its centre and take the step that way.
                self.heading_rad = motion::bearing_to_centre(region, self.latitude, self.longitude);
                self.turn_remaining_rad = 0.0;
                self.heading_rate = 0.0;
                (latitude, longitude) = motion::step_position(
                    self.latitude,
                    self.longitude,
                    self.heading_rad,
                    distance_m,
                );
            }
            self.latitude = latitude;
            self.longitude = longitude;
        }
        average_speed_mps
    }

    /// Heading changes: a bounded drift, sharp turns now and then, and a turn home near the edge.
    fn steer(&mut self, rng: &mut SimRng, region: &Region, dt_s: f64) {
        let profile = self.profile;
        let turn_max = profile.turn_speed_max_rad_per_s * dt_s;
        if !motion::inside(region, self.latitude, self.longitude, EDGE_MARGIN) {
            let wanted = motion::bearing_to_centre(region, self.latitude, self.longitude);
            let mut difference = (wanted - self.heading_rad) % (2.0 * PI);
            if difference > PI {
                difference -= 2.0 * PI;
            } else if difference < -PI {
                difference += 2.0 * PI;
            }
            self.turn_remaining_rad = difference;
        } else if self.turn_remaining_rad == 0.0 && rng.chance(profile.turn_rate_per_s * dt_s) {
            let side = if rng.chance(0.5) { 1.0 } else { -1.0 };
            self.turn_remaining_rad = side * PI / 2.0;
        }
        let change = if self.turn_remaining_rad != 0.0 {
            let change = self.turn_remaining_rad.clamp(-turn_max, turn_max);
            self.turn_remaining_rad -= change;
            if self.turn_remaining_rad.abs() < 1e-9 {
                self.turn_remaining_rad = 0.0;
            }
            change
        } else {
            self.heading_rate =
                0.9 * self.heading_rate + profile.heading_drift_rad * dt_s.sqrt() * rng.noise();
            (self.heading_rate * dt_s).clamp(-turn_max, turn_max)
        };
        self.heading_rad = (self.heading_rad + change).rem_euclid(2.0 * PI);
    }

    /// Temperature and humidity: mean-reverting random walks inside plausible ranges.
    fn sense(&mut self, rng: &mut SimRng, dt_s: f64) {
        let root_dt = dt_s.sqrt();
        let temperature_pull = (self.temperature_mean_c - self.temperature_c)
            * (TEMPERATURE_REVERSION_PER_S * dt_s).min(1.0);
        self.temperature_c =
            (self.temperature_c + temperature_pull + TEMPERATURE_SPREAD_C * root_dt * rng.noise())
                .clamp(TEMPERATURE_RANGE_C.0, TEMPERATURE_RANGE_C.1);
        let humidity_pull = (self.humidity_mean_pct - self.humidity_pct)
            * (HUMIDITY_REVERSION_PER_S * dt_s).min(1.0);
        self.humidity_pct =
            (self.humidity_pct + humidity_pull + HUMIDITY_SPREAD_PCT * root_dt * rng.noise())
                .clamp(HUMIDITY_RANGE_PCT.0, HUMIDITY_RANGE_PCT.1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn events(plan: &FleetPlan, index: u32) -> Vec<Event> {
        Vehicle::new(plan, index).collect()
    }

    #[test]
    fn speeding_changes_only_the_speeds_of_the_speeding_share_of_highway_vehicles() {
        let calm = FleetPlan {
            seed: 9,
            vehicle_count: 400,
            model: MotionModel::Mixed,
            region: Region::default(),
            start_ms: 0,
            end_ms: 120_000,
            interval_ms: 1000.0,
            jitter_fraction: 0.02,
            ramp: None,
            speeding_share: 0.0,
        };
        let speeding = FleetPlan {
            speeding_share: 0.5,
            ..calm
        };
        let profile = |plan: &FleetPlan, index| *VehicleState::new(plan, index).motion.profile;
        let (mut highway, mut speeders, mut above_130) = (0, 0, 0);
        for index in 0..calm.vehicle_count {
            let (before, after) = (events(&calm, index), events(&speeding, index));
            assert!(before.iter().all(|event| event.speed_kmh <= 130.0));
            match (profile(&calm, index), profile(&speeding, index)) {
                (URBAN, URBAN) | (HIGHWAY, HIGHWAY) => {
                    assert!(before == after, "vehicle {index} does not speed");
                    highway += usize::from(profile(&calm, index) == HIGHWAY);
                }
                (HIGHWAY, HIGHWAY_SPEEDING) => {
                    (highway, speeders) = (highway + 1, speeders + 1);
                    // It drives elsewhere, so it may steer and draw otherwise: only the count
                    // of its samples over the run stays about the same.
                    assert!(before.len().abs_diff(after.len()) <= 1, "{index}");
                    above_130 += after.iter().filter(|event| event.speed_kmh > 130.0).count();
                }
                (calm, speeding) => panic!("vehicle {index}: {calm:?} became {speeding:?}"),
            }
        }
        // Mixed: about 30% of 400 on the motorway, about half of those speeding.
        assert!((90..=150).contains(&highway), "{highway} highway vehicles");
        assert!(
            (speeders as f64 / highway as f64 - 0.5).abs() < 0.15,
            "{speeders} of {highway}"
        );
        // Most of the speeders' samples break 130 km/h.
        assert!(
            above_130 > speeders * 120 / 2,
            "{above_130} samples above 130 km/h"
        );
    }

    #[test]
    fn a_parked_generator_gives_the_same_samples_as_a_whole_one() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/golden.toml");
        let scenario = Scenario::load(&path).expect("golden.toml loads");
        let plan = FleetPlan::from_scenario(&scenario);
        for index in 0..40 {
            let mut whole = VehicleState::with_generator(&plan, index, false);
            let mut parked = VehicleState::with_generator(&plan, index, true);
            assert!(matches!(parked.rng, VehicleRng::Parked(_)));
            let mut count = 0;
            loop {
                let (a, b) = (
                    whole.next_event(&plan.region, plan.end_ms),
                    parked.next_event(&plan.region, plan.end_ms),
                );
                assert_eq!(a, b, "vehicle {index}, sample {count}");
                if a.is_none() {
                    break;
                }
                count += 1;
            }
            assert!(count > 100, "{count}");
        }
    }
}
