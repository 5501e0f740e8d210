//! `cargo xtask up` leaves clusters it finds running in its directory alone: it refuses, names them, and
//! changes nothing there. The "clusters" are a process whose command line names the directory, recorded as an
//! `up` records its processes; the command refuses before it would start anything, so no cluster is needed.

use std::process::Command;

#[test]
fn up_refuses_and_leaves_a_directory_with_running_clusters_alone() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("current");
    std::fs::create_dir(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, "apiVersion: v1\nkind: Config\n").unwrap();
    let mut foreign = Command::new("tail").arg("-f").arg(&kubeconfig).spawn().unwrap();
    std::fs::write(dir.join("children.pid"), format!("{}\n", foreign.id())).unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("up")
        .env("TPROTECT_UP_DIR", &dir)
        .output()
        .unwrap();
    let still_running = foreign.try_wait().unwrap().is_none();
    let _ = (foreign.kill(), foreign.wait());

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "up must refuse: {stderr}");
    assert!(
        output.stdout.is_empty(),
        "nothing to eval: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        stderr.contains(&format!("tail (pid {})", foreign.id())),
        "{stderr}"
    );
    assert!(stderr.contains(&dir.display().to_string()), "{stderr}");
    assert!(stderr.contains("cargo xtask down"), "{stderr}");
    assert!(still_running, "the running process was stopped");
    assert_eq!(
        std::fs::read_to_string(&kubeconfig).unwrap(),
        "apiVersion: v1\nkind: Config\n",
        "the directory's files were touched"
    );
    assert!(dir.join("children.pid").is_file());
}
