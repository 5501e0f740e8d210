//! Time in the stand-in: a simulated clock that lets recurrences pass faster than real time, the occurrences of a
//! recurrence, and how long an object has been in its current phase (for transition delays).
//!
//! Everything written to a status (`completionTimestamp`, `lastTransfer`, `lastScheduleTime`) is real wall-clock
//! time. Only the spacing of recurrences is simulated: with a time scale of 60, an occurrence every 5 minutes comes
//! every 5 real seconds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tprotect_policy::recurrence::{Problem, RecurrenceRule};

/// Simulated time, running `scale` times faster than real time from `epoch` (when the stand-in started). At scale 1
/// simulated time is real time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimClock {
    epoch_ms: i64,
    scale: f64,
}

impl SimClock {
    /// A clock starting at `epoch`; a scale that is not a positive finite number means real time.
    pub fn new(epoch: Timestamp, scale: f64) -> Self {
        let scale = if scale.is_finite() && scale > 0.0 {
            scale
        } else {
            1.0
        };
        Self {
            epoch_ms: epoch.as_millisecond(),
            scale,
        }
    }

    /// How many times faster than real time this clock runs.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// The simulated time at real time `real`.
    pub fn to_sim(&self, real: Timestamp) -> Timestamp {
        let elapsed = (real.as_millisecond() - self.epoch_ms) as f64 * self.scale;
        millis(self.epoch_ms.saturating_add(elapsed as i64))
    }

    /// The real time at which simulated time reaches `sim`.
    pub fn to_real(&self, sim: Timestamp) -> Timestamp {
        let elapsed = (sim.as_millisecond() - self.epoch_ms) as f64 / self.scale;
        millis(self.epoch_ms.saturating_add(elapsed.ceil() as i64))
    }

    /// A simulated span as real time.
    pub fn real_span(&self, simulated: Duration) -> Duration {
        simulated.div_f64(self.scale)
    }
}

fn millis(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 { Timestamp::MIN } else { Timestamp::MAX })
}

/// Occurrences at `dtstart + k × period` (k ≥ 0), in simulated time.
///
/// A recurrence rule's BY* parts and the calendar irregularity of months are approximated by the nominal period:
/// the stand-in cares about "how often", not about which minute of which day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    dtstart_ms: i64,
    period_ms: i64,
}

impl Cadence {
    /// `None` for a zero period.
    pub fn new(dtstart: Timestamp, period: Duration) -> Option<Self> {
        let period_ms = i64::try_from(period.as_millis()).ok().filter(|p| *p > 0)?;
        Some(Self {
            dtstart_ms: dtstart.as_millisecond(),
            period_ms,
        })
    }

    /// The cadence of a `spec.recurrenceRule` (an AMR's or a Schedule's): its DTSTART and `INTERVAL × FREQ`, or
    /// what is wrong with the rule, naming the field.
    pub fn from_recurrence_rule(text: &str) -> Result<Self, String> {
        let rule = RecurrenceRule::parse(text)
            .map_err(|problems| format!("spec.recurrenceRule: {}", Problem::join(&problems)))?;
        Self::new(rule.dtstart(), rule.interval())
            .ok_or_else(|| "spec.recurrenceRule has a zero interval".to_string())
    }

    /// The nominal time between two occurrences.
    pub fn period(&self) -> Duration {
        Duration::from_millis(self.period_ms.unsigned_abs())
    }

    /// Index of the latest occurrence at or before `at`; negative before DTSTART (no occurrence yet).
    pub fn index_at(&self, at: Timestamp) -> i64 {
        (at.as_millisecond() - self.dtstart_ms).div_euclid(self.period_ms)
    }

    /// The time of occurrence `index`.
    pub fn occurrence(&self, index: i64) -> Timestamp {
        millis(
            self.dtstart_ms
                .saturating_add(index.saturating_mul(self.period_ms)),
        )
    }
}

/// Where a recurring job (a Schedule's snapshots, an AMR's transfers) stands at real time `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// Index of the occurrence at or before now.
    pub current: i64,
    /// Whether that occurrence has come since the last one run (and is a real occurrence, at or after DTSTART).
    pub due: bool,
    /// Real time until the next occurrence.
    pub wake_in: Duration,
}

/// Where a recurring job stands. `last_run` is the index of the last occurrence run (the stand-in takes the current
/// index as its baseline when it first sees a job, so a job never runs for an occurrence before it was seen).
pub fn tick(cadence: &Cadence, clock: &SimClock, last_run: i64, now: Timestamp) -> Tick {
    let current = cadence.index_at(clock.to_sim(now));
    // The first occurrence is DTSTART itself.
    let next_real = clock.to_real(cadence.occurrence(current.saturating_add(1).max(0)));
    let wake_in = next_real
        .duration_since(now)
        .try_into()
        .unwrap_or(Duration::ZERO)
        .max(Duration::from_millis(10));
    Tick {
        current,
        due: current > last_run && current >= 0,
        wake_in,
    }
}

/// How long each object has been in its current phase, as the stand-in observed it. A phase is any string that
/// changes when the object moves on (e.g. `"Establishing/Established"`: state and desired state). Forgotten on
/// restart: after one, every delay starts again.
#[derive(Debug, Default)]
pub struct PhaseClock {
    entered: Mutex<HashMap<String, (String, Instant)>>,
}

impl PhaseClock {
    /// Time since `key` was first seen in `phase` (zero when this call is the first sight).
    pub fn in_phase_for(&self, key: &str, phase: &str) -> Duration {
        let mut entered = self.entered.lock().unwrap_or_else(|e| e.into_inner());
        match entered.get(key) {
            Some((seen, since)) if seen == phase => since.elapsed(),
            _ => {
                entered.insert(key.to_string(), (phase.to_string(), Instant::now()));
                Duration::ZERO
            }
        }
    }

    /// Forgets `key` (the object is gone).
    pub fn forget(&self, key: &str) {
        self.entered.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn sim_clock_runs_scaled_from_its_epoch_and_back() {
        let epoch = ts("2025-01-01T00:00:00Z");
        let clock = SimClock::new(epoch, 60.0);
        assert_eq!(clock.to_sim(epoch), epoch);
        assert_eq!(
            clock.to_sim(ts("2025-01-01T00:00:05Z")),
            ts("2025-01-01T00:05:00Z")
        );
        assert_eq!(
            clock.to_real(ts("2025-01-01T00:05:00Z")),
            ts("2025-01-01T00:00:05Z")
        );
        assert_eq!(clock.real_span(Duration::from_secs(300)), Duration::from_secs(5));
        for bad in [0.0, -2.0, f64::NAN, f64::INFINITY] {
            assert_eq!(SimClock::new(epoch, bad).scale(), 1.0, "{bad}");
        }
        let real = SimClock::new(epoch, 1.0);
        assert_eq!(
            real.to_sim(ts("2030-06-01T12:00:00Z")),
            ts("2030-06-01T12:00:00Z")
        );
    }

    #[test]
    fn cadence_indexes_occurrences_from_dtstart() {
        let cadence = Cadence::new(ts("2022-01-01T00:02:00Z"), Duration::from_secs(300)).unwrap();
        assert_eq!(cadence.index_at(ts("2022-01-01T00:02:00Z")), 0);
        assert_eq!(cadence.index_at(ts("2022-01-01T00:06:59Z")), 0);
        assert_eq!(cadence.index_at(ts("2022-01-01T00:07:00Z")), 1);
        assert_eq!(cadence.index_at(ts("2022-01-01T00:01:59Z")), -1, "before DTSTART");
        assert_eq!(cadence.occurrence(2), ts("2022-01-01T00:12:00Z"));
        assert!(Cadence::new(ts("2022-01-01T00:00:00Z"), Duration::ZERO).is_none());
    }

    #[test]
    fn cadence_from_a_recurrence_rule() {
        let cadence =
            Cadence::from_recurrence_rule("DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=5")
                .unwrap();
        assert_eq!(cadence.period(), Duration::from_secs(300));
        assert_eq!(cadence.occurrence(0), ts("2022-01-01T00:02:00Z"));
        let problem = Cadence::from_recurrence_rule("RRULE:FREQ=MINUTELY").unwrap_err();
        assert!(
            problem.starts_with("spec.recurrenceRule: ") && problem.contains("DTSTART"),
            "{problem}"
        );
    }

    #[test]
    fn a_five_minute_recurrence_passes_in_five_seconds_at_scale_sixty() {
        let epoch = ts("2025-01-01T00:00:00Z");
        let clock = SimClock::new(epoch, 60.0);
        let cadence = Cadence::new(ts("2022-01-01T00:00:00Z"), Duration::from_secs(300)).unwrap();
        let first = tick(&cadence, &clock, i64::MIN, epoch);
        let baseline = first.current;
        assert_eq!(
            first.wake_in,
            Duration::from_secs(5),
            "the epoch sits on an occurrence"
        );
        let later = tick(&cadence, &clock, baseline, ts("2025-01-01T00:00:04Z"));
        assert!(!later.due);
        assert_eq!(later.wake_in, Duration::from_secs(1));
        let due = tick(&cadence, &clock, baseline, ts("2025-01-01T00:00:05Z"));
        assert!(due.due);
        assert_eq!(due.current, baseline + 1);
        assert!(!tick(&cadence, &clock, due.current, ts("2025-01-01T00:00:06Z")).due);
    }

    #[test]
    fn nothing_is_due_before_dtstart() {
        let now = ts("2025-01-01T00:00:00Z");
        let clock = SimClock::new(now, 1.0);
        let cadence = Cadence::new(ts("2026-01-01T00:00:00Z"), Duration::from_secs(60)).unwrap();
        let t = tick(&cadence, &clock, -5, now);
        assert!(!t.due);
        assert!(
            t.wake_in > Duration::from_secs(3600),
            "waits for DTSTART: {:?}",
            t.wake_in
        );
    }

    #[test]
    fn phase_clock_restarts_when_the_phase_changes() {
        let phases = PhaseClock::default();
        assert_eq!(phases.in_phase_for("a", "Running"), Duration::ZERO);
        std::thread::sleep(Duration::from_millis(5));
        assert!(phases.in_phase_for("a", "Running") >= Duration::from_millis(5));
        assert_eq!(phases.in_phase_for("a", "Completed"), Duration::ZERO);
        assert_eq!(
            phases.in_phase_for("b", "Running"),
            Duration::ZERO,
            "keys are separate"
        );
        phases.forget("a");
        assert_eq!(phases.in_phase_for("a", "Completed"), Duration::ZERO);
    }
}
