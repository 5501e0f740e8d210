//! `kubectl tprotect check NAME`: a read-only preflight of everything the relationship's operations need
//! (vaults Available on both sides, Secrets, storage classes, the source application's UID, a valid replication
//! schedule, the webhook answering), each item passed, failed, a warning or not verified. Exits 1 when any
//! failed; warnings (the webhook not installed) and items the user may not read do not fail it.

use std::collections::BTreeMap;

use serde::Serialize;
use tprotect_lifecycle::observe::{Scope, locate, observe};
use tprotect_lifecycle::rules::checks::{CheckItem, Level, preflight};
use tprotect_lifecycle::{ClusterKey, Clusters, Observed};

use crate::args::ReadRelationshipArgs;
use crate::commands::{BeforeVerb, operate};
use crate::exit::CodedError;
use crate::output::Printer;
use crate::render;

pub const EXAMPLES: &str = "Examples:
  # Everything a failover, resync or failback of payments needs, checked without changing anything
  kubectl tprotect check payments --context dr --peer-context prod

  # As data, for a script
  kubectl tprotect check payments --context dr --peer-context prod -o json";

pub type CheckArgs = ReadRelationshipArgs;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    pub relationship: String,
    /// No item failed.
    pub passed: bool,
    pub items: Vec<CheckItem>,
}

pub fn table(items: &[CheckItem]) -> String {
    render::table(
        &["CHECK", "RESULT", "DETAIL"],
        items
            .iter()
            .map(|i| vec![i.name.clone(), i.level.word().to_string(), i.detail.clone()]),
    )
}

/// The one-line verdict (stderr), `None` when nothing failed.
pub fn verdict(items: &[CheckItem]) -> Option<String> {
    let failed = items.iter().filter(|i| i.level == Level::Failed).count();
    (failed > 0).then(|| format!("{failed} of {} checks failed", items.len()))
}

/// Where to send the webhook probe on each cluster: a namespace of the relationship there (the AMR's on the
/// destination, the mapped source namespace on the source).
fn probe_namespaces(observed: &Observed) -> BTreeMap<ClusterKey, String> {
    let mut namespaces = BTreeMap::new();
    if let Ok(Some((key, amr))) = observed.amr_location() {
        namespaces.insert(key, amr.namespace.clone());
        if let Some((source, _)) = amr.mapping().into_iter().next() {
            namespaces.insert(key.other(), source);
        }
    }
    namespaces
}

pub async fn run(args: CheckArgs, before: &BeforeVerb, printer: &mut Printer) -> anyhow::Result<()> {
    let connection = args.connection.or(&before.connection);
    let clusters = operate::connect(&connection).await?;
    let report = check(&clusters, &args.name, connection.namespace.as_deref()).await?;
    printer.print(&report, || table(&report.items))?;
    match verdict(&report.items) {
        Some(message) => Err(anyhow::Error::new(CodedError {
            code: crate::exit::FAILURE,
            message,
        })),
        None => Ok(()),
    }
}

/// The checks of relationship `name` on `clusters`.
pub async fn check(clusters: &Clusters, name: &str, namespace: Option<&str>) -> anyhow::Result<CheckReport> {
    let located = locate(clusters, name, namespace)
        .await
        .map_err(operate::run_error)?;
    let mut observed = observe(clusters, name, &Scope::everything(located.namespaces()))
        .await
        .map_err(operate::run_error)?;
    observed.record = located.lease.as_ref().and_then(|l| l.record.clone());
    let webhooks = tprotect_lifecycle::checks::probe_webhooks(clusters, &probe_namespaces(&observed))
        .await
        .map_err(operate::run_error)?;
    let items = preflight(&observed, &webhooks, jiff::Timestamp::now());
    Ok(CheckReport {
        relationship: name.to_string(),
        passed: items.iter().all(CheckItem::ok),
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, level: Level) -> CheckItem {
        CheckItem {
            name: name.into(),
            level,
            detail: format!("detail of {name}"),
        }
    }

    #[test]
    fn table_and_verdict_count_only_failures() {
        let items = vec![
            item("cluster a reachable", Level::Passed),
            item("source AppVault", Level::Failed),
            item("tprotect webhook on a", Level::Warning),
            item("Secret s on a", Level::NotVerified),
        ];
        let text = table(&items);
        assert!(text.starts_with("CHECK"), "{text}");
        assert!(text.contains("passed"), "{text}");
        assert!(
            text.contains("FAILED         detail of source AppVault"),
            "{text}"
        );
        assert!(
            text.contains("warning") && text.contains("not verified"),
            "{text}"
        );
        assert_eq!(verdict(&items).as_deref(), Some("1 of 4 checks failed"));
        assert_eq!(
            verdict(&[items[0].clone(), items[2].clone(), items[3].clone()]),
            None
        );
    }

    #[tokio::test]
    async fn the_verb_checks_a_relationship_on_fake_clusters() {
        let (source, destination) = crate::fake::established_pair(60);
        let clusters = crate::fake::clusters(source, destination);
        let report = check(&clusters, "rel1", None).await.unwrap();
        assert!(report.passed, "{:#?}", report.items);
        // No webhook is registered on either fake cluster: a warning each, not a failure.
        let warnings: Vec<&str> = report
            .items
            .iter()
            .filter(|i| i.level == Level::Warning)
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(
            warnings,
            ["tprotect webhook on dst", "tprotect webhook on src"],
            "{:#?}",
            report.items
        );
        let (mut printer, out) = Printer::buffer(crate::args::OutputFormat::Json);
        printer.print(&report, || table(&report.items)).unwrap();
        let json: serde_json::Value = serde_json::from_str(&out.text()).unwrap();
        assert_eq!(json["passed"], true);
        assert_eq!(json["items"][0]["level"], "passed");
    }
}
