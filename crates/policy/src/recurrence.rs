//! RFC 5545 recurrence rules as Trident protect takes them: two lines, a UTC `DTSTART` and an `RRULE`, e.g.
//!
//! ```text
//! DTSTART:20220101T000200Z
//! RRULE:FREQ=MINUTELY;INTERVAL=5
//! ```
//!
//! [`RecurrenceRule::parse`] checks the syntax every context shares; [`check_amr`], [`check_schedule`] and
//! [`check_replication_schedule`] add the rules of the field the text sits in (the CRD descriptions of
//! `AppMirrorRelationship.spec.recurrenceRule` and `Schedule.spec.recurrenceRule`, and seed 003 for replication
//! schedules). Nothing here reads the clock: `now` is a parameter.
//!
//! Strictness, deliberately: rule part names and values must be upper case as RFC 5545 writes them. Whether
//! Trident protect's parser accepts lower case is unverified; refusing it costs the user one edit, accepting
//! it could leave a relationship that never transfers.

use std::{fmt, str::FromStr, time::Duration};

use jiff::{Timestamp, civil::DateTime, tz::TimeZone};

use crate::PolicyError;

/// One thing wrong with a recurrence rule, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub rule: String,
    pub fix: String,
}

impl Problem {
    fn new(rule: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            rule: rule.into(),
            fix: fix.into(),
        }
    }

    /// The problems, each as [`Display`](fmt::Display) shows it, joined with `; `.
    pub fn join(problems: &[Problem]) -> String {
        let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
        texts.join("; ")
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}. Fix: {}", self.rule, self.fix)
    }
}

/// The RFC 5545 `FREQ` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Frequency {
    Secondly,
    Minutely,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Frequency {
    pub const ALL: [Frequency; 7] = [
        Self::Secondly,
        Self::Minutely,
        Self::Hourly,
        Self::Daily,
        Self::Weekly,
        Self::Monthly,
        Self::Yearly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secondly => "SECONDLY",
            Self::Minutely => "MINUTELY",
            Self::Hourly => "HOURLY",
            Self::Daily => "DAILY",
            Self::Weekly => "WEEKLY",
            Self::Monthly => "MONTHLY",
            Self::Yearly => "YEARLY",
        }
    }

    /// The nominal length of one period. Months count as 30 days and years as 365: this is a period for RPO
    /// arithmetic, not a calendar.
    pub fn period(self) -> Duration {
        Duration::from_secs(match self {
            Self::Secondly => 1,
            Self::Minutely => 60,
            Self::Hourly => 3_600,
            Self::Daily => 86_400,
            Self::Weekly => 7 * 86_400,
            Self::Monthly => 30 * 86_400,
            Self::Yearly => 365 * 86_400,
        })
    }

    /// Whether every period has the same length (so occurrences are `DTSTART + k × interval`).
    fn is_fixed(self) -> bool {
        self <= Self::Weekly
    }
}

impl fmt::Display for Frequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 5545 rule part names (section 3.3.10). Anything else is not a rule part at all.
const RFC_PARTS: [&str; 14] = [
    "FREQ",
    "UNTIL",
    "COUNT",
    "INTERVAL",
    "BYSECOND",
    "BYMINUTE",
    "BYHOUR",
    "BYDAY",
    "BYMONTHDAY",
    "BYYEARDAY",
    "BYWEEKNO",
    "BYMONTH",
    "BYSETPOS",
    "WKST",
];

/// Rule parts `Schedule.spec.recurrenceRule` supports (CRD description).
const SCHEDULE_PARTS: [&str; 6] = ["FREQ", "INTERVAL", "BYMINUTE", "BYHOUR", "BYDAY", "BYMONTHDAY"];
/// Rule parts `AppMirrorRelationship.spec.recurrenceRule` supports (CRD description).
const AMR_PARTS: [&str; 2] = ["FREQ", "INTERVAL"];

/// The smallest `INTERVAL` a `FREQ=MINUTELY` Schedule accepts.
pub const MIN_MINUTELY_INTERVAL: u32 = 5;

/// A parsed recurrence rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecurrenceRule {
    dtstart: Timestamp,
    frequency: Frequency,
    interval: u32,
    interval_given: bool,
    /// Rule parts other than FREQ and INTERVAL, in the order written, values as written.
    other_parts: Vec<(String, String)>,
}

impl RecurrenceRule {
    /// A rule of only FREQ and INTERVAL, as the plugin writes them.
    pub fn every(dtstart: Timestamp, frequency: Frequency, interval: u32) -> Self {
        Self {
            dtstart,
            frequency,
            interval: interval.max(1),
            interval_given: true,
            other_parts: Vec::new(),
        }
    }

    pub fn dtstart(&self) -> Timestamp {
        self.dtstart
    }

    pub fn frequency(&self) -> Frequency {
        self.frequency
    }

    /// The `INTERVAL` count (1 when not written, as RFC 5545 says).
    pub fn interval_count(&self) -> u32 {
        self.interval
    }

    /// Rule parts other than FREQ and INTERVAL (BYMINUTE, …), as written.
    pub fn other_parts(&self) -> &[(String, String)] {
        &self.other_parts
    }

    /// The nominal time between two occurrences: `INTERVAL` periods of `FREQ`. BY* parts can make real
    /// occurrences irregular; this is the figure to hold an RPO against.
    pub fn interval(&self) -> Duration {
        self.frequency.period().saturating_mul(self.interval)
    }

    /// The last occurrence at or before `at`, for rules whose occurrences are exactly `DTSTART + k × interval`
    /// (a fixed-length FREQ and no BY* parts). `None` before DTSTART or for other rules.
    pub fn latest_at_or_before(&self, at: Timestamp) -> Option<Timestamp> {
        let step = self.fixed_step_seconds()?;
        let elapsed = at.as_second().checked_sub(self.dtstart.as_second())?;
        if elapsed < 0 {
            return None;
        }
        let k = elapsed / step;
        Timestamp::from_second(self.dtstart.as_second() + k * step).ok()
    }

    /// The first occurrence strictly after `at` (DTSTART itself when `at` is before it), for the same rules as
    /// [`Self::latest_at_or_before`].
    pub fn next_after(&self, at: Timestamp) -> Option<Timestamp> {
        let step = self.fixed_step_seconds()?;
        if at < self.dtstart {
            return Some(self.dtstart);
        }
        let latest = self.latest_at_or_before(at)?;
        Timestamp::from_second(latest.as_second().checked_add(step)?).ok()
    }

    fn fixed_step_seconds(&self) -> Option<i64> {
        if !self.frequency.is_fixed() || !self.other_parts.is_empty() {
            return None;
        }
        i64::try_from(self.interval().as_secs()).ok().filter(|s| *s > 0)
    }

    /// Parses the syntax shared by every context. Every problem found is returned, not only the first.
    pub fn parse(text: &str) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        if text.contains("\\n") && !text.contains('\n') {
            problems.push(Problem::new(
                "contains a literal backslash-n instead of a line break between DTSTART and RRULE",
                "write the rule as a YAML block (recurrenceRule: |-) with DTSTART and RRULE on their own lines, \
                 or in double quotes so that \\n becomes a line break",
            ));
            return Err(problems);
        }
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let mut dtstart_line = None;
        let mut rrule_line = None;
        for line in &lines {
            let (name, _) = line.split_once([':', ';']).unwrap_or((line, ""));
            match name {
                "DTSTART" if dtstart_line.is_none() => dtstart_line = Some(*line),
                "RRULE" if rrule_line.is_none() => rrule_line = Some(*line),
                "DTSTART" | "RRULE" => problems.push(Problem::new(
                    format!("has more than one {name} line"),
                    "keep exactly one DTSTART line and one RRULE line",
                )),
                other if other.eq_ignore_ascii_case("DTSTART") || other.eq_ignore_ascii_case("RRULE") => {
                    problems.push(Problem::new(
                        format!("line name {} must be upper case", crate::report::quote(other)),
                        format!("write {}", other.to_ascii_uppercase()),
                    ))
                }
                _ => problems.push(Problem::new(
                    format!(
                        "has a line that is neither DTSTART nor RRULE: {}",
                        crate::report::quote(&truncate(line, 60))
                    ),
                    "keep exactly two lines, e.g. DTSTART:20220101T000200Z and RRULE:FREQ=MINUTELY;INTERVAL=5",
                )),
            }
        }
        if dtstart_line.is_none() {
            problems.push(Problem::new(
                "has no DTSTART line",
                "start the rule with a UTC start time such as DTSTART:20220101T000200Z",
            ));
        }
        let dtstart = dtstart_line.and_then(|line| parse_dtstart(line, &mut problems));
        if rrule_line.is_none() {
            problems.push(Problem::new(
                "has no RRULE line",
                "add a second line such as RRULE:FREQ=MINUTELY;INTERVAL=5",
            ));
        }
        let rrule = rrule_line.and_then(|line| parse_rrule(line, &mut problems));
        match (dtstart, rrule, problems.is_empty()) {
            (Some(dtstart), Some((frequency, interval, interval_given, other_parts)), true) => Ok(Self {
                dtstart,
                frequency,
                interval,
                interval_given,
                other_parts,
            }),
            _ => Err(problems),
        }
    }
}

impl fmt::Display for RecurrenceRule {
    /// The two-line form, which [`RecurrenceRule::parse`] reads back to an equal rule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DTSTART:{}\nRRULE:FREQ={}",
            format_dtstart(self.dtstart),
            self.frequency
        )?;
        if self.interval_given {
            write!(f, ";INTERVAL={}", self.interval)?;
        }
        for (name, value) in &self.other_parts {
            write!(f, ";{name}={value}")?;
        }
        Ok(())
    }
}

impl FromStr for RecurrenceRule {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).map_err(|problems| PolicyError::RecurrenceRule(Problem::join(&problems)))
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_string()
    } else {
        s.chars().take(max_chars).collect::<String>() + "…"
    }
}

/// `DTSTART` in the form Trident protect takes: `YYYYMMDDTHHMMSSZ`.
pub fn format_dtstart(t: Timestamp) -> String {
    t.to_zoned(TimeZone::UTC).strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// An example rule starting at `now` rounded down to the minute, for fix hints.
pub fn example(now: Timestamp, frequency: Frequency, interval: u32) -> String {
    let start = Timestamp::from_second(now.as_second() - now.as_second().rem_euclid(60)).unwrap_or(now);
    RecurrenceRule::every(start, frequency, interval).to_string()
}

/// A fix hint setting `spec.recurrenceRule` to [`example`] every 5 minutes, on one line: a YAML double-quoted
/// string in which `\n` is the line break.
pub(crate) fn example_fix(now: Timestamp) -> String {
    format!(
        "set spec.recurrenceRule: \"{}\"",
        example(now, Frequency::Minutely, 5).replace('\n', "\\n")
    )
}

fn parse_dtstart(line: &str, problems: &mut Vec<Problem>) -> Option<Timestamp> {
    let rest = &line["DTSTART".len()..];
    let Some((params, value)) = rest.split_once(':') else {
        problems.push(Problem::new(
            "DTSTART has no ':' before its value",
            "write DTSTART:20220101T000200Z (UTC, ending in Z)",
        ));
        return None;
    };
    let value = value.trim();
    if !params.is_empty() {
        problems.push(Problem::new(
            format!(
                "DTSTART must be a plain UTC time; parameters such as {} are not supported",
                crate::report::quote(params.trim_start_matches(';'))
            ),
            "drop the parameters and give the time in UTC ending in Z, e.g. DTSTART:20220101T000200Z",
        ));
        return None;
    }
    let Some(digits) = value.strip_suffix('Z') else {
        let fix = if value.len() == 15 {
            format!("convert the time to UTC and end it with Z: DTSTART:{value}Z if it already is UTC")
        } else {
            "give the start as UTC date and time ending in Z, e.g. DTSTART:20220101T000200Z".to_string()
        };
        problems.push(Problem::new(
            format!(
                "DTSTART must be in UTC (end with Z), got {}",
                crate::report::quote(&truncate(value, 40))
            ),
            fix,
        ));
        return None;
    };
    let parsed = (digits.len() == 15 && digits.as_bytes()[8] == b'T')
        .then(|| DateTime::strptime("%Y%m%dT%H%M%S", digits).ok())
        .flatten()
        .filter(|_| {
            digits
                .bytes()
                .enumerate()
                .all(|(i, b)| i == 8 || b.is_ascii_digit())
        })
        .and_then(|dt| dt.to_zoned(TimeZone::UTC).ok())
        .map(|z| z.timestamp());
    if parsed.is_none() {
        problems.push(Problem::new(
            format!(
                "DTSTART must be a real date and time written YYYYMMDDTHHMMSSZ, got {}",
                crate::report::quote(&truncate(value, 40))
            ),
            "e.g. DTSTART:20220101T000200Z",
        ));
    }
    parsed
}

type Rrule = (Frequency, u32, bool, Vec<(String, String)>);

fn parse_rrule(line: &str, problems: &mut Vec<Problem>) -> Option<Rrule> {
    let before = problems.len();
    let Some(body) = line.strip_prefix("RRULE:") else {
        problems.push(Problem::new(
            "RRULE must be written RRULE:<parts>, without parameters",
            "e.g. RRULE:FREQ=MINUTELY;INTERVAL=5",
        ));
        return None;
    };
    let mut frequency = None;
    let mut interval = None;
    let mut other_parts: Vec<(String, String)> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for part in body.split(';') {
        let Some((name, value)) = part.split_once('=') else {
            problems.push(Problem::new(
                format!(
                    "RRULE part {} is not NAME=VALUE",
                    crate::report::quote(&truncate(part, 40))
                ),
                "separate parts with ';' and write each as NAME=VALUE, e.g. FREQ=MINUTELY;INTERVAL=5",
            ));
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if !RFC_PARTS.contains(&name) {
            let upper = name.to_ascii_uppercase();
            let fix = if RFC_PARTS.contains(&upper.as_str()) {
                format!(
                    "write the part name in upper case: {upper}={}",
                    value.to_ascii_uppercase()
                )
            } else {
                "use only FREQ and INTERVAL (and where supported BYMINUTE, BYHOUR, BYDAY, BYMONTHDAY)"
                    .to_string()
            };
            problems.push(Problem::new(
                format!(
                    "RRULE part {} is not an RFC 5545 rule part",
                    crate::report::quote(&truncate(name, 40))
                ),
                fix,
            ));
            continue;
        }
        if seen.contains(&name) {
            problems.push(Problem::new(
                format!("RRULE has {name} more than once"),
                format!("keep a single {name}"),
            ));
            continue;
        }
        seen.push(name);
        match name {
            "FREQ" => match Frequency::ALL.iter().find(|f| f.as_str() == value) {
                Some(f) => frequency = Some(*f),
                None => {
                    let fix = match Frequency::ALL
                        .iter()
                        .find(|f| f.as_str().eq_ignore_ascii_case(value))
                    {
                        Some(f) => format!("write FREQ={f} (upper case)"),
                        None => "use FREQ=MINUTELY or FREQ=HOURLY".to_string(),
                    };
                    problems.push(Problem::new(
                        format!("FREQ={} is not an RFC 5545 frequency", truncate(value, 40)),
                        fix,
                    ));
                }
            },
            "INTERVAL" => match value.parse::<u32>() {
                Ok(n) if n >= 1 && value.bytes().all(|b| b.is_ascii_digit()) => interval = Some(n),
                _ => problems.push(Problem::new(
                    format!(
                        "INTERVAL must be a positive whole number, got {}",
                        crate::report::quote(value)
                    ),
                    "e.g. INTERVAL=5",
                )),
            },
            _ => other_parts.push((name.to_string(), value.to_string())),
        }
    }
    if frequency.is_none() && !seen.contains(&"FREQ") {
        problems.push(Problem::new(
            "RRULE has no FREQ",
            "add FREQ, e.g. RRULE:FREQ=MINUTELY;INTERVAL=5",
        ));
    }
    if problems.len() > before {
        return None;
    }
    Some((frequency?, interval.unwrap_or(1), interval.is_some(), other_parts))
}

/// [`RecurrenceRule::parse`], remembering the last rule parsed on this thread: the admission webhook reads the
/// same few rules again and again (every update of a relationship or a Schedule carries its rule unchanged),
/// and parsing one was a third of the rules' cost of an allowed review. Only rules that parse are kept.
fn parse_remembered(text: &str) -> Result<RecurrenceRule, Vec<Problem>> {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(String, RecurrenceRule)>> = const { std::cell::RefCell::new(None) };
    }
    if let Some(rule) = LAST.with_borrow(|last| {
        last.as_ref()
            .filter(|(last_text, _)| last_text == text)
            .map(|(_, rule)| rule.clone())
    }) {
        return Ok(rule);
    }
    let rule = RecurrenceRule::parse(text)?;
    LAST.with_borrow_mut(|last| *last = Some((text.to_string(), rule.clone())));
    Ok(rule)
}

/// Parses `text` (see [`parse_remembered`]) and runs `checks` on the rule: the problems they push, or the parse
/// problems of a rule that does not parse.
fn check_parsed(text: &str, checks: impl FnOnce(&RecurrenceRule, &mut Vec<Problem>)) -> Vec<Problem> {
    match parse_remembered(text) {
        Ok(rule) => {
            let mut problems = Vec::new();
            checks(&rule, &mut problems);
            problems
        }
        Err(problems) => problems,
    }
}

/// The frequencies a rule that drives SnapMirror transfers may have (an AMR's, a replication schedule's).
const REPLICATION_FREQUENCIES: [Frequency; 2] = [Frequency::Minutely, Frequency::Hourly];

/// The rules of `AppMirrorRelationship.spec.recurrenceRule`: DTSTART not in the future; only FREQ and
/// INTERVAL; FREQ MINUTELY or HOURLY.
pub fn check_amr(text: &str, now: Timestamp) -> Vec<Problem> {
    check_parsed(text, |rule, problems| {
        check_dtstart_not_future(rule, now, problems);
        check_parts(rule, &AMR_PARTS, "an AppMirrorRelationship", problems);
        check_frequency(
            rule,
            &REPLICATION_FREQUENCIES,
            "an AppMirrorRelationship",
            problems,
        );
    })
}

/// The rules of `Schedule.spec.recurrenceRule`: DTSTART not in the future; FREQ, INTERVAL, BYMINUTE, BYHOUR,
/// BYDAY, BYMONTHDAY only; FREQ MINUTELY to MONTHLY; MINUTELY needs an INTERVAL of at least 5.
pub fn check_schedule(text: &str, now: Timestamp) -> Vec<Problem> {
    check_parsed(text, |rule, problems| schedule_checks(rule, now, problems))
}

/// [`check_schedule`], and FREQ must be MINUTELY (INTERVAL ≥ 5) or HOURLY: a replication schedule drives
/// SnapMirror transfers.
pub fn check_replication_schedule(text: &str, now: Timestamp) -> Vec<Problem> {
    check_parsed(text, |rule, problems| {
        schedule_checks(rule, now, problems);
        check_frequency(rule, &REPLICATION_FREQUENCIES, "a replication schedule", problems);
    })
}

fn schedule_checks(rule: &RecurrenceRule, now: Timestamp, problems: &mut Vec<Problem>) {
    check_dtstart_not_future(rule, now, problems);
    check_parts(rule, &SCHEDULE_PARTS, "a Schedule", problems);
    check_frequency(
        rule,
        &[
            Frequency::Minutely,
            Frequency::Hourly,
            Frequency::Daily,
            Frequency::Weekly,
            Frequency::Monthly,
        ],
        "a Schedule",
        problems,
    );
    if rule.frequency == Frequency::Minutely
        && (!rule.interval_given || rule.interval < MIN_MINUTELY_INTERVAL)
    {
        let got = if rule.interval_given {
            format!("INTERVAL={}", rule.interval)
        } else {
            "none".to_string()
        };
        problems.push(Problem::new(
            format!("FREQ=MINUTELY needs INTERVAL of at least {MIN_MINUTELY_INTERVAL}, got {got}"),
            format!("write RRULE:FREQ=MINUTELY;INTERVAL={MIN_MINUTELY_INTERVAL} (or more)"),
        ));
    }
    for (name, value) in &rule.other_parts {
        let ok = match name.as_str() {
            "BYMINUTE" => int_list(value, |n| (0..=59).contains(&n)),
            "BYHOUR" => int_list(value, |n| (0..=23).contains(&n)),
            "BYMONTHDAY" => int_list(value, |n| n != 0 && (-31..=31).contains(&n)),
            "BYDAY" => value.split(',').all(is_weekday),
            _ => true, // parts outside SCHEDULE_PARTS were reported above
        };
        if !ok {
            problems.push(Problem::new(
                format!("{name}={} is not a valid value list", truncate(value, 40)),
                match name.as_str() {
                    "BYMINUTE" => "use minutes 0-59, comma separated, e.g. BYMINUTE=0,30",
                    "BYHOUR" => "use hours 0-23, comma separated, e.g. BYHOUR=2",
                    "BYMONTHDAY" => "use days 1-31 or -1 for the last day, e.g. BYMONTHDAY=1",
                    _ => "use weekdays MO, TU, WE, TH, FR, SA, SU, comma separated, e.g. BYDAY=MO,FR",
                },
            ));
        }
    }
}

fn int_list(value: &str, in_range: impl Fn(i64) -> bool) -> bool {
    value.split(',').all(|item| {
        let digits = item.strip_prefix(['+', '-']).unwrap_or(item);
        !digits.is_empty()
            && digits.len() <= 3
            && digits.bytes().all(|b| b.is_ascii_digit())
            && item.parse::<i64>().is_ok_and(&in_range)
    })
}

/// `MO`, `-1FR`, `+2TU`.
fn is_weekday(item: &str) -> bool {
    let day_at = item.len().saturating_sub(2);
    let (ordinal, day) = item.split_at(if item.is_char_boundary(day_at) { day_at } else { 0 });
    let ordinal_ok = ordinal.is_empty() || int_list(ordinal, |n| n != 0 && (-53..=53).contains(&n));
    ordinal_ok && ["MO", "TU", "WE", "TH", "FR", "SA", "SU"].contains(&day)
}

fn check_dtstart_not_future(rule: &RecurrenceRule, now: Timestamp, problems: &mut Vec<Problem>) {
    if rule.dtstart > now {
        problems.push(Problem::new(
            format!(
                "DTSTART {} is in the future (now is {}); only past start times are supported",
                format_dtstart(rule.dtstart),
                format_dtstart(now)
            ),
            format!(
                "use a start time in the past, e.g. DTSTART:{}",
                format_dtstart(
                    Timestamp::from_second(now.as_second() - now.as_second().rem_euclid(60)).unwrap_or(now)
                )
            ),
        ));
    }
}

fn check_parts(rule: &RecurrenceRule, allowed: &[&str], context: &str, problems: &mut Vec<Problem>) {
    let unsupported: Vec<&str> = rule
        .other_parts
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !allowed.contains(n))
        .collect();
    if !unsupported.is_empty() {
        problems.push(Problem::new(
            format!(
                "{} not supported in {context}; only {} are",
                if unsupported.len() == 1 {
                    format!("rule part {} is", unsupported[0])
                } else {
                    format!("rule parts {} are", unsupported.join(", "))
                },
                allowed.join(", ")
            ),
            format!("remove {}", unsupported.join(", ")),
        ));
    }
}

fn check_frequency(rule: &RecurrenceRule, allowed: &[Frequency], context: &str, problems: &mut Vec<Problem>) {
    if !allowed.contains(&rule.frequency) {
        let names: Vec<&str> = allowed.iter().map(|f| f.as_str()).collect();
        problems.push(Problem::new(
            format!(
                "FREQ={} is not supported in {context}; use {}",
                rule.frequency,
                names.join(" or ")
            ),
            "e.g. RRULE:FREQ=MINUTELY;INTERVAL=5 or RRULE:FREQ=HOURLY",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2025-01-07T12:25:48Z".parse().unwrap()
    }

    #[test]
    fn parses_the_documented_example() {
        let rule: RecurrenceRule = "DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=5"
            .parse()
            .unwrap();
        assert_eq!(rule.frequency(), Frequency::Minutely);
        assert_eq!(rule.interval_count(), 5);
        assert_eq!(rule.interval(), Duration::from_secs(300));
        assert_eq!(
            rule.dtstart(),
            "2022-01-01T00:02:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            rule.to_string(),
            "DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=5"
        );
    }

    #[test]
    fn tolerates_crlf_blank_lines_and_either_line_order() {
        for text in [
            "DTSTART:20220101T000200Z\r\nRRULE:FREQ=HOURLY\r\n",
            "\n  DTSTART:20220101T000200Z\n\n  RRULE:FREQ=HOURLY\n",
            "RRULE:FREQ=HOURLY\nDTSTART:20220101T000200Z",
        ] {
            let rule = RecurrenceRule::parse(text).unwrap();
            assert_eq!(rule.interval(), Duration::from_secs(3600), "{text:?}");
            assert_eq!(rule.interval_count(), 1);
        }
    }

    #[test]
    fn interval_of_each_frequency() {
        let start = "2022-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(
            RecurrenceRule::every(start, Frequency::Hourly, 2).interval(),
            Duration::from_secs(7200)
        );
        assert_eq!(
            RecurrenceRule::every(start, Frequency::Daily, 1).interval(),
            Duration::from_secs(86_400)
        );
        assert_eq!(
            RecurrenceRule::every(start, Frequency::Minutely, 0).interval_count(),
            1
        );
    }

    /// (text, fragment of the one problem expected)
    const SYNTAX_ERRORS: &[(&str, &str)] = &[
        ("", "no DTSTART"),
        ("RRULE:FREQ=HOURLY", "no DTSTART"),
        ("DTSTART:20220101T000200Z", "no RRULE"),
        (
            "DTSTART:20220101T000200Z\\nRRULE:FREQ=HOURLY",
            "literal backslash-n",
        ),
        ("DTSTART:20220101T000200\nRRULE:FREQ=HOURLY", "must be in UTC"),
        (
            "DTSTART;TZID=Europe/Berlin:20220101T000200\nRRULE:FREQ=HOURLY",
            "parameters",
        ),
        ("DTSTART:20221301T000200Z\nRRULE:FREQ=HOURLY", "real date"),
        ("DTSTART:2022-01-01T00:02:00Z\nRRULE:FREQ=HOURLY", "real date"),
        ("DTSTART:20220101\nRRULE:FREQ=HOURLY", "must be in UTC"),
        (
            "DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=0",
            "positive whole number",
        ),
        (
            "DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=five",
            "positive whole number",
        ),
        (
            "DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=+5",
            "positive whole number",
        ),
        (
            "DTSTART:20220101T000200Z\nRRULE:FREQ=minutely;INTERVAL=5",
            "write FREQ=MINUTELY",
        ),
        (
            "DTSTART:20220101T000200Z\nRRULE:freq=MINUTELY;INTERVAL=5",
            "upper case",
        ),
        (
            "DTSTART:20220101T000200Z\nRRULE:FREQ=FORTNIGHTLY",
            "not an RFC 5545 frequency",
        ),
        ("DTSTART:20220101T000200Z\nRRULE:INTERVAL=5", "no FREQ"),
        (
            "DTSTART:20220101T000200Z\nRRULE:FREQ=HOURLY;FREQ=DAILY",
            "more than once",
        ),
        ("DTSTART:20220101T000200Z\nRRULE:FREQ=HOURLY;", "not NAME=VALUE"),
        (
            "DTSTART:20220101T000200Z\nRRULE:FREQ=HOURLY;SPEED=9",
            "not an RFC 5545 rule part",
        ),
        (
            "DTSTART:20220101T000200Z\nRRULE:FREQ=HOURLY\nEXDATE:20220102T000000Z",
            "neither DTSTART nor RRULE",
        ),
        (
            "DTSTART:20220101T000200Z\nDTSTART:20220101T000200Z\nRRULE:FREQ=HOURLY",
            "more than one DTSTART",
        ),
        (
            "dtstart:20220101T000200Z\nRRULE:FREQ=HOURLY",
            "must be upper case",
        ),
        (
            "DTSTART:20220101T000200Z\nRRULE;X=1:FREQ=HOURLY",
            "without parameters",
        ),
    ];

    #[test]
    fn syntax_errors_are_named() {
        for (text, fragment) in SYNTAX_ERRORS {
            let problems = RecurrenceRule::parse(text).expect_err(text);
            assert!(
                problems
                    .iter()
                    .any(|p| p.rule.contains(fragment) || p.fix.contains(fragment)),
                "{text:?}: expected {fragment:?} in {problems:?}"
            );
            let err = text.parse::<RecurrenceRule>().unwrap_err().to_string();
            assert!(err.contains("Fix:"), "{err}");
        }
    }

    /// (text, fragment expected, or "" for valid) per context.
    /// Each rule text gives no problem (an empty fragment) or a problem whose rule contains the fragment.
    fn assert_cases(check: fn(&str, Timestamp) -> Vec<Problem>, cases: &[(&str, &str)]) {
        for (text, fragment) in cases {
            let problems = check(text, now());
            if fragment.is_empty() {
                assert!(problems.is_empty(), "{text:?}: {problems:?}");
            } else {
                assert!(
                    problems.iter().any(|p| p.rule.contains(fragment)),
                    "{text:?}: {fragment:?} in {problems:?}"
                );
            }
        }
    }

    #[test]
    fn amr_rules() {
        let cases: &[(&str, &str)] = &[
            ("DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=5", ""),
            ("DTSTART:20220101T000200Z\nRRULE:FREQ=HOURLY", ""),
            ("DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=1", ""),
            ("DTSTART:20250107T122548Z\nRRULE:FREQ=HOURLY", ""),
            ("DTSTART:20250107T122549Z\nRRULE:FREQ=HOURLY", "in the future"),
            (
                "DTSTART:20220101T000200Z\nRRULE:FREQ=DAILY",
                "FREQ=DAILY is not supported in an AppMirror",
            ),
            (
                "DTSTART:20220101T000200Z\nRRULE:FREQ=HOURLY;BYMINUTE=5",
                "rule part BYMINUTE is not supported",
            ),
            ("DTSTART:20220101T000200Z\nRRULE:FREQ=HOURLY;COUNT=5", "COUNT"),
        ];
        assert_cases(check_amr, cases);
    }

    #[test]
    fn schedule_rules() {
        let cases: &[(&str, &str)] = &[
            ("DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=5", ""),
            (
                "DTSTART:20220101T000200Z\nRRULE:FREQ=DAILY;BYHOUR=2;BYMINUTE=0",
                "",
            ),
            ("DTSTART:20220101T000200Z\nRRULE:FREQ=WEEKLY;BYDAY=MO,-1FR", ""),
            ("DTSTART:20220101T000200Z\nRRULE:FREQ=MONTHLY;BYMONTHDAY=-1", ""),
            (
                "DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=4",
                "at least 5, got INTERVAL=4",
            ),
            (
                "DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY",
                "at least 5, got none",
            ),
            (
                "DTSTART:20220101T000200Z\nRRULE:FREQ=YEARLY",
                "FREQ=YEARLY is not supported in a Schedule",
            ),
            (
                "DTSTART:20220101T000200Z\nRRULE:FREQ=DAILY;BYHOUR=24",
                "BYHOUR=24",
            ),
            (
                "DTSTART:20220101T000200Z\nRRULE:FREQ=DAILY;BYMINUTE=60",
                "BYMINUTE=60",
            ),
            ("DTSTART:20220101T000200Z\nRRULE:FREQ=WEEKLY;BYDAY=XX", "BYDAY=XX"),
            (
                "DTSTART:20220101T000200Z\nRRULE:FREQ=MONTHLY;BYMONTHDAY=0",
                "BYMONTHDAY=0",
            ),
            (
                "DTSTART:20220101T000200Z\nRRULE:FREQ=HOURLY;BYMONTH=1",
                "BYMONTH is not supported",
            ),
            ("DTSTART:20300101T000000Z\nRRULE:FREQ=HOURLY", "in the future"),
        ];
        assert_cases(check_schedule, cases);
    }

    #[test]
    fn replication_schedule_rules() {
        assert!(check_replication_schedule("DTSTART:20220101T000200Z\nRRULE:FREQ=HOURLY", now()).is_empty());
        assert!(
            check_replication_schedule("DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=10", now())
                .is_empty()
        );
        let daily = check_replication_schedule("DTSTART:20220101T000200Z\nRRULE:FREQ=DAILY", now());
        assert!(daily.iter().any(|p| {
            p.rule
                .contains("FREQ=DAILY is not supported in a replication schedule")
        }));
        let short =
            check_replication_schedule("DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=2", now());
        assert!(short.iter().any(|p| p.rule.contains("at least 5")));
    }

    #[test]
    fn occurrences_of_fixed_rules() {
        let rule: RecurrenceRule = "DTSTART:20220101T000000Z\nRRULE:FREQ=MINUTELY;INTERVAL=5"
            .parse()
            .unwrap();
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(
            rule.latest_at_or_before(at("2022-01-01T00:12:00Z")),
            Some(at("2022-01-01T00:10:00Z"))
        );
        assert_eq!(
            rule.latest_at_or_before(at("2022-01-01T00:10:00Z")),
            Some(at("2022-01-01T00:10:00Z"))
        );
        assert_eq!(
            rule.next_after(at("2022-01-01T00:10:00Z")),
            Some(at("2022-01-01T00:15:00Z"))
        );
        assert_eq!(rule.latest_at_or_before(at("2021-12-31T23:59:59Z")), None);
        assert_eq!(
            rule.next_after(at("2021-12-31T00:00:00Z")),
            Some(at("2022-01-01T00:00:00Z"))
        );
        let irregular: RecurrenceRule = "DTSTART:20220101T000000Z\nRRULE:FREQ=HOURLY;BYMINUTE=5"
            .parse()
            .unwrap();
        assert_eq!(irregular.next_after(at("2022-01-01T00:10:00Z")), None);
    }

    #[test]
    fn example_parses_and_is_not_in_the_future() {
        let text = example(now(), Frequency::Minutely, 5);
        assert_eq!(text, "DTSTART:20250107T122500Z\nRRULE:FREQ=MINUTELY;INTERVAL=5");
        assert!(check_replication_schedule(&text, now()).is_empty());
        assert!(check_amr(&text, now()).is_empty());
    }
}
