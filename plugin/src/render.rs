//! Text for people: kubectl-style tables (no borders, upper-case headers) and plans. Pure functions of plain
//! data, so every rendering is unit-tested. The words for each step are the lifecycle's own
//! (`tprotect_lifecycle_rules::describe`), the same in plans, progress, errors and JSON.

use comfy_table::{ContentArrangement, Table, presets};
use tprotect_lifecycle::StepReport;
use tprotect_lifecycle::execute::Executed;

/// A kubectl-style table: no borders, columns separated by three spaces, no trailing blanks.
pub fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(|h| h.to_string()));
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 3));
    }
    let mut text = String::new();
    for line in table.lines() {
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// A plan for people: a heading, then one row per step. `server`: a server dry run, whose writes were sent and
/// answered (the DRY RUN column says how).
pub fn plan_table(heading: &str, steps: &[StepReport], server: bool) -> String {
    let rows = steps.iter().map(|e| {
        let mut row = vec![
            e.index.map(|i| i.to_string()).unwrap_or_default(),
            if e.cluster.is_empty() {
                "-".into()
            } else {
                e.cluster.clone()
            },
            e.change.clone(),
        ];
        if server {
            row.push(match &e.executed {
                Some(Executed::Applied) => "accepted".into(),
                Some(Executed::AlreadyDone) => "already so".into(),
                Some(Executed::Conflict(reason)) => format!("conflict: {reason}"),
                Some(Executed::NotSent(reason)) => format!("not sent: {reason}"),
                None => String::new(),
            });
        }
        row
    });
    let header: &[&str] = if server {
        &["STEP", "CLUSTER", "CHANGE", "DRY RUN"]
    } else {
        &["STEP", "CLUSTER", "CHANGE"]
    };
    format!("{heading}\n{}", table(header, rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tprotect_api::DesiredState;
    use tprotect_lifecycle::runner::plan_reports;
    use tprotect_lifecycle::{Action, ClusterKey, Contexts, Outcome, Step, WaitFor};

    fn contexts() -> Contexts {
        Contexts::new("tprotect-destination", "tprotect-source")
    }

    fn reports(steps: &[Step]) -> Vec<StepReport> {
        plan_reports(steps, &contexts(), "rel1")
    }

    #[test]
    fn tables_have_no_borders_and_no_trailing_blanks() {
        let text = table(
            &["NAME", "STATE"],
            [
                vec!["rel1".into(), "Established".into()],
                vec!["relationship-two".into(), "".into()],
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("NAME"), "{text}");
        assert!(lines[1].starts_with("rel1"), "{text}");
        assert!(lines.iter().all(|l| !l.ends_with(' ')), "{text:?}");
        assert!(
            !text.contains('|') && !text.contains('+') && !text.contains('─'),
            "{text}"
        );
        // Columns line up: STATE starts where Established starts.
        assert_eq!(lines[0].find("STATE"), lines[1].find("Established"), "{text}");
    }

    #[test]
    fn failover_plan_names_cluster_object_and_change() {
        let steps = vec![
            Step::Act(Action::SetDesiredState {
                cluster: ClusterKey::Context,
                namespace: "app-dr".into(),
                name: "rel1".into(),
                desired: DesiredState::Promoted,
                promoted_snapshot: None,
                discard_destination_changes: false,
            }),
            Step::Wait(WaitFor::AmrState {
                cluster: ClusterKey::Context,
                namespace: "app-dr".into(),
                name: "rel1".into(),
                state: "Promoted".into(),
            }),
            Step::Done(Outcome {
                message: "rel1 is failed over".into(),
                amr_cluster: Some(ClusterKey::Context),
            }),
        ];
        let text = plan_table(
            "Plan for failover rel1 (dry run: nothing was changed)",
            &reports(&steps),
            false,
        );
        assert!(text.starts_with("Plan for failover rel1"), "{text}");
        assert!(text.contains("STEP   CLUSTER"), "{text}");
        let first = text.lines().nth(2).unwrap();
        assert!(first.starts_with("1 "), "{first}");
        assert!(first.contains("tprotect-destination"), "{first}");
        assert!(
            first.contains("patch AppMirrorRelationship app-dr/rel1: spec.desiredState Promoted"),
            "{first}"
        );
        assert!(text.contains("wait until AppMirrorRelationship app-dr/rel1 has status.state Promoted"));
        assert!(
            text.lines().last().unwrap().contains("done: rel1 is failed over"),
            "{text}"
        );
    }

    #[test]
    fn a_server_dry_run_says_what_the_server_answered() {
        let mut steps = reports(&[Step::Act(Action::DeleteAmr {
            cluster: ClusterKey::Peer,
            namespace: "ns".into(),
            name: "rel1".into(),
            uid: "u".into(),
        })]);
        steps[0].executed = Some(Executed::Applied);
        let text = plan_table("Plan", &steps, true);
        assert!(text.contains("DRY RUN"), "{text}");
        assert!(text.lines().nth(2).unwrap().ends_with("accepted"), "{text}");
    }
}
