//! The crate is pure by construction: Cargo, not discipline, keeps a Kubernetes client, an async runtime and an
//! HTTP stack out of it. This fails the moment one of them enters its dependency tree.

use std::process::Command;

const FORBIDDEN: [&str; 7] = [
    "kube",
    "kube-client",
    "kube-runtime",
    "hyper",
    "reqwest",
    "tokio",
    "tower",
];

#[test]
fn no_client_runtime_or_http_crate_in_the_dependency_tree() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            env!("CARGO_PKG_NAME"),
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8_lossy(&output.stdout);
    let crates: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(
        crates.contains(&"tprotect-api") && crates.contains(&"serde"),
        "the tree was not read:\n{tree}"
    );
    let found: Vec<&&str> = FORBIDDEN.iter().filter(|f| crates.contains(f)).collect();
    assert!(
        found.is_empty(),
        "{found:?} in the dependency tree of {}:\n{tree}",
        env!("CARGO_PKG_NAME")
    );
}
