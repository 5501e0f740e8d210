//! `cargo xtask release`: the plugin's release archives, and their sha256 in the krew manifest.
//!
//! For each platform (by default the machine's own; others with `--target` when their toolchain is installed):
//! `cargo build --release --locked -p kubectl-tprotect --target <triple>`, then
//! `dist/kubectl-tprotect_v<version>_<os>_<arch>.tar.gz` holding `kubectl-tprotect`, `LICENSE` and `README.md`
//! at its top level, its `.sha256` beside it, and the platform's `uri` and `sha256` (and `spec.version`) written
//! into `krew/tprotect.yaml`.
//!
//! Archives are reproducible: entries in a fixed order with fixed owners, modes and times (`SOURCE_DATE_EPOCH`,
//! else 0), gzip without a name or time. The same binary gives the same bytes, so an archive that is already
//! there and identical is left alone, and the manifest only changes when the binary does.
//!
//! A library module (not only the `cargo xtask` binary's) so that the end-to-end test builds and checks the
//! real archive with this very code.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The plugin's package and executable.
pub const PACKAGE: &str = "kubectl-tprotect";
/// What goes into every archive besides the binary (paths relative to the workspace root).
pub const EXTRA_FILES: [&str; 2] = ["LICENSE", "README.md"];
/// The workspace's version, shared by every crate (`version.workspace = true`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The project's repository; releases are downloaded from its GitHub releases.
pub const REPOSITORY: &str = env!("CARGO_PKG_REPOSITORY");

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("running {command}: {message}")]
    Command { command: String, message: String },
    #[error(
        "target {0:?} has no krew platform here (known: linux, darwin, windows on x86_64, aarch64, i686, arm, powerpc64le)"
    )]
    UnknownTarget(String),
    #[error("target {0} is not installed: `rustup target add {0}` (and a linker for it) first")]
    TargetNotInstalled(String),
    #[error("targets {0} and {1} are both {2}/{3}: krew allows one archive per os/arch")]
    SamePlatform(String, String, String, String),
    #[error("krew manifest {path}: {message}")]
    Manifest { path: PathBuf, message: String },
}

/// Writes `data` to a temporary file beside `path` and renames it over `path`: a concurrent reader (another
/// test, `tar`) sees the old file or the new one, never half of one.
fn write_atomically(path: &Path, data: &[u8]) -> Result<(), ReleaseError> {
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temporary = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    std::fs::write(&temporary, data).map_err(io_error(&temporary))?;
    std::fs::rename(&temporary, path).map_err(io_error(path))
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ReleaseError + '_ {
    move |source| ReleaseError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A Rust target triple and the `os`/`arch` krew selects it by (Go's names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub triple: String,
    pub os: String,
    pub arch: String,
}

impl Platform {
    /// The krew platform of a Rust target triple, if krew has one.
    pub fn of(triple: &str) -> Option<Platform> {
        let arch = match triple.split('-').next()? {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "i686" | "i586" => "386",
            "powerpc64le" => "ppc64le",
            arm if arm.starts_with("arm") => "arm",
            _ => return None,
        };
        let os = if triple.contains("-linux-") {
            "linux"
        } else if triple.contains("-apple-darwin") {
            "darwin"
        } else if triple.contains("-windows-") {
            "windows"
        } else {
            return None;
        };
        Some(Platform {
            triple: triple.to_string(),
            os: os.to_string(),
            arch: arch.to_string(),
        })
    }

    /// The executable's file name on this platform.
    pub fn binary_name(&self) -> String {
        if self.os == "windows" {
            format!("{PACKAGE}.exe")
        } else {
            PACKAGE.to_string()
        }
    }

    /// `kubectl-tprotect_v0.1.0_linux_amd64.tar.gz`.
    pub fn archive_name(&self, version: &str) -> String {
        format!("{PACKAGE}_v{version}_{}_{}.tar.gz", self.os, self.arch)
    }

    /// Where the release's archive is downloaded from.
    pub fn uri(&self, version: &str) -> String {
        format!(
            "{}/releases/download/v{version}/{}",
            REPOSITORY.trim_end_matches('/'),
            self.archive_name(version)
        )
    }
}

/// What a release does.
#[derive(Debug, Clone)]
pub struct ReleaseOptions {
    /// The workspace root (Cargo.toml, LICENSE, README.md).
    pub workspace: PathBuf,
    /// Rust target triples; empty: the host's.
    pub targets: Vec<String>,
    /// Where the archives go.
    pub dist_dir: PathBuf,
    /// The krew manifest to write the archives' uri and sha256 into.
    pub manifest: PathBuf,
}

impl ReleaseOptions {
    /// The defaults of `cargo xtask release` for the workspace at `workspace`.
    pub fn for_workspace(workspace: &Path) -> Self {
        Self {
            workspace: workspace.to_path_buf(),
            targets: Vec::new(),
            dist_dir: workspace.join("dist"),
            manifest: workspace.join("krew").join("tprotect.yaml"),
        }
    }
}

/// One archive made.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub platform: Platform,
    pub archive: PathBuf,
    pub sha256: String,
    pub uri: String,
    /// The archive on disk already had these bytes (same binary): nothing was written.
    pub unchanged: bool,
}

#[derive(Debug, clap::Args)]
pub struct ReleaseArgs {
    /// Rust target triple to build for (repeatable; its toolchain must be installed). Default: this machine's
    #[arg(long = "target", value_name = "TRIPLE")]
    targets: Vec<String>,
    /// Where to write the archives
    #[arg(long, value_name = "DIR")]
    dist_dir: Option<PathBuf>,
    /// The krew manifest to update
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
}

/// The workspace root: xtask lives in `crates/xtask`.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/xtask is two levels below the workspace root")
        .to_path_buf()
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn output_of(command: &mut Command) -> Result<String, ReleaseError> {
    let described = format!("{command:?}");
    let output = command.output().map_err(|e| ReleaseError::Command {
        command: described.clone(),
        message: e.to_string(),
    })?;
    if !output.status.success() {
        return Err(ReleaseError::Command {
            command: described,
            message: format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// This machine's target triple (`rustc -vV`).
pub fn host_triple() -> Result<String, ReleaseError> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let text = output_of(Command::new(rustc).arg("-vV"))?;
    text.lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(|host| host.trim().to_string())
        .ok_or_else(|| ReleaseError::Command {
            command: "rustc -vV".into(),
            message: "no host line".into(),
        })
}

/// Targets rustup has installed; `None` without rustup (then only the host's toolchain is known to exist).
pub fn installed_targets() -> Option<Vec<String>> {
    let text = output_of(Command::new("rustup").args(["target", "list", "--installed"])).ok()?;
    Some(
        text.lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect(),
    )
}

/// The platforms to build: `targets`, or the host's; each with a krew platform, installed, and no two for
/// the same os/arch.
pub fn platforms(targets: &[String]) -> Result<Vec<Platform>, ReleaseError> {
    let host = host_triple()?;
    let wanted = if targets.is_empty() {
        vec![host.clone()]
    } else {
        targets.to_vec()
    };
    let installed = installed_targets();
    let mut platforms: Vec<Platform> = Vec::new();
    for triple in wanted {
        let platform = Platform::of(&triple).ok_or_else(|| ReleaseError::UnknownTarget(triple.clone()))?;
        if triple != host && installed.as_ref().is_some_and(|list| !list.contains(&triple)) {
            return Err(ReleaseError::TargetNotInstalled(triple));
        }
        if let Some(same) = platforms
            .iter()
            .find(|p| p.os == platform.os && p.arch == platform.arch)
        {
            return Err(ReleaseError::SamePlatform(
                same.triple.clone(),
                triple,
                platform.os,
                platform.arch,
            ));
        }
        platforms.push(platform);
    }
    Ok(platforms)
}

fn target_dir(workspace: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
}

/// `cargo build --release` of the plugin for `platform`; returns the binary's path. Cargo rebuilds only what
/// changed, so this is quick when the release build is current.
pub fn build(workspace: &Path, platform: &Platform) -> Result<PathBuf, ReleaseError> {
    let mut command = cargo();
    command
        .args(["build", "--release", "--locked", "--package", PACKAGE, "--target"])
        .arg(&platform.triple)
        .current_dir(workspace);
    let described = format!("{command:?}");
    let status = command.status().map_err(|e| ReleaseError::Command {
        command: described.clone(),
        message: e.to_string(),
    })?;
    if !status.success() {
        return Err(ReleaseError::Command {
            command: described,
            message: status.to_string(),
        });
    }
    let binary = target_dir(workspace)
        .join(&platform.triple)
        .join("release")
        .join(platform.binary_name());
    if !binary.is_file() {
        return Err(ReleaseError::Command {
            command: described,
            message: format!("{} is missing after the build", binary.display()),
        });
    }
    Ok(binary)
}

/// The archive entries' modification time: `SOURCE_DATE_EPOCH` (reproducible-builds.org), else 0.
pub fn archive_mtime() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A file in an archive.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub name: &'a str,
    pub mode: u32,
    pub data: &'a [u8],
}

/// A reproducible `.tar.gz` of `entries`, in their order, owned by 0:0, all with time `mtime`.
pub fn tar_gz(entries: &[Entry<'_>], mtime: u64) -> Vec<u8> {
    let gzip = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gzip);
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        header.set_size(entry.data.len() as u64);
        header.set_mode(entry.mode);
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        // Writing into a Vec cannot fail.
        tar.append_data(&mut header, entry.name, entry.data)
            .expect("writing a tar entry to memory");
    }
    let gzip = tar.into_inner().expect("finishing the tar stream in memory");
    gzip.finish().expect("finishing the gzip stream in memory")
}

/// Lowercase hex SHA-256, as krew wants it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What to write into the manifest for one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformUpdate {
    pub os: String,
    pub arch: String,
    pub uri: String,
    pub sha256: String,
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Replaces the value of a `key: value` line, keeping its indentation (and any list dash before the key).
fn with_value(line: &str, key: &str, value: &str) -> Option<String> {
    let trimmed = line.trim_start().trim_start_matches("- ");
    let rest = trimmed.strip_prefix(key)?.strip_prefix(':')?;
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None;
    }
    let head = &line[..line.len() - trimmed.len()];
    Some(format!("{head}{key}: {value}"))
}

fn value_of<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let trimmed = line.trim_start().trim_start_matches("- ");
    let rest = trimmed.strip_prefix(key)?.strip_prefix(':')?;
    Some(rest.trim().trim_matches(['"', '\'']))
}

/// The manifest text with `spec.version` set to `v<version>` and each platform's `uri` and `sha256` replaced,
/// everything else (comments, order, descriptions) untouched. The platform is found by the `os:` and `arch:`
/// of its selector; a built platform the manifest does not list is an error (add its block by hand once).
pub fn update_manifest(text: &str, version: &str, updates: &[PlatformUpdate]) -> Result<String, String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let spec = lines
        .iter()
        .position(|l| l.trim_end() == "spec:")
        .ok_or("no `spec:` line")?;
    let version_line = lines
        .iter()
        .enumerate()
        .skip(spec)
        .find(|(_, l)| value_of(l, "version").is_some() && indent_of(l) > 0)
        .map(|(i, _)| i)
        .ok_or("no `version:` under spec")?;
    lines[version_line] = with_value(&lines[version_line], "version", &format!("v{version}")).unwrap();

    let platforms_at = lines
        .iter()
        .position(|l| l.trim_end().ends_with("platforms:") && value_of(l, "platforms") == Some(""))
        .ok_or("no `platforms:` list")?;
    let platforms_indent = indent_of(&lines[platforms_at]);
    // Each list item: from its `- ` line to the line before the next item or the end of the list.
    let mut items: Vec<(usize, usize)> = Vec::new();
    let mut item_indent = None;
    for (i, line) in lines.iter().enumerate().skip(platforms_at + 1) {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let indent = indent_of(line);
        let is_item = line.trim_start().starts_with("- ");
        if indent < platforms_indent || (indent == platforms_indent && !is_item) {
            break;
        }
        if is_item && item_indent.is_none_or(|at| at == indent) {
            item_indent = Some(indent);
            if let Some(last) = items.last_mut() {
                last.1 = i;
            }
            items.push((i, lines.len()));
        }
        if let Some(last) = items.last_mut() {
            last.1 = i + 1;
        }
    }
    for update in updates {
        let item = items.iter().find(|(start, end)| {
            let block = &lines[*start..*end];
            block
                .iter()
                .any(|l| value_of(l, "os") == Some(update.os.as_str()))
                && block
                    .iter()
                    .any(|l| value_of(l, "arch") == Some(update.arch.as_str()))
        });
        let Some(&(start, end)) = item else {
            return Err(format!(
                "no platform with os: {} and arch: {} in spec.platforms; add one (a copy of another platform's block)",
                update.os, update.arch
            ));
        };
        for key in ["uri", "sha256"] {
            let value = if key == "uri" { &update.uri } else { &update.sha256 };
            let at = (start..end)
                .find(|&i| value_of(&lines[i], key).is_some())
                .ok_or_else(|| format!("platform {}/{} has no `{key}:` line", update.os, update.arch))?;
            lines[at] = with_value(&lines[at], key, value).unwrap();
        }
    }
    let mut out = lines.join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// The manifest as krew reads it, for checking what [`update_manifest`] wrote.
#[derive(Debug, serde::Deserialize)]
struct ManifestView {
    spec: SpecView,
}

#[derive(Debug, serde::Deserialize)]
struct SpecView {
    version: String,
    platforms: Vec<PlatformView>,
}

#[derive(Debug, serde::Deserialize)]
struct PlatformView {
    selector: SelectorView,
    uri: String,
    sha256: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SelectorView {
    match_labels: std::collections::BTreeMap<String, String>,
}

fn check_manifest(text: &str, version: &str, updates: &[PlatformUpdate]) -> Result<(), String> {
    let view: ManifestView = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    if view.spec.version != format!("v{version}") {
        return Err(format!(
            "spec.version reads {:?} after the update",
            view.spec.version
        ));
    }
    for update in updates {
        let found = view.spec.platforms.iter().find(|p| {
            p.selector.match_labels.get("os") == Some(&update.os)
                && p.selector.match_labels.get("arch") == Some(&update.arch)
        });
        match found {
            Some(p) if p.uri == update.uri && p.sha256 == update.sha256 => {}
            _ => {
                return Err(format!(
                    "platform {}/{} does not read back as written",
                    update.os, update.arch
                ));
            }
        }
    }
    Ok(())
}

/// Builds and archives the plugin for every platform of `options` and writes the manifest.
pub fn release(options: &ReleaseOptions) -> Result<Vec<Artifact>, ReleaseError> {
    let platforms = platforms(&options.targets)?;
    let extras: Vec<(&str, Vec<u8>)> = EXTRA_FILES
        .iter()
        .map(|name| {
            let path = options.workspace.join(name);
            std::fs::read(&path)
                .map(|data| (*name, data))
                .map_err(io_error(&path))
        })
        .collect::<Result<_, _>>()?;
    std::fs::create_dir_all(&options.dist_dir).map_err(io_error(&options.dist_dir))?;
    let mut artifacts = Vec::new();
    for platform in platforms {
        let binary_path = build(&options.workspace, &platform)?;
        let binary = std::fs::read(&binary_path).map_err(io_error(&binary_path))?;
        let binary_name = platform.binary_name();
        let mut entries = vec![Entry {
            name: &binary_name,
            mode: 0o755,
            data: &binary,
        }];
        entries.extend(extras.iter().map(|(name, data)| Entry {
            name,
            mode: 0o644,
            data,
        }));
        let archive = tar_gz(&entries, archive_mtime());
        let sha256 = sha256_hex(&archive);
        let path = options.dist_dir.join(platform.archive_name(VERSION));
        let unchanged = std::fs::read(&path).is_ok_and(|existing| existing == archive);
        if !unchanged {
            write_atomically(&path, &archive)?;
        }
        let sum_path = options
            .dist_dir
            .join(format!("{}.sha256", platform.archive_name(VERSION)));
        let sum_line = format!("{sha256}  {}\n", platform.archive_name(VERSION));
        write_atomically(&sum_path, sum_line.as_bytes())?;
        artifacts.push(Artifact {
            uri: platform.uri(VERSION),
            platform,
            archive: path,
            sha256,
            unchanged,
        });
    }
    let updates: Vec<PlatformUpdate> = artifacts
        .iter()
        .map(|a| PlatformUpdate {
            os: a.platform.os.clone(),
            arch: a.platform.arch.clone(),
            uri: a.uri.clone(),
            sha256: a.sha256.clone(),
        })
        .collect();
    let manifest_error = |message: String| ReleaseError::Manifest {
        path: options.manifest.clone(),
        message,
    };
    let text = std::fs::read_to_string(&options.manifest).map_err(io_error(&options.manifest))?;
    let updated = update_manifest(&text, VERSION, &updates).map_err(manifest_error)?;
    check_manifest(&updated, VERSION, &updates).map_err(manifest_error)?;
    if updated != text {
        write_atomically(&options.manifest, updated.as_bytes())?;
    }
    Ok(artifacts)
}

/// `cargo xtask release`.
pub fn run(args: ReleaseArgs) -> Result<(), ReleaseError> {
    let workspace = workspace_root();
    let mut options = ReleaseOptions::for_workspace(&workspace);
    options.targets = args.targets;
    if let Some(dir) = args.dist_dir {
        options.dist_dir = dir;
    }
    if let Some(manifest) = args.manifest {
        options.manifest = manifest;
    }
    if options.targets.is_empty()
        && let (Ok(host), Some(installed)) = (host_triple(), installed_targets())
    {
        let others: Vec<&String> = installed
            .iter()
            .filter(|t| **t != host && Platform::of(t).is_some())
            .collect();
        if !others.is_empty() {
            eprintln!(
                "building for this machine ({host}) only; also installed: {} (add --target TRIPLE for each, with a linker for it)",
                others.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
    }
    let artifacts = release(&options)?;
    for artifact in &artifacts {
        println!(
            "{}  {}/{}  {}{}",
            artifact.sha256,
            artifact.platform.os,
            artifact.platform.arch,
            artifact.archive.display(),
            if artifact.unchanged { " (unchanged)" } else { "" }
        );
    }
    println!(
        "{} updated: uri and sha256 of each platform",
        options.manifest.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    const MANIFEST: &str = "apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: tprotect
spec:
  # bumped by cargo xtask release
  version: v0.0.1
  shortDescription: x
  platforms:
    - selector:
        matchLabels:
          os: linux
          arch: amd64
      uri: https://example.com/old-amd64.tar.gz
      sha256: 0000000000000000000000000000000000000000000000000000000000000000
      bin: kubectl-tprotect
      files:
        - from: kubectl-tprotect
          to: .
    - selector:
        matchLabels:
          os: linux
          arch: arm64
      # keep this comment
      uri: https://example.com/old-arm64.tar.gz
      sha256: 1111111111111111111111111111111111111111111111111111111111111111
      bin: kubectl-tprotect
";

    fn update(arch: &str, sha: char) -> PlatformUpdate {
        PlatformUpdate {
            os: "linux".into(),
            arch: arch.into(),
            uri: format!("https://example.com/v9.9.9/{arch}.tar.gz"),
            sha256: sha.to_string().repeat(64),
        }
    }

    #[test]
    fn manifest_update_touches_only_version_uri_and_sha() {
        let updated = update_manifest(MANIFEST, "9.9.9", &[update("arm64", 'b')]).unwrap();
        let changed: Vec<(&str, &str)> = MANIFEST
            .lines()
            .zip(updated.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(
            changed,
            [
                ("  version: v0.0.1", "  version: v9.9.9"),
                (
                    "      uri: https://example.com/old-arm64.tar.gz",
                    "      uri: https://example.com/v9.9.9/arm64.tar.gz"
                ),
                (
                    "      sha256: 1111111111111111111111111111111111111111111111111111111111111111",
                    "      sha256: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
                ),
            ]
        );
        assert_eq!(MANIFEST.lines().count(), updated.lines().count());
        assert!(updated.ends_with('\n'));
        check_manifest(&updated, "9.9.9", &[update("arm64", 'b')]).unwrap();
        let both = update_manifest(MANIFEST, "9.9.9", &[update("amd64", 'a'), update("arm64", 'b')]).unwrap();
        check_manifest(&both, "9.9.9", &[update("amd64", 'a'), update("arm64", 'b')]).unwrap();
    }

    #[test]
    fn manifest_without_the_platform_is_an_error() {
        let error = update_manifest(MANIFEST, "9.9.9", &[update("ppc64le", 'c')]).unwrap_err();
        assert!(error.contains("os: linux and arch: ppc64le"), "{error}");
        assert!(update_manifest("kind: Plugin\n", "1.0.0", &[]).is_err());
    }

    #[test]
    fn platforms_follow_krews_names() {
        for (target, krew) in [
            ("x86_64-unknown-linux-gnu", Some(("linux", "amd64"))),
            ("x86_64-unknown-linux-musl", Some(("linux", "amd64"))),
            ("aarch64-apple-darwin", Some(("darwin", "arm64"))),
            ("armv7-unknown-linux-gnueabihf", Some(("linux", "arm"))),
            ("x86_64-pc-windows-msvc", Some(("windows", "amd64"))),
            ("wasm32-unknown-unknown", None),
        ] {
            let platform = Platform::of(target);
            let names = platform.as_ref().map(|p| (p.os.as_str(), p.arch.as_str()));
            assert_eq!(names, krew, "{target}");
        }
        let linux = Platform::of("x86_64-unknown-linux-gnu").unwrap();
        assert_eq!(
            linux.archive_name("0.1.0"),
            "kubectl-tprotect_v0.1.0_linux_amd64.tar.gz"
        );
        assert_eq!(
            linux.uri("0.1.0"),
            format!("{REPOSITORY}/releases/download/v0.1.0/kubectl-tprotect_v0.1.0_linux_amd64.tar.gz")
        );
        assert!(linux.uri("0.1.0").starts_with("https://github.com/"));
        assert_eq!(
            Platform::of("x86_64-pc-windows-gnu").unwrap().binary_name(),
            "kubectl-tprotect.exe"
        );
    }

    #[test]
    fn archives_are_reproducible_and_hold_what_was_put_in() {
        let entries = [
            Entry {
                name: "kubectl-tprotect",
                mode: 0o755,
                data: b"\x7fELF binary",
            },
            Entry {
                name: "LICENSE",
                mode: 0o644,
                data: b"Apache",
            },
        ];
        let first = tar_gz(&entries, 0);
        assert_eq!(first, tar_gz(&entries, 0), "same input, same bytes");
        assert_ne!(sha256_hex(&first), sha256_hex(&tar_gz(&entries, 1)));
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&first[..]));
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            let header = entry.header();
            seen.push((
                entry.path().unwrap().display().to_string(),
                header.mode().unwrap(),
                header.uid().unwrap(),
                header.mtime().unwrap(),
                data,
            ));
        }
        assert_eq!(
            seen,
            [
                (
                    "kubectl-tprotect".to_string(),
                    0o755,
                    0,
                    0,
                    b"\x7fELF binary".to_vec()
                ),
                ("LICENSE".to_string(), 0o644, 0, 0, b"Apache".to_vec()),
            ]
        );
    }

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
