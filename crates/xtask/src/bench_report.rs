//! What the bench reports share: the machine and the command they ran with, their statistics and verdicts, and
//! their sections of BENCHMARKS.md.

use std::{fmt::Write as _, path::Path, process::Command};

use anyhow::Context;

/// The machine a bench ran on, and its load when read.
pub(crate) struct Machine {
    pub(crate) nproc: usize,
    pub(crate) load: String,
    pub(crate) cpu: String,
}

impl Machine {
    pub(crate) fn read() -> Self {
        let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
        let load = std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into());
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        Self { nproc, load, cpu }
    }
}

pub(crate) fn date_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown date".into())
}

/// How this process was started, as `cargo xtask …`: the command a report says it came from.
pub(crate) fn invocation() -> String {
    std::iter::once("cargo xtask".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a bench report says first: the command, when it ended, and the machine with its load at the start and
/// at the end (so that a reader can tell a noisy run).
pub(crate) struct Provenance {
    command: String,
    date: String,
    pub(crate) before: Machine,
    after: Machine,
}

impl Provenance {
    /// A run of `command` ending now, on a machine that was `before` at its start.
    pub(crate) fn ended(command: String, before: Machine) -> Self {
        Self {
            command,
            date: date_utc(),
            before,
            after: Machine::read(),
        }
    }

    /// The report's first lines; `sharing` says what shared the cores (it follows "Shared and noisy: ").
    pub(crate) fn markdown(&self, sharing: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Command: `{}`  ", self.command);
        let _ = writeln!(out, "Run: {}  ", self.date);
        let _ = writeln!(
            out,
            "Machine: {} cores ({}); load average (1, 5, 15 min) {} at the start, {} at the end. Shared and \
             noisy: {sharing}\n",
            self.before.nproc, self.before.cpu, self.before.load, self.after.load
        );
        out
    }
}

pub(crate) fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().collect();
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Nearest-rank percentile of sorted values (NaN for none).
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A target's verdict, as every bench report writes it.
pub(crate) fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**NOT met**" }
}

/// A section of BENCHMARKS.md, between its markers.
pub(crate) struct Section {
    pub(crate) begin: &'static str,
    pub(crate) end: &'static str,
    /// The heading the section is appended under when BENCHMARKS.md does not hold it yet.
    pub(crate) heading: &'static str,
}

impl Section {
    /// Prints `markdown` and, unless `no_write`, puts it into the repository's BENCHMARKS.md.
    pub(crate) fn publish(&self, markdown: &str, no_write: bool) -> anyhow::Result<()> {
        println!("{markdown}");
        if !no_write {
            self.write(&tprotect_testbed::repo_root().join("BENCHMARKS.md"), markdown)?;
            eprintln!("BENCHMARKS.md updated");
        }
        Ok(())
    }

    /// Replaces the text between the markers in `path`, or appends the section when it is not there yet;
    /// every other section is left alone.
    pub(crate) fn write(&self, path: &Path, section: &str) -> anyhow::Result<()> {
        let (begin, end) = (self.begin, self.end);
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let inside = text.find(begin).and_then(|found| {
            let start = found + begin.len();
            Some((start, start + text[start..].find(end)?))
        });
        let updated = match inside {
            Some((start, stop)) => format!("{}\n{}{}", &text[..start], section, &text[stop..]),
            None => format!(
                "{}\n\n## {}\n\n{begin}\n{section}{end}\n",
                text.trim_end(),
                self.heading
            ),
        };
        std::fs::write(path, updated).with_context(|| format!("writing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median([]).is_nan());
    }

    #[test]
    fn rewrites_only_its_section() {
        const WEBHOOK: Section = Section {
            begin: "<!-- BEGIN bench webhook -->",
            end: "<!-- END bench webhook -->",
            heading: "Admission webhook",
        };
        let (begin, end) = (WEBHOOK.begin, WEBHOOK.end);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("BENCHMARKS.md");
        std::fs::write(
            &path,
            format!("head\n{begin}\nold\n{end}\n\n<!-- BEGIN bench plugin -->\nplugin\n"),
        )
        .unwrap();
        WEBHOOK.write(&path, "new\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!("head\n{begin}\nnew\n{end}\n\n<!-- BEGIN bench plugin -->\nplugin\n")
        );
    }
}
