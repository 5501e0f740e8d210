//! The documentation's shell blocks, run: every fenced `sh` block of `README.md` and `manifests/webhook/README.md`
//! is run here or marked (in its info string) as what cannot be:
//!
//! - ` ```sh ` runs as written, in document order, in one bash session (`set -eo pipefail`) on the local
//!   clusters the README itself starts with `cargo xtask up` (`$TPROTECT_UP_DIR` in a temporary directory, so
//!   nobody's clusters are touched). The Quickstart's `prod` and `dr` are contexts the README names that way.
//! - ` ```sh background ` lines are commands a user runs in their own shell until Ctrl-C: each is started in the
//!   background and waited for until it says that Ctrl-C stops it (both `cargo xtask sim` and `cargo xtask
//!   webhook` print so once they serve); before a block that runs `cargo xtask down`, and at the end, each gets
//!   SIGINT and must exit 0, as after a Ctrl-C.
//! - ` ```sh real-cluster ` blocks need a real cluster (nodes, cert-manager, Kubernetes ≥ 1.21). They run, as
//!   written, on a separate pair of local API servers, with `kubectl` wrapped: `rollout status` is not run (no
//!   nodes: Pods never start) and is listed, and an apply may leave out only kinds such a server does not serve
//!   (policy/v1 PodDisruptionBudget, cert-manager's Issuer and Certificate), which must be exactly the expected
//!   ones; everything else is applied for real, so each later command of the recipe meets what it needs. The
//!   webhook README's other blocks (its local path) run in the same session, after its install recipes.
//! - ` ```sh not-run ` blocks are too slow for a test or need what this machine lacks (krew, a container daemon,
//!   a published release): every `cargo xtask …` command in them must exist and every repository path they name
//!   must be there.
//!
//! After chosen blocks the test checks what the block should have done (the gen-certs recipe's `caBundle` in both
//! webhook configurations, the relationship failed over, …); each check names the block it follows, and a block
//! that no longer exists fails the test rather than dropping its check.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use tprotect_e2e::{Testbed, binary, plugin_binary, target_dir, webhook_binary, workspace_root};

const README: &str = "README.md";
const WEBHOOK_README: &str = "manifests/webhook/README.md";

/// What a block's info string says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Run,
    Background,
    RealCluster,
    NotRun,
}

#[derive(Debug, Clone)]
struct Block {
    file: &'static str,
    /// 1-based line of the opening fence.
    line: usize,
    marker: Marker,
    text: String,
}

impl Block {
    fn label(&self) -> String {
        format!("{}:{} ({:?})", self.file, self.line, self.marker)
    }
}

/// The fenced code blocks of `file` that are shell. A fence without a language is an error (it could be shell
/// that nothing checks): non-shell blocks say what they are (` ```text `, ` ```yaml `).
fn shell_blocks(file: &'static str) -> Vec<Block> {
    let text = std::fs::read_to_string(workspace_root().join(file)).unwrap();
    let mut blocks = Vec::new();
    let mut open: Option<(usize, Option<Marker>, String)> = None;
    for (index, line) in text.lines().enumerate() {
        let Some(info) = line.strip_prefix("```") else {
            if let Some((_, _, body)) = &mut open {
                body.push_str(line);
                body.push('\n');
            }
            continue;
        };
        if let Some((start, marker, body)) = open.take() {
            if let Some(marker) = marker {
                blocks.push(Block {
                    file,
                    line: start,
                    marker,
                    text: body,
                });
            }
            continue;
        }
        let mut words = info.split_whitespace();
        let language = words.next();
        let marker = match language {
            None => panic!(
                "{file}:{}: a code block without a language (```text if it is not shell)",
                index + 1
            ),
            Some("sh" | "bash" | "shell" | "console") => Some(match words.next() {
                None => Marker::Run,
                Some("background") => Marker::Background,
                Some("real-cluster") => Marker::RealCluster,
                Some("not-run") => Marker::NotRun,
                Some(other) => panic!("{file}:{}: unknown shell block marker {other:?}", index + 1),
            }),
            Some(_) => None,
        };
        open = Some((index + 1, marker, String::new()));
    }
    assert!(open.is_none(), "{file}: a code block is not closed");
    blocks
}

/// `text` as one shell word.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Bash run before the documentation's blocks: the real-cluster `kubectl` wrapper and the background helpers.
const PRELUDE: &str = r#"
set -eo pipefail
DOC_BG_PIDS=(); DOC_BG_NAMES=(); DOC_BG_LOGS=()

# kubectl for a `real-cluster` block on a local API server (no nodes, no cert-manager, Kubernetes 1.20).
doc_kubectl() {
  case " $* " in
    *" rollout status "*)
      echo "doc test: not run here (no nodes, Pods never start): kubectl $*" >&2
      printf '%s\n' "kubectl $*" >> "$DOC_DIR/not-run"
      return 0;;
  esac
  local err status=0
  err=$(mktemp "$DOC_DIR/kubectl-XXXXXX")
  command kubectl "$@" 2> "$err" || status=$?
  cat "$err" >&2
  if [ "$status" -ne 0 ]; then
    # Only kinds the server does not serve may be left out; any other error fails the block.
    if grep -v -e '^ensure CRDs are installed first$' "$err" \
        | grep -v -E 'no matches for kind "[A-Za-z]+" in version "[a-z0-9./-]+"$' | grep . >/dev/null; then
      return "$status"
    fi
    grep -o -E 'no matches for kind "[A-Za-z]+" in version "[a-z0-9./-]+"' "$err" >> "$DOC_DIR/unserved"
    echo "doc test: left out what this API server does not serve (listed above)" >&2
  fi
}

# A command a user runs in its own shell until Ctrl-C: started, then waited for until it says Ctrl-C stops it.
doc_background() {
  local log="$DOC_DIR/background-${#DOC_BG_PIDS[@]}.log" pid waited=0
  bash -c "exec $1" > "$log" 2>&1 &
  pid=$!
  DOC_BG_PIDS+=("$pid"); DOC_BG_NAMES+=("$1"); DOC_BG_LOGS+=("$log")
  echo "$pid" >> "$DOC_DIR/background.pids"
  echo "doc test: in its own shell (pid $pid, log $log): $1" >&2
  until grep -q 'Ctrl-C' "$log"; do
    if ! kill -0 "$pid" 2>/dev/null || [ "$waited" -ge 900 ]; then
      cat "$log" >&2
      echo "doc test: $1 did not become ready" >&2
      return 1
    fi
    sleep 1; waited=$((waited + 1))
  done
  tail -n 3 "$log" >&2
}

# Ctrl-C in every background shell; each must exit 0.
doc_stop_background() {
  local i status failed=0
  for i in "${!DOC_BG_PIDS[@]}"; do kill -INT "${DOC_BG_PIDS[$i]}" 2>/dev/null || true; done
  for i in "${!DOC_BG_PIDS[@]}"; do
    status=0; wait "${DOC_BG_PIDS[$i]}" || status=$?
    echo "doc test: Ctrl-C: ${DOC_BG_NAMES[$i]} exited with $status" >&2
    tail -n 4 "${DOC_BG_LOGS[$i]}" >&2
    [ "$status" -eq 0 ] || failed=1
  done
  DOC_BG_PIDS=(); DOC_BG_NAMES=(); DOC_BG_LOGS=()
  return "$failed"
}
trap 'doc_stop_background || true' EXIT

doc_check() { echo "doc test: check: $1" >&2; }

# The webhook must refuse an AppVault with a lower-case providerType on context $1 (more arguments go to apply).
doc_bad_appvault_refused() {
  local context=$1; shift
  if kubectl --context "$context" apply "$@" -f - 2> "$DOC_DIR/refused" <<'EOF'
apiVersion: protect.trident.netapp.io/v1
kind: AppVault
metadata: {name: refused-by-the-webhook, namespace: trident-protect}
spec: {providerType: generic-s3, providerConfig: {s3: {bucketName: b, endpoint: e}}}
EOF
  then echo "doc test: the bad AppVault was accepted on $context" >&2; return 1; fi
  grep -q 'denied the request.*did you mean "GenericS3"' "$DOC_DIR/refused"
}
"#;

/// Checks run right after the one block whose text contains `anchor`.
struct Check {
    file: &'static str,
    anchor: &'static str,
    script: &'static str,
}

/// The script of a session: the prelude, `prologue`, then each block as its marker says, each followed by its
/// checks, then `epilogue`.
fn script(blocks: &[Block], checks: &[Check], prologue: &str, epilogue: &str) -> String {
    for check in checks {
        let matching = blocks
            .iter()
            .filter(|b| b.file == check.file && b.text.contains(check.anchor))
            .count();
        assert_eq!(
            matching, 1,
            "the check after the block with {:?} in {} matches {matching} blocks",
            check.anchor, check.file
        );
    }
    let mut out = String::from(PRELUDE);
    out.push_str(prologue);
    for block in blocks {
        out.push_str(&format!(
            "\necho {} \"at ${{SECONDS}}s\" >&2\n",
            quote(&format!("::: {}", block.label()))
        ));
        match block.marker {
            Marker::Run => {
                if block.text.contains("cargo xtask down") {
                    // The README: press Ctrl-C in the shells of `sim` and `webhook`, then stop the clusters.
                    out.push_str("doc_stop_background\n");
                }
                out.push_str(&block.text);
            }
            Marker::RealCluster => {
                out.push_str("kubectl() { doc_kubectl \"$@\"; }\n");
                out.push_str(&block.text);
                out.push_str("unset -f kubectl\n");
            }
            Marker::Background => {
                for line in block.text.lines() {
                    let command = line.split('#').next().unwrap_or_default().trim();
                    if !command.is_empty() {
                        out.push_str(&format!("doc_background {}\n", quote(command)));
                    }
                }
            }
            Marker::NotRun => unreachable!("not-run blocks are not given to a session"),
        }
        for check in checks
            .iter()
            .filter(|c| c.file == block.file && block.text.contains(c.anchor))
        {
            out.push_str(check.script);
        }
    }
    out.push_str(epilogue);
    out.push_str("\ndoc_stop_background\necho '::: end' >&2\n");
    out
}

/// One session's directory and environment: HOME, krew's root and the clusters of `cargo xtask up` all in a
/// temporary directory; the binaries of this checkout first on PATH; cargo's and the testbed's caches the real ones.
struct Session {
    dir: tempfile::TempDir,
}

impl Session {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tprotect-readme-")
            .tempdir()
            .unwrap();
        for sub in ["home", "krew/bin", "up"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Self { dir }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// The environment of the session's bash.
    fn command(&self, script: &str) -> Command {
        let home = PathBuf::from(std::env::var_os("HOME").expect("HOME is set"));
        let cargo = std::env::var_os("CARGO").map(PathBuf::from);
        let mut path = vec![target_dir().join("debug")];
        if let Some(dir) = cargo.as_ref().and_then(|c| c.parent()) {
            path.push(dir.to_path_buf());
        }
        path.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let mut command = Command::new("bash");
        command
            .args(["-c", script])
            .current_dir(workspace_root())
            .env("PATH", std::env::join_paths(path).unwrap())
            .env(
                "CARGO_HOME",
                std::env::var_os("CARGO_HOME").unwrap_or_else(|| home.join(".cargo").into()),
            )
            .env(
                "RUSTUP_HOME",
                std::env::var_os("RUSTUP_HOME").unwrap_or_else(|| home.join(".rustup").into()),
            )
            .env("TPROTECT_CACHE_DIR", tprotect_testbed::cache_dir())
            .env("CARGO_TARGET_DIR", target_dir())
            .env("HOME", self.path("home"))
            .env("KREW_ROOT", self.path("krew"))
            .env("TPROTECT_UP_DIR", self.path("up"))
            .env("DOC_DIR", self.dir.path())
            .env_remove("KUBECONFIG")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        command
    }

    /// Runs `script`; panics with the transcript's end (and the block it stopped in) if it fails.
    fn run(&self, script: &str, extra_env: &[(&str, &Path)]) {
        let transcript = self.path("transcript.log");
        let out = std::fs::File::create(&transcript).unwrap();
        let err = out.try_clone().unwrap();
        let mut command = self.command(script);
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let status = command.stdout(out).stderr(err).status().expect("run bash");
        let text = std::fs::read_to_string(&transcript).unwrap_or_default();
        eprintln!("{text}");
        let last_block = text
            .lines()
            .rfind(|l| l.starts_with("::: "))
            .unwrap_or("(before the first block)");
        assert!(
            status.success(),
            "the session failed ({status}) in {last_block}: see the transcript above"
        );
        assert!(
            text.contains("::: end"),
            "the session stopped early, in {last_block}"
        );
    }

    fn lines_of(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.path(file))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }
}

/// Stops what a session left running, however the test ends (also if the test process is killed: it waits on a
/// pipe from us, which closes then). Stops only the background commands it recorded and the clusters of its own
/// `$TPROTECT_UP_DIR`.
struct Cleanup {
    child: Child,
}

impl Cleanup {
    fn start(session: &Session) -> Self {
        let xtask = binary("xtask", "xtask");
        let script = r#"
read -r _ || true
for pid in $(cat "$DOC_DIR/background.pids" 2>/dev/null); do
  grep -q xtask "/proc/$pid/cmdline" 2>/dev/null && kill -INT "$pid" 2>/dev/null
done
sleep 2
for pid in $(cat "$DOC_DIR/background.pids" 2>/dev/null); do
  grep -q xtask "/proc/$pid/cmdline" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
done
if [ -f "$TPROTECT_UP_DIR/children.pid" ]; then "$XTASK" down; fi
exit 0
"#;
        let child = session
            .command(script)
            .env("XTASK", xtask)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        Self { child }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let _ = self.child.wait();
    }
}

/// The binaries the README's commands need, built as they build them (so no command in a session rebuilds).
fn build_binaries() {
    let started = std::time::Instant::now();
    plugin_binary();
    webhook_binary();
    binary("xtask", "xtask");
    // `cargo xtask webhook` builds the plugin and the webhook together: do the same build first.
    xtask::lifecycle_walk::build_binaries(xtask::lifecycle_walk::Profile::Debug).expect("cargo build");
    eprintln!("binaries built in {:.1}s", started.elapsed().as_secs_f64());
}

fn all_blocks() -> Vec<Block> {
    let mut blocks = shell_blocks(README);
    blocks.extend(shell_blocks(WEBHOOK_README));
    blocks
}

#[test]
fn every_shell_block_is_marked_and_not_run_blocks_name_what_exists() {
    let blocks = all_blocks();
    for marker in [
        Marker::Run,
        Marker::Background,
        Marker::RealCluster,
        Marker::NotRun,
    ] {
        assert!(
            blocks.iter().any(|b| b.file == README && b.marker == marker),
            "README.md has no {marker:?} block"
        );
    }
    let xtask = binary("xtask", "xtask");
    let mut checked = BTreeSet::new();
    for block in blocks.iter().filter(|b| b.marker == Marker::NotRun) {
        for line in block.text.lines() {
            let command = line.split('#').next().unwrap_or_default();
            let words: Vec<&str> = command.split_whitespace().collect();
            if let Some(at) = words.windows(2).position(|w| w == ["cargo", "xtask"]) {
                let sub: Vec<&str> = words[at + 2..]
                    .iter()
                    .copied()
                    .take_while(|w| w.chars().all(|c| c.is_ascii_lowercase()))
                    .collect();
                let output = Command::new(&xtask).args(&sub).arg("--help").output().unwrap();
                assert!(
                    output.status.success(),
                    "{}: `cargo xtask {}` does not exist: {}",
                    block.label(),
                    sub.join(" "),
                    String::from_utf8_lossy(&output.stderr)
                );
                checked.insert(format!("cargo xtask {}", sub.join(" ")));
            }
            for word in command.split(|c: char| c.is_whitespace() || c == '=') {
                let repo_dirs = [
                    "krew/",
                    "webhook/",
                    "manifests/",
                    "examples/",
                    "crates/",
                    "plugin/",
                ];
                if repo_dirs.iter().any(|d| word.starts_with(d)) {
                    assert!(
                        workspace_root().join(word).exists(),
                        "{}: {word} does not exist",
                        block.label()
                    );
                    checked.insert(word.to_string());
                }
            }
        }
    }
    for expected in [
        "cargo xtask demo",
        "cargo xtask test",
        "cargo xtask release",
        "krew/tprotect.yaml",
    ] {
        assert!(
            checked.contains(expected),
            "{expected} not found in a not-run block: {checked:?}"
        );
    }
}

#[test]
fn readme_blocks_run_on_local_clusters() {
    build_binaries();
    let blocks: Vec<Block> = shell_blocks(README)
        .into_iter()
        .filter(|b| matches!(b.marker, Marker::Run | Marker::Background))
        .collect();
    let checks = [
        Check {
            file: README,
            anchor: "completion kubectl-shim",
            script: r#"
doc_check "kubectl completes kubectl tprotect through the shim"
PATH="$KREW_ROOT/bin:$PATH" kubectl __complete tprotect se 2>/dev/null | grep '^setup' >/dev/null
"#,
        },
        Check {
            file: README,
            anchor: "cargo xtask up",
            script: r#"
doc_check "the clusters run in \$TPROTECT_UP_DIR; prod and dr are their admin contexts"
test "$KUBECONFIG" = "$TPROTECT_UP_DIR/kubeconfig"
kubectl --context prod get namespace trident-protect -o name
kubectl --context dr get namespace trident-protect -o name
"#,
        },
        Check {
            file: README,
            anchor: "cargo xtask webhook",
            script: r#"
doc_check "the webhook is registered by URL on both clusters and refuses a bad AppVault"
for context in prod dr; do
  kubectl --context "$context" get validatingwebhookconfiguration tprotect-webhook \
    -o jsonpath='{.webhooks[0].clientConfig.url}' | grep '^https://127.0.0.1:' >/dev/null
  doc_bad_appvault_refused "$context" --dry-run=server
done
"#,
        },
        Check {
            file: README,
            anchor: "examples/appvault/vault-prod.yaml",
            script: r#"
doc_check "the example AppVaults become Available (the stand-in checks their Secrets)"
kubectl --context prod -n trident-protect wait appvault/vault-prod --for=jsonpath='{.status.state}'=Available --timeout=60s
kubectl --context dr -n trident-protect wait appvault/vault-dr --for=jsonpath='{.status.state}'=Available --timeout=60s
"#,
        },
        Check {
            file: README,
            anchor: "failover payments --context dr --peer-context prod\n",
            script: r#"
doc_check "payments is failed over: its AppMirrorRelationship is Promoted on dr"
test "$(kubectl --context dr -n payments get amr payments -o jsonpath='{.status.state}')" = Promoted
"#,
        },
        Check {
            file: README,
            anchor: "cargo xtask down",
            script: r#"
doc_check "the clusters are gone and the webhook left no registration behind before they went"
test ! -e "$TPROTECT_UP_DIR"
grep -q 'removed the tprotect-webhook registrations' "$DOC_DIR"/background-*.log
"#,
        },
    ];
    let session = Session::new();
    let _cleanup = Cleanup::start(&session);
    session.run(&script(&blocks, &checks, "", ""), &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_cluster_blocks_and_the_webhook_readme_run_on_local_api_servers() {
    build_binaries();
    let blocks: Vec<Block> = all_blocks()
        .into_iter()
        .filter(|b| {
            b.marker == Marker::RealCluster || (b.file == WEBHOOK_README && b.marker != Marker::NotRun)
        })
        .collect();
    assert!(
        blocks.iter().any(|b| b.file == README),
        "README.md's real-cluster blocks"
    );
    let started = std::time::Instant::now();
    let testbed = Testbed::start().await.expect("start the local API servers");
    eprintln!("local API servers up in {:.1}s", started.elapsed().as_secs_f64());
    let session = Session::new();
    // The README's contexts on these API servers, in the kubeconfig `cargo xtask webhook` reads from
    // $TPROTECT_UP_DIR; Trident protect's own ConfigMap, which the RESTORE_* recipe copies from.
    let kubeconfig = session.path("up/kubeconfig");
    std::fs::copy(&testbed.kubeconfig, &kubeconfig).unwrap();
    let prologue = r#"
kubectl config set-context prod --cluster tprotect-source --user tprotect-source
kubectl config set-context dr --cluster tprotect-destination --user tprotect-destination
kubectl config use-context prod
kubectl -n trident-protect create configmap trident-protect-env-config \
  --from-literal=RESTORE_SKIP_NAMESPACE_LABELS=team.example.com/owner \
  --from-literal=RESTORE_SKIP_NAMESPACE_ANNOTATIONS=openshift.io/sa.scc.uid-range \
  --from-literal=TRIDENT_PROTECT_TAG=26.05.0
"#;
    let checks = [
        Check {
            file: README,
            anchor: "for context in prod dr; do\n  kubectl --context \"$context\" apply -k manifests/webhook/cert-manager",
            script: r#"
doc_check "the cert-manager install, less cert-manager's kinds and the PodDisruptionBudget, is on both clusters"
for context in prod dr; do
  kubectl --context "$context" -n tprotect-system get deployment/tprotect-webhook service/tprotect-webhook -o name
  kubectl --context "$context" get validatingwebhookconfiguration tprotect-webhook -o name
done
"#,
        },
        Check {
            file: WEBHOOK_README,
            anchor: "gen-certs --out-dir",
            script: r#"
doc_check "the gen-certs recipe: its CA is the caBundle of all three webhooks and signed the Secret's certificate"
bundle=$(cat "$CERTS/ca-bundle")
test "$(kubectl get validatingwebhookconfiguration tprotect-webhook \
  -o jsonpath='{.webhooks[*].clientConfig.caBundle}')" = "$bundle"
test "$(kubectl get mutatingwebhookconfiguration tprotect-webhook \
  -o jsonpath='{.webhooks[*].clientConfig.caBundle}')" = "$bundle $bundle"
base64 -d "$CERTS/ca-bundle" | cmp - "$CERTS/ca.crt"
kubectl -n tprotect-system get secret tprotect-webhook-tls -o jsonpath='{.data.tls\.crt}' | base64 -d \
  | cmp - "$CERTS/tls.crt"
openssl verify -CAfile "$CERTS/ca.crt" "$CERTS/tls.crt"
openssl x509 -in "$CERTS/tls.crt" -noout -ext subjectAltName | grep 'DNS:tprotect-webhook.tprotect-system.svc' >/dev/null
test "$CERTS" = "$HOME/tprotect-webhook-certs" && test ! -e tprotect-webhook-certs
"#,
        },
        Check {
            file: WEBHOOK_README,
            anchor: "cargo xtask webhook",
            script: r#"
doc_check "cargo xtask webhook replaced the Service registrations by URL ones and refuses a bad AppVault"
for context in prod dr; do
  test -z "$(kubectl --context "$context" get validatingwebhookconfiguration tprotect-webhook \
    -o jsonpath='{.webhooks[0].clientConfig.service}')"
  kubectl --context "$context" get mutatingwebhookconfiguration tprotect-webhook \
    -o jsonpath='{.webhooks[1].clientConfig.url}' | grep '^https://127.0.0.1:' >/dev/null
  doc_bad_appvault_refused "$context"
done
kubectl --context prod apply -f examples/appvault/vault-prod.yaml
"#,
        },
        Check {
            file: WEBHOOK_README,
            anchor: "trident-protect-env-config",
            script: r#"
doc_check "the webhook's copy of the RESTORE_* rules holds exactly Trident protect's, and the Deployment restarts"
test "$(kubectl -n tprotect-system get configmap tprotect-webhook-restore-rules -o json | jq -c '.data | keys')" \
  = '["RESTORE_SKIP_NAMESPACE_ANNOTATIONS","RESTORE_SKIP_NAMESPACE_LABELS"]'
kubectl -n tprotect-system get deployment tprotect-webhook \
  -o jsonpath='{.spec.template.metadata.annotations.kubectl\.kubernetes\.io/restartedAt}' | grep . >/dev/null
"#,
        },
    ];
    let epilogue = r#"
doc_stop_background
doc_check "Ctrl-C removed the webhook registrations on both clusters"
for context in prod dr; do
  test -z "$(kubectl --context "$context" get validatingwebhookconfiguration,mutatingwebhookconfiguration -o name)"
done
"#;
    let _cleanup = Cleanup::start(&session);
    session.run(
        &script(&blocks, &checks, prologue, epilogue),
        &[("KUBECONFIG", kubeconfig.as_path())],
    );
    let unserved: BTreeSet<String> = session.lines_of("unserved").into_iter().collect();
    let expected: BTreeSet<String> = [
        r#"no matches for kind "Certificate" in version "cert-manager.io/v1""#,
        r#"no matches for kind "Issuer" in version "cert-manager.io/v1""#,
        r#"no matches for kind "PodDisruptionBudget" in version "policy/v1""#,
    ]
    .map(String::from)
    .into();
    assert_eq!(unserved, expected, "what the local API servers could not take");
    let not_run = session.lines_of("not-run");
    assert!(
        !not_run.is_empty() && not_run.iter().all(|l| l.contains("rollout status")),
        "{not_run:?}"
    );
    drop(testbed);
}
