//! ISO-8601 durations as ONTAP writes them (`lag_time`: `PT8H35M42S`, `P1DT2H`).

use std::time::Duration;

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ISO-8601 duration {text:?}: {reason}")]
pub struct DurationParseError {
    pub text: String,
    pub reason: &'static str,
}

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// Parses `P[nY][nM][nW][nD][T[nH][nM][n[.f]S]]`.
///
/// Years and months have no fixed length; ONTAP does not use them for `lag_time`, but rather than fail on a
/// very stale relationship they count as 365 and 30 days. Only seconds may carry a fraction.
pub fn parse_iso8601_duration(text: &str) -> Result<Duration, DurationParseError> {
    let error = |reason| DurationParseError {
        text: text.to_owned(),
        reason,
    };
    let rest = text.strip_prefix('P').ok_or_else(|| error("must start with P"))?;
    if rest.is_empty() || rest == "T" {
        return Err(error("has no components"));
    }
    let mut total = Duration::ZERO;
    let mut in_time = false;
    // Designators must appear in this order; the index of the last one seen rejects repeats and reordering.
    const DATE_ORDER: &[char] = &['Y', 'M', 'W', 'D'];
    const TIME_ORDER: &[char] = &['H', 'M', 'S'];
    let mut last_index: Option<usize> = None;
    let mut number = String::new();
    for c in rest.chars() {
        if c == 'T' {
            if in_time || !number.is_empty() {
                return Err(error("misplaced T"));
            }
            in_time = true;
            last_index = None;
            continue;
        }
        if c.is_ascii_digit() || c == '.' || c == ',' {
            number.push(if c == ',' { '.' } else { c });
            continue;
        }
        let order = if in_time { TIME_ORDER } else { DATE_ORDER };
        let index = order
            .iter()
            .position(|&d| d == c)
            .ok_or_else(|| error("unknown designator"))?;
        if last_index.is_some_and(|last| index <= last) {
            return Err(error("designators out of order or repeated"));
        }
        last_index = Some(index);
        if number.is_empty() {
            return Err(error("a designator without a number"));
        }
        let component = if c == 'S' && in_time {
            let seconds: f64 = number.parse().map_err(|_| error("bad number"))?;
            if !seconds.is_finite() || seconds < 0.0 {
                return Err(error("bad number"));
            }
            Duration::from_secs_f64(seconds)
        } else {
            let value: u64 = number
                .parse()
                .map_err(|_| error("only seconds may have a fraction"))?;
            let unit = match (in_time, c) {
                (false, 'Y') => 365 * DAY,
                (false, 'M') => 30 * DAY,
                (false, 'W') => 7 * DAY,
                (false, 'D') => DAY,
                (true, 'H') => HOUR,
                (true, 'M') => MINUTE,
                _ => unreachable!("designator checked against its order list"),
            };
            Duration::from_secs(value.checked_mul(unit).ok_or_else(|| error("too large"))?)
        };
        total = total.checked_add(component).ok_or_else(|| error("too large"))?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(error("a number without a designator"));
    }
    if in_time && last_index.is_none() {
        return Err(error("T without time components"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn parses_what_ontap_writes() {
        assert_eq!(
            parse_iso8601_duration("PT8H35M42S"),
            Ok(secs(8 * 3600 + 35 * 60 + 42))
        );
        assert_eq!(parse_iso8601_duration("PT0S"), Ok(Duration::ZERO));
        assert_eq!(parse_iso8601_duration("PT45S"), Ok(secs(45)));
        assert_eq!(parse_iso8601_duration("PT5M"), Ok(secs(300)));
        assert_eq!(parse_iso8601_duration("P1DT2H"), Ok(secs(26 * 3600)));
        assert_eq!(parse_iso8601_duration("P2D"), Ok(secs(2 * 86400)));
        assert_eq!(parse_iso8601_duration("P1W"), Ok(secs(7 * 86400)));
        assert_eq!(parse_iso8601_duration("PT1.5S"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_iso8601_duration("PT0,25S"), Ok(Duration::from_millis(250)));
        assert_eq!(
            parse_iso8601_duration("P1Y2M"),
            Ok(secs(365 * 86400 + 60 * 86400))
        );
        // M means months before T and minutes after it.
        assert_eq!(parse_iso8601_duration("P1MT1M"), Ok(secs(30 * 86400 + 60)));
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in [
            "", "P", "PT", "8H", "pt1h", "PT1H2", "PTH", "PT1X", "PT1S1M", "PT1H1H", "P1DT", "P1H", "PT1.5M",
            "PT-1S", "P1T1D", "PTT1H", "P1D1Y", "PT1..2S",
        ] {
            assert!(parse_iso8601_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn overflow_is_an_error() {
        assert!(parse_iso8601_duration("P99999999999999999D").is_err());
    }

    #[test]
    fn error_names_the_text() {
        let error = parse_iso8601_duration("PT1X").unwrap_err();
        assert!(error.to_string().contains("\"PT1X\""), "{error}");
    }
}
