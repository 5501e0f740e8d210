//! Exit codes and error reporting. Scripts can tell a failure from a timeout from a bad invocation.

use std::process::ExitCode;

/// The operation failed (bad input, refused, or the relationship ended in a failed state).
pub const FAILURE: u8 = 1;
/// clap uses 2 for usage errors.
pub const USAGE: u8 = 2;
/// A wait ran out of time; the operation may still complete: run the same command again to resume.
pub const TIMEOUT: u8 = 3;
/// `snapmirror status --fail-on`: a condition holds (the status itself was shown).
pub const GATE: u8 = 4;
/// `snapmirror update --if-busy=fail`: a transfer was already in progress; nothing was started.
pub const BUSY: u8 = 5;

/// An error that carries its own exit code (anything else exits with [`FAILURE`]).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CodedError {
    pub code: u8,
    pub message: String,
}

impl CodedError {
    pub fn timeout(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(CodedError {
            code: TIMEOUT,
            message: message.into(),
        })
    }
}

/// Prints the error chain on stderr and returns the exit code. A closed stdout (`| head`) is success.
pub fn report(err: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(err) {
        return ExitCode::SUCCESS;
    }
    let code = err
        .downcast_ref::<CodedError>()
        .map(|e| e.code)
        .unwrap_or(FAILURE);
    eprintln!("error: {err}");
    // Errors that wrap a kube error often repeat its text; print only causes that add something.
    let mut said = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if said.contains(essence(&text)) {
            continue;
        }
        eprintln!("  caused by: {text}");
        said.push_str(&text);
    }
    ExitCode::from(code)
}

/// The message of a cause without kube-rs's `ApiError: ` prefix and its trailing `(Status { … })` dump.
fn essence(text: &str) -> &str {
    let text = text.strip_prefix("ApiError: ").unwrap_or(text);
    let text = text.split(" (Status {").next().unwrap_or(text);
    text.rsplit_once(": ")
        .filter(|(_, reason)| !reason.contains(' '))
        .map_or(text, |(message, _)| message)
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Whether to colour what goes to stderr: only on a terminal that has colour, never with `NO_COLOR` set. The
/// rules are anstream's (also `TERM=dumb`, `CLICOLOR`, `CLICOLOR_FORCE`), which clap applies to help and usage
/// errors: logs and help agree.
pub fn colour_stderr() -> bool {
    anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never
}

/// Logs go to stderr only; stdout carries data.
pub fn init_tracing(verbose: u8) {
    let level = match verbose {
        // kube-client logs every failed request at ERROR; the plugin reports failures itself, once, naming the
        // cluster and the object (and an unreachable peer is expected during a failover).
        0 => "warn,kube_client=off",
        1 => "info,kube=warn",
        _ => "debug,hyper=info,rustls=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TPROTECT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour_stderr())
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::essence;

    #[test]
    fn essence_drops_kube_decorations() {
        let text = "ApiError: admission webhook \"v\" denied the request: no: Invalid (Status { code: 422 })";
        assert_eq!(essence(text), "admission webhook \"v\" denied the request: no");
        assert_eq!(essence("plain message"), "plain message");
    }
}
