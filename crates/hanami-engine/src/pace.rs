//! Whether the worker of a thread pair pays for itself, decided from measured cycle times.
//!
//! Splitting a cycle between two cores moves cache lines between them several times per
//! cycle (job hand-offs, the data one core wrote and the other reads). On a virtual machine
//! the host decides where the two virtual cores run: on the project's standard box the round
//! trip of one cache line between them measured anywhere from 55 to 250 ns, changing within
//! seconds, and at the slow end a training cycle took 28 µs on two threads against 16.5 µs on
//! one (`docs/benchmarks.md`). Results do not depend on the thread count, so the pair may
//! run any cycle on the calling thread alone: from time to time it times a window of cycles
//! the other way, between two windows the chosen way, and keeps whichever was faster.
//! Training cycles, ordinary request cycles and the rows of request batches are timed
//! separately, each against its own kind.

use std::time::Duration;

/// The kinds of cycles, each with its own measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Work {
    /// Training cycles.
    Train,
    /// Request cycles one at a time.
    Request,
    /// Request cycles run as rows of a request batch.
    Rows,
}

/// Rows timed per window.
const WINDOW: u32 = 256;
/// Rows run the chosen way before the first comparison, and after a comparison that
/// changed the choice.
const FIRST_INTERVAL: u32 = 2048;
/// The longest time between comparisons, in rows: comparisons that keep the choice double
/// the interval up to this. Short enough to follow the host within a fraction of a second
/// (the cores' distance changed every few seconds), long enough that the trials cost well
/// under 1 %.
const LONGEST_INTERVAL: u32 = 16_384;
/// How much faster (per row) the other way must be than each window around it to be chosen:
/// less would follow noise (windows differ in their rows: growth, lengths of request runs).
const MARGIN: f64 = 0.9;

/// The choice for every kind of cycle.
#[derive(Debug, Default)]
pub(crate) struct Pace {
    gauges: [Gauge; 3],
}

impl Pace {
    /// Whether the next cycles of this kind run on the calling thread alone.
    pub(crate) fn solo(&self, work: Work) -> bool {
        self.gauges[work as usize].runs_solo()
    }

    /// Records that `rows` cycles of this kind took `elapsed` in all, run the way
    /// [`Pace::solo`] said.
    pub(crate) fn record(&mut self, work: Work, rows: u32, elapsed: Duration) {
        self.gauges[work as usize].record(rows, elapsed);
    }
}

/// The choice for one kind of cycle and where its measurements stand.
#[derive(Debug)]
struct Gauge {
    /// Whether the calling thread runs these cycles alone.
    solo: bool,
    /// Rows between comparisons now.
    interval: u32,
    stage: Stage,
}

impl Default for Gauge {
    fn default() -> Self {
        Gauge {
            solo: false,
            interval: FIRST_INTERVAL,
            stage: Stage::Settled {
                left: FIRST_INTERVAL,
            },
        }
    }
}

/// Where a comparison stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    /// Running the chosen way; a comparison starts after `left` more rows.
    Settled { left: u32 },
    /// Timing a window the chosen way, before the trial.
    Before(Window),
    /// Timing a window the other way; `before` is the time per row of the window before it.
    Trial { before: f64, window: Window },
    /// Timing a window the chosen way again, after the trial.
    After {
        before: f64,
        trial: f64,
        window: Window,
    },
}

/// Rows timed so far in a window, and their time.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Window {
    rows: u32,
    nanos: f64,
}

impl Window {
    /// Adds `rows` rows that took `elapsed`; returns the time per row once the window is
    /// full.
    fn add(&mut self, rows: u32, elapsed: Duration) -> Option<f64> {
        self.rows += rows;
        self.nanos += elapsed.as_nanos() as f64;
        (self.rows >= WINDOW).then(|| self.nanos / f64::from(self.rows))
    }
}

impl Gauge {
    /// Whether the next cycles run on the calling thread alone.
    fn runs_solo(&self) -> bool {
        match self.stage {
            Stage::Trial { .. } => !self.solo,
            _ => self.solo,
        }
    }

    fn record(&mut self, rows: u32, elapsed: Duration) {
        self.stage = match self.stage {
            Stage::Settled { left } if left > rows => Stage::Settled { left: left - rows },
            Stage::Settled { .. } => Stage::Before(Window::default()),
            Stage::Before(mut window) => match window.add(rows, elapsed) {
                Some(before) => Stage::Trial {
                    before,
                    window: Window::default(),
                },
                None => Stage::Before(window),
            },
            Stage::Trial { before, mut window } => match window.add(rows, elapsed) {
                Some(trial) => Stage::After {
                    before,
                    trial,
                    window: Window::default(),
                },
                None => Stage::Trial { before, window },
            },
            Stage::After {
                before,
                trial,
                mut window,
            } => match window.add(rows, elapsed) {
                Some(after) => self.decide(before, trial, after),
                None => Stage::After {
                    before,
                    trial,
                    window,
                },
            },
        };
    }

    /// Keeps the chosen way or takes the other one, from the times per row of the windows
    /// before, during and after the trial (both around it: a cost that drifts, as while the
    /// network grows, cannot pass for a gain).
    fn decide(&mut self, before: f64, trial: f64, after: f64) -> Stage {
        if trial < MARGIN * before.min(after) {
            self.solo = !self.solo;
            self.interval = FIRST_INTERVAL;
        } else {
            self.interval = (self.interval * 2).min(LONGEST_INTERVAL);
        }
        Stage::Settled {
            left: self.interval,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `rows` rows of `work` one at a time, each taking `solo` or `pair` nanoseconds
    /// depending on how the pace runs it; returns how many ran solo.
    fn run(pace: &mut Pace, work: Work, rows: u32, solo: u64, pair: u64) -> u32 {
        let mut ran_solo = 0;
        for _ in 0..rows {
            let alone = pace.solo(work);
            ran_solo += u32::from(alone);
            let nanos = if alone { solo } else { pair };
            pace.record(work, 1, Duration::from_nanos(nanos));
        }
        ran_solo
    }

    #[test]
    fn a_pair_that_is_slower_than_one_thread_is_given_up() {
        let mut pace = Pace::default();
        assert!(!pace.solo(Work::Train), "both threads first");
        // The trial window runs solo and wins: from then on solo.
        run(
            &mut pace,
            Work::Train,
            FIRST_INTERVAL + 3 * WINDOW,
            16_500,
            28_000,
        );
        assert!(pace.solo(Work::Train));
        // The other kinds keep their own choice.
        assert!(!pace.solo(Work::Rows) && !pace.solo(Work::Request));
        // Long runs stay mostly solo: only the trial windows run with both threads.
        let with_pair = 100_000 - run(&mut pace, Work::Train, 100_000, 16_500, 28_000);
        // Comparisons end 2,816, 7,680 and 16,640 rows after the switch, then every 17,152
        // (interval, the row that starts the comparison and three windows): seven trials.
        assert_eq!(with_pair, 7 * WINDOW);
    }

    #[test]
    fn a_pair_that_pays_is_kept_and_tried_less_and_less_often() {
        let mut pace = Pace::default();
        let solo = run(&mut pace, Work::Rows, 200_000, 16_500, 13_000);
        assert!(!pace.solo(Work::Rows));
        // Trials after 2,048, 4,096, 8,192 rows, then every 16,384, each one window long:
        // comparisons end at rows 2,816, 7,680, 16,640, then every 17,152 (13 before
        // 200,000 rows).
        assert_eq!(solo, 13 * WINDOW);
    }

    #[test]
    fn differences_within_the_margin_change_nothing() {
        let mut pace = Pace::default();
        let solo = run(&mut pace, Work::Request, 50_000, 10_000, 10_800);
        assert!(!pace.solo(Work::Request));
        assert!(solo <= 5 * WINDOW, "{solo}");
    }

    #[test]
    fn the_windows_around_the_trial_allow_for_drift() {
        // Rows get faster steadily; the trial runs solo at the pair's drifting speed plus
        // 2 %, which a comparison with the window before the trial alone would favour.
        let mut pace = Pace::default();
        let mut nanos = 10_000.0f64;
        for _ in 0..FIRST_INTERVAL + 3 * WINDOW {
            let cost = if pace.solo(Work::Train) {
                nanos * 1.02
            } else {
                nanos
            };
            pace.record(Work::Train, 1, Duration::from_nanos(cost as u64));
            nanos *= 0.999;
        }
        assert!(!pace.solo(Work::Train));
    }
}
