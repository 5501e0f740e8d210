//! `metav1.Condition` bookkeeping.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// What a condition should say now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionUpdate<'a> {
    pub type_: &'a str,
    pub status: bool,
    pub reason: &'a str,
    pub message: String,
}

impl<'a> ConditionUpdate<'a> {
    pub fn new(type_: &'a str, status: bool, reason: &'a str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

fn status_str(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

/// Sets one condition in `conditions`: `lastTransitionTime` moves only when the status changes, as the
/// Kubernetes API conventions say; reason, message and observedGeneration always follow.
pub fn upsert(
    conditions: &mut Vec<Condition>,
    update: ConditionUpdate<'_>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = status_str(update.status);
    match conditions.iter_mut().find(|c| c.type_ == update.type_) {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = Time(now);
                existing.status = status.to_string();
            }
            existing.reason = update.reason.to_string();
            existing.message = update.message;
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: update.type_.to_string(),
            status: status.to_string(),
            reason: update.reason.to_string(),
            message: update.message,
            last_transition_time: Time(now),
            observed_generation: generation,
        }),
    }
}

/// The condition of `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The update of the `Ready` condition to `status`, with `reason` and `message`.
    fn ready_is<'a>(status: bool, reason: &'a str, message: &str) -> ConditionUpdate<'a> {
        ConditionUpdate::new("Ready", status, reason, message)
    }

    #[test]
    fn transition_time_moves_only_when_the_status_changes() {
        let t0: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2025-01-01T00:01:00Z".parse().unwrap();
        let t2: Timestamp = "2025-01-01T00:02:00Z".parse().unwrap();
        let mut conditions = Vec::new();
        upsert(&mut conditions, ready_is(false, "Running", "a"), Some(1), t0);
        upsert(&mut conditions, ready_is(false, "Still", "b"), Some(2), t1);
        let ready = find(&conditions, "Ready").unwrap();
        assert_eq!(ready.last_transition_time, Time(t0));
        assert_eq!((ready.reason.as_str(), ready.message.as_str()), ("Still", "b"));
        assert_eq!(ready.observed_generation, Some(2));
        upsert(&mut conditions, ready_is(true, "Done", ""), Some(2), t2);
        let ready = find(&conditions, "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.last_transition_time.clone()),
            ("True", Time(t2))
        );
        upsert(
            &mut conditions,
            ConditionUpdate::new("Other", true, "X", ""),
            None,
            t2,
        );
        assert_eq!(conditions.len(), 2);
    }
}
