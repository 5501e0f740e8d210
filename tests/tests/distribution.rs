//! Distribution: the krew manifest obeys krew's rules, the release archive matches the manifest and installs
//! the way krew installs it, the installed plugin runs through the real `kubectl` (plugin discovery and
//! completion through the `kubectl_complete-tprotect` shim), and `__complete` lists relationship names from a
//! real API server.
//!
//! The release archive is built by `xtask::release_cmd::release`, the code behind `cargo xtask release`:
//! a `cargo build --release` of the plugin (several minutes the first time on 2 cores, seconds when the release
//! build is current) and a reproducible tar.gz in `dist/`, left alone when it is already identical. It writes
//! the archive's sha256 into a COPY of `krew/tprotect.yaml` (the committed manifest describes the last release;
//! the tests must not rewrite tracked files).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use xtask::release_cmd::{self, Artifact, ReleaseOptions};

// ---------------------------------------------------------------------------------------------------------
// krew's validation rules
// ---------------------------------------------------------------------------------------------------------

/// A krew plugin manifest (krew `pkg/index/types.go`). Unknown fields are refused: a misspelt optional
/// field (`shortDescripton`) would otherwise vanish silently.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Plugin {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: Spec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    #[serde(default)]
    version: String,
    #[serde(default)]
    short_description: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    caveats: String,
    #[serde(default)]
    homepage: String,
    #[serde(default)]
    platforms: Vec<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Platform {
    selector: Option<Selector>,
    #[serde(default)]
    uri: String,
    #[serde(default)]
    sha256: String,
    #[serde(default)]
    bin: String,
    files: Option<Vec<FileOperation>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Selector {
    match_labels: Option<BTreeMap<String, String>>,
    match_expressions: Option<Vec<Requirement>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Requirement {
    key: String,
    operator: String,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOperation {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// The os/arch pairs krew supports (`allPlatforms` in krew's `cmd/validate-krew-manifest/main.go`).
const KREW_PLATFORMS: [(&str, &str); 11] = [
    ("windows", "386"),
    ("windows", "amd64"),
    ("windows", "arm64"),
    ("linux", "386"),
    ("linux", "amd64"),
    ("linux", "arm"),
    ("linux", "arm64"),
    ("linux", "ppc64le"),
    ("darwin", "386"),
    ("darwin", "amd64"),
    ("darwin", "arm64"),
];

/// Windows device names krew refuses as plugin names (`windowsForbidden`).
const WINDOWS_FORBIDDEN: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
    "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// krew's `semver.Parse`: a leading `v`, then what `k8s.io/apimachinery/pkg/util/version.ParseSemantic`
/// accepts: MAJOR.MINOR.PATCH without leading zeros, an optional `-pre.release` and `+build`.
fn parse_krew_version(text: &str) -> Result<(), String> {
    let rest = text
        .strip_prefix('v')
        .ok_or_else(|| format!("version string {text:?} not starting with 'v'"))?;
    let (rest, build) = match rest.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (rest, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let numeric = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 || !parts.iter().all(|p| numeric(p)) {
        return Err(format!(
            "illegal version string {text:?}: MAJOR.MINOR.PATCH expected"
        ));
    }
    if parts.iter().any(|p| p.len() > 1 && p.starts_with('0')) {
        return Err(format!("illegal version string {text:?}: leading zero"));
    }
    let identifier = |id: &str| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if let Some(pre) = pre {
        for id in pre.split('.') {
            if !identifier(id) || (numeric(id) && id.len() > 1 && id.starts_with('0')) {
                return Err(format!("illegal pre-release {pre:?} in {text:?}"));
            }
        }
    }
    if let Some(build) = build
        && !build.split('.').all(identifier)
    {
        return Err(format!("illegal build metadata {build:?} in {text:?}"));
    }
    Ok(())
}

/// `metav1.LabelSelectorAsSelector(selector).Matches({os, arch})`.
fn selector_matches(selector: &Selector, os: &str, arch: &str) -> bool {
    let label = |key: &str| match key {
        "os" => Some(os),
        "arch" => Some(arch),
        _ => None,
    };
    let labels_match = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| label(key) == Some(value.as_str()));
    let expressions_match = selector.match_expressions.iter().flatten().all(|req| {
        let value = label(&req.key);
        match req.operator.as_str() {
            "In" => value.is_some_and(|v| req.values.iter().any(|x| x == v)),
            "NotIn" => value.is_none_or(|v| !req.values.iter().any(|x| x == v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_match && expressions_match
}

/// krew's `validateLineLength`: a line may exceed `max` only if it is one word.
fn lines_fit(text: &str, max: usize) -> bool {
    text.lines()
        .all(|line| line.chars().count() <= max || !line.trim().contains(' '))
}

/// Validates the manifest `file_name` holding `plugin` as krew does, and then some:
///
/// * `kubernetes-sigs/krew` `internal/index/validation/validate.go` (`ValidatePlugin`, `validatePlatform`,
///   `validateFiles`, `validateSelector`, formerly `pkg/index/validation/validate.go`): apiVersion, kind, safe
///   plugin name equal to the file name, a short description without line breaks, platforms, a semver version
///   with a leading `v`, and per platform `uri`, `sha256` (`^[a-f0-9]{64}$`), `bin`, `files` (absent, or each
///   with `from` and `to`), a selector on `os`/`arch` only with no empty `matchLabels`/`matchExpressions`;
/// * `cmd/validate-krew-manifest/main.go` (what krew-index CI runs): the `.yaml` extension, every platform
///   matches a supported os/arch, no supported os/arch matched by two platforms; its line-length warnings
///   (`shortDescription` 70, `description` and `caveats` 80) are errors here;
/// * stricter than krew, from how krew installs (`internal/installation/move.go`, `install.go`): every `to` is
///   a clean relative path, `bin` is delivered by a file operation, a LICENSE is installed (krew-index
///   requires one), `uri` and `homepage` are https.
fn validate_manifest(file_name: &str, plugin: &Plugin) -> Result<(), String> {
    let name = file_name
        .strip_suffix(".yaml")
        .ok_or_else(|| format!("expected manifest extension \".yaml\" in {file_name:?}"))?;
    if plugin.api_version != "krew.googlecontainertools.github.com/v1alpha2" {
        return Err(format!(
            "plugin manifest has apiVersion={:?}, not supported",
            plugin.api_version
        ));
    }
    if plugin.kind != "Plugin" {
        return Err(format!(
            "plugin manifest has kind={:?}, but only \"Plugin\" is supported",
            plugin.kind
        ));
    }
    let safe_name = !name.is_empty()
        && name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        && !WINDOWS_FORBIDDEN.iter().any(|f| f.eq_ignore_ascii_case(name));
    if !safe_name {
        return Err(format!(
            "the plugin name {name:?} is not allowed, must match ^[\\w-]+$"
        ));
    }
    if plugin.metadata.name != name {
        return Err(format!(
            "plugin should be named {name:?}, not {:?}",
            plugin.metadata.name
        ));
    }
    let spec = &plugin.spec;
    if spec.short_description.is_empty() {
        return Err("should have a short description".into());
    }
    if spec.short_description.contains(['\r', '\n']) {
        return Err("should not have line breaks in short description".into());
    }
    if spec.platforms.is_empty() {
        return Err("should have a platform specified".into());
    }
    if spec.version.is_empty() {
        return Err("should have a version specified".into());
    }
    parse_krew_version(&spec.version).map_err(|e| format!("failed to parse plugin version: {e}"))?;
    for (i, platform) in spec.platforms.iter().enumerate() {
        validate_platform(platform).map_err(|e| format!("platform [{i}] is badly constructed: {e}"))?;
    }
    // validate-krew-manifest: every platform is used, and no two select the same os/arch.
    for (i, platform) in spec.platforms.iter().enumerate() {
        let selector = platform.selector.as_ref().expect("validated above");
        if !KREW_PLATFORMS
            .iter()
            .any(|(os, arch)| selector_matches(selector, os, arch))
        {
            return Err(format!(
                "spec.platform[{i}]'s selector doesn't match any supported platforms"
            ));
        }
    }
    for (os, arch) in KREW_PLATFORMS {
        let matching: Vec<usize> = spec
            .platforms
            .iter()
            .enumerate()
            .filter(|(_, p)| selector_matches(p.selector.as_ref().expect("validated above"), os, arch))
            .map(|(i, _)| i)
            .collect();
        if matching.len() > 1 {
            return Err(format!(
                "overlapping platform selectors found: multiple spec.platforms (at indexes {matching:?}) select os={os}/arch={arch}"
            ));
        }
    }
    for (field, text, max) in [
        ("shortDescription", &spec.short_description, 70),
        ("description", &spec.description, 80),
        ("caveats", &spec.caveats, 80),
    ] {
        if !lines_fit(text, max) {
            return Err(format!("line length in `{field}` exceeds {max} characters"));
        }
    }
    if !spec.homepage.starts_with("https://") {
        return Err(format!("homepage {:?} is not https", spec.homepage));
    }
    Ok(())
}

fn validate_platform(platform: &Platform) -> Result<(), String> {
    if platform.uri.is_empty() {
        return Err("`uri` has to be set".into());
    }
    if platform.sha256.is_empty() {
        return Err("`sha256` sum has to be set".into());
    }
    let valid_sha = platform.sha256.len() == 64
        && platform
            .sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !valid_sha {
        return Err(format!(
            "`sha256` value {} is not valid, must match pattern ^[a-f0-9]{{64}}$",
            platform.sha256
        ));
    }
    if platform.bin.is_empty() {
        return Err("`bin` has to be set".into());
    }
    if let Some(files) = &platform.files {
        if files.is_empty() {
            return Err("`files` is invalid: `files` has to be unspecified or non-empty".into());
        }
        for op in files {
            if op.from.is_empty() {
                return Err("`files` is invalid: `from` field has to be set".into());
            }
            if op.to.is_empty() {
                return Err("`files` is invalid: `to` field has to be set".into());
            }
        }
    }
    let selector = platform
        .selector
        .as_ref()
        .ok_or("invalid platform selector: nil selector is not supported")?;
    if selector.match_labels.is_none() && selector.match_expressions.iter().flatten().next().is_none() {
        return Err("invalid platform selector: empty selector is not supported".into());
    }
    let keys = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, _)| k)
        .chain(selector.match_expressions.iter().flatten().map(|r| &r.key));
    for key in keys {
        if key != "os" && key != "arch" {
            return Err(format!("invalid platform selector: key {key:?} not supported"));
        }
    }
    if selector.match_labels.as_ref().is_some_and(|m| m.is_empty()) {
        return Err("invalid platform selector: `matchLabels` specified but empty".into());
    }
    if selector.match_expressions.as_ref().is_some_and(|m| m.is_empty()) {
        return Err("invalid platform selector: `matchExpressions` specified but empty".into());
    }
    // Stricter than validate.go, from the installer.
    if !platform.uri.starts_with("https://") {
        return Err(format!("uri {:?} is not https", platform.uri));
    }
    let files = platform.files.clone().unwrap_or_else(|| {
        vec![FileOperation {
            from: "*".into(),
            to: ".".into(),
        }]
    });
    for op in &files {
        if op.to != clean_path(&op.to) || op.to.starts_with('/') || op.to.starts_with("..") {
            return Err(format!(
                "file operation `to: {}` is not a clean relative path",
                op.to
            ));
        }
    }
    let delivered = |name: &str| {
        files.iter().any(|op| {
            op.from == "*"
                || (op.to == "." && op.from.rsplit('/').next() == Some(name))
                || op.to == name
                || Path::new(name)
                    .parent()
                    .is_some_and(|dir| Path::new(&op.to) == dir)
        })
    };
    if !delivered(&platform.bin) {
        return Err(format!(
            "bin {:?} is not delivered by any file operation",
            platform.bin
        ));
    }
    if !files
        .iter()
        .any(|op| op.from == "*" || op.from.eq_ignore_ascii_case("license"))
    {
        return Err("no LICENSE among the installed files".into());
    }
    Ok(())
}

/// Go's `filepath.Clean` for the relative paths a manifest uses.
fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

fn manifest_path() -> PathBuf {
    tprotect_e2e::workspace_root().join("krew").join("tprotect.yaml")
}

fn read_manifest(path: &Path) -> Plugin {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The committed manifest passes krew's validation, names this workspace's version and homepage, and says
/// how to finish the installation.
#[test]
fn krew_manifest_passes_krews_validation() {
    let plugin = read_manifest(&manifest_path());
    validate_manifest("tprotect.yaml", &plugin).unwrap_or_else(|e| panic!("krew/tprotect.yaml: {e}"));
    assert_eq!(
        plugin.spec.version,
        format!("v{}", release_cmd::VERSION),
        "spec.version is the workspace's"
    );
    assert_eq!(plugin.spec.homepage, release_cmd::REPOSITORY);
    for needed in [
        "webhook",
        "kubectl tprotect completion kubectl-shim",
        "kubectl_complete-tprotect",
    ] {
        assert!(
            plugin.spec.caveats.contains(needed),
            "caveats should mention {needed:?}"
        );
    }
    for platform in &plugin.spec.platforms {
        let labels = platform
            .selector
            .as_ref()
            .and_then(|s| s.match_labels.clone())
            .unwrap_or_default();
        let (os, arch) = (&labels["os"], &labels["arch"]);
        let expected_uri = format!(
            "{}/releases/download/v{}/kubectl-tprotect_v{}_{os}_{arch}.tar.gz",
            release_cmd::REPOSITORY,
            release_cmd::VERSION,
            release_cmd::VERSION
        );
        assert_eq!(
            platform.uri, expected_uri,
            "the release URL pattern of cargo xtask release"
        );
        assert_eq!(platform.bin, "kubectl-tprotect");
    }
}

/// The platform's `selector.matchLabels`, which must be there.
fn match_labels(platform: &mut Platform) -> &mut BTreeMap<String, String> {
    platform
        .selector
        .as_mut()
        .and_then(|s| s.match_labels.as_mut())
        .expect("a platform with matchLabels")
}

/// The validator refuses what krew refuses: one mutation per rule of validate.go and validate-krew-manifest.
#[test]
fn krew_validation_refuses_broken_manifests() {
    let good = read_manifest(&manifest_path());
    validate_manifest("tprotect.yaml", &good).unwrap();
    type Mutation = (&'static str, fn(&mut Plugin), &'static str);
    fn platform(plugin: &mut Plugin) -> &mut Platform {
        &mut plugin.spec.platforms[0]
    }
    fn first_file(plugin: &mut Plugin) -> &mut FileOperation {
        &mut platform(plugin).files.as_mut().unwrap()[0]
    }

    let mutations: &[Mutation] = &[
        (
            "apiVersion",
            |p| p.api_version = "krew.googlecontainertools.github.com/v1alpha1".into(),
            "apiVersion",
        ),
        ("kind", |p| p.kind = "Plugins".into(), "kind="),
        (
            "name",
            |p| p.metadata.name = "protect".into(),
            "should be named \"tprotect\"",
        ),
        (
            "short description",
            |p| p.spec.short_description.clear(),
            "short description",
        ),
        (
            "line break",
            |p| p.spec.short_description = "a\nb".into(),
            "line breaks",
        ),
        (
            "long short description",
            |p| p.spec.short_description = "word ".repeat(15),
            "shortDescription",
        ),
        (
            "long description line",
            |p| p.spec.description = format!("{}\n", "word ".repeat(17)),
            "`description`",
        ),
        ("no version", |p| p.spec.version.clear(), "version specified"),
        (
            "version without v",
            |p| p.spec.version = "0.1.0".into(),
            "not starting with 'v'",
        ),
        (
            "two-part version",
            |p| p.spec.version = "v0.1".into(),
            "MAJOR.MINOR.PATCH",
        ),
        (
            "leading zero",
            |p| p.spec.version = "v0.01.0".into(),
            "leading zero",
        ),
        ("no platforms", |p| p.spec.platforms.clear(), "platform specified"),
        ("no uri", |p| platform(p).uri.clear(), "`uri` has to be set"),
        (
            "http uri",
            |p| platform(p).uri = platform(p).uri.replace("https:", "http:"),
            "not https",
        ),
        (
            "no sha256",
            |p| platform(p).sha256.clear(),
            "`sha256` sum has to be set",
        ),
        (
            "upper-case sha256",
            |p| platform(p).sha256 = platform(p).sha256.to_uppercase().replace('0', "A"),
            "is not valid",
        ),
        (
            "short sha256",
            |p| {
                platform(p).sha256.pop();
            },
            "is not valid",
        ),
        ("no bin", |p| platform(p).bin.clear(), "`bin` has to be set"),
        (
            "empty files",
            |p| platform(p).files = Some(Vec::new()),
            "unspecified or non-empty",
        ),
        ("file without to", |p| first_file(p).to.clear(), "`to` field"),
        (
            "file without from",
            |p| first_file(p).from.clear(),
            "`from` field",
        ),
        (
            "unclean to",
            |p| first_file(p).to = "./bin/".into(),
            "clean relative",
        ),
        (
            "bin not delivered",
            |p| platform(p).bin = "kubectl-other".into(),
            "not delivered",
        ),
        (
            "no license",
            |p| {
                platform(p)
                    .files
                    .as_mut()
                    .unwrap()
                    .retain(|f| f.from != "LICENSE")
            },
            "LICENSE",
        ),
        ("no selector", |p| platform(p).selector = None, "nil selector"),
        (
            "empty selector",
            |p| {
                platform(p).selector = Some(Selector {
                    match_labels: None,
                    match_expressions: None,
                })
            },
            "empty selector",
        ),
        (
            "other label",
            |p| {
                match_labels(platform(p)).insert("distro".into(), "debian".into());
            },
            "key \"distro\" not supported",
        ),
        (
            "empty matchLabels",
            |p| {
                platform(p).selector = Some(Selector {
                    match_labels: Some(BTreeMap::new()),
                    match_expressions: Some(vec![Requirement {
                        key: "os".into(),
                        operator: "Exists".into(),
                        values: vec![],
                    }]),
                })
            },
            "`matchLabels` specified but empty",
        ),
        (
            "unsupported platform",
            |p| {
                match_labels(platform(p)).insert("os".into(), "plan9".into());
            },
            "doesn't match any supported platforms",
        ),
        (
            "same platform twice",
            |p| {
                let copy = p.spec.platforms[0].clone();
                p.spec.platforms.push(copy);
            },
            "overlapping",
        ),
        (
            "overlap through an expression",
            |p| {
                let mut copy = p.spec.platforms[0].clone();
                copy.selector = Some(Selector {
                    match_labels: None,
                    match_expressions: Some(vec![Requirement {
                        key: "os".into(),
                        operator: "In".into(),
                        values: vec!["linux".into(), "darwin".into()],
                    }]),
                });
                p.spec.platforms.push(copy);
            },
            "overlapping",
        ),
    ];
    for &(what, mutate, expected) in mutations {
        let mut plugin = good.clone();
        mutate(&mut plugin);
        match validate_manifest("tprotect.yaml", &plugin) {
            Ok(()) => panic!("{what}: accepted"),
            Err(error) => assert!(error.contains(expected), "{what}: {error:?} lacks {expected:?}"),
        }
    }
    assert!(
        validate_manifest("tprotect.yml", &good)
            .unwrap_err()
            .contains("extension")
    );
    assert!(
        validate_manifest("nul.yaml", &good)
            .unwrap_err()
            .contains("not allowed")
    );
    // Two platforms for different os/arch are fine.
    let mut two = good.clone();
    let mut arm = two.spec.platforms[0].clone();
    match_labels(&mut arm).insert("arch".into(), "arm64".into());
    two.spec.platforms.push(arm);
    validate_manifest("tprotect.yaml", &two).unwrap();
    for good_version in ["v1.0.0", "v0.1.0-rc.1", "v2.3.4+build.5", "v1.0.0-alpha-1"] {
        parse_krew_version(good_version).unwrap_or_else(|e| panic!("{good_version}: {e}"));
    }
    for bad_version in ["v1.0.0-01", "v1.0.0-", "v1.0.0+", "v1.0.0.0", "va.b.c"] {
        assert!(parse_krew_version(bad_version).is_err(), "{bad_version} accepted");
    }
}

// ---------------------------------------------------------------------------------------------------------
// The release archive, installed the way krew installs it
// ---------------------------------------------------------------------------------------------------------

fn run(command: &mut Command) -> Output {
    tprotect_testbed::run_ok(command)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A release made into `dist/` with a scratch copy of the manifest.
struct Release {
    artifacts: Vec<Artifact>,
    manifest: PathBuf,
    _scratch: tempfile::TempDir,
}

fn release() -> Release {
    let root = tprotect_e2e::workspace_root();
    let scratch = tempfile::tempdir().unwrap();
    let manifest = scratch.path().join("tprotect.yaml");
    std::fs::copy(manifest_path(), &manifest).unwrap();
    let mut options = ReleaseOptions::for_workspace(&root);
    options.manifest = manifest.clone();
    let artifacts = release_cmd::release(&options).unwrap_or_else(|e| panic!("cargo xtask release: {e}"));
    Release {
        artifacts,
        manifest,
        _scratch: scratch,
    }
}

fn host_artifact(release: &Release) -> &Artifact {
    let host = release_cmd::host_triple().unwrap();
    release
        .artifacts
        .iter()
        .find(|a| a.platform.triple == host)
        .unwrap_or_else(|| panic!("no archive for this machine ({host}): {:?}", release.artifacts))
}

fn platform_entry<'a>(plugin: &'a Plugin, os: &str, arch: &str) -> &'a Platform {
    plugin
        .spec
        .platforms
        .iter()
        .find(|p| selector_matches(p.selector.as_ref().unwrap(), os, arch))
        .unwrap_or_else(|| panic!("the manifest has no platform for {os}/{arch}"))
}

/// Unpacks `archive` with the system's tar (not the code that wrote it) into a fresh directory.
fn unpack(archive: &Path, into: &Path) -> Vec<String> {
    std::fs::create_dir_all(into).unwrap();
    run(Command::new("tar").arg("-xzf").arg(archive).arg("-C").arg(into));
    let listing = stdout(&run(Command::new("tar").arg("-tzf").arg(archive)));
    listing.lines().map(str::to_string).collect()
}

/// krew's installation of `platform` from an unpacked archive (`internal/installation`: file operations into
/// `store/<name>/<version>`, then a relative symlink `bin/kubectl-<name>` to `bin`). Returns krew's bin dir.
fn krew_install(krew_root: &Path, staging: &Path, plugin: &Plugin, platform: &Platform) -> PathBuf {
    let install_dir = krew_root
        .join("store")
        .join(&plugin.metadata.name)
        .join(&plugin.spec.version);
    std::fs::create_dir_all(&install_dir).unwrap();
    let files = platform.files.clone().unwrap_or_else(|| {
        vec![FileOperation {
            from: "*".into(),
            to: ".".into(),
        }]
    });
    for op in &files {
        let sources: Vec<PathBuf> = if op.from == "*" {
            std::fs::read_dir(staging)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect()
        } else {
            let source = staging.join(&op.from);
            assert!(
                source.exists(),
                "file operation from {:?}: not in the archive",
                op.from
            );
            vec![source]
        };
        for source in sources {
            let target = if op.to == "." {
                install_dir.join(source.file_name().unwrap())
            } else {
                install_dir.join(&op.to)
            };
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::rename(&source, &target).unwrap();
        }
    }
    let bin = install_dir.join(&platform.bin);
    assert!(
        bin.is_file(),
        "bin {:?} is not in the installation after the file operations",
        platform.bin
    );
    let bin_dir = krew_root.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let link = bin_dir.join(format!("kubectl-{}", plugin.metadata.name.replace('-', "_")));
    let relative = Path::new("..").join(bin.strip_prefix(krew_root).unwrap());
    std::os::unix::fs::symlink(relative, &link).unwrap();
    bin_dir
}

/// The release archive holds exactly the binary, LICENSE and README.md; its sha256 and uri are the ones
/// written into the manifest; the manifest still passes krew's validation; and installed krew's way, `bin`
/// exists, is executable and runs.
#[test]
fn release_archive_matches_the_manifest() {
    let root = tprotect_e2e::workspace_root();
    let release = release();
    let artifact = host_artifact(&release);
    let archive_name = artifact
        .archive
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        archive_name,
        format!(
            "kubectl-tprotect_v{}_{}_{}.tar.gz",
            release_cmd::VERSION,
            artifact.platform.os,
            artifact.platform.arch
        )
    );
    let plugin = read_manifest(&release.manifest);
    validate_manifest("tprotect.yaml", &plugin).unwrap_or_else(|e| panic!("manifest after release: {e}"));
    let entry = platform_entry(&plugin, &artifact.platform.os, &artifact.platform.arch);

    // sha256: computed by sha256sum, independently of the code that wrote it.
    let sum = stdout(&run(Command::new("sha256sum").arg(&artifact.archive)));
    let sum = sum.split_whitespace().next().unwrap().to_string();
    assert_eq!(entry.sha256, sum, "manifest sha256 is the archive's");
    assert_eq!(artifact.sha256, sum);
    let sum_file = std::fs::read_to_string(format!("{}.sha256", artifact.archive.display())).unwrap();
    assert_eq!(sum_file, format!("{sum}  {archive_name}\n"));
    assert_eq!(
        entry.uri,
        format!(
            "https://github.com/tprotect/kubectl-tprotect/releases/download/v{}/{archive_name}",
            release_cmd::VERSION
        )
    );

    let scratch = tempfile::tempdir().unwrap();
    let staging = scratch.path().join("staging");
    let listed: BTreeSet<String> = unpack(&artifact.archive, &staging).into_iter().collect();
    assert_eq!(
        listed,
        ["kubectl-tprotect", "LICENSE", "README.md"]
            .map(String::from)
            .into(),
        "archive entries"
    );
    for name in ["LICENSE", "README.md"] {
        assert_eq!(
            std::fs::read(staging.join(name)).unwrap(),
            std::fs::read(root.join(name)).unwrap(),
            "{name} in the archive is the repository's"
        );
    }
    let license = std::fs::read_to_string(staging.join("LICENSE")).unwrap();
    assert!(license.contains("Apache License") && license.contains("Version 2.0, January 2004"));

    let krew_root = scratch.path().join("krew");
    let bin_dir = krew_install(&krew_root, &staging, &plugin, entry);
    let installed = bin_dir.join("kubectl-tprotect");
    let mode = std::fs::metadata(&installed).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o111,
        0o111,
        "bin is executable by everyone (mode {mode:o})"
    );
    let head = std::fs::read(&installed).unwrap();
    assert_eq!(&head[..4], b"\x7fELF", "a native executable");
    let version = stdout(&run(Command::new(&installed).arg("version")));
    assert_eq!(version, format!("kubectl-tprotect {}\n", release_cmd::VERSION));
    assert!(
        krew_root
            .join("store/tprotect")
            .join(&plugin.spec.version)
            .join("LICENSE")
            .is_file(),
        "krew-index requires the LICENSE to be installed"
    );

    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("dist/{archive_name}")),
        "README's local install names {archive_name}"
    );
    let committed = read_manifest(&manifest_path());
    let committed_entry = platform_entry(&committed, &artifact.platform.os, &artifact.platform.arch);
    if committed_entry.sha256 != sum {
        eprintln!(
            "note: krew/tprotect.yaml names sha256 {} (the last release); this build's archive is {sum}. \
             `cargo xtask release` writes it.",
            committed_entry.sha256
        );
    }
}

/// A PATH with the krew-installed plugin first, then the directory of the real kubectl.
fn path_with(bin_dir: &Path) -> String {
    let kubectl = Path::new("/usr/bin/kubectl");
    assert!(kubectl.exists(), "kubectl is expected at /usr/bin/kubectl");
    format!("{}:/usr/bin:/bin", bin_dir.display())
}

fn kubectl(path: &str, home: &Path) -> Command {
    let mut command = Command::new("/usr/bin/kubectl");
    command.env_clear().env("PATH", path).env("HOME", home);
    command
}

/// Installs the release archive krew's way into a scratch krew root; returns (scratch, krew bin dir).
fn installed_release() -> (tempfile::TempDir, PathBuf) {
    let release = release();
    let artifact = host_artifact(&release);
    let plugin = read_manifest(&release.manifest);
    let entry = platform_entry(&plugin, &artifact.platform.os, &artifact.platform.arch);
    let scratch = tempfile::tempdir().unwrap();
    let staging = scratch.path().join("staging");
    unpack(&artifact.archive, &staging);
    let bin_dir = krew_install(&scratch.path().join("krew"), &staging, &plugin, entry);
    (scratch, bin_dir)
}

/// kubectl finds the installed plugin on PATH and runs it: `kubectl plugin list`, `kubectl tprotect version`,
/// help that reads `kubectl tprotect`.
#[test]
fn installed_plugin_runs_through_kubectl() {
    let (scratch, bin_dir) = installed_release();
    let path = path_with(&bin_dir);
    let list = kubectl(&path, scratch.path())
        .args(["plugin", "list"])
        .output()
        .unwrap();
    let listed = stdout(&list);
    let expected = bin_dir.join("kubectl-tprotect");
    assert!(
        listed.lines().any(|l| l.trim() == expected.display().to_string()),
        "kubectl plugin list does not show {}:\n{listed}\n{}",
        expected.display(),
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&list.stderr).contains("kubectl-tprotect"),
        "no warning about our plugin"
    );

    let version = run(kubectl(&path, scratch.path()).args(["tprotect", "version"]));
    assert_eq!(
        stdout(&version),
        format!("kubectl-tprotect {}\n", release_cmd::VERSION)
    );
    let help = run(kubectl(&path, scratch.path()).args(["tprotect", "failover", "--help"]));
    assert!(
        stdout(&help).contains("Usage: kubectl tprotect failover"),
        "{}",
        stdout(&help)
    );
}

fn completion_lines(output: &Output) -> (Vec<String>, String) {
    let text = stdout(output);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let directive = lines.pop().unwrap_or_default();
    (lines, directive)
}

fn values(lines: &[String]) -> Vec<&str> {
    lines.iter().map(|l| l.split('\t').next().unwrap()).collect()
}

/// `kubectl tprotect <TAB>` through the real kubectl: kubectl runs the shim the plugin prints, which speaks
/// cobra's protocol back.
#[test]
fn kubectl_completes_through_the_shim() {
    let (scratch, bin_dir) = installed_release();
    let shim = bin_dir.join("kubectl_complete-tprotect");
    let text = run(Command::new(bin_dir.join("kubectl-tprotect")).args(["completion", "kubectl-shim"]));
    std::fs::write(&shim, &text.stdout).unwrap();
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = path_with(&bin_dir);

    let complete = |words: &[&str]| {
        run(kubectl(&path, scratch.path())
            .arg("__complete")
            .arg("tprotect")
            .args(words))
    };
    let (lines, directive) = completion_lines(&complete(&["fail"]));
    assert_eq!(values(&lines), ["failover", "failback"], "{lines:?}");
    assert!(
        lines[0].starts_with("failover\tFail over"),
        "descriptions pass through: {lines:?}"
    );
    assert_eq!(directive, ":4");
    let (lines, _) = completion_lines(&complete(&["failover", "rel1", "--fo"]));
    assert_eq!(values(&lines), ["--force"]);
    let (lines, _) = completion_lines(&complete(&["status", "-o", ""]));
    assert_eq!(values(&lines), ["table", "json", "yaml"]);
    // kubectl itself offers the plugin's name.
    let (lines, _) = completion_lines(&run(kubectl(&path, scratch.path()).args(["__complete", "tprot"])));
    assert!(values(&lines).contains(&"tprotect"), "{lines:?}");
}

/// Writes `kubectl-tprotect completion SHELL` into a scratch directory as `file_name`.
fn completion_script(shell: &str, file_name: &str) -> (tempfile::TempDir, PathBuf) {
    let scratch = tempfile::tempdir().unwrap();
    let script = scratch.path().join(file_name);
    let binary = tprotect_e2e::plugin_binary();
    std::fs::write(
        &script,
        run(Command::new(&binary).args(["completion", shell])).stdout,
    )
    .unwrap();
    (scratch, script)
}

/// A shell the completion tests run; `cargo xtask test` installs it (Debian package of the same name).
fn shell(name: &str) -> Command {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|dir| dir.join(name).is_file());
    assert!(
        found,
        "{name} is not installed: `cargo xtask deps` installs it (apt-get install {name})"
    );
    Command::new(name)
}

/// PATH with the plugin binary's directory first (zsh and fish complete only commands they can find).
fn path_with_plugin() -> String {
    path_with(tprotect_e2e::plugin_binary().parent().unwrap())
}

/// What every shell's script must complete, given `complete(words)` → the candidates for the last word
/// (sorted, descriptions stripped).
fn assert_completes(shell: &str, complete: impl Fn(&[&str]) -> Vec<String>) {
    assert_eq!(complete(&["fail"]), ["failback", "failover"], "{shell}: verbs");
    assert_eq!(
        complete(&["failover", "--fo"]),
        ["--force"],
        "{shell}: a subcommand's own flag"
    );
    assert_eq!(
        complete(&["snapmirror", "update", "--wa"]),
        ["--wait"],
        "{shell}: two levels down"
    );
    assert_eq!(
        complete(&["status", "-o", ""]),
        ["json", "table", "yaml"],
        "{shell}: choices"
    );
    let verbs = complete(&[""]);
    assert!(
        verbs.iter().any(|w| w == "reverse-resync"),
        "{shell}: every verb is offered: {verbs:?}"
    );
    assert!(
        verbs.iter().all(|w| !w.starts_with("__")),
        "{shell}: hidden commands are not offered: {verbs:?}"
    );
}

fn sorted_lines(output: &Output) -> Vec<String> {
    let mut lines: Vec<String> = stdout(output)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    lines.dedup();
    lines
}

/// The script of `completion bash` completes for real in bash (verbs, a subcommand's flags, choices).
#[test]
fn bash_script_completes_the_binary() {
    let (_scratch, script) = completion_script("bash", "kubectl-tprotect.bash");
    assert_completes("bash", |words| {
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let program = format!(
            "source '{}'\nCOMP_WORDS=(kubectl-tprotect {})\nCOMP_CWORD={}\n_kubectl__tprotect kubectl-tprotect '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            quoted.join(" "),
            words.len(),
            words.last().unwrap(),
            if words.len() > 1 {
                words[words.len() - 2]
            } else {
                "kubectl-tprotect"
            },
        );
        sorted_lines(&run(shell("bash").arg("-c").arg(program)))
    });
}

/// The script of `completion zsh` completes for real in zsh: installed as `_kubectl-tprotect` in $fpath and
/// loaded by compinit, as a user installs it, then TAB pressed in an interactive zsh on a pseudo-terminal
/// (tests/scripts/zsh-complete.zsh).
#[test]
fn zsh_script_completes_the_binary() {
    let (scratch, _script) = completion_script("zsh", "_kubectl-tprotect");
    let driver = tprotect_e2e::workspace_root().join("tests/scripts/zsh-complete.zsh");
    let path = path_with_plugin();
    assert_completes("zsh", |words| {
        let line = format!("kubectl-tprotect {}", words.join(" "));
        sorted_lines(&run(shell("zsh")
            .arg("-f")
            .arg(&driver)
            .arg(scratch.path())
            .arg(&line)
            .env("PATH", &path)
            .env("HOME", scratch.path())))
    });
}

/// The script of `completion fish` completes for real in fish (`complete -C`, what fish runs on TAB).
#[test]
fn fish_script_completes_the_binary() {
    let (scratch, script) = completion_script("fish", "kubectl-tprotect.fish");
    let path = path_with_plugin();
    assert_completes("fish", |words| {
        let line = format!("kubectl-tprotect {}", words.join(" "));
        let program = format!("source '{}'; complete -C '{line}'", script.display());
        sorted_lines(&run(shell("fish")
            .arg("--no-config")
            .arg("-c")
            .arg(program)
            .env("PATH", &path)
            .env("HOME", scratch.path())
            .env("XDG_CONFIG_HOME", scratch.path())))
    });
}

// ---------------------------------------------------------------------------------------------------------
// Relationship names from a real API server
// ---------------------------------------------------------------------------------------------------------

/// An AMR in `namespace` labelled with relationship `label`.
fn amr(name: &str, namespace: &str, label: &str) -> serde_json::Value {
    let mut amr = tprotect_e2e::localenv::fixtures::example_amr(name, namespace);
    amr["metadata"]["labels"] = serde_json::json!({"tprotect.io/relationship": label});
    amr
}

/// `__complete failover ""` lists the AppMirrorRelationships (names and relationship labels) of a real API
/// server, in -n or every namespace, on --context and --peer-context; contexts and namespaces complete too;
/// and the same through kubectl and the shim.
#[tokio::test]
async fn completes_relationship_names_from_a_real_api_server() {
    use kube::api::{Api, ApiResource, DynamicObject, PostParams};
    let env = tprotect_e2e::LocalEnv::start(Default::default())
        .await
        .expect("the testbed's clusters");
    let testbed = &env.testbed;
    let client = testbed.destination.client.clone();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for ns in ["payments", "orders"] {
        let namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
    }
    let resource = ApiResource::erase::<tprotect_api::AppMirrorRelationship>(&());
    for (name, namespace, label) in [
        ("payments-dr", "payments", "payments"),
        ("orders", "orders", "orders"),
    ] {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let object: DynamicObject = serde_json::from_value(amr(name, namespace, label)).unwrap();
        api.create(&PostParams::default(), &object).await.unwrap();
    }
    let binary = tprotect_e2e::plugin_binary();
    let kubeconfig = testbed.kubeconfig.to_str().unwrap().to_string();
    let destination = testbed.destination.context.clone();
    let source = testbed.source.context.clone();
    let complete = |words: &[&str]| {
        let output = run(Command::new(&binary)
            .arg("__complete")
            .args(["--kubeconfig", &kubeconfig])
            .args(words)
            .env_remove("KUBECONFIG"));
        completion_lines(&output)
    };

    let (lines, directive) = complete(&["--context", &destination, "failover", ""]);
    assert_eq!(directive, ":4");
    assert_eq!(values(&lines), ["orders", "payments-dr", "payments"], "{lines:?}");
    assert!(
        lines.contains(&format!(
            "payments-dr\tAppMirrorRelationship in payments on {destination}"
        )),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("payments\tlabel of AppMirrorRelationship payments/payments-dr"))
    );

    let (lines, _) = complete(&["failover", "--context", &destination, "-n", "payments", ""]);
    assert_eq!(values(&lines), ["payments-dr", "payments"], "only -n's namespace");
    let (lines, _) = complete(&["--context", &destination, "resync", "ord"]);
    assert_eq!(values(&lines), ["orders"], "what was typed filters");
    let (lines, _) = complete(&["--context", &source, "--peer-context", &destination, "delete", ""]);
    assert_eq!(
        values(&lines),
        ["orders", "payments-dr", "payments"],
        "found on the peer"
    );
    let (lines, _) = complete(&["--context", &source, "check", ""]);
    assert!(lines.is_empty(), "the source cluster has none: {lines:?}");
    let (lines, _) = complete(&["--context", &destination, "setup", ""]);
    assert!(lines.is_empty(), "setup names a new relationship: {lines:?}");

    let (lines, _) = complete(&["failover", "--peer-context", "tprotect-d"]);
    let contexts: BTreeSet<&str> = values(&lines).into_iter().collect();
    let suffixes = ["", "-controller", "-operator", "-viewer", "-webhook"];
    let expected: Vec<String> = suffixes.iter().map(|s| format!("{destination}{s}")).collect();
    assert_eq!(
        contexts,
        expected.iter().map(String::as_str).collect(),
        "the kubeconfig's contexts"
    );
    let (lines, _) = complete(&["--context", &destination, "-n", ""]);
    let names = values(&lines);
    assert!(
        names.contains(&"payments") && names.contains(&"orders") && names.contains(&"kube-system"),
        "{names:?}"
    );

    // A viewer without permissions gets no names and no error on stdout.
    let (lines, directive) = complete(&["--context", &format!("{destination}-viewer"), "failover", ""]);
    assert!(lines.is_empty() && directive == ":4", "{lines:?} {directive}");

    // Through kubectl: the shim on PATH next to the plugin.
    let scratch = tempfile::tempdir().unwrap();
    let bin_dir = scratch.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::os::unix::fs::symlink(&binary, bin_dir.join("kubectl-tprotect")).unwrap();
    let shim = run(Command::new(&binary).args(["completion", "kubectl-shim"]));
    std::fs::write(bin_dir.join("kubectl_complete-tprotect"), &shim.stdout).unwrap();
    std::fs::set_permissions(
        bin_dir.join("kubectl_complete-tprotect"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let output = run(kubectl(&path_with(&bin_dir), scratch.path()).args([
        "__complete",
        "tprotect",
        "--kubeconfig",
        &kubeconfig,
        "--context",
        &destination,
        "failover",
        "pay",
    ]));
    let (lines, directive) = completion_lines(&output);
    assert_eq!(values(&lines), ["payments-dr", "payments"], "{lines:?}");
    assert_eq!(directive, ":4");
}
