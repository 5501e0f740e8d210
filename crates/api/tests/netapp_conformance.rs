//! Our generated CRDs against NetApp's (Trident protect chart 26.05) for the six kinds we model.
//!
//! For every schema node in NetApp's `openAPIV3Schema` (walking `properties`, `items` and
//! `additionalProperties`), ours must have the same path with the same `type`, the same `enum` values, the
//! same `required` list (equal, not merely containing it: requiring more would reject objects NetApp accepts),
//! and the same validation keywords and Kubernetes extensions. Descriptions are not compared, and NetApp's CEL
//! `x-kubernetes-validations` are deliberately not carried (Kubernetes 1.20 drops them; admission policy
//! enforces those rules). Names, scope, printer columns and subresources are compared too.
//!
//! NetApp's files are read from `$TPROTECT_SHARED_DIR/trident-protect/chart-26.05/`, else from
//! `<repo>/../shared/…`. Without them the test prints that it was SKIPPED (bypassing output capture).

use std::{
    collections::BTreeSet,
    io::Write,
    path::{Path, PathBuf},
};

use serde_json::Value;

/// Keywords whose values must be equal wherever NetApp sets them (beyond type, enum and required).
const EQUAL_KEYWORDS: &[&str] = &[
    "format",
    "default",
    "nullable",
    "pattern",
    "maxLength",
    "minLength",
    "maxItems",
    "minItems",
    "maximum",
    "minimum",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
];

/// One difference between NetApp's schema and ours.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mismatch {
    path: String,
    kind: &'static str,
    detail: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}]: {}", self.path, self.kind, self.detail)
    }
}

/// Result of walking one schema pair.
#[derive(Debug, Default)]
struct Comparison {
    /// NetApp schema nodes (field paths) compared.
    paths: usize,
    /// CRD-level fields (names, scope, printer columns, subresources) compared.
    crd_fields: usize,
    /// Properties only we have (allowed: we are a superset), for information.
    ours_only: Vec<String>,
    /// CEL rules NetApp has that we deliberately leave out.
    cel_rules_skipped: usize,
    mismatches: Vec<Mismatch>,
}

/// Walks NetApp's schema node `theirs` and checks `ours` carries all of it.
fn compare_schema(path: &str, theirs: &Value, ours: Option<&Value>, out: &mut Comparison) {
    out.paths += 1;
    let Some(ours) = ours else {
        out.mismatches.push(Mismatch {
            path: path.into(),
            kind: "missing",
            detail: "not in our schema".into(),
        });
        return;
    };
    let mismatch = |kind: &'static str, detail: String| Mismatch {
        path: path.into(),
        kind,
        detail,
    };

    if theirs.get("type") != ours.get("type") {
        out.mismatches.push(mismatch(
            "type",
            format!("NetApp {:?}, ours {:?}", theirs.get("type"), ours.get("type")),
        ));
    }
    if let Some(their_enum) = theirs.get("enum") {
        let ours_set = ours.get("enum").map(string_set).unwrap_or_default();
        if let Some(detail) = set_difference(&string_set(their_enum), &ours_set) {
            out.mismatches.push(mismatch("enum", detail));
        }
    } else if let Some(our_enum) = ours.get("enum") {
        out.mismatches.push(mismatch(
            "enum",
            format!("NetApp has no enum, ours restricts to {our_enum}"),
        ));
    }
    let their_required = theirs.get("required").map(string_set).unwrap_or_default();
    let our_required = ours.get("required").map(string_set).unwrap_or_default();
    if let Some(detail) = set_difference(&their_required, &our_required) {
        out.mismatches.push(mismatch("required", detail));
    }
    for keyword in EQUAL_KEYWORDS {
        let (t, o) = (theirs.get(*keyword), ours.get(*keyword));
        let equal = match (t, o) {
            (Some(Value::Number(t)), Some(Value::Number(o))) => t.as_f64() == o.as_f64(),
            // `false` and absent mean the same for these booleans.
            (Some(Value::Bool(false)), None) | (None, Some(Value::Bool(false))) => true,
            _ => t == o,
        };
        if !equal {
            out.mismatches.push(mismatch(
                "keyword",
                format!("{keyword}: NetApp {t:?}, ours {o:?}"),
            ));
        }
    }
    if let Some(Value::Array(rules)) = theirs.get("x-kubernetes-validations") {
        out.cel_rules_skipped += rules.len();
    }

    if let Some(Value::Object(our_props)) = ours.get("properties") {
        for name in our_props.keys() {
            if theirs.get("properties").and_then(|p| p.get(name)).is_none() {
                out.ours_only.push(format!("{path}.{name}"));
            }
        }
    }
    if let Some(Value::Object(their_props)) = theirs.get("properties") {
        for (name, their_prop) in their_props {
            let our_prop = ours.get("properties").and_then(|p| p.get(name));
            compare_schema(&format!("{path}.{name}"), their_prop, our_prop, out);
        }
    }
    if let Some(their_items) = theirs.get("items") {
        compare_schema(&format!("{path}[]"), their_items, ours.get("items"), out);
    }
    match theirs.get("additionalProperties") {
        Some(their_ap @ Value::Object(_)) => {
            compare_schema(
                &format!("{path}{{*}}"),
                their_ap,
                ours.get("additionalProperties"),
                out,
            );
        }
        Some(other) if ours.get("additionalProperties") != Some(other) => {
            out.mismatches.push(mismatch(
                "additionalProperties",
                format!("NetApp {other}, ours {:?}", ours.get("additionalProperties")),
            ));
        }
        _ => {}
    }
}

/// What ours misses of NetApp's set and what it adds, unless the sets are equal.
fn set_difference(theirs: &BTreeSet<String>, ours: &BTreeSet<String>) -> Option<String> {
    (theirs != ours).then(|| {
        format!(
            "missing {:?}, extra {:?}",
            theirs.difference(ours).collect::<Vec<_>>(),
            ours.difference(theirs).collect::<Vec<_>>()
        )
    })
}

fn string_set(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
        .collect()
}

/// Compares everything of a CRD except the schema, then the schema of its (single) version.
fn compare_crd(theirs: &Value, ours: &Value, out: &mut Comparison) {
    let name = theirs["metadata"]["name"].as_str().unwrap_or("?").to_owned();
    let mut check = |what: &str, t: &Value, o: &Value| {
        out.crd_fields += 1;
        if t != o {
            out.mismatches.push(Mismatch {
                path: format!("{name} {what}"),
                kind: "crd",
                detail: format!("NetApp {t}, ours {o}"),
            });
        }
    };
    check(
        "metadata.name",
        &theirs["metadata"]["name"],
        &ours["metadata"]["name"],
    );
    check("spec.group", &theirs["spec"]["group"], &ours["spec"]["group"]);
    check("spec.scope", &theirs["spec"]["scope"], &ours["spec"]["scope"]);
    for field in ["kind", "plural", "singular", "shortNames"] {
        check(
            &format!("spec.names.{field}"),
            &theirs["spec"]["names"][field],
            &ours["spec"]["names"][field],
        );
    }
    let (tv, ov) = (&theirs["spec"]["versions"], &ours["spec"]["versions"]);
    check(
        "number of versions",
        &Value::from(tv.as_array().map_or(0, Vec::len)),
        &Value::from(ov.as_array().map_or(0, Vec::len)),
    );
    for field in [
        "name",
        "served",
        "storage",
        "subresources",
        "additionalPrinterColumns",
    ] {
        check(&format!("spec.versions[0].{field}"), &tv[0][field], &ov[0][field]);
    }
    compare_schema(
        &name,
        &tv[0]["schema"]["openAPIV3Schema"],
        Some(&ov[0]["schema"]["openAPIV3Schema"]),
        out,
    );
}

fn chart_dir() -> Result<PathBuf, String> {
    let (shared, explicit) = match std::env::var_os("TPROTECT_SHARED_DIR") {
        Some(dir) => (PathBuf::from(dir), true),
        None => (
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
            false,
        ),
    };
    let chart = shared.join("trident-protect/chart-26.05");
    if chart.is_dir() {
        Ok(chart)
    } else if explicit {
        panic!(
            "TPROTECT_SHARED_DIR is set but {} does not exist",
            chart.display()
        );
    } else {
        Err(format!(
            "{} does not exist (set TPROTECT_SHARED_DIR to the shared directory)",
            chart.display()
        ))
    }
}

/// Writes straight to stderr so that libtest's output capture cannot hide it.
fn announce(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

#[test]
fn our_crds_are_a_superset_of_netapps() {
    let chart = match chart_dir() {
        Ok(chart) => chart,
        Err(why) => {
            announce(&format!(
                "netapp_conformance: SKIPPED, NetApp's CRDs not found: {why}"
            ));
            return;
        }
    };
    let mut out = Comparison::default();
    let ours = tprotect_api::crds();
    assert_eq!(ours.len(), 6, "we model six kinds");
    for crd in &ours {
        let plural = &crd.spec.names.plural;
        let file = chart.join(format!("protect.trident.netapp.io_{plural}.yaml"));
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        let theirs: Value =
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", file.display()));
        let ours = serde_json::to_value(crd).expect("CRD to JSON");
        compare_crd(&theirs, &ours, &mut out);
    }
    announce(&format!(
        "netapp_conformance: compared {} schema paths and {} CRD fields of 6 CRDs from {}; {} NetApp CEL rules \
         deliberately not carried; {} properties only in ours {:?}; {} mismatches",
        out.paths,
        out.crd_fields,
        chart.display(),
        out.cel_rules_skipped,
        out.ours_only.len(),
        out.ours_only,
        out.mismatches.len()
    ));
    assert!(
        out.mismatches.is_empty(),
        "our CRDs differ from NetApp's in {} places:\n  {}",
        out.mismatches.len(),
        out.mismatches
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    assert!(out.paths > 300, "suspiciously few paths compared: {}", out.paths);
}

fn our_amr_crd() -> Value {
    let crd = tprotect_api::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "AppMirrorRelationship")
        .expect("AMR CRD");
    serde_json::to_value(crd).expect("CRD to JSON")
}

#[test]
fn walker_finds_no_mismatch_between_identical_crds() {
    let amr = our_amr_crd();
    let mut out = Comparison::default();
    compare_crd(&amr, &amr, &mut out);
    assert_eq!(out.mismatches, vec![]);
    assert!(out.paths > 50, "walked only {} paths", out.paths);
}

#[test]
fn walker_detects_missing_paths_type_enum_required_and_keyword_differences() {
    let reference = our_amr_crd();
    let mut mutated = reference.clone();
    let spec = &mut mutated["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    spec["properties"]
        .as_object_mut()
        .unwrap()
        .remove("storageClassName");
    spec["properties"]["promotedSnapshot"]["type"] = "integer".into();
    spec["properties"]["desiredState"]["enum"] = serde_json::json!(["Established"]);
    spec["required"]
        .as_array_mut()
        .unwrap()
        .push("namespaceMapping".into());
    let operation = &mut spec["properties"]["transformations"]["items"]["properties"]["operations"]["items"];
    operation["properties"]["value"]
        .as_object_mut()
        .unwrap()
        .remove("x-kubernetes-preserve-unknown-fields");
    operation["required"] = serde_json::json!(["op"]);
    mutated["spec"]["names"]["shortNames"] = serde_json::json!([]);

    let mut out = Comparison::default();
    compare_crd(&reference, &mutated, &mut out);
    let found: BTreeSet<(String, &str)> = out.mismatches.iter().map(|m| (m.path.clone(), m.kind)).collect();
    let root = "appmirrorrelationships.protect.trident.netapp.io";
    let expected: BTreeSet<(String, &str)> = [
        (format!("{root}.spec.storageClassName"), "missing"),
        (format!("{root}.spec.promotedSnapshot"), "type"),
        (format!("{root}.spec.desiredState"), "enum"),
        (format!("{root}.spec"), "required"),
        (
            format!("{root}.spec.transformations[].operations[].value"),
            "keyword",
        ),
        (format!("{root}.spec.transformations[].operations[]"), "required"),
        (format!("{root} spec.names.shortNames"), "crd"),
    ]
    .into_iter()
    .collect();
    assert_eq!(found, expected, "all mismatches: {:#?}", out.mismatches);
}
