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
