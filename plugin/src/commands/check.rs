//! `kubectl tprotect check NAME`: a read-only preflight of everything the relationship's operations need
//! (vaults Available on both sides, Secrets, storage classes, the source application's UID, a valid
//! replication schedule, the webhook installed), each item passed or failed. Exits 1 when any failed.

use clap::Args;
use serde::Serialize;
use tprotect_lifecycle::checks::{self, CheckItem};
use tprotect_lifecycle::observe::{Scope, locate, observe};

use crate::cli::GlobalArgs;
use crate::commands::{operate, relationship_name};
use crate::exit::CodedError;
use crate::output;
use crate::render;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Name of the relationship
    #[arg(value_parser = relationship_name)]
    pub name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CheckReport<'a> {
    relationship: &'a str,
    passed: bool,
    items: &'a [CheckItem],
}

pub fn table(items: &[CheckItem]) -> String {
    render::table(
        &["CHECK", "RESULT", "DETAIL"],
        items.iter().map(|i| {
            vec![
                i.name.clone(),
                if i.ok { "passed" } else { "FAILED" }.to_string(),
                i.detail.clone(),
            ]
        }),
    )
}

/// The one-line verdict (stderr), `None` when everything passed.
pub fn verdict(items: &[CheckItem]) -> Option<String> {
    let failed = items.iter().filter(|i| !i.ok).count();
    (failed > 0).then(|| format!("{failed} of {} checks failed", items.len()))
}

pub async fn run(global: &GlobalArgs, args: CheckArgs) -> anyhow::Result<()> {
    let clusters = operate::connect(global).await?;
    let located = locate(&clusters, &args.name, global.namespace.as_deref())
        .await
        .map_err(operate::run_error)?;
    let mut observed = observe(&clusters, &args.name, &Scope::everything(located.namespaces()))
        .await
        .map_err(operate::run_error)?;
    observed.record = located.lease.as_ref().and_then(|l| l.record.clone());
    let webhooks = checks::read_webhooks(&clusters)
        .await
        .map_err(operate::run_error)?;
    let items = checks::preflight(&observed, &webhooks, jiff::Timestamp::now());
    let report = CheckReport {
        relationship: &args.name,
        passed: items.iter().all(|i| i.ok),
        items: &items,
    };
    output::print_data(global.output, &report, || table(&items))?;
    match verdict(&items) {
        Some(message) => Err(anyhow::Error::new(CodedError {
            code: crate::exit::FAILURE,
            message,
        })),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, ok: bool) -> CheckItem {
        CheckItem {
            name: name.into(),
            ok,
            detail: format!("detail of {name}"),
        }
    }

    #[test]
    fn table_and_verdict() {
        let items = vec![item("cluster a reachable", true), item("source AppVault", false)];
        let text = table(&items);
        assert!(text.starts_with("CHECK"), "{text}");
        assert!(text.contains("passed"), "{text}");
        assert!(text.contains("FAILED   detail of source AppVault"), "{text}");
        assert_eq!(verdict(&items).as_deref(), Some("1 of 2 checks failed"));
        assert_eq!(verdict(&items[..1]), None);
    }
}
