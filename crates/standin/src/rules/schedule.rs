//! Schedule: an enabled Schedule creates a Snapshot at each occurrence and prunes its Snapshots to
//! `snapshotRetention`, oldest first. Backups (`backupRetention`) are not played: replication schedules keep none.

use std::time::Duration;

use jiff::Timestamp;
use tprotect_api::{Granularity, ScheduleSpec};

use crate::clock::{Cadence, Tick};

const HOUR: u64 = 3_600;
const DAY: u64 = 24 * HOUR;

/// When a Schedule runs. `Custom` follows its recurrence rule; the other granularities are approximated by their
/// period (Monthly as 30 days) anchored at their `minute`, `hour` and `dayOfWeek`/`dayOfMonth`.
pub fn cadence(spec: &ScheduleSpec) -> Result<Cadence, String> {
    let field = |value: &Option<String>, name: &str, max: i64| -> Result<i64, String> {
        let Some(text) = value.as_deref().filter(|t| !t.is_empty()) else {
            return Ok(0);
        };
        text.parse::<i64>()
            .ok()
            .filter(|v| (0..=max).contains(v))
            .ok_or_else(|| format!("spec.{name} {text:?} is not a number from 0 to {max}"))
    };
    let granularity = spec
        .granularity
        .ok_or_else(|| "spec.granularity is not set".to_string())?;
    if granularity == Granularity::Custom {
        let text = spec
            .recurrence_rule
            .as_deref()
            .ok_or_else(|| "spec.recurrenceRule is required with granularity Custom".to_string())?;
        return Cadence::from_recurrence_rule(text);
    }
    let minute = field(&spec.minute, "minute", 59)?;
    let hour = field(&spec.hour, "hour", 23)?;
    let (offset_days, period) = match granularity {
        Granularity::Hourly => (0, HOUR),
        Granularity::Daily => (0, DAY),
        // 1970-01-01 was a Thursday (day 4); dayOfWeek 0 and 7 are Sunday.
        Granularity::Weekly => (
            (field(&spec.day_of_week, "dayOfWeek", 7)? % 7 - 4).rem_euclid(7),
            7 * DAY,
        ),
        Granularity::Monthly => {
            let day = spec
                .day_of_month
                .as_deref()
                .filter(|d| *d != "-1")
                .map_or(Ok(1), |d| {
                    d.parse::<i64>()
                        .ok()
                        .filter(|v| (1..=31).contains(v))
                        .ok_or_else(|| format!("spec.dayOfMonth {d:?} is not 1 to 31 or -1"))
                })?;
            (day - 1, 30 * DAY)
        }
        Granularity::Custom => unreachable!("handled above"),
    };
    let hour = if granularity == Granularity::Hourly {
        0
    } else {
        hour
    };
    let anchor = Timestamp::from_second(offset_days * DAY as i64 + hour * HOUR as i64 + minute * 60)
        .map_err(|e| e.to_string())?;
    Cadence::new(anchor, Duration::from_secs(period)).ok_or_else(|| "zero period".to_string())
}

/// `spec.snapshotRetention` as a count.
pub fn retention(spec: &ScheduleSpec) -> Result<usize, String> {
    let text = spec
        .snapshot_retention
        .as_deref()
        .ok_or_else(|| "spec.snapshotRetention is not set".to_string())?;
    text.parse()
        .map_err(|_| format!("spec.snapshotRetention {text:?} is not a whole number"))
}

/// `<schedule>-<yyyymmddhhmmss>` of the occurrence (in simulated time, which is real time at scale 1): unique per
/// occurrence, so creating it again after a restart is harmless, and sortable.
pub fn snapshot_name(schedule: &str, occurrence: Timestamp) -> String {
    format!("{schedule}-{}", occurrence.strftime("%Y%m%d%H%M%S"))
}

/// The snapshots to delete to keep `retention`, oldest first. `existing` is `(creation time, name)` of the
/// Schedule's Snapshots, in any order; ties on time are broken by name (which carries the occurrence).
pub fn to_prune(existing: &[(Timestamp, String)], retention: usize) -> Vec<String> {
    let mut sorted: Vec<&(Timestamp, String)> = existing.iter().collect();
    sorted.sort();
    let excess = sorted.len().saturating_sub(retention);
    sorted
        .into_iter()
        .take(excess)
        .map(|(_, name)| name.clone())
        .collect()
}

/// What to do with a Schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Disabled, or keeping no snapshots: nothing to do until it changes.
    Idle,
    /// The spec cannot be run: write `status.error`.
    Invalid(String),
    /// Create the Snapshot for occurrence `index`, prune, and record the run.
    Run { index: i64 },
    /// Nothing due; look again after this long.
    Wait(Duration),
}

/// Decides what a Schedule does at a tick of its cadence.
pub fn decide(
    enabled: bool,
    cadence: Result<Cadence, String>,
    retention: Result<usize, String>,
    tick: impl FnOnce(&Cadence) -> Tick,
) -> Step {
    if !enabled {
        return Step::Idle;
    }
    let (cadence, retention) = match (cadence, retention) {
        (Ok(c), Ok(r)) => (c, r),
        (Err(e), _) | (_, Err(e)) => return Step::Invalid(e),
    };
    if retention == 0 {
        return Step::Idle;
    }
    let tick = tick(&cadence);
    if tick.due {
        Step::Run { index: tick.current }
    } else {
        Step::Wait(tick.wake_in)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(granularity: Granularity) -> ScheduleSpec {
        ScheduleSpec {
            application_ref: Some("my-app".into()),
            app_vault_ref: Some("vault".into()),
            granularity: Some(granularity),
            backup_retention: Some("0".into()),
            snapshot_retention: Some("2".into()),
            ..Default::default()
        }
    }

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn period(s: &ScheduleSpec) -> Duration {
        cadence(s).unwrap().period()
    }

    /// The occurrence of `s`'s cadence that is the latest one at `at`.
    fn occurrence_at(s: &ScheduleSpec, at: &str) -> Timestamp {
        let c = cadence(s).unwrap();
        c.occurrence(c.index_at(ts(at)))
    }

    #[test]
    fn custom_schedules_follow_their_recurrence_rule() {
        let mut s = spec(Granularity::Custom);
        s.recurrence_rule = Some("DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=5".into());
        assert_eq!(period(&s), Duration::from_secs(300));
        assert_eq!(cadence(&s).unwrap().occurrence(0), ts("2022-01-01T00:02:00Z"));
        s.recurrence_rule = Some("RRULE:FREQ=MINUTELY".into());
        assert!(cadence(&s).unwrap_err().contains("DTSTART"), "{:?}", cadence(&s));
        s.recurrence_rule = None;
        assert!(cadence(&s).unwrap_err().contains("recurrenceRule is required"));
    }

    #[test]
    fn other_granularities_are_approximated_by_their_period() {
        let mut hourly = spec(Granularity::Hourly);
        hourly.minute = Some("15".into());
        assert_eq!(period(&hourly), Duration::from_secs(3600));
        assert_eq!(
            occurrence_at(&hourly, "2025-03-03T10:20:00Z"),
            ts("2025-03-03T10:15:00Z")
        );

        let mut daily = spec(Granularity::Daily);
        daily.hour = Some("2".into());
        daily.minute = Some("30".into());
        assert_eq!(
            occurrence_at(&daily, "2025-03-03T10:20:00Z"),
            ts("2025-03-03T02:30:00Z")
        );

        let mut weekly = spec(Granularity::Weekly);
        weekly.day_of_week = Some("1".into()); // Monday
        // 2025-03-05 is a Wednesday; the Monday before is 2025-03-03.
        assert_eq!(
            occurrence_at(&weekly, "2025-03-05T10:00:00Z"),
            ts("2025-03-03T00:00:00Z")
        );

        assert_eq!(
            period(&spec(Granularity::Monthly)),
            Duration::from_secs(30 * 86_400)
        );

        let mut bad = spec(Granularity::Daily);
        bad.hour = Some("25".into());
        assert_eq!(
            cadence(&bad).unwrap_err(),
            "spec.hour \"25\" is not a number from 0 to 23"
        );
    }

    #[test]
    fn names_retention_and_pruning() {
        assert_eq!(
            snapshot_name("appmirror-schedule-1", ts("2025-01-07T12:25:00Z")),
            "appmirror-schedule-1-20250107122500"
        );
        assert_eq!(retention(&spec(Granularity::Hourly)), Ok(2));
        let mut s = spec(Granularity::Hourly);
        s.snapshot_retention = Some("two".into());
        assert!(retention(&s).is_err());

        let t = ts("2025-01-01T00:00:00Z");
        let existing = vec![
            (ts("2025-01-01T00:00:02Z"), "s-3".to_string()),
            (t, "s-2".to_string()),
            (t, "s-1".to_string()),
            (ts("2025-01-01T00:00:03Z"), "s-4".to_string()),
        ];
        assert_eq!(to_prune(&existing, 2), ["s-1", "s-2"]);
        assert!(to_prune(&existing, 4).is_empty());
        assert_eq!(to_prune(&existing, 0).len(), 4);
    }

    #[test]
    fn decisions() {
        let c = Cadence::new(ts("2022-01-01T00:00:00Z"), Duration::from_secs(300)).unwrap();
        let due = |_: &Cadence| Tick {
            current: 7,
            due: true,
            wake_in: Duration::from_secs(5),
        };
        let not_due = |_: &Cadence| Tick {
            current: 7,
            due: false,
            wake_in: Duration::from_secs(3),
        };
        assert_eq!(decide(true, Ok(c), Ok(2), due), Step::Run { index: 7 });
        assert_eq!(
            decide(true, Ok(c), Ok(2), not_due),
            Step::Wait(Duration::from_secs(3))
        );
        assert_eq!(decide(false, Ok(c), Ok(2), due), Step::Idle, "disabled");
        assert_eq!(
            decide(true, Ok(c), Ok(0), due),
            Step::Idle,
            "retention 0 keeps none"
        );
        assert_eq!(
            decide(true, Err("bad rule".into()), Ok(2), due),
            Step::Invalid("bad rule".into())
        );
    }
}
