//! Namespace labels and annotations on restore and failover (seed 003, "Namespace annotations and labels
//! during restore and failover operations").
//!
//! [`merge`] is the documented result: source keys are added to the destination namespace or overwrite it,
//! keys only on the destination stay, nothing is deleted; keys in Trident protect's skip lists are left alone;
//! the `name` label follows the namespace. The plugin runs it to preview a failover; the stand-in controller
//! runs it to act like Trident protect.
//!
//! [`enforce`] is what the webhook does when the Trident protect controller itself writes a Namespace: it
//! restores every skipped key to its value before the write, so the skip rules hold whatever the controller
//! does.
//!
//! Key matching is exact, the documented reading. Whether Trident protect also treats list entries as
//! prefixes (e.g. `openshift.io/sa.scc.` for every SCC annotation) is unverified; exact matching never skips a
//! key the operator did not name.

use std::collections::{BTreeMap, BTreeSet};

use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, jsonptr::PointerBuf};
use serde_json::Value;

use crate::PolicyError;

/// The environment variables Trident protect's controller reads (Helm values → ConfigMap
/// `trident-protect-env-config` → `trident-protect-controller-manager`).
pub const SKIP_ANNOTATIONS_VAR: &str = "RESTORE_SKIP_NAMESPACE_ANNOTATIONS";
pub const SKIP_LABELS_VAR: &str = "RESTORE_SKIP_NAMESPACE_LABELS";
pub const FORCE_ANNOTATIONS_VAR: &str = "RESTORE_FORCE_NAMESPACE_ANNOTATIONS";
pub const SKIP_ALL_ANNOTATIONS_VAR: &str = "RESTORE_SKIP_ALL_NAMESPACE_ANNOTATIONS";
pub const SKIP_ALL_LABELS_VAR: &str = "RESTORE_SKIP_ALL_NAMESPACE_LABELS";
/// All five, for callers that copy them from a ConfigMap or environment.
pub const VARIABLES: [&str; 5] = [
    SKIP_ANNOTATIONS_VAR,
    SKIP_LABELS_VAR,
    FORCE_ANNOTATIONS_VAR,
    SKIP_ALL_ANNOTATIONS_VAR,
    SKIP_ALL_LABELS_VAR,
];

/// The label `helm install --create-namespace` sets, whose value follows the namespace name.
pub const NAME_LABEL: &str = "name";

/// The part of a Namespace these rules read and write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceMeta {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl NamespaceMeta {
    /// Reads name, labels and annotations of a raw Namespace object.
    pub fn from_object(object: &Value) -> Result<Self, PolicyError> {
        let metadata = object
            .get("metadata")
            .and_then(Value::as_object)
            .ok_or_else(|| PolicyError::InvalidNamespace("metadata is missing or not an object".into()))?;
        let name = metadata
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| PolicyError::InvalidNamespace("metadata.name is missing or not a string".into()))?
            .to_string();
        let map = |key: &str| -> Result<BTreeMap<String, String>, PolicyError> {
            match metadata.get(key) {
                None | Some(Value::Null) => Ok(BTreeMap::new()),
                Some(Value::Object(entries)) => entries
                    .iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => Ok((k.clone(), s.clone())),
                        _ => Err(PolicyError::InvalidNamespace(format!(
                            "metadata.{key}[{k:?}] is not a string"
                        ))),
                    })
                    .collect(),
                Some(_) => Err(PolicyError::InvalidNamespace(format!(
                    "metadata.{key} is not an object"
                ))),
            }
        };
        Ok(Self {
            name,
            labels: map("labels")?,
            annotations: map("annotations")?,
        })
    }
}

/// Which namespace labels and annotations a restore or failover leaves alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkipRules {
    /// `RESTORE_SKIP_NAMESPACE_ANNOTATIONS`
    pub skip_annotations: BTreeSet<String>,
    /// `RESTORE_SKIP_NAMESPACE_LABELS`
    pub skip_labels: BTreeSet<String>,
    /// `RESTORE_FORCE_NAMESPACE_ANNOTATIONS`: always restored, overriding every exclusion, including
    /// `skip_all_annotations`.
    pub force_annotations: BTreeSet<String>,
    /// `RESTORE_SKIP_ALL_NAMESPACE_ANNOTATIONS="true"`
    pub skip_all_annotations: bool,
    /// `RESTORE_SKIP_ALL_NAMESPACE_LABELS="true"`
    pub skip_all_labels: bool,
}

impl SkipRules {
    /// Nothing skipped: the plain documented merge.
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads the five variables through `lookup` (the process environment, a ConfigMap's data, a test map).
    ///
    /// Lists are comma separated; items are trimmed and empty items ignored (Helm joins a values list with
    /// `,`). The SKIP_ALL variables enable with `true` (any case); unset, empty or `false` (any case) disable;
    /// any other value is an error naming the variable rather than a guess.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, PolicyError> {
        let list = |var: &str| -> BTreeSet<String> {
            lookup(var)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_string)
                .collect()
        };
        let flag = |var: &str| -> Result<bool, PolicyError> {
            let Some(raw) = lookup(var) else { return Ok(false) };
            match raw.trim() {
                v if v.eq_ignore_ascii_case("true") => Ok(true),
                v if v.is_empty() || v.eq_ignore_ascii_case("false") => Ok(false),
                _ => Err(PolicyError::InvalidBooleanVariable {
                    variable: var.to_string(),
                    value: raw,
                }),
            }
        };
        Ok(Self {
            skip_annotations: list(SKIP_ANNOTATIONS_VAR),
            skip_labels: list(SKIP_LABELS_VAR),
            force_annotations: list(FORCE_ANNOTATIONS_VAR),
            skip_all_annotations: flag(SKIP_ALL_ANNOTATIONS_VAR)?,
            skip_all_labels: flag(SKIP_ALL_LABELS_VAR)?,
        })
    }

    /// Whether a restore leaves this label of the destination namespace alone.
    pub fn skips_label(&self, key: &str) -> bool {
        self.skip_all_labels || self.skip_labels.contains(key)
    }

    /// Whether a restore leaves this annotation of the destination namespace alone.
    pub fn skips_annotation(&self, key: &str) -> bool {
        !self.force_annotations.contains(key)
            && (self.skip_all_annotations || self.skip_annotations.contains(key))
    }
}

/// A `namespaceMapping` entry of an AppMirrorRelationship.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NamespaceMapping {
    pub source: String,
    pub destination: String,
}

impl NamespaceMapping {
    /// The entries of an AMR's `spec.namespaceMapping` that have both names as strings.
    pub fn from_amr(amr: &Value) -> Vec<Self> {
        amr.pointer("/spec/namespaceMapping")
            .and_then(Value::as_array)
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| {
                        Some(Self {
                            source: e.get("source")?.as_str()?.to_string(),
                            destination: e.get("destination")?.as_str()?.to_string(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The destination namespace after a restore or failover from `source`, as documented: every source key the
/// rules do not skip is added or overwrites; every other destination key stays; nothing is deleted. The
/// `name` label becomes the destination's name when its source value is the source namespace's name.
pub fn merge(source: &NamespaceMeta, destination_before: &NamespaceMeta, rules: &SkipRules) -> NamespaceMeta {
    let mut result = destination_before.clone();
    for (key, value) in &source.labels {
        if rules.skips_label(key) {
            continue;
        }
        let value = if key == NAME_LABEL && *value == source.name {
            &destination_before.name
        } else {
            value
        };
        result.labels.insert(key.clone(), value.clone());
    }
    for (key, value) in &source.annotations {
        if !rules.skips_annotation(key) {
            result.annotations.insert(key.clone(), value.clone());
        }
    }
    result
}

/// The JSON Patch (over the Namespace object `new`) that makes a write by the Trident protect controller obey
/// the skip rules: every skipped key gets back its `old` value, or is removed where `old` did not have it
/// (`old` is `None` on CREATE). Then the `name` label rule: when `name` is not skipped and its value is the
/// source of a mapping whose destination is this namespace, it becomes this namespace's name.
///
/// The `name` rule reads the label as written (it cannot see the source namespace): a destination that already
/// carried `name=<source namespace>` while the source had no `name` label is renamed too, a deliberate
/// difference from [`merge`] in a case that only arises from a previous copy of that label.
///
/// Idempotent: applied to its own output it returns an empty patch.
pub fn enforce(
    old: Option<&NamespaceMeta>,
    new: &NamespaceMeta,
    rules: &SkipRules,
    mappings: &[NamespaceMapping],
) -> Patch {
    let empty = BTreeMap::new();
    let old_labels = old.map_or(&empty, |o| &o.labels);
    let old_annotations = old.map_or(&empty, |o| &o.annotations);

    let mut labels = restore_skipped(old_labels, &new.labels, |k| rules.skips_label(k));
    let annotations = restore_skipped(old_annotations, &new.annotations, |k| rules.skips_annotation(k));

    if !rules.skips_label(NAME_LABEL)
        && let Some(value) = labels.get(NAME_LABEL)
        && mappings
            .iter()
            .any(|m| m.destination == new.name && m.source == *value)
    {
        labels.insert(NAME_LABEL.to_string(), new.name.clone());
    }

    let mut operations = map_patch("labels", &new.labels, &labels);
    operations.extend(map_patch("annotations", &new.annotations, &annotations));
    Patch(operations)
}

/// `new` with every key `skipped` says is skipped set back to its value in `old` (or removed).
fn restore_skipped(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    skipped: impl Fn(&str) -> bool,
) -> BTreeMap<String, String> {
    let mut target = new.clone();
    for key in old.keys().chain(new.keys()).filter(|k| skipped(k)) {
        match old.get(key) {
            Some(value) => target.insert(key.clone(), value.clone()),
            None => target.remove(key),
        };
    }
    target
}

/// Operations turning `metadata.<field>` from `current` into `target`. When `current` is empty the map may
/// be absent from the object, so the whole map is added in one operation (a JSON Patch cannot add a key to a
/// missing map).
fn map_patch(
    field: &str,
    current: &BTreeMap<String, String>,
    target: &BTreeMap<String, String>,
) -> Vec<PatchOperation> {
    if current == target {
        return Vec::new();
    }
    if current.is_empty() {
        let map = target
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        return vec![PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(["metadata", field]),
            value: Value::Object(map),
        })];
    }
    let path = |key: &str| PointerBuf::from_tokens(["metadata", field, key]);
    let removals = current
        .keys()
        .filter(|k| !target.contains_key(*k))
        .map(|k| PatchOperation::Remove(RemoveOperation { path: path(k) }));
    let additions = target
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| {
            PatchOperation::Add(AddOperation {
                path: path(k),
                value: Value::String(v.clone()),
            })
        });
    removals.chain(additions).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn meta(name: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> NamespaceMeta {
        NamespaceMeta {
            name: name.into(),
            labels: map(labels),
            annotations: map(annotations),
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> Result<SkipRules, PolicyError> {
        let pairs: BTreeMap<String, String> = map(pairs);
        SkipRules::from_vars(|k| pairs.get(k).cloned())
    }

    /// The seed's worked example, before the operation.
    fn seed_source() -> NamespaceMeta {
        meta(
            "ns-1",
            &[
                ("environment", "production"),
                ("compliance", "hipaa"),
                ("name", "ns-1"),
            ],
            &[
                ("annotation.one/key", "updatedvalue"),
                ("annotation.two/key", "true"),
            ],
        )
    }

    fn seed_destination() -> NamespaceMeta {
        meta(
            "ns-2",
            &[("role", "database")],
            &[("annotation.one/key", "true"), ("annotation.three/key", "false")],
        )
    }

    #[test]
    fn seed_worked_example_ends_as_documented() {
        let after = merge(&seed_source(), &seed_destination(), &SkipRules::none());
        assert_eq!(
            after,
            meta(
                "ns-2",
                &[
                    ("name", "ns-2"),
                    ("compliance", "hipaa"),
                    ("environment", "production"),
                    ("role", "database")
                ],
                &[
                    ("annotation.one/key", "updatedvalue"),
                    ("annotation.two/key", "true"),
                    ("annotation.three/key", "false"),
                ],
            )
        );
    }

    #[test]
    fn seed_worked_example_with_skipped_annotation_keeps_true() {
        let rules = vars(&[(SKIP_ANNOTATIONS_VAR, "annotation.one/key")]).unwrap();
        let after = merge(&seed_source(), &seed_destination(), &rules);
        assert_eq!(after.annotations["annotation.one/key"], "true");
        assert_eq!(after.annotations["annotation.two/key"], "true");
        assert_eq!(after.annotations["annotation.three/key"], "false");
        assert_eq!(after.labels["name"], "ns-2");
    }

    #[test]
    fn name_label_not_matching_the_source_namespace_is_copied_unchanged() {
        let source = meta("ns-1", &[("name", "billing")], &[]);
        let after = merge(&source, &meta("ns-2", &[], &[]), &SkipRules::none());
        assert_eq!(after.labels["name"], "billing");
    }

    #[test]
    fn skip_lists_and_skip_all() {
        let source = meta("s", &[("a", "1"), ("b", "2")], &[("x", "1"), ("y", "2")]);
        let destination = meta("d", &[("a", "old")], &[("x", "old")]);

        let rules = vars(&[(SKIP_LABELS_VAR, " a , ,"), (SKIP_ANNOTATIONS_VAR, "y")]).unwrap();
        let after = merge(&source, &destination, &rules);
        assert_eq!(after.labels, map(&[("a", "old"), ("b", "2")]));
        assert_eq!(after.annotations, map(&[("x", "1")]));

        let rules = vars(&[(SKIP_ALL_LABELS_VAR, "TRUE"), (SKIP_ALL_ANNOTATIONS_VAR, "true")]).unwrap();
        let after = merge(&source, &destination, &rules);
        assert_eq!(after, destination);
    }

    #[test]
    fn force_overrides_skip_lists_and_skip_all() {
        let source = meta("s", &[], &[("x", "1"), ("y", "2")]);
        let destination = meta("d", &[], &[("x", "old")]);
        let rules = vars(&[
            (SKIP_ALL_ANNOTATIONS_VAR, "true"),
            (SKIP_ANNOTATIONS_VAR, "x,y"),
            (FORCE_ANNOTATIONS_VAR, "x"),
        ])
        .unwrap();
        let after = merge(&source, &destination, &rules);
        assert_eq!(after.annotations, map(&[("x", "1")]));
    }

    #[test]
    fn exact_key_matching_not_prefix() {
        let source = meta("s", &[], &[("openshift.io/sa.scc.uid-range", "1/2")]);
        let rules = vars(&[(SKIP_ANNOTATIONS_VAR, "openshift.io/sa.scc.")]).unwrap();
        let after = merge(&source, &meta("d", &[], &[]), &rules);
        assert_eq!(after.annotations["openshift.io/sa.scc.uid-range"], "1/2");
    }

    #[test]
    fn from_vars_booleans() {
        for (value, expected) in [
            ("true", true),
            ("True", true),
            (" TRUE ", true),
            ("false", false),
            ("", false),
        ] {
            assert_eq!(
                vars(&[(SKIP_ALL_LABELS_VAR, value)]).unwrap().skip_all_labels,
                expected,
                "{value:?}"
            );
        }
        assert!(!vars(&[]).unwrap().skip_all_annotations);
        for bad in ["yes", "1", "enabled"] {
            let err = vars(&[(SKIP_ALL_ANNOTATIONS_VAR, bad)]).unwrap_err();
            assert_eq!(
                err,
                PolicyError::InvalidBooleanVariable {
                    variable: SKIP_ALL_ANNOTATIONS_VAR.into(),
                    value: bad.into()
                }
            );
            assert!(
                err.to_string().contains("RESTORE_SKIP_ALL_NAMESPACE_ANNOTATIONS"),
                "{err}"
            );
        }
        let rules = vars(&[(FORCE_ANNOTATIONS_VAR, "a,,b , c")]).unwrap();
        assert_eq!(
            rules.force_annotations.into_iter().collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }

    fn apply(object: &Value, patch: &Patch) -> Value {
        let mut doc = object.clone();
        json_patch::patch(&mut doc, &patch.0).expect("patch applies");
        doc
    }

    fn object(meta: &NamespaceMeta) -> Value {
        let mut metadata = serde_json::json!({"name": meta.name});
        if !meta.labels.is_empty() {
            metadata["labels"] = serde_json::to_value(&meta.labels).unwrap();
        }
        if !meta.annotations.is_empty() {
            metadata["annotations"] = serde_json::to_value(&meta.annotations).unwrap();
        }
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})
    }

    #[test]
    fn enforce_restores_skipped_keys_after_a_naive_controller_write() {
        // A controller that copies every source key verbatim, ignoring skip lists and the name rule.
        let before = seed_destination();
        let mut written = before.clone();
        written.labels.extend(seed_source().labels);
        written.annotations.extend(seed_source().annotations);

        let rules = vars(&[(SKIP_ANNOTATIONS_VAR, "annotation.one/key")]).unwrap();
        let mappings = [NamespaceMapping {
            source: "ns-1".into(),
            destination: "ns-2".into(),
        }];
        let patch = enforce(Some(&before), &written, &rules, &mappings);
        let patched = NamespaceMeta::from_object(&apply(&object(&written), &patch)).unwrap();
        assert_eq!(patched, merge(&seed_source(), &before, &rules));
        assert_eq!(patched.annotations["annotation.one/key"], "true");
        assert_eq!(patched.labels["name"], "ns-2");

        assert!(
            enforce(Some(&before), &patched, &rules, &mappings).0.is_empty(),
            "idempotent"
        );
    }

    #[test]
    fn enforce_on_create_removes_skipped_keys_and_adds_missing_maps() {
        let written = meta(
            "ns-2",
            &[("name", "ns-1"), ("team", "a")],
            &[("openshift.io/sa.scc.mcs", "s0:c1")],
        );
        let rules = vars(&[
            (SKIP_ANNOTATIONS_VAR, "openshift.io/sa.scc.mcs"),
            (SKIP_LABELS_VAR, "team"),
        ])
        .unwrap();
        let mappings = [NamespaceMapping {
            source: "ns-1".into(),
            destination: "ns-2".into(),
        }];
        let patch = enforce(None, &written, &rules, &mappings);
        let patched = NamespaceMeta::from_object(&apply(&object(&written), &patch)).unwrap();
        assert_eq!(patched, meta("ns-2", &[("name", "ns-2")], &[]));
        assert!(enforce(None, &patched, &rules, &mappings).0.is_empty());
    }

    #[test]
    fn enforce_adds_a_missing_labels_map_before_its_keys() {
        let before = meta("ns-2", &[("kept", "yes")], &[]);
        let written = meta("ns-2", &[], &[("a", "b")]);
        let rules = vars(&[(SKIP_LABELS_VAR, "kept")]).unwrap();
        let patch = enforce(Some(&before), &written, &rules, &[]);
        let doc = object(&written);
        assert!(doc["metadata"].get("labels").is_none());
        let patched = apply(&doc, &patch);
        assert_eq!(patched["metadata"]["labels"]["kept"], "yes");
    }

    #[test]
    fn enforce_escapes_slashes_and_tildes_in_keys() {
        let before = meta("d", &[("x", "1")], &[("a/b~c", "old")]);
        let written = meta("d", &[("x", "1")], &[("a/b~c", "new")]);
        let rules = vars(&[(SKIP_ANNOTATIONS_VAR, "a/b~c")]).unwrap();
        let patch = enforce(Some(&before), &written, &rules, &[]);
        let text = serde_json::to_string(&patch).unwrap();
        assert!(text.contains("/metadata/annotations/a~1b~0c"), "{text}");
        let patched = apply(&object(&written), &patch);
        assert_eq!(patched["metadata"]["annotations"]["a/b~c"], "old");
    }

    #[test]
    fn enforce_leaves_unskipped_changes_and_other_namespaces_alone() {
        let before = meta("d", &[("name", "s")], &[]);
        let written = meta("d", &[("name", "s"), ("new", "1")], &[("z", "2")]);
        let unrelated = [NamespaceMapping {
            source: "s".into(),
            destination: "elsewhere".into(),
        }];
        assert!(
            enforce(Some(&before), &written, &SkipRules::none(), &unrelated)
                .0
                .is_empty()
        );
        let rules = vars(&[(SKIP_LABELS_VAR, "name")]).unwrap();
        let mappings = [NamespaceMapping {
            source: "s".into(),
            destination: "d".into(),
        }];
        assert!(
            enforce(Some(&before), &written, &rules, &mappings).0.is_empty(),
            "a skipped name label is kept"
        );
    }

    #[test]
    fn from_object_reports_bad_shapes() {
        assert!(NamespaceMeta::from_object(&serde_json::json!({})).is_err());
        assert!(
            NamespaceMeta::from_object(&serde_json::json!({"metadata": {"name": "a", "labels": {"x": 1}}}))
                .is_err()
        );
        let ok = NamespaceMeta::from_object(&serde_json::json!({"metadata": {"name": "a", "labels": null}}))
            .unwrap();
        assert_eq!(ok, meta("a", &[], &[]));
    }

    #[test]
    fn mappings_from_amr() {
        let amr = serde_json::json!({"spec": {"namespaceMapping": [
            {"source": "a", "destination": "b"}, {"source": "c"}, 7
        ]}});
        assert_eq!(
            NamespaceMapping::from_amr(&amr),
            [NamespaceMapping {
                source: "a".into(),
                destination: "b".into()
            }]
        );
        assert!(NamespaceMapping::from_amr(&serde_json::json!({})).is_empty());
    }
}
