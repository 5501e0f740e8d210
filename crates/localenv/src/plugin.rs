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
