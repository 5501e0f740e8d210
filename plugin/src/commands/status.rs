//! `kubectl tprotect status [NAME] [-A] [--watch]`: both clusters' view of relationships — desired and actual
//! state, source and destination applications and vaults, last transfer and lag against the interval (RPO),
//! errors and conditions, schedules wrongly left on the destination, whether a failover is possible now.
//!
//! `--watch` follows the AppMirrorRelationships with watches on both clusters and prints the view again each
//! time it changes (not on a timer).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use clap::Args;
use futures::{StreamExt, stream};
use jiff::Timestamp;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher;
use tprotect_api::{AppMirrorRelationship, RELATIONSHIP_LABEL};
use tprotect_lifecycle::observe::{Scope, locate, locate_all, observe, resource};
use tprotect_lifecycle::rules::status::{AppStatus, StatusView, status_view};
use tprotect_lifecycle::{ClusterKey, Clusters};

use crate::args::{ConnectionArgs, OutputArgs, OutputFormat, relationship_name};
use crate::commands::{BeforeVerb, operate};
use crate::output::Printer;
use crate::render;

pub const EXAMPLES: &str = "Examples:
  # One relationship as both clusters see it
  kubectl tprotect status payments --context dr --peer-context prod

  # Every relationship on both clusters, one line each
  kubectl tprotect status -A --context dr --peer-context prod

  # Follow it as it changes, as YAML documents
  kubectl tprotect status payments --context dr --peer-context prod -w -o yaml";

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Name of the relationship (default: every relationship in -n, or everywhere with -A)
    #[arg(value_parser = relationship_name)]
    pub name: Option<String>,
    /// Every relationship on both clusters, in all namespaces
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Keep watching and print the status again whenever it changes (Ctrl-C to stop)
    #[arg(short = 'w', long)]
    pub watch: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// "4m5s"-style durations for people.
pub fn human_duration(seconds: i64) -> String {
    if seconds < 0 {
        return format!("-{}", human_duration(-seconds));
    }
    let (h, m, s) = (seconds / 3600, (seconds % 3600) / 60, seconds % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

fn dash(text: &str) -> String {
    if text.is_empty() {
        "-".into()
    } else {
        text.to_string()
    }
}

/// The lag and RPO column: "12s (interval 5m, ok)".
fn lag_text(view: &StatusView) -> String {
    match (view.lag_seconds, view.interval_seconds) {
        (Some(lag), Some(interval)) if !view.rpo.is_empty() => format!(
            "{} (interval {}, RPO {})",
            human_duration(lag),
            human_duration(interval as i64),
            view.rpo
        ),
        (Some(lag), _) => human_duration(lag),
        (None, Some(interval)) if !view.rpo.is_empty() => {
            format!(
                "no transfer yet (interval {}, RPO {})",
                human_duration(interval as i64),
                view.rpo
            )
        }
        _ => "-".into(),
    }
}

/// One relationship in detail.
pub fn detail(view: &StatusView) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |k: &str, v: String| rows.push((k.to_string(), v));
    match &view.amr {
        Some(amr) => {
            row(
                "AppMirrorRelationship",
                format!(
                    "{}/{} on {} (the destination)",
                    amr.namespace, amr.name, amr.cluster
                ),
            );
            row("Desired state", dash(&amr.desired_state));
            row("State", dash(&amr.state));
            row("Error", amr.error.clone().unwrap_or_else(|| "-".into()));
            row(
                "Source",
                format!(
                    "Application {} (uid {}), AppVault {}",
                    dash(&amr.source_application),
                    dash(&amr.source_application_uid),
                    dash(&amr.source_vault)
                ),
            );
            row("Destination AppVault", dash(&amr.destination_vault));
            row("Namespaces", amr.namespace_mapping.join(", "));
            row("Recurrence", amr.recurrence_rule.replace('\n', " "));
            if let Some(class) = &amr.storage_class {
                row("Storage class", class.clone());
            }
        }
        None => row("AppMirrorRelationship", "not found on either cluster".into()),
    }
    let application = |app: &Option<AppStatus>, none: &str| match app {
        Some(AppStatus {
            cluster,
            namespace,
            name,
            uid,
        }) => format!("{namespace}/{name} on {cluster} (uid {uid})"),
        None => none.to_string(),
    };
    row("Source application", application(&view.source_application, "-"));
    row(
        "Destination application",
        application(&view.destination_application, "- (none until a failover)"),
    );
    row(
        "Last transfer",
        match (&view.last_transfer, &view.last_transferred_snapshot) {
            (Some(t), Some(s)) => format!("{t} (snapshot {s})"),
            (Some(t), None) => t.clone(),
            (None, Some(s)) => format!("snapshot {s}"),
            (None, None) => "-".into(),
        },
    );
    row("Lag", lag_text(view));
    row(
        "Schedules on destination",
        if view.schedules_on_destination.is_empty() {
            "none".into()
        } else {
            format!(
                "{} (they make the destination's snapshots fail; kubectl tprotect resync removes them)",
                view.schedules_on_destination.join(", ")
            )
        },
    );
    row(
        "Failover",
        format!(
            "{}: {}",
            if view.failover_possible { "yes" } else { "no" },
            view.failover
        ),
    );
    row(
        "Operation in progress",
        view.operation_in_progress
            .as_ref()
            .map(|o| {
                if o.finished {
                    format!(
                        "{} (started {}): finished on the clusters; the next command clears its record",
                        o.operation, o.started
                    )
                } else {
                    format!(
                        "{} (started {}); finish it: kubectl tprotect {} {name}, or give it up: kubectl tprotect {} {name} --abandon",
                        o.operation,
                        o.started,
                        o.operation,
                        o.operation,
                        name = view.relationship
                    )
                }
            })
            .unwrap_or_else(|| "none".into()),
    );
    row(
        "Health",
        if view.health.healthy {
            "healthy".into()
        } else {
            format!("NOT healthy: {}", view.health.problems.join("; "))
        },
    );
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut text = format!("Relationship {}\n", view.relationship);
    for (k, v) in rows {
        text.push_str(&format!("  {k:<width$}   {v}\n"));
    }
    text.push('\n');
    text.push_str(&render::table(
        &["CLUSTER", "ROLE", "REACHABLE", "APPVAULTS"],
        view.clusters.iter().map(|c| {
            vec![
                c.context.clone(),
                c.role.clone(),
                match &c.error {
                    None => "yes".into(),
                    Some(e) => format!("no: {e}"),
                },
                c.vaults
                    .iter()
                    .map(|(name, state)| format!("{name}={state}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        }),
    ));
    if let Some(amr) = view.amr.as_ref().filter(|a| !a.conditions.is_empty()) {
        text.push('\n');
        text.push_str(&render::table(
            &["CONDITION", "STATUS", "REASON", "MESSAGE"],
            amr.conditions.iter().map(|c| {
                vec![
                    c.type_.clone(),
                    c.status.clone(),
                    dash(&c.reason),
                    c.message.clone(),
                ]
            }),
        ));
    }
    text
}

/// Several relationships, one line each.
pub fn summary(views: &[StatusView]) -> String {
    render::table(
        &[
            "NAME",
            "DESTINATION",
            "NAMESPACE",
            "DESIRED",
            "STATE",
            "LAG",
            "FAILOVER",
            "ERROR",
        ],
        views.iter().map(|v| {
            let amr = v.amr.as_ref();
            vec![
                v.relationship.clone(),
                amr.map(|a| a.cluster.clone()).unwrap_or_else(|| "-".into()),
                amr.map(|a| a.namespace.clone()).unwrap_or_else(|| "-".into()),
                amr.map(|a| dash(&a.desired_state)).unwrap_or_else(|| "-".into()),
                amr.map(|a| dash(&a.state)).unwrap_or_else(|| "-".into()),
                lag_text(v),
                if v.failover_possible {
                    "possible".into()
                } else {
                    "no".into()
                },
                amr.and_then(|a| a.error.clone()).unwrap_or_else(|| "-".into()),
            ]
        }),
    )
}

/// The view of one relationship now.
async fn view_of(clusters: &Clusters, connection: &ConnectionArgs, name: &str) -> anyhow::Result<StatusView> {
    let located = locate(clusters, name, connection.namespace.as_deref())
        .await
        .map_err(operate::run_error)?;
    if located.amrs.is_empty() && located.lease.is_none() {
        anyhow::bail!(operate::not_found_message(
            name,
            &located.searched,
            &located.unreachable,
            clusters
        ));
    }
    let mut observed = observe(clusters, name, &Scope::everything(located.namespaces()))
        .await
        .map_err(operate::run_error)?;
    observed.record = located.lease.as_ref().and_then(|l| l.record.clone());
    Ok(status_view(&observed, Timestamp::now()))
}

/// Names of the relationships to show without NAME: every AMR in -n (or everywhere with -A), by the
/// relationship label, else the AMR's name.
async fn relationship_names(
    clusters: &Clusters,
    connection: &ConnectionArgs,
    all: bool,
) -> anyhow::Result<BTreeSet<String>> {
    let (amrs, _unreachable) = locate_all(clusters).await.map_err(operate::run_error)?;
    let mut names = BTreeSet::new();
    for (key, amr) in amrs {
        let wanted = all || amr.namespace == operate::namespace(clusters, key, connection);
        if wanted {
            names.insert(amr.labels.get(RELATIONSHIP_LABEL).cloned().unwrap_or(amr.name));
        }
    }
    Ok(names)
}

async fn views(
    clusters: &Clusters,
    connection: &ConnectionArgs,
    args: &StatusArgs,
) -> anyhow::Result<Vec<StatusView>> {
    match &args.name {
        Some(name) => Ok(vec![view_of(clusters, connection, name).await?]),
        None => {
            let mut out = Vec::new();
            for name in relationship_names(clusters, connection, args.all_namespaces).await? {
                out.push(view_of(clusters, connection, &name).await?);
            }
            Ok(out)
        }
    }
}

/// One document: a relationship in detail, or the list of them.
fn print(printer: &mut Printer, args: &StatusArgs, views: &[StatusView]) -> anyhow::Result<()> {
    match &args.name {
        Some(_) => printer.print(&views[0], || detail(&views[0])),
        None => printer.print(&views, || {
            if views.is_empty() {
                "No relationships found.\n".into()
            } else {
                summary(views)
            }
        }),
    }
}

/// The view without what changes by itself every second (the lag), to tell a real change.
fn stable(views: &[StatusView]) -> Vec<StatusView> {
    views
        .iter()
        .cloned()
        .map(|mut v| {
            v.lag_seconds = None;
            v
        })
        .collect()
}

pub async fn run(args: StatusArgs, before: &BeforeVerb, printer: &mut Printer) -> anyhow::Result<()> {
    if args.name.is_some() && args.all_namespaces {
        return Err(operate::usage("give a NAME or -A, not both"));
    }
    let connection = args.connection.or(&before.connection);
    let clusters = operate::connect_optional_peer(&connection).await?;
    let current = views(&clusters, &connection, &args).await?;
    print(printer, &args, &current)?;
    if !args.watch {
        return Ok(());
    }

    // Watch the AMRs of both clusters; every event (after a short settle) re-reads the view.
    let mut streams = Vec::new();
    for key in ClusterKey::BOTH {
        if let Ok(client) = clusters.get(key).client() {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource::<AppMirrorRelationship>());
            let config = watcher::Config::default().timeout(tprotect_lifecycle::wait::WATCH_TIMEOUT_SECS);
            streams.push(watcher(api, config).map(|_| ()).boxed());
        }
    }
    let mut events = stream::select_all(streams);
    let mut last = stable(&current);
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            event = events.next() => {
                if event.is_none() {
                    return Ok(());
                }
            }
        }
        // Several events usually arrive together (status patches in a row): take them all, then look once.
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(20), events.next()).await {}
        match views(&clusters, &connection, &args).await {
            Ok(now) => {
                let stable_now = stable(&now);
                if stable_now != last {
                    if printer.format() == OutputFormat::Table {
                        printer.text(&format!("--- {}\n", Timestamp::now().strftime("%H:%M:%S")))?;
                    }
                    print(printer, &args, &now)?;
                    last = stable_now;
                }
            }
            Err(e) => {
                let text = e.to_string();
                let seen = errors.entry(text.clone()).or_default();
                if *seen == 0 {
                    eprintln!("warning: {text}");
                }
                *seen += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tprotect_lifecycle::rules::status::{AmrStatus, AppStatus, ClusterStatus, ConditionStatus, Health};

    fn view() -> StatusView {
        StatusView {
            relationship: "rel1".into(),
            clusters: vec![
                ClusterStatus {
                    context: "dst".into(),
                    role: "destination".into(),
                    reachable: true,
                    error: None,
                    cluster_id: Some("id-d".into()),
                    vaults: [("dst-vault".to_string(), "Available".to_string())].into(),
                },
                ClusterStatus {
                    context: "src".into(),
                    role: "source".into(),
                    reachable: false,
                    error: Some("connection refused".into()),
                    cluster_id: None,
                    vaults: BTreeMap::new(),
                },
            ],
            amr: Some(AmrStatus {
                cluster: "dst".into(),
                namespace: "app1".into(),
                name: "rel1".into(),
                desired_state: "Established".into(),
                state: "Established".into(),
                error: None,
                conditions: vec![ConditionStatus {
                    type_: "Established".into(),
                    status: "True".into(),
                    reason: "".into(),
                    message: "replicating".into(),
                }],
                source_application: "app1".into(),
                source_application_uid: "uid-1".into(),
                source_vault: "src-vault".into(),
                destination_vault: "dst-vault".into(),
                namespace_mapping: vec!["app1:app1".into()],
                recurrence_rule: "DTSTART:20260101T000000Z\nRRULE:FREQ=MINUTELY;INTERVAL=5".into(),
                storage_class: None,
            }),
            source_application: Some(AppStatus {
                cluster: "src".into(),
                namespace: "app1".into(),
                name: "app1".into(),
                uid: "uid-1".into(),
            }),
            destination_application: None,
            last_transfer: Some("2026-01-01T00:05:00Z".into()),
            last_transferred_snapshot: Some("snap-1".into()),
            interval_seconds: Some(300),
            lag_seconds: Some(75),
            rpo: "ok".into(),
            schedules_on_destination: vec!["app1/app1-hourly".into()],
            failover_possible: true,
            failover: "possible: kubectl tprotect failover rel1 promotes the destination".into(),
            operation_in_progress: None,
            health: Health {
                healthy: false,
                problems: vec![
                    "Schedules on the destination make its snapshots fail: app1/app1-hourly".into(),
                ],
            },
        }
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(75), "1m15s");
        assert_eq!(human_duration(300), "5m");
        assert_eq!(human_duration(3600), "1h");
        assert_eq!(human_duration(3 * 3600 + 120 + 5), "3h2m");
        assert_eq!(human_duration(-5), "-5s");
    }

    #[test]
    fn detail_shows_both_clusters_state_lag_and_problems() {
        let text = detail(&view());
        for part in [
            "Relationship rel1",
            "app1/rel1 on dst (the destination)",
            "Desired state",
            "Established",
            "Application app1 (uid uid-1), AppVault src-vault",
            "1m15s (interval 5m, RPO ok)",
            "2026-01-01T00:05:00Z (snapshot snap-1)",
            "app1/app1-hourly (they make the destination's snapshots fail",
            "yes: possible: kubectl tprotect failover rel1",
            "no: connection refused",
            "dst-vault=Available",
            "DTSTART:20260101T000000Z RRULE:FREQ=MINUTELY;INTERVAL=5",
            "CONDITION",
            "replicating",
        ] {
            assert!(text.contains(part), "{part:?} missing from:\n{text}");
        }
    }

    #[test]
    fn summary_is_one_line_per_relationship() {
        let mut other = view();
        other.relationship = "rel2".into();
        other.failover_possible = false;
        other.rpo = String::new();
        let text = summary(&[view(), other]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("NAME"), "{text}");
        assert!(
            lines[1].starts_with("rel1") && lines[1].contains("possible"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("rel2") && lines[2].contains(" no "),
            "{text}"
        );
    }

    #[test]
    fn lag_alone_is_not_a_change() {
        let mut later = view();
        later.lag_seconds = Some(80);
        assert_eq!(stable(&[view()]), stable(&[later.clone()]));
        later.amr.as_mut().unwrap().state = "Promoting".into();
        assert_ne!(stable(&[view()]), stable(&[later]));
    }

    #[tokio::test]
    async fn the_verb_shows_a_relationship_on_fake_clusters_in_every_format() {
        let (source, destination) = crate::fake::established_pair(90);
        let clusters = crate::fake::clusters(source, destination);
        let args = StatusArgs {
            name: Some("rel1".into()),
            all_namespaces: false,
            watch: false,
            connection: ConnectionArgs::default(),
            output: OutputArgs::default(),
        };
        let views = views(&clusters, &ConnectionArgs::default(), &args).await.unwrap();
        let (mut printer, out) = Printer::buffer(OutputFormat::Table);
        print(&mut printer, &args, &views).unwrap();
        let text = out.text();
        for part in [
            "Relationship rel1",
            "app1-dr/rel1 on dst (the destination)",
            "RPO ok",
            "Failover                   yes",
            "Health                     healthy",
        ] {
            assert!(text.contains(part), "{part:?} missing from:\n{text}");
        }
        let (mut printer, out) = Printer::buffer(OutputFormat::Yaml);
        print(&mut printer, &args, &views).unwrap();
        print(&mut printer, &args, &views).unwrap();
        let yaml = out.text();
        assert_eq!(yaml.matches("\n---\n").count(), 1, "documents separated:\n{yaml}");
        assert!(yaml.contains("healthy: true"), "{yaml}");
    }
}
