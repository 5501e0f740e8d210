//! Progress on stderr: a spinner when stderr is a terminal, plain lines otherwise (CI logs, `2>file`).
//! stdout is never touched: it carries data. Neither has colour, so `NO_COLOR` has nothing to remove here
//! (keep the spinner's template unstyled; the logs' colour is decided in `exit::colour_stderr`).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where progress goes.
#[derive(Debug)]
pub struct Progress {
    /// On a terminal: the spinner, made at the first activity (nothing spins before there is something to wait
    /// for, so nothing redraws over a question asked first).
    spinner: Option<std::sync::OnceLock<ProgressBar>>,
    /// Serialises plain lines from the runner's callback and the command.
    plain: Mutex<()>,
}

impl Progress {
    /// A spinner if stderr is a terminal, else plain lines.
    pub fn stderr() -> Self {
        Self::new(std::io::stderr().is_terminal())
    }

    pub fn new(spinner: bool) -> Self {
        Self {
            spinner: spinner.then(std::sync::OnceLock::new),
            plain: Mutex::new(()),
        }
    }

    fn bar(&self) -> Option<&ProgressBar> {
        self.spinner.as_ref().map(|cell| {
            cell.get_or_init(|| {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                    bar.set_style(style);
                }
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            })
        })
    }

    /// The spinner, if one is spinning.
    fn spinning(&self) -> Option<&ProgressBar> {
        self.spinner.as_ref().and_then(|cell| cell.get())
    }

    /// A finished step: one permanent line.
    pub fn line(&self, text: &str) {
        match self.spinning() {
            Some(bar) => bar.println(text),
            None => self.plain_line(text),
        }
    }

    /// Something in progress (a wait): the spinner's message on a terminal, a line otherwise.
    pub fn activity(&self, text: &str) {
        match self.bar() {
            Some(bar) => bar.set_message(text.to_string()),
            None => self.plain_line(text),
        }
    }

    /// Runs `ask` (a question on the terminal) with the spinner hidden, so it cannot erase the question.
    pub fn suspend<T>(&self, ask: impl FnOnce() -> T) -> T {
        match self.spinning() {
            Some(bar) => bar.suspend(ask),
            None => ask(),
        }
    }

    /// A warning: always a permanent line.
    pub fn warn(&self, text: &str) {
        self.line(&format!("warning: {text}"));
    }

    /// Removes the spinner (before printing data or an error).
    pub fn finish(&self) {
        if let Some(bar) = self.spinning() {
            bar.finish_and_clear();
        }
    }

    fn plain_line(&self, text: &str) {
        let _guard = self.plain.lock().unwrap_or_else(|e| e.into_inner());
        // stderr closed: nothing sensible to do, and it must not fail the operation.
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
