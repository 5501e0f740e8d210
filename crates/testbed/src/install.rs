//! Installs what the local control planes need on a fresh Debian machine, and builds `kube-apiserver` and
//! `kube-controller-manager` from Debian's `kubernetes` source package (1.20.2) into a cache outside the repo.
//!
//! The recipe is `shared/docs/test-control-plane.md`. Every step is idempotent and the result is cached by
//! [`RECIPE_ID`], so a second run costs one `stat`. Changing a step means changing `RECIPE_ID`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// Bump when a build step changes, so cached binaries built by an older recipe are rebuilt.
pub const RECIPE_ID: &str = "k8s-1.20.2-r1";

const APT_PACKAGES: &[&str] = &[
    "golang-go",
    "etcd-server",
    "rsync",
    "jq",
    "dpkg-dev",
    "openssl",
    "util-linux",
    "golang-github-modern-go-reflect2-dev",
    "golang-github-json-iterator-go-dev",
    "golang-github-modern-go-concurrent-dev",
    // Not for the clusters: the distribution tests run the completion scripts in real shells.
    "zsh",
    "fish",
    // The plugin's prompts are read off a terminal as a person sees it (tmux renders the screen).
    "tmux",
    // Not for the clusters: the monitoring tests run the shipped alert rules in a real Prometheus and promtool.
    "prometheus",
];

const DEB_SRC_FILE: &str = "/etc/apt/sources.list.d/tprotect-deb-src.sources";
const DEB_SRC: &str = "Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n\
Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n";

/// Paths of the binaries a cluster runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub openssl: PathBuf,
    pub setpriv: PathBuf,
}

/// The cache root: `$TPROTECT_CACHE_DIR`, else `$XDG_CACHE_HOME/kubectl-tprotect`, else `~/.cache/kubectl-tprotect`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TPROTECT_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("kubectl-tprotect")
}

fn bin_dir() -> PathBuf {
    cache_dir().join(RECIPE_ID).join("bin")
}

/// Returns the binaries if everything is already in place, without installing anything.
pub fn find_binaries() -> Option<Binaries> {
    let bin = bin_dir();
    let binaries = Binaries {
        etcd: which("etcd")?,
        kube_apiserver: bin.join("kube-apiserver"),
        kube_controller_manager: bin.join("kube-controller-manager"),
        openssl: which("openssl")?,
        setpriv: which("setpriv")?,
    };
    (binaries.kube_apiserver.is_file() && binaries.kube_controller_manager.is_file()).then_some(binaries)
}

/// Installs missing packages and builds missing binaries. Serialised across processes by a file lock, so
/// parallel tests on a fresh machine build once.
pub fn ensure_binaries() -> Result<Binaries, Error> {
    if let Some(found) = find_binaries()
        && packages_installed()
    {
        return Ok(found);
    }
    let _lock = lock_installs()?;
    install_packages()?;
    // Another process may have finished the build while we waited for the lock.
    if let Some(found) = find_binaries() {
        return Ok(found);
    }
    build_kubernetes(&cache_dir())?;
    find_binaries().ok_or_else(|| Error::Install("binaries still missing after the build".into()))
}

/// Holds the file lock that serialises installs and builds across processes until dropped.
fn lock_installs() -> Result<std::fs::File, Error> {
    let cache = cache_dir();
    std::fs::create_dir_all(&cache).map_err(|e| Error::io(&cache, e))?;
    let lock_path = cache.join("install.lock");
    let lock = std::fs::File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
    lock.lock().map_err(|e| Error::io(&lock_path, e))?;
    Ok(lock)
}

/// Debian's Prometheus server and its `promtool`.
#[derive(Debug, Clone)]
pub struct PrometheusBinaries {
    pub prometheus: PathBuf,
    pub promtool: PathBuf,
}

/// Prometheus and promtool, installing the Debian package first if either is missing (serialised with the other
/// installs by the same file lock). Needs no cluster binaries.
pub fn ensure_prometheus() -> Result<PrometheusBinaries, Error> {
    let find = || {
        Some(PrometheusBinaries {
            prometheus: which("prometheus")?,
            promtool: which("promtool")?,
        })
    };
    if let Some(found) = find() {
        return Ok(found);
    }
    let _lock = lock_installs()?;
    install_packages()?;
    find().ok_or_else(|| Error::Install("prometheus and promtool still missing after apt-get install".into()))
}

/// Whether every package is installed, checked once per process (a cache restored onto a new machine has the
/// binaries but not the packages).
fn packages_installed() -> bool {
    static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *INSTALLED.get_or_init(|| APT_PACKAGES.iter().all(|p| dpkg_installed(p)))
}

fn install_packages() -> Result<(), Error> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    let need_src = !Path::new(DEB_SRC_FILE).exists();
    if missing.is_empty() && !need_src {
        return Ok(());
    }
    eprintln!("testbed: installing Debian packages: {}", missing.join(" "));
    if need_src {
        std::fs::write(DEB_SRC_FILE, DEB_SRC).map_err(|e| {
            Error::Install(format!(
                "cannot write {DEB_SRC_FILE} ({e}); run `cargo xtask deps` as root"
            ))
        })?;
    }
    run(Command::new("apt-get").args(["update", "-q"]), "apt-get update")?;
    if !missing.is_empty() {
        run(
            Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
            "apt-get install",
        )?;
    }
    Ok(())
}

fn build_kubernetes(cache: &Path) -> Result<(), Error> {
    let work = cache.join("build");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| Error::io(&work, e))?;
    eprintln!(
        "testbed: building kube-apiserver and kube-controller-manager from Debian's source (a few minutes)"
    );
    run(
        Command::new("apt-get")
            .args(["source", "--download-only", "kubernetes"])
            .current_dir(&work),
        "apt-get source kubernetes",
    )?;
    let orig = std::fs::read_dir(&work)
        .map_err(|e| Error::io(&work, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(".orig.tar.gz"))
        .ok_or_else(|| Error::Install("apt-get source left no kubernetes_*.orig.tar.gz".into()))?;
    run(
        Command::new("tar").arg("xzf").arg(&orig).current_dir(&work),
        "untar kubernetes source",
    )?;
    let src = std::fs::read_dir(&work)
        .map_err(|e| Error::io(&work, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("kubernetes-"))
        })
        .ok_or_else(|| Error::Install("no kubernetes-* directory in the source tarball".into()))?;

    // The 1.20 tree predates Go 1.19: these vendored packages crash or misbehave under it (see the recipe).
    for (vendored, debian) in [
        (
            "vendor/github.com/modern-go/reflect2",
            "/usr/share/gocode/src/github.com/modern-go/reflect2",
        ),
        (
            "vendor/github.com/json-iterator/go",
            "/usr/share/gocode/src/github.com/json-iterator/go",
        ),
        (
            "vendor/github.com/modern-go/concurrent",
            "/usr/share/gocode/src/github.com/modern-go/concurrent",
        ),
    ] {
        replace_go_package(&src.join(vendored), Path::new(debian))?;
    }
    // Under Go 1.19 this DeepEqual on reflect.Value makes "", false and 0 count as null: custom resources with
    // such values would be rejected.
    const NULL_CHECK: &str =
        "if data == nil || reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data)) {";
    for file in [
        "vendor/k8s.io/kube-openapi/pkg/validation/validate/type.go",
        "vendor/github.com/go-openapi/validate/type.go",
    ] {
        let path = src.join(file);
        if let Ok(text) = std::fs::read_to_string(&path) {
            std::fs::write(&path, text.replace(NULL_CHECK, "if data == nil {"))
                .map_err(|e| Error::io(&path, e))?;
        }
    }
    run(
        Command::new("make").arg("generated_files").current_dir(&src),
        "make generated_files",
    )?;

    // GOPATH mode: the 1.20 go.mod is not tidy for Go 1.19 module mode.
    let gopath = work.join("gopath");
    let link_parent = gopath.join("src/k8s.io");
    std::fs::create_dir_all(&link_parent).map_err(|e| Error::io(&link_parent, e))?;
    let link = link_parent.join("kubernetes");
    std::os::unix::fs::symlink(&src, &link).map_err(|e| Error::io(&link, e))?;
    let mut ldflags = String::new();
    for pkg in [
        "k8s.io/kubernetes/vendor/k8s.io/component-base/version",
        "k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version",
    ] {
        ldflags.push_str(&format!(
            " -X {pkg}.gitVersion=v1.20.2 -X {pkg}.gitMajor=1 -X {pkg}.gitMinor=20 -X {pkg}.gitTreeState=clean"
        ));
    }
    let staging = cache.join(RECIPE_ID).join("bin.partial");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
    for binary in ["kube-apiserver", "kube-controller-manager"] {
        run(
            Command::new("go")
                .args(["build", "-ldflags", &ldflags, "-o"])
                .arg(staging.join(binary))
                .arg(format!("./cmd/{binary}"))
                .current_dir(&link)
                // Go takes the working directory from $PWD when it names the same directory: that keeps the
                // path inside GOPATH (through the symlink), which is what makes `vendor/` count.
                .env("PWD", &link)
                .env("GOPATH", &gopath)
                .env("GO111MODULE", "off")
                .env("CGO_ENABLED", "0")
                .env("GOCACHE", cache.join("gocache")),
            &format!("go build {binary}"),
        )?;
    }
    // Publish atomically: a half-built cache never looks complete.
    let bin = bin_dir();
    let _ = std::fs::remove_dir_all(&bin);
    std::fs::rename(&staging, &bin).map_err(|e| Error::io(&bin, e))?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

fn replace_go_package(vendored: &Path, debian: &Path) -> Result<(), Error> {
    let is_source = |p: &Path| {
        p.is_file()
            && p.extension().is_some_and(|e| e == "go" || e == "s")
            && !p.to_string_lossy().ends_with("_test.go")
    };
    for entry in std::fs::read_dir(vendored)
        .map_err(|e| Error::io(vendored, e))?
        .flatten()
    {
        let path = entry.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "go" || e == "s") {
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    for entry in std::fs::read_dir(debian)
        .map_err(|e| Error::io(debian, e))?
        .flatten()
    {
        let path = entry.path();
        if is_source(&path) {
            let target = vendored.join(entry.file_name());
            std::fs::copy(&path, &target).map_err(|e| Error::io(&target, e))?;
        }
    }
    Ok(())
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Looks a program up on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn run(command: &mut Command, what: &str) -> Result<(), Error> {
    let output = command
        .output()
        .map_err(|e| Error::Install(format!("{what}: cannot start: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    let tail = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };
    Err(Error::Install(format!(
        "{what} failed ({}):\n{}\n{}",
        output.status,
        tail(&output.stdout),
        tail(&output.stderr)
    )))
}
