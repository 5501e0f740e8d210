//! `kubectl tprotect preview NAME`: what a failover will do to the destination namespace's labels and
//! annotations. The webhook's merge (`tprotect_policy::namespace::merge`) run early, with the skip rules of
//! both parties that apply them: Trident protect's controller (ConfigMap `trident-protect-env-config` in
//! `trident-protect` on the destination cluster) and our webhook (its Deployment's environment and arguments),
//! which puts back any key it skips when the controller writes the namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use serde::Serialize;
use tprotect_policy::namespace::{self as ns, NamespaceMeta, SkipRules};

use crate::args::ReadRelationshipArgs;
use crate::commands::{BeforeVerb, operate};
use crate::output::Printer;
use crate::render;

pub const EXAMPLES: &str = "Examples:
  # The labels and annotations a failover of payments would give its namespace on dr, and why
  kubectl tprotect preview payments --context dr --peer-context prod";

/// The ConfigMap Trident protect's Helm chart renders the controller's environment into.
pub const ENV_CONFIGMAP: &str = "trident-protect-env-config";
/// Where our webhook runs (its manifests).
pub const WEBHOOK_NAMESPACE: &str = "tprotect-system";
pub const WEBHOOK_DEPLOYMENT: &str = "tprotect-webhook";

pub type PreviewArgs = ReadRelationshipArgs;

/// Label or annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyKind {
    Label,
    Annotation,
}

/// What a failover does to one key of the destination namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "camelCase")]
pub enum KeyChange {
    /// Only on the source: added with the source value.
    Added { new: String },
    /// On both with different values: the source value wins.
    Overwritten { old: String, new: String },
    /// Unchanged: only on the destination, or the same value on both.
    Kept { value: String },
    /// On the source, left alone by a skip rule: the destination keeps `destination` (or stays without it).
    Skipped {
        rule: String,
        source: String,
        destination: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyPreview {
    pub kind: KeyKind,
    pub key: String,
    #[serde(flatten)]
    pub change: KeyChange,
}

/// A set of skip rules and where they were read, for the messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSource {
    pub rules: SkipRules,
    /// e.g. "ConfigMap trident-protect/trident-protect-env-config on tprotect-destination".
    pub origin: String,
}

/// Which rule, if any, skips a key (the first source that does).
fn skipped_by(kind: KeyKind, key: &str, sources: &[RuleSource]) -> Option<String> {
    sources.iter().find_map(|source| {
        let r = &source.rules;
        let variable = match kind {
            KeyKind::Label if r.skip_all_labels => Some(ns::SKIP_ALL_LABELS_VAR),
            KeyKind::Label if r.skip_labels.contains(key) => Some(ns::SKIP_LABELS_VAR),
            KeyKind::Annotation if !r.skips_annotation(key) => None,
            KeyKind::Annotation if r.skip_annotations.contains(key) => Some(ns::SKIP_ANNOTATIONS_VAR),
            KeyKind::Annotation => Some(ns::SKIP_ALL_ANNOTATIONS_VAR),
            KeyKind::Label => None,
        }?;
        Some(format!("{variable} ({})", source.origin))
    })
}

/// The destination namespace after a failover from `source`, key by key. Runs the policy crate's merge with
/// the controller's rules over a source from which the keys the webhook skips are removed: the webhook puts
/// those back to their destination value, which is what leaving them out of the source yields.
pub fn preview(
    source: &NamespaceMeta,
    destination: &NamespaceMeta,
    sources: &[RuleSource],
) -> Vec<KeyPreview> {
    let controller = sources.first().map(|s| s.rules.clone()).unwrap_or_default();
    let mut effective_source = source.clone();
    for later in sources.iter().skip(1) {
        effective_source.labels.retain(|k, _| !later.rules.skips_label(k));
        effective_source
            .annotations
            .retain(|k, _| !later.rules.skips_annotation(k));
    }
    let after = ns::merge(&effective_source, destination, &controller);

    let mut out = Vec::new();
    let sides = [
        (KeyKind::Label, &source.labels, &destination.labels, &after.labels),
        (
            KeyKind::Annotation,
            &source.annotations,
            &destination.annotations,
            &after.annotations,
        ),
    ];
    for (kind, src, dst, result) in sides {
        let keys: std::collections::BTreeSet<&String> = src.keys().chain(dst.keys()).collect();
        for key in keys {
            let before = dst.get(key);
            let change = match (src.get(key), skipped_by(kind, key, sources)) {
                (Some(source_value), Some(rule)) => KeyChange::Skipped {
                    rule,
                    source: source_value.clone(),
                    destination: before.cloned(),
                },
                _ => match (before, result.get(key)) {
                    (None, Some(new)) => KeyChange::Added { new: new.clone() },
                    (Some(old), Some(new)) if old != new => KeyChange::Overwritten {
                        old: old.clone(),
                        new: new.clone(),
                    },
                    (Some(old), _) => KeyChange::Kept { value: old.clone() },
                    // Merge never deletes: a key absent before and after cannot be listed.
                    (None, None) => continue,
                },
            };
            out.push(KeyPreview {
                kind,
                key: key.clone(),
                change,
            });
        }
    }
    out
}

/// Skip rules from a `RESTORE_*` map (a ConfigMap's data, a container's environment).
pub fn rules_from_map(map: &BTreeMap<String, String>) -> Result<SkipRules, String> {
    SkipRules::from_vars(|var| map.get(var).cloned()).map_err(|e| e.to_string())
}

/// The webhook container's `RESTORE_*` settings: literal `env` values, then `--restore-…` arguments (which
/// win, as clap reads them). `env` entries from ConfigMaps are resolved by the caller into `resolved`.
pub fn webhook_restore_vars(env: &[(String, String)], args: &[String]) -> BTreeMap<String, String> {
    let mut vars: BTreeMap<String, String> = env
        .iter()
        .filter(|(k, _)| ns::VARIABLES.contains(&k.as_str()))
        .cloned()
        .collect();
    let flag_of = |var: &str| format!("--{}", var.to_ascii_lowercase().replace('_', "-"));
    let mut iter = args.iter().peekable();
    while let Some(arg) = iter.next() {
        for var in ns::VARIABLES {
            let flag = flag_of(var);
            if let Some(value) = arg.strip_prefix(&format!("{flag}=")) {
                vars.insert(var.to_string(), value.to_string());
            } else if *arg == flag
                && let Some(value) = iter.peek()
            {
                vars.insert(var.to_string(), (*value).clone());
                iter.next();
            }
        }
    }
    vars
}

fn describe(change: &KeyChange) -> (String, String) {
    match change {
        KeyChange::Added { new } => ("added".into(), format!("{new:?}")),
        KeyChange::Overwritten { old, new } => ("overwritten".into(), format!("{old:?} -> {new:?}")),
        KeyChange::Kept { value } => ("kept".into(), format!("{value:?}")),
        KeyChange::Skipped {
            rule,
            source,
            destination,
        } => (
            "skipped".into(),
            match destination {
                Some(d) => format!("stays {d:?} (source {source:?}); rule {rule}"),
                None => format!("not added (source {source:?}); rule {rule}"),
            },
        ),
    }
}

pub fn table(heading: &str, keys: &[KeyPreview]) -> String {
    let rows = keys.iter().map(|k| {
        let (change, detail) = describe(&k.change);
        vec![
            match k.kind {
                KeyKind::Label => "label".into(),
                KeyKind::Annotation => "annotation".into(),
            },
            k.key.clone(),
            change,
            detail,
        ]
    });
    format!(
        "{heading}\n{}",
        render::table(&["KIND", "KEY", "CHANGE", "VALUE"], rows)
    )
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PreviewReport {
    relationship: String,
    source_cluster: String,
    source_namespace: String,
    destination_cluster: String,
    destination_namespace: String,
    rules: Vec<String>,
    keys: Vec<KeyPreview>,
}

fn meta(namespace: &Namespace) -> NamespaceMeta {
    NamespaceMeta {
        name: namespace.metadata.name.clone().unwrap_or_default(),
        labels: namespace.metadata.labels.clone().unwrap_or_default(),
        annotations: namespace.metadata.annotations.clone().unwrap_or_default(),
    }
}

async fn read_namespace(
    client: &kube::Client,
    context: &str,
    name: &str,
) -> anyhow::Result<Option<NamespaceMeta>> {
    let api: Api<Namespace> = Api::all(client.clone());
    api.get_opt(name)
        .await
        .map(|n| n.as_ref().map(meta))
        .map_err(|e| operate::kube_error(e, context, "", "Namespace", name))
}

/// The controller's rules from its ConfigMap (absent: nothing skipped, the chart's default).
async fn controller_rules(client: &kube::Client, context: &str) -> anyhow::Result<RuleSource> {
    let tp = tprotect_api::TRIDENT_PROTECT_NAMESPACE;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), tp);
    let origin = format!("ConfigMap {tp}/{ENV_CONFIGMAP} on {context}");
    let data = api
        .get_opt(ENV_CONFIGMAP)
        .await
        .map_err(|e| operate::kube_error(e, context, tp, "ConfigMap", ENV_CONFIGMAP))?
        .and_then(|cm| cm.data)
        .unwrap_or_default();
    let rules = rules_from_map(&data).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
    Ok(RuleSource { rules, origin })
}

/// The webhook's rules from its Deployment, if it is installed there (absent or unreadable: none, with a
/// warning for the latter).
async fn webhook_rules(
    client: &kube::Client,
    context: &str,
    progress: &crate::progress::Progress,
) -> Option<RuleSource> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), WEBHOOK_NAMESPACE);
    let deployment = match deployments.get_opt(WEBHOOK_DEPLOYMENT).await {
        Ok(d) => d?,
        Err(e) => {
            progress.warn(&format!(
                "cannot read Deployment {WEBHOOK_NAMESPACE}/{WEBHOOK_DEPLOYMENT} on {context} ({e}); the webhook's skip rules are not included"
            ));
            return None;
        }
    };
    let container = deployment
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.into_iter().next())?;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), WEBHOOK_NAMESPACE);
    let mut env: Vec<(String, String)> = Vec::new();
    for from in container.env_from.iter().flatten() {
        if let Some(name) = from.config_map_ref.as_ref().map(|r| r.name.clone()) {
            match configmaps.get_opt(&name).await {
                Ok(Some(cm)) => env.extend(cm.data.unwrap_or_default()),
                Ok(None) => {}
                Err(e) => progress.warn(&format!(
                    "cannot read ConfigMap {WEBHOOK_NAMESPACE}/{name} on {context} ({e}) for the webhook's skip rules"
                )),
            }
        }
    }
    for var in container.env.iter().flatten() {
        if let Some(value) = &var.value {
            env.push((var.name.clone(), value.clone()));
        } else if let Some(key_ref) = var
            .value_from
            .as_ref()
            .and_then(|v| v.config_map_key_ref.as_ref())
        {
            match configmaps.get_opt(&key_ref.name).await {
                Ok(Some(cm)) => {
                    if let Some(value) = cm.data.unwrap_or_default().get(&key_ref.key) {
                        env.push((var.name.clone(), value.clone()));
                    }
                }
                Ok(None) => {}
                Err(e) => progress.warn(&format!(
                    "cannot read ConfigMap {WEBHOOK_NAMESPACE}/{} on {context} ({e}) for the webhook's skip rules",
                    key_ref.name
                )),
            }
        }
    }
    let args: Vec<String> = container
        .command
        .into_iter()
        .flatten()
        .chain(container.args.into_iter().flatten())
        .collect();
    let vars = webhook_restore_vars(&env, &args);
    let origin = format!("Deployment {WEBHOOK_NAMESPACE}/{WEBHOOK_DEPLOYMENT} on {context}");
    match rules_from_map(&vars) {
        Ok(rules) => Some(RuleSource { rules, origin }),
        Err(e) => {
            progress.warn(&format!(
                "{origin}: {e}; the webhook's skip rules are not included"
            ));
            None
        }
    }
}

pub async fn run(args: PreviewArgs, before: &BeforeVerb, printer: &mut Printer) -> anyhow::Result<()> {
    let progress = crate::progress::Progress::stderr();
    let connection = args.connection.or(&before.connection);
    let clusters = operate::connect(&connection).await?;
    let found = operate::locate(&clusters, connection.namespace.as_deref(), &args.name).await?;
    let (dst_key, src_key) = (found.cluster, found.cluster.other());
    let dst_ctx = clusters.context_of(dst_key).to_string();
    let src_ctx = clusters.context_of(src_key).to_string();
    let dst_client = clusters
        .get(dst_key)
        .client()
        .map_err(|e| anyhow::anyhow!("cannot use context {dst_ctx}: {e}"))?
        .clone();
    let src_client = clusters
        .get(src_key)
        .client()
        .map_err(|e| anyhow::anyhow!("preview reads the source namespace on {src_ctx}: {e}"))?
        .clone();

    let mut sources = vec![controller_rules(&dst_client, &dst_ctx).await?];
    if let Some(webhook) = webhook_rules(&dst_client, &dst_ctx, &progress).await {
        sources.push(webhook);
    }
    let mut text = String::new();
    let mut reports = Vec::new();
    for (source_ns, destination_ns) in found.mapping {
        let source = read_namespace(&src_client, &src_ctx, &source_ns)
            .await?
            .ok_or_else(|| {
                anyhow::anyhow!("Namespace {source_ns} not found on the source cluster {src_ctx}")
            })?;
        // Not created yet (a failover creates it): every key is added.
        let destination = read_namespace(&dst_client, &dst_ctx, &destination_ns)
            .await?
            .unwrap_or_else(|| NamespaceMeta {
                name: destination_ns.clone(),
                ..Default::default()
            });
        let keys = preview(&source, &destination, &sources);
        text.push_str(&table(
            &format!(
                "Failover of {} changes Namespace {destination_ns} on {dst_ctx} (from {source_ns} on {src_ctx}):",
                args.name
            ),
            &keys,
        ));
        reports.push(PreviewReport {
            relationship: args.name.clone(),
            source_cluster: src_ctx.clone(),
            source_namespace: source_ns,
            destination_cluster: dst_ctx.clone(),
            destination_namespace: destination_ns,
            rules: sources.iter().map(|s| s.origin.clone()).collect(),
            keys,
        });
    }
    progress.finish();
    printer.print(&reports, || text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Namespace with `metadata`, read as the preview reads the clusters' Namespaces.
    fn namespace(metadata: serde_json::Value) -> NamespaceMeta {
        meta(&serde_json::from_value(serde_json::json!({ "metadata": metadata })).unwrap())
    }

    fn rules(vars: &[(&str, &str)], origin: &str) -> RuleSource {
        let map = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        RuleSource {
            rules: rules_from_map(&map).unwrap(),
            origin: origin.into(),
        }
    }

    fn added(new: &str) -> KeyChange {
        KeyChange::Added { new: new.into() }
    }

    fn kept(value: &str) -> KeyChange {
        KeyChange::Kept { value: value.into() }
    }

    fn find<'a>(keys: &'a [KeyPreview], kind: KeyKind, key: &str) -> &'a KeyChange {
        &keys
            .iter()
            .find(|k| k.kind == kind && k.key == key)
            .unwrap_or_else(|| panic!("{key} missing"))
            .change
    }

    /// The rule, source value and destination value of a key a skip rule left alone; panics for any other change.
    fn skipped<'a>(keys: &'a [KeyPreview], kind: KeyKind, key: &str) -> (&'a str, &'a str, Option<&'a str>) {
        match find(keys, kind, key) {
            KeyChange::Skipped {
                rule,
                source,
                destination,
            } => (rule, source, destination.as_deref()),
            other => panic!("{key} not skipped: {other:?}"),
        }
    }

    /// Seed 003's worked example (ns-1 failed over onto ns-2), previewed under `rules`.
    fn preview_seed(rules: &[RuleSource]) -> Vec<KeyPreview> {
        let (source, destination) = (
            namespace(serde_json::json!({
                "name": "ns-1",
                "labels": {"environment": "production", "compliance": "hipaa", "name": "ns-1"},
                "annotations": {"annotation.one/key": "updatedvalue", "annotation.two/key": "true"},
            })),
            namespace(serde_json::json!({
                "name": "ns-2",
                "labels": {"role": "database"},
                "annotations": {"annotation.one/key": "true", "annotation.three/key": "false"},
            })),
        );
        preview(&source, &destination, rules)
    }

    #[test]
    fn seed_example_without_skip_rules() {
        let keys = preview_seed(&[rules(&[], "cm")]);
        use KeyKind::*;
        assert_eq!(find(&keys, Label, "environment"), &added("production"));
        assert_eq!(find(&keys, Label, "compliance"), &added("hipaa"));
        assert_eq!(
            find(&keys, Label, "name"),
            &added("ns-2"),
            "name follows the namespace"
        );
        assert_eq!(find(&keys, Label, "role"), &kept("database"));
        assert_eq!(
            find(&keys, Annotation, "annotation.one/key"),
            &KeyChange::Overwritten {
                old: "true".into(),
                new: "updatedvalue".into()
            }
        );
        assert_eq!(find(&keys, Annotation, "annotation.two/key"), &added("true"));
        assert_eq!(find(&keys, Annotation, "annotation.three/key"), &kept("false"));
        assert_eq!(keys.len(), 7);
    }

    #[test]
    fn controller_skip_rules_name_the_variable_and_its_origin() {
        let cm = rules(
            &[
                ("RESTORE_SKIP_NAMESPACE_ANNOTATIONS", "annotation.one/key"),
                ("RESTORE_SKIP_NAMESPACE_LABELS", "compliance"),
            ],
            "ConfigMap trident-protect/trident-protect-env-config on dst",
        );
        let keys = preview_seed(&[cm]);
        let (rule, source, destination) = skipped(&keys, KeyKind::Annotation, "annotation.one/key");
        assert!(
            rule.starts_with("RESTORE_SKIP_NAMESPACE_ANNOTATIONS (ConfigMap trident-protect/"),
            "{rule}"
        );
        assert_eq!((source, destination), ("updatedvalue", Some("true")));
        let (rule, _, destination) = skipped(&keys, KeyKind::Label, "compliance");
        assert!(rule.starts_with("RESTORE_SKIP_NAMESPACE_LABELS"), "{rule}");
        assert_eq!(destination, None);
        assert_eq!(find(&keys, KeyKind::Label, "environment"), &added("production"));
    }

    #[test]
    fn skip_all_and_force() {
        let cm = rules(
            &[
                ("RESTORE_SKIP_ALL_NAMESPACE_ANNOTATIONS", "true"),
                ("RESTORE_FORCE_NAMESPACE_ANNOTATIONS", "annotation.two/key"),
                ("RESTORE_SKIP_ALL_NAMESPACE_LABELS", "TRUE"),
            ],
            "cm",
        );
        let keys = preview_seed(&[cm]);
        let (rule, _, _) = skipped(&keys, KeyKind::Annotation, "annotation.one/key");
        assert!(
            rule.starts_with("RESTORE_SKIP_ALL_NAMESPACE_ANNOTATIONS"),
            "{rule}"
        );
        assert_eq!(
            find(&keys, KeyKind::Annotation, "annotation.two/key"),
            &added("true"),
            "forced annotations are restored despite skip-all"
        );
        for label in ["environment", "compliance", "name"] {
            let (rule, _, _) = skipped(&keys, KeyKind::Label, label);
            assert!(rule.starts_with("RESTORE_SKIP_ALL_NAMESPACE_LABELS"), "{rule}");
        }
        assert_eq!(find(&keys, KeyKind::Label, "role"), &kept("database"));
    }

    #[test]
    fn webhook_rules_also_skip_and_are_named() {
        let keys = preview_seed(&[
            rules(&[], "cm"),
            rules(
                &[("RESTORE_SKIP_NAMESPACE_ANNOTATIONS", "annotation.one/key")],
                "Deployment tprotect-system/tprotect-webhook on dst",
            ),
        ]);
        let (rule, _, destination) = skipped(&keys, KeyKind::Annotation, "annotation.one/key");
        assert!(
            rule.contains("Deployment tprotect-system/tprotect-webhook"),
            "{rule}"
        );
        assert_eq!(destination, Some("true"));
    }

    #[test]
    fn same_value_is_kept_and_name_label_copied_when_it_is_not_the_namespace_name() {
        let source = namespace(serde_json::json!({"name": "a", "labels": {"team": "x", "name": "custom"}}));
        let destination = namespace(serde_json::json!({"name": "b", "labels": {"team": "x"}}));
        let keys = preview(&source, &destination, &[rules(&[], "cm")]);
        assert_eq!(find(&keys, KeyKind::Label, "team"), &kept("x"));
        assert_eq!(find(&keys, KeyKind::Label, "name"), &added("custom"));
    }

    #[test]
    fn webhook_vars_from_env_and_args() {
        let env = vec![
            ("RESTORE_SKIP_NAMESPACE_LABELS".to_string(), "a,b".to_string()),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let args: Vec<String> = [
            "serve",
            "--restore-skip-namespace-labels=c",
            "--restore-skip-all-namespace-annotations",
            "true",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let vars = webhook_restore_vars(&env, &args);
        assert_eq!(
            vars.get("RESTORE_SKIP_NAMESPACE_LABELS").map(String::as_str),
            Some("c")
        );
        assert_eq!(
            vars.get("RESTORE_SKIP_ALL_NAMESPACE_ANNOTATIONS")
                .map(String::as_str),
            Some("true")
        );
        assert!(!vars.contains_key("UNRELATED"));
    }

    #[test]
    fn table_reads_old_to_new_and_the_rule() {
        let cm = rules(&[("RESTORE_SKIP_NAMESPACE_LABELS", "compliance")], "cm-origin");
        let text = table("heading", &preview_seed(&[cm]));
        assert!(text.starts_with("heading\nKIND"), "{text}");
        assert!(
            text.contains("overwritten   \"true\" -> \"updatedvalue\""),
            "{text}"
        );
        assert!(
            text.contains("not added (source \"hipaa\"); rule RESTORE_SKIP_NAMESPACE_LABELS (cm-origin)"),
            "{text}"
        );
    }
}
