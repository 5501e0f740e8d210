//! The real `kubectl-tprotect` binary, run as a user runs it against the environment's kubeconfig.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::Error;

/// How long one run may take before it counts as hung (it is killed then).
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// The plugin binary bound to a kubeconfig.
#[derive(Debug, Clone)]
pub struct Plugin {
    pub binary: PathBuf,
    pub kubeconfig: PathBuf,
    /// `--timeout` given to every run, if any.
    pub timeout: Option<Duration>,
}

/// The arguments of `kubectl tprotect setup`: relationship `name` replicating Application `app` of
/// `namespace` from the `contexts` `[source, destination]` into `destination_namespace`, with the `vaults`
/// `[source, destination]`.
#[derive(Debug, Clone)]
pub struct Setup<'a> {
    pub name: &'a str,
    pub contexts: [&'a str; 2],
    pub namespace: &'a str,
    pub app: &'a str,
    pub vaults: [&'a str; 2],
    pub destination_namespace: &'a str,
}

impl<'a> Setup<'a> {
    /// `name` replicating `app` (in the namespace of the same name) between the admin contexts, with the
    /// vaults [`crate::Fixtures`] installs by default.
    pub fn new(name: &'a str, app: &'a str, destination_namespace: &'a str) -> Self {
        Setup {
            name,
            contexts: [crate::SOURCE, crate::DESTINATION],
            namespace: app,
            app,
            vaults: ["src-vault", "dst-vault"],
            destination_namespace,
        }
    }

    /// The command line, then `extra`.
    pub fn args(&self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "setup",
            self.name,
            "--source-context",
            self.contexts[0],
            "--destination-context",
            self.contexts[1],
            "-n",
            self.namespace,
            "--app",
            self.app,
            "--source-vault",
            self.vaults[0],
            "--destination-vault",
            self.vaults[1],
            "--destination-namespace",
            self.destination_namespace,
        ];
        args.extend_from_slice(extra);
        args
    }
}

/// What a run printed and how it exited.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub args: Vec<String>,
    pub elapsed: Duration,
}

impl Plugin {
    pub fn new(binary: PathBuf, kubeconfig: &Path) -> Self {
        Self {
            binary,
            kubeconfig: kubeconfig.to_path_buf(),
            timeout: None,
        }
    }

    /// Every run gets `--timeout <timeout>`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The words before `args`: the kubeconfig and the timeout.
    fn leading_args(&self) -> Vec<String> {
        let mut words = vec!["--kubeconfig".to_string(), self.kubeconfig.display().to_string()];
        if let Some(timeout) = self.timeout {
            words.extend(["--timeout".to_string(), format!("{}s", timeout.as_secs())]);
        }
        words
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .args(self.leading_args())
            .args(args)
            // Only what the run is given: not the test runner's kubeconfig or kill switch.
            .env_remove("KUBECONFIG")
            .env_remove("TPROTECT_TEST_KILL_AFTER_STEP")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs `kubectl tprotect <args>`, capturing its output.
    pub async fn run(&self, args: &[&str]) -> Result<Output, Error> {
        self.run_with_env(args, &[]).await
    }

    /// [`Plugin::run`] with extra environment.
    pub async fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Result<Output, Error> {
        let mut command = self.command(args);
        command.envs(env.iter().copied());
        let started = Instant::now();
        let output = finish(args, command.output()).await?;
        Ok(Output::of(args, output, started))
    }

    /// Runs `kubectl tprotect <args>` on a pseudo-terminal (util-linux `script`), typing `input`. stdout and
    /// stderr both arrive in [`Output::stdout`], as on a terminal.
    pub async fn run_on_terminal(&self, args: &[&str], input: &str) -> Result<Output, Error> {
        use tokio::io::AsyncWriteExt;
        let line = std::iter::once(self.binary.display().to_string())
            .chain(self.leading_args())
            .chain(args.iter().map(|a| a.to_string()))
            .map(|word| format!("'{}'", word.replace('\'', r"'\''")))
            .collect::<Vec<_>>()
            .join(" ");
        let started = Instant::now();
        let mut child = tokio::process::Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .env_remove("KUBECONFIG")
            .env_remove("TPROTECT_TEST_KILL_AFTER_STEP")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(args, format!("cannot run script (util-linux): {e}")))?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| failed(args, "no stdin".into()))?;
        stdin
            .write_all(input.as_bytes())
            .await
            .map_err(|e| failed(args, format!("typing the answer: {e}")))?;
        let output = finish(args, child.wait_with_output()).await?;
        drop(stdin);
        Ok(Output::of(args, output, started))
    }

    /// Starts `kubectl tprotect <args>` in the background with stdout piped (for `--watch`; read it with
    /// [`read_until`]); killed on drop.
    pub fn spawn(&self, args: &[&str]) -> Result<tokio::process::Child, Error> {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| failed(args, format!("cannot start {}: {e}", self.binary.display())))
    }

    /// Runs `kubectl tprotect <args>` with its stdout closed before it writes (as `| head` does once
    /// satisfied).
    pub async fn run_with_stdout_closed(&self, args: &[&str]) -> Result<Output, Error> {
        let started = Instant::now();
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(args, format!("cannot start {}: {e}", self.binary.display())))?;
        drop(child.stdout.take());
        let output = finish(args, child.wait_with_output()).await?;
        Ok(Output::of(args, output, started))
    }
}

/// The plugin running in a terminal a person would see: a detached tmux session of a fixed size, whose screen is
/// read as tmux renders it (what a spinner redraws over is gone from it) and into which keys are typed. Killed
/// on drop.
#[derive(Debug)]
pub struct Screen {
    session: String,
    exit_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Plugin {
    /// Starts `kubectl tprotect <args>` on a terminal of 160 x 48 (tmux).
    pub fn on_screen(&self, args: &[&str]) -> Result<Screen, Error> {
        let dir = tempfile::tempdir().map_err(|e| failed(args, format!("a temporary directory: {e}")))?;
        let exit_file = dir.path().join("exit");
        let quote = |word: &str| format!("'{}'", word.replace('\'', r"'\''"));
        let line = std::iter::once(self.binary.display().to_string())
            .chain(self.leading_args())
            .chain(args.iter().map(|a| a.to_string()))
            .map(|word| quote(&word))
            .collect::<Vec<_>>()
            .join(" ");
        // The exit code goes to a file; the pane stays open so the last screen can still be read.
        let script = format!(
            "env -u KUBECONFIG -u TPROTECT_TEST_KILL_AFTER_STEP {line}; echo $? > {}; sleep 600",
            quote(&exit_file.display().to_string())
        );
        // tmux reads `.` and `:` in a target as window and pane separators: letters, digits and `-` only.
        let unique: String = dir
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("x")
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let session = format!("tprotect-{}-{unique}", std::process::id());
        let status = std::process::Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-x",
                "160",
                "-y",
                "48",
                "-s",
                &session,
                &script,
            ])
            .status()
            .map_err(|e| failed(args, format!("cannot run tmux: {e}")))?;
        if !status.success() {
            return Err(failed(args, format!("tmux new-session exited {status}")));
        }
        Ok(Screen {
            session,
            exit_file,
            _dir: dir,
        })
    }
}

impl Screen {
    /// The screen as it is now (tmux's rendering: the visible rows, trailing blanks cut).
    pub fn text(&self) -> String {
        std::process::Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Waits until the screen shows `text` (60 s at most); the screen then.
    pub async fn wait_for(&self, text: &str) -> Result<String, Error> {
        crate::eventually(&format!("the screen to show {text:?}"), async || {
            let screen = self.text();
            screen.contains(text).then_some(screen)
        })
        .await
        .map_err(|e| Error::Plugin {
            args: self.session.clone(),
            message: format!("{e}; the screen:\n{}", self.text()),
        })
    }

    /// Types `line` and Enter.
    pub fn type_line(&self, line: &str) -> Result<(), Error> {
        let status = std::process::Command::new("tmux")
            .args(["send-keys", "-t", &self.session, "-l", line])
            .status()
            .and_then(|_| {
                std::process::Command::new("tmux")
                    .args(["send-keys", "-t", &self.session, "Enter"])
                    .status()
            })
            .map_err(|e| Error::Plugin {
                args: self.session.clone(),
                message: format!("tmux send-keys: {e}"),
            })?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::Plugin {
                args: self.session.clone(),
                message: format!("tmux send-keys exited {status}"),
            })
        }
    }

    /// The exit code, once the plugin has ended (`None` while it runs).
    pub fn exit_code(&self) -> Option<i32> {
        std::fs::read_to_string(&self.exit_file).ok()?.trim().parse().ok()
    }

    /// Waits for the plugin to end; its exit code.
    pub async fn wait_exit(&self) -> Result<i32, Error> {
        crate::eventually("the plugin to end", async || self.exit_code())
            .await
            .map_err(|e| Error::Plugin {
                args: self.session.clone(),
                message: format!("{e}; the screen:\n{}", self.text()),
            })
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .status();
    }
}

fn failed(args: &[&str], message: String) -> Error {
    Error::Plugin {
        args: args.join(" "),
        message,
    }
}

async fn finish(
    args: &[&str],
    run: impl std::future::Future<Output = std::io::Result<std::process::Output>>,
) -> Result<std::process::Output, Error> {
    tokio::time::timeout(RUN_LIMIT, run)
        .await
        .map_err(|_| failed(args, format!("did not end in {RUN_LIMIT:?}")))?
        .map_err(|e| failed(args, e.to_string()))
}

impl Output {
    fn of(args: &[&str], output: std::process::Output, started: Instant) -> Self {
        let run = Output {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            args: args.iter().map(|s| s.to_string()).collect(),
            elapsed: started.elapsed(),
        };
        eprintln!(
            "[{:>6.1}s] kubectl tprotect {} -> exit {}",
            run.elapsed.as_secs_f64(),
            run.args.join(" "),
            run.code
        );
        run
    }

    /// Everything the run printed, for a message.
    pub fn printed(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }

    /// Ok when the run exited 0; otherwise an error with everything it printed.
    pub fn success(&self) -> Result<&Self, Error> {
        if self.code == 0 {
            Ok(self)
        } else {
            Err(Error::Plugin {
                args: self.args.join(" "),
                message: format!("exited {}\n{}", self.code, self.printed()),
            })
        }
    }

    /// Asserts the run exited `code` (a test assertion: panics with everything the run printed).
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "kubectl tprotect {} exited {} (expected {code})\n{}",
            self.args.join(" "),
            self.code,
            self.printed()
        );
        self
    }

    /// Asserts the run exited 0.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.expect_code(0)
    }

    /// Shows what the command said on stderr (in the test's log: the messages users get).
    pub fn show(&self) -> &Self {
        eprintln!("    stderr of kubectl tprotect {}:", self.args.join(" "));
        for line in self.stderr.lines() {
            eprintln!("    | {line}");
        }
        self
    }

    /// Asserts stderr contains `text`.
    #[track_caller]
    pub fn stderr_has(&self, text: &str) -> &Self {
        self.has("stderr", &self.stderr, text)
    }

    /// Asserts stdout contains `text`.
    #[track_caller]
    pub fn stdout_has(&self, text: &str) -> &Self {
        self.has("stdout", &self.stdout, text)
    }

    #[track_caller]
    fn has(&self, stream: &str, printed: &str, text: &str) -> &Self {
        assert!(
            printed.contains(text),
            "{stream} of kubectl tprotect {} lacks {text:?}:\n{}",
            self.args.join(" "),
            self.printed()
        );
        self
    }
}

/// Reads a background command's stdout until what was read satisfies `done` (60 s at most); returns it.
pub async fn read_until(
    child: &mut tokio::process::Child,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> Result<String, Error> {
    use tokio::io::AsyncReadExt;
    let limit = Duration::from_secs(60);
    let unread = |seen: &[u8], why: &str| Error::Plugin {
        args: "(in the background)".into(),
        message: format!(
            "{why} before {what}; it printed: {}",
            String::from_utf8_lossy(seen)
        ),
    };
    let stdout = child
        .stdout
        .as_mut()
        .ok_or_else(|| unread(&[], "stdout not piped"))?;
    let mut seen = Vec::new();
    let deadline = Instant::now() + limit;
    let mut buffer = [0u8; 4096];
    while !done(&String::from_utf8_lossy(&seen)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stdout.read(&mut buffer)).await {
            Ok(Ok(0)) => return Err(unread(&seen, "output ended")),
            Ok(Ok(n)) => seen.extend_from_slice(&buffer[..n]),
            Ok(Err(e)) => return Err(unread(&seen, &format!("reading failed ({e})"))),
            Err(_) => return Err(unread(&seen, &format!("nothing more within {limit:?}"))),
        }
    }
    Ok(String::from_utf8_lossy(&seen).into_owned())
}
