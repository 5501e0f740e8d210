//! The committed CRD manifests in `manifests/crds/` are exactly what our types generate.
//!
//! Regenerate them with `UPDATE_CRDS=1 cargo test -p tprotect-api generated_crds`.

use std::path::PathBuf;

const HEADER: &str = "# Generated from the Rust types in crates/api by\n\
                      # `UPDATE_CRDS=1 cargo test -p tprotect-api generated_crds`. Do not edit.\n";

fn crds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../manifests/crds")
}

fn generated_files() -> Vec<(String, String)> {
    tprotect_api::crds()
        .iter()
        .map(|crd| {
            let yaml = serde_norway::to_string(crd).expect("CRD renders as YAML");
            (tprotect_api::crd_file_name(crd), format!("{HEADER}---\n{yaml}"))
        })
        .collect()
}

#[test]
fn generated_crds_match_committed() {
    let dir = crds_dir();
    let update = std::env::var_os("UPDATE_CRDS").is_some_and(|v| !v.is_empty() && v != "0");
    let mut stale = Vec::new();
    for (name, generated) in generated_files() {
        let path = dir.join(&name);
        if update {
            std::fs::create_dir_all(&dir).expect("create manifests/crds");
            std::fs::write(&path, &generated).expect("write CRD manifest");
            eprintln!("wrote {}", path.display());
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(committed) if committed == generated => {}
            Ok(_) => stale.push(format!("{name}: differs from the generated CRD")),
            Err(err) => stale.push(format!("{name}: cannot read {}: {err}", path.display())),
        }
    }
    assert!(
        stale.is_empty(),
        "committed CRD manifests are out of date:\n  {}\nrun `UPDATE_CRDS=1 cargo test -p tprotect-api \
         generated_crds` and commit manifests/crds/",
        stale.join("\n  ")
    );
}

#[test]
fn crds_yaml_is_deterministic_and_holds_all_six_kinds_sorted_by_name() {
    let first = tprotect_api::crds_yaml().expect("render");
    let second = tprotect_api::crds_yaml().expect("render");
    assert_eq!(first, second);
    let docs: Vec<serde_json::Value> = first
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_norway::from_str(d).expect("each document parses"))
        .collect();
    let kinds: Vec<&str> = docs
        .iter()
        .map(|d| d["spec"]["names"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "Application",
            "AppMirrorRelationship",
            "AppVault",
            "Schedule",
            "ShutdownSnapshot",
            "Snapshot"
        ]
    );
}

/// Walks a schema and reports what a Kubernetes 1.20 API server would refuse or silently treat otherwise.
fn structural_problems(path: &str, schema: &serde_json::Value, problems: &mut Vec<String>) {
    for keyword in [
        "anyOf",
        "oneOf",
        "allOf",
        "not",
        "$ref",
        "definitions",
        "x-kubernetes-validations",
    ] {
        if schema.get(keyword).is_some() {
            problems.push(format!("{path}: has {keyword}"));
        }
    }
    let free_form = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&true.into())
        || schema.get("x-kubernetes-int-or-string") == Some(&true.into());
    if schema.get("type").is_none() && !free_form {
        problems.push(format!("{path}: no type"));
    }
    if schema.get("nullable").is_some() && !path.ends_with(".status.completionTimestamp") {
        problems.push(format!("{path}: nullable where NetApp has none"));
    }
    if let Some(serde_json::Value::Object(props)) = schema.get("properties") {
        for (name, prop) in props {
            structural_problems(&format!("{path}.{name}"), prop, problems);
        }
    }
    if let Some(items) = schema.get("items") {
        structural_problems(&format!("{path}[]"), items, problems);
    }
    if let Some(additional @ serde_json::Value::Object(_)) = schema.get("additionalProperties") {
        structural_problems(&format!("{path}{{*}}"), additional, problems);
    }
}

#[test]
fn generated_schemas_are_structural_for_kubernetes_1_20() {
    let mut problems = Vec::new();
    for crd in tprotect_api::crds() {
        let version = &crd.spec.versions[0];
        assert!(
            version.subresources.as_ref().is_some_and(|s| s.status.is_some()),
            "status subresource"
        );
        assert_eq!(crd.spec.scope, "Namespaced");
        let schema = serde_json::to_value(&version.schema.as_ref().unwrap().open_api_v3_schema).unwrap();
        structural_problems(&crd.spec.names.kind, &schema, &mut problems);
    }
    assert!(
        problems.is_empty(),
        "not structural:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn structural_check_catches_what_it_should() {
    let bad = serde_json::json!({
        "type": "object",
        "properties": {
            "a": { "anyOf": [{ "type": "string" }, { "type": "integer" }] },
            "b": { "type": "string", "nullable": true },
            "c": { "type": "array", "items": { "properties": {} } },
            "d": { "x-kubernetes-preserve-unknown-fields": true }
        }
    });
    let mut problems = Vec::new();
    structural_problems("X", &bad, &mut problems);
    assert_eq!(
        problems,
        [
            "X.a: has anyOf",
            "X.a: no type",
            "X.b: nullable where NetApp has none",
            "X.c[]: no type"
        ]
    );
}

#[test]
fn snapshot_and_shutdown_snapshot_share_one_schema() {
    let crds = tprotect_api::crds();
    let schema_of = |kind: &str| {
        let crd = crds.iter().find(|c| c.spec.names.kind == kind).unwrap();
        let mut schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        // Descriptions name the kind; everything else must be identical.
        strip_descriptions(&mut schema);
        schema
    };
    assert_eq!(schema_of("Snapshot"), schema_of("ShutdownSnapshot"));
}

fn strip_descriptions(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.remove("description");
            map.values_mut().for_each(strip_descriptions);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_descriptions),
        _ => {}
    }
}
