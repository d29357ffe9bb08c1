//! The evaluator: per vehicle and rule, whether the condition holds and since which event; the one logic behind the expected alerts and a consumer's alerter.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::rule::{Rule, RuleError};
use crate::fleet::FleetPlan;
use crate::scenario::{AlertRule, Scenario};
use crate::wire::{Event, Record};

/// An alert that fired: the rule's name, the vehicle, and the timestamp (event time, ms since the
/// Unix epoch) of the event that completed the condition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fired {
    pub alert: String,
    pub vehicle_id: String,
    pub at_ms: i64,
}

/// An alert the fleet's events must raise: what the [`Evaluator`] fires on the events the
/// producer sends.
pub type ExpectedAlert = Fired;

/// Where one rule stands for one vehicle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The last event did not meet the condition (or there was none yet).
    Armed,
    /// The condition has held on every event since the one stamped `since_ms`.
    Holding { since_ms: i64 },
    /// It fired in this stretch; the next event that does not hold re-arms it.
    Fired,
}

/// One vehicle's state: the newest timestamp seen and each rule's [`State`].
#[derive(Debug, Clone)]
struct VehicleAlerts {
    last_ms: Option<i64>,
    states: Vec<State>,
}

impl VehicleAlerts {
    fn new(rules: usize) -> VehicleAlerts {
        VehicleAlerts {
            last_ms: None,
            states: vec![State::Armed; rules],
        }
    }

    /// Takes the vehicle's next event (ignored unless newer than the newest seen: a redelivery)
    /// and appends what fires to `fired`.
    fn observe(&mut self, rules: &[Rule], event: &Event, fired: &mut Vec<Fired>) {
        if self
            .last_ms
            .is_some_and(|last_ms| event.timestamp_ms <= last_ms)
        {
            return;
        }
        self.last_ms = Some(event.timestamp_ms);
        for (rule, state) in rules.iter().zip(&mut self.states) {
            if !rule.holds(event) {
                *state = State::Armed;
                continue;
            }
            let since_ms = match *state {
                State::Fired => continue,
                State::Armed => event.timestamp_ms,
                State::Holding { since_ms } => since_ms,
            };
            *state = if rule.long_enough(since_ms, event.timestamp_ms) {
                fired.push(Fired {
                    alert: rule.name.clone(),
                    vehicle_id: crate::wire::vehicle_id(event.vehicle_index),
                    at_ms: event.timestamp_ms,
                });
                State::Fired
            } else {
                State::Holding { since_ms }
            };
        }
    }
}

/// Evaluates a scenario's rules on events, each vehicle's in its own order (vehicles may
/// interleave). An event not newer than the newest already seen of its vehicle is a redelivery
/// and changes nothing.
#[derive(Debug, Clone)]
pub struct Evaluator {
    rules: Vec<Rule>,
    vehicles: HashMap<u32, VehicleAlerts>,
}

impl Evaluator {
    /// An evaluator of `rules` (a validated scenario's `alerts` always compile).
    pub fn new(rules: &[AlertRule]) -> Result<Evaluator, RuleError> {
        Ok(Evaluator {
            rules: compile(rules)?,
            vehicles: HashMap::new(),
        })
    }

    /// Takes one event; returns the alerts it completes (most often none, then nothing is
    /// allocated).
    pub fn observe(&mut self, event: &Event) -> Vec<Fired> {
        let mut fired = Vec::new();
        if self.rules.is_empty() {
            return fired;
        }
        self.vehicles
            .entry(event.vehicle_index)
            .or_insert_with(|| VehicleAlerts::new(self.rules.len()))
            .observe(&self.rules, event, &mut fired);
        fired
    }

    /// [`Evaluator::observe`] for a record a consumer decoded ([`Record::decode`] gives the
    /// vehicle's index).
    pub fn observe_record(&mut self, record: &Record, vehicle_index: u32) -> Vec<Fired> {
        self.observe(&Event {
            vehicle_index,
            seq: record.seq,
            timestamp_ms: record.timestamp,
            latitude: record.latitude,
            longitude: record.longitude,
            speed_kmh: record.speed,
            temperature_c: record.temperature,
            humidity_pct: record.humidity,
        })
    }
}

fn compile(rules: &[AlertRule]) -> Result<Vec<Rule>, RuleError> {
    rules.iter().map(Rule::compile).collect()
}

/// Every alert the scenario's events raise, by (event time, vehicle id, alert name): the
/// [`Evaluator`] run over each vehicle's events as the producer sends them (the seed decides them
/// all). Walks the fleet one vehicle at a time, so it costs about one pass of the generator.
pub fn expected_alerts(scenario: &Scenario) -> Result<Vec<ExpectedAlert>, RuleError> {
    let rules = compile(&scenario.alerts)?;
    let mut expected = Vec::new();
    if rules.is_empty() {
        return Ok(expected);
    }
    let plan = FleetPlan::from_scenario(scenario);
    for index in 0..plan.vehicle_count {
        let mut vehicle = VehicleAlerts::new(rules.len());
        for event in plan.vehicle(index) {
            vehicle.observe(&rules, &event, &mut expected);
        }
    }
    expected.sort_by(|a, b| {
        (a.at_ms, &a.vehicle_id, &a.alert).cmp(&(b.at_ms, &b.vehicle_id, &b.alert))
    });
    Ok(expected)
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod tests;
