//! Where the knee search goes next: doubling from the lowest rate until a rate is not sustained (or the highest rate is), then bisection between the highest sustained and the lowest unsustained rate until they are close. Pure: it sees only rates and verdicts.

use serde::Serialize;

/// The bounds and precision of a search, in events per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchBounds {
    /// The first rate tried.
    pub min_rate: f64,
    /// No rate above this is tried.
    pub max_rate: f64,
    /// The search stops when the bracket is this narrow, relative to its lower end (0.05: 5%).
    pub resolution: f64,
    /// And after this many steps, whatever the bracket.
    pub max_steps: usize,
}

/// How a search ended.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KneeOutcome {
    /// `rate` was sustained and `above`, the next rate tried higher, was not.
    Knee { rate: f64, above: f64 },
    /// Even the highest rate allowed was sustained: the knee is there or higher.
    AtLeast { rate: f64 },
    /// Not even the lowest rate was sustained: the knee is below it.
    Below { rate: f64 },
}

impl KneeOutcome {
    /// The highest rate known to be sustained (`None` when none was).
    pub fn sustained_rate(&self) -> Option<f64> {
        match *self {
            KneeOutcome::Knee { rate, .. } | KneeOutcome::AtLeast { rate } => Some(rate),
            KneeOutcome::Below { .. } => None,
        }
    }
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    Try(f64),
    Done(KneeOutcome),
}

/// The state of a search: the bracket found so far.
#[derive(Debug, Clone)]
pub struct KneeSearch {
    bounds: SearchBounds,
    /// The highest rate sustained so far.
    highest_sustained: Option<f64>,
    /// The lowest rate not sustained so far.
    lowest_unsustained: Option<f64>,
    steps: usize,
}

impl KneeSearch {
    pub fn new(bounds: SearchBounds) -> KneeSearch {
        KneeSearch {
            bounds,
            highest_sustained: None,
            lowest_unsustained: None,
            steps: 0,
        }
    }

    /// Records the verdict of a step at `rate`.
    pub fn record(&mut self, rate: f64, sustained: bool) {
        self.steps += 1;
        if sustained {
            self.highest_sustained = Some(self.highest_sustained.map_or(rate, |r| r.max(rate)));
        } else {
            self.lowest_unsustained = Some(self.lowest_unsustained.map_or(rate, |r| r.min(rate)));
        }
    }

    /// The next rate to try, or how the search ended. Rates are whole events per second.
    pub fn next(&self) -> Next {
        let bounds = self.bounds;
        match (self.highest_sustained, self.lowest_unsustained) {
            (None, None) => Next::Try(bounds.min_rate.round()),
            (None, Some(_)) => Next::Done(KneeOutcome::Below {
                rate: bounds.min_rate.round(),
            }),
            (Some(rate), None)
                if rate >= bounds.max_rate.round() || self.steps >= bounds.max_steps =>
            {
                Next::Done(KneeOutcome::AtLeast { rate })
            }
            (Some(rate), None) => Next::Try((rate * 2.0).min(bounds.max_rate).round()),
            (Some(rate), Some(above)) => {
                let middle = ((rate + above) / 2.0).round();
                let narrow = (above - rate) <= bounds.resolution * rate;
                let no_whole_rate_between = middle <= rate || middle >= above;
                if narrow || no_whole_rate_between || self.steps >= bounds.max_steps {
                    Next::Done(KneeOutcome::Knee { rate, above })
                } else {
                    Next::Try(middle)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(min_rate: f64, max_rate: f64) -> SearchBounds {
        SearchBounds {
            min_rate,
            max_rate,
            resolution: 0.05,
            max_steps: 30,
        }
    }

    /// Runs a search against a pipeline that sustains every rate up to `capacity`.
    fn search(bounds: SearchBounds, capacity: f64) -> (KneeOutcome, Vec<f64>) {
        let mut search = KneeSearch::new(bounds);
        let mut tried = Vec::new();
        loop {
            match search.next() {
                Next::Try(rate) => {
                    tried.push(rate);
                    search.record(rate, rate <= capacity);
                }
                Next::Done(outcome) => return (outcome, tried),
            }
        }
    }

    #[test]
    fn doubling_brackets_the_knee_and_bisection_narrows_it_to_the_resolution() {
        let (outcome, tried) = search(bounds(100.0, 100_000.0), 2_000.0);
        assert_eq!(&tried[..6], [100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0]);
        let KneeOutcome::Knee { rate, above } = outcome else {
            panic!("{outcome:?}");
        };
        assert!(rate <= 2_000.0 && above > 2_000.0, "{outcome:?}");
        assert!(above - rate <= 0.05 * rate, "{outcome:?}");
        assert!(rate >= 2_000.0 * 0.95, "{outcome:?}");
        assert!(tried.len() <= 12, "{tried:?}");
    }

    #[test]
    fn a_knee_beyond_the_highest_rate_or_below_the_lowest_is_said_so() {
        let (outcome, tried) = search(bounds(100.0, 1_000.0), 5_000.0);
        assert_eq!(outcome, KneeOutcome::AtLeast { rate: 1_000.0 });
        assert_eq!(tried, [100.0, 200.0, 400.0, 800.0, 1_000.0]);
        let (outcome, tried) = search(bounds(100.0, 1_000.0), 50.0);
        assert_eq!(outcome, KneeOutcome::Below { rate: 100.0 });
        assert_eq!(tried, [100.0]);
        assert_eq!(outcome.sustained_rate(), None);
    }

    #[test]
    fn the_step_limit_ends_a_search_with_the_bracket_it_has() {
        let mut limited = bounds(1.0, 1e9);
        limited.max_steps = 4;
        let (outcome, tried) = search(limited, 1e6);
        assert_eq!(tried.len(), 4);
        assert_eq!(outcome, KneeOutcome::AtLeast { rate: 8.0 });
    }

    #[test]
    fn rates_close_together_end_the_bisection_when_no_whole_rate_lies_between() {
        let mut fine = bounds(1.0, 100.0);
        fine.resolution = 0.0;
        let (outcome, _) = search(fine, 5.0);
        assert_eq!(
            outcome,
            KneeOutcome::Knee {
                rate: 5.0,
                above: 6.0
            }
        );
    }
}
