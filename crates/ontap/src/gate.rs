//! `snapmirror status --fail-on`: conditions on a relationship that make a pipeline step fail. Pure: parsed
//! and evaluated without a cluster.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::error::{OntapError, format_duration};
use crate::model::{CodedMessage, Relationship, RelationshipState};

/// One `--fail-on` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `unhealthy`: ONTAP reports the relationship unhealthy, or does not say.
    Unhealthy,
    /// `lag=DURATION`: the lag is longer than DURATION, or ONTAP reports none.
    LagOver(Duration),
    /// `state!=STATE`: the state is another one, or ONTAP reports none.
    StateIsNot(RelationshipState),
    /// `state=STATE`: the state is this one.
    StateIs(RelationshipState),
}

/// The accepted forms, for error messages and help.
pub const CONDITION_FORMS: &str = "unhealthy, lag=DURATION (e.g. lag=1h), state!=STATE, state=STATE";

const KNOWN_STATES: [RelationshipState; 9] = [
    RelationshipState::BrokenOff,
    RelationshipState::Paused,
    RelationshipState::Snapmirrored,
    RelationshipState::Uninitialized,
    RelationshipState::InSync,
    RelationshipState::OutOfSync,
    RelationshipState::Synchronizing,
    RelationshipState::Expanding,
    RelationshipState::Shrinking,
];

impl Condition {
    /// Parses one condition; `parse_duration` reads the DURATION of `lag=` (the caller's duration syntax).
    pub fn parse(
        text: &str,
        parse_duration: impl Fn(&str) -> Result<Duration, String>,
    ) -> Result<Self, OntapError> {
        let invalid = |reason: String| OntapError::InvalidCondition {
            input: text.to_owned(),
            reason,
        };
        let trimmed = text.trim();
        if trimmed == "unhealthy" {
            return Ok(Self::Unhealthy);
        }
        if let Some(duration) = trimmed.strip_prefix("lag=") {
            return parse_duration(duration.trim())
                .map(Self::LagOver)
                .map_err(invalid);
        }
        let state = |name: &str| {
            KNOWN_STATES
                .iter()
                .find(|state| state.as_str() == name.trim())
                .cloned()
                .ok_or_else(|| {
                    let known: Vec<&str> = KNOWN_STATES.iter().map(RelationshipState::as_str).collect();
                    invalid(format!(
                        "{:?} is not a SnapMirror relationship state (one of: {})",
                        name.trim(),
                        known.join(", ")
                    ))
                })
        };
        if let Some(name) = trimmed.strip_prefix("state!=") {
            return state(name).map(Self::StateIsNot);
        }
        if let Some(name) = trimmed.strip_prefix("state=") {
            return state(name).map(Self::StateIs);
        }
        Err(invalid(format!("expected one of: {CONDITION_FORMS}")))
    }

    /// Why the condition holds for `relationship`, or `None` when it does not.
    pub fn holds_for(&self, relationship: &Relationship) -> Option<String> {
        match self {
            Self::Unhealthy => match relationship.healthy {
                Some(true) => None,
                Some(false) if relationship.unhealthy_reason.is_empty() => {
                    Some("ONTAP reports it unhealthy and gives no reason".into())
                }
                Some(false) => Some(format!(
                    "ONTAP reports it unhealthy: {}",
                    CodedMessage::join(&relationship.unhealthy_reason)
                )),
                None => Some("ONTAP does not say whether it is healthy".into()),
            },
            Self::LagOver(limit) => match &relationship.lag_time {
                Some(lag) if lag.duration > *limit => Some(format!(
                    "the lag is {}, longer than {}",
                    format_duration(lag.duration),
                    format_duration(*limit)
                )),
                Some(_) => None,
                None => Some("ONTAP reports no lag (has the relationship ever transferred?)".into()),
            },
            Self::StateIsNot(wanted) => match &relationship.state {
                Some(state) if state == wanted => None,
                Some(state) => Some(format!("the state is {state}")),
                None => Some("ONTAP reports no state".into()),
            },
            Self::StateIs(unwanted) => relationship
                .state
                .as_ref()
                .filter(|state| *state == unwanted)
                .map(|state| format!("the state is {state}")),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unhealthy => f.write_str("unhealthy"),
            Self::LagOver(limit) => write!(f, "lag={}", format_duration(*limit)),
            Self::StateIsNot(state) => write!(f, "state!={state}"),
            Self::StateIs(state) => write!(f, "state={state}"),
        }
    }
}

/// A condition that holds, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldCondition {
    pub condition: String,
    pub why: String,
}

impl fmt::Display for HeldCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.condition, self.why)
    }
}

/// Every condition of `conditions` that holds for `relationship`, in the order given.
pub fn held_conditions(conditions: &[Condition], relationship: &Relationship) -> Vec<HeldCondition> {
    conditions
        .iter()
        .filter_map(|condition| {
            condition.holds_for(relationship).map(|why| HeldCondition {
                condition: condition.to_string(),
                why,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CodedMessage;
    use serde_json::json;

    fn seconds(text: &str) -> Result<Duration, String> {
        let (number, unit) = text.split_at(text.len() - 1);
        let number: u64 = number.parse().map_err(|_| format!("bad duration {text:?}"))?;
        match unit {
            "s" => Ok(Duration::from_secs(number)),
            "h" => Ok(Duration::from_secs(number * 3600)),
            _ => Err(format!("bad duration {text:?}")),
        }
    }

    fn parse(text: &str) -> Result<Condition, OntapError> {
        Condition::parse(text, seconds)
    }

    fn relationship(value: serde_json::Value) -> Relationship {
        let mut base = json!({"uuid": "r1", "state": "snapmirrored", "healthy": true, "lag_time": "PT30M"});
        for (key, v) in value.as_object().unwrap() {
            base[key] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn conditions_parse_and_print_back() {
        assert_eq!(parse("unhealthy").unwrap(), Condition::Unhealthy);
        assert_eq!(
            parse(" lag=2h ").unwrap(),
            Condition::LagOver(Duration::from_secs(7200))
        );
        assert_eq!(
            parse("state!=snapmirrored").unwrap(),
            Condition::StateIsNot(RelationshipState::Snapmirrored)
        );
        assert_eq!(
            parse("state=broken_off").unwrap(),
            Condition::StateIs(RelationshipState::BrokenOff)
        );
        for text in ["unhealthy", "lag=2h", "state!=snapmirrored", "state=broken_off"] {
            assert_eq!(parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn bad_conditions_say_what_is_accepted() {
        let text = parse("lagging").unwrap_err().to_string();
        assert!(
            text.contains("\"lagging\"") && text.contains(CONDITION_FORMS),
            "{text}"
        );
        let text = parse("lag=soon").unwrap_err().to_string();
        assert!(text.contains("bad duration \"soon\""), "{text}");
        // A typo in a state would make state!= always hold and state= never: refused.
        let text = parse("state!=snapmirored").unwrap_err().to_string();
        assert!(
            text.contains("\"snapmirored\" is not a SnapMirror relationship state")
                && text.contains("snapmirrored"),
            "{text}"
        );
    }

    #[test]
    fn a_healthy_recent_snapmirrored_relationship_holds_none() {
        let conditions = [
            Condition::Unhealthy,
            Condition::LagOver(Duration::from_secs(3600)),
            Condition::StateIsNot(RelationshipState::Snapmirrored),
            Condition::StateIs(RelationshipState::BrokenOff),
        ];
        assert!(held_conditions(&conditions, &relationship(json!({}))).is_empty());
        // Exactly at the limit is not over it.
        let at_limit = relationship(json!({"lag_time": "PT1H"}));
        assert!(held_conditions(&conditions, &at_limit).is_empty());
    }

    #[test]
    fn each_condition_says_why_it_holds() {
        let mut unhealthy = relationship(json!({"healthy": false}));
        unhealthy.unhealthy_reason = vec![CodedMessage {
            code: Some("6619546".into()),
            message: Some("Transfer failed.".into()),
        }];
        let held = held_conditions(&[Condition::Unhealthy], &unhealthy);
        assert_eq!(
            held[0].to_string(),
            "unhealthy (ONTAP reports it unhealthy: Transfer failed. (code 6619546))"
        );
        let lagging = relationship(json!({"lag_time": "P1DT2H"}));
        let held = held_conditions(&[Condition::LagOver(Duration::from_secs(3600))], &lagging);
        assert_eq!(held[0].condition, "lag=1h");
        assert_eq!(held[0].why, "the lag is 26h, longer than 1h");
        let broken = relationship(json!({"state": "broken_off"}));
        let held = held_conditions(
            &[
                Condition::StateIsNot(RelationshipState::Snapmirrored),
                Condition::StateIs(RelationshipState::BrokenOff),
            ],
            &broken,
        );
        assert_eq!(held.len(), 2);
        assert_eq!(
            held[0].to_string(),
            "state!=snapmirrored (the state is broken_off)"
        );
    }

    #[test]
    fn what_ontap_does_not_say_fails_the_gate() {
        let silent: Relationship = serde_json::from_value(json!({"uuid": "r1"})).unwrap();
        let held = held_conditions(
            &[
                Condition::Unhealthy,
                Condition::LagOver(Duration::from_secs(3600)),
                Condition::StateIsNot(RelationshipState::Snapmirrored),
                Condition::StateIs(RelationshipState::BrokenOff),
            ],
            &silent,
        );
        let conditions: Vec<&str> = held.iter().map(|h| h.condition.as_str()).collect();
        assert_eq!(conditions, ["unhealthy", "lag=1h", "state!=snapmirrored"]);
    }
}
