//! Which steps need the user's confirmation, and what the prompt warns of. The plugin asks before the first
//! write of a run (a refusal must change nothing, not even the lock); the runner refuses a step needing one that
//! was not confirmed.

use crate::describe;
use crate::model::*;
use crate::record::Standing;

/// What confirming `action` accepts, if it needs a confirmation: discarding a destination's changes.
pub fn action_warning(action: &Action, contexts: &Contexts, relationship: &str) -> Option<String> {
    action.discards_data().then(|| {
        format!(
            "DISCARDING every change written on {} since the failover, by this step: {}",
            action.cluster().map(|k| contexts.name(k)).unwrap_or_default(),
            describe::action(action, contexts, relationship).change
        )
    })
}

/// Everything a run must have confirmed before it writes anything: each step of its plan that needs it, and
/// deleting a relationship while another operation is in progress.
pub fn run_warnings(
    steps: &[Step],
    standing: &Standing,
    record: Option<&OperationRecord>,
    contexts: &Contexts,
    relationship: &str,
) -> Vec<String> {
    let mut warnings: Vec<String> = steps
        .iter()
        .filter_map(|step| match step {
            Step::Act(action) => action_warning(action, contexts, relationship),
            _ => None,
        })
        .collect();
    if let (Standing::OverriddenByDelete, Some(record)) = (standing, record) {
        warnings.push(format!(
            "a {} of {relationship} started {} is not finished; deleting the relationship now leaves both clusters as that {} left them, each application independent",
            record.operation.command(),
            record.started,
            record.operation.command()
        ));
    }
    warnings
}

/// What giving up an operation means, for the prompt of `--abandon`.
pub fn abandon_warning(record: &OperationRecord, relationship: &str) -> String {
    format!(
        "give up the {} of {relationship} started {} (run id {}): the plugin forgets where it was; both clusters stay exactly as they are, and the record is kept in an Event",
        record.operation.command(),
        record.started,
        record.id
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tprotect_api::DesiredState;

    fn contexts() -> Contexts {
        Contexts::new("dr", "prod")
    }

    fn set_desired(discard: bool) -> Action {
        Action::SetDesiredState {
            cluster: ClusterKey::Context,
            namespace: "ns".into(),
            name: "rel1".into(),
            desired: DesiredState::Established,
            promoted_snapshot: None,
            discard_destination_changes: discard,
        }
    }

    #[test]
    fn only_a_discarding_step_needs_a_confirmation() {
        let warning = action_warning(&set_desired(true), &contexts(), "rel1").unwrap();
        assert!(
            warning.contains("DISCARDING") && warning.contains("dr"),
            "{warning}"
        );
        assert_eq!(action_warning(&set_desired(false), &contexts(), "rel1"), None);
        let delete = Action::DeleteAmr {
            cluster: ClusterKey::Context,
            namespace: "ns".into(),
            name: "rel1".into(),
            uid: "u".into(),
        };
        assert_eq!(action_warning(&delete, &contexts(), "rel1"), None);
    }

    #[test]
    fn deleting_over_an_operation_in_progress_is_confirmed() {
        let record = OperationRecord {
            operation: Operation::Failback,
            id: "abc123".into(),
            initial_destination: "c1".into(),
            amr_namespace: "ns".into(),
            spec: Default::default(),
            annotations: Default::default(),
            started: "2026-12-01T10:00:00Z".into(),
            destination_apps: Default::default(),
        };
        let warnings = run_warnings(
            &[],
            &Standing::OverriddenByDelete,
            Some(&record),
            &contexts(),
            "rel1",
        );
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("failback of rel1 started 2026-12-01T10:00:00Z"),
            "{warnings:?}"
        );
        assert!(run_warnings(&[], &Standing::None, None, &contexts(), "rel1").is_empty());
        assert!(abandon_warning(&record, "rel1").contains("abc123"));
    }
}
