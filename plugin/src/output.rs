//! Data on stdout, through one printer: every verb hands it data and the table text for people, and `-o`
//! decides which is written. Writes surface a closed pipe as an io::Error (turned into success by
//! `exit::report`) instead of `println!`'s panic. Several documents (`status --watch`) are separated as each
//! format expects: YAML by `---`, JSON one document after the other.

use std::io::Write;
#[cfg(test)]
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::args::OutputFormat;

/// Where data goes.
#[derive(educe::Educe)]
#[educe(Debug)]
pub struct Printer {
    format: OutputFormat,
    #[educe(Debug(ignore))]
    out: Box<dyn Write + Send>,
    documents: usize,
}

impl Printer {
    /// Prints to stdout.
    pub fn stdout(format: OutputFormat) -> Self {
        Self {
            format,
            out: Box::new(std::io::stdout()),
            documents: 0,
        }
    }

    /// Prints into a buffer (tests read what a user would see).
    #[cfg(test)]
    pub fn buffer(format: OutputFormat) -> (Self, Captured) {
        let captured = Captured::default();
        let printer = Self {
            format,
            out: Box::new(captured.clone()),
            documents: 0,
        };
        (printer, captured)
    }

    pub fn format(&self) -> OutputFormat {
        self.format
    }

    /// One document: `data` as JSON or YAML, or for `-o table` the text `table` makes.
    pub fn print<T: Serialize>(&mut self, data: &T, table: impl FnOnce() -> String) -> anyhow::Result<()> {
        let text = match self.format {
            OutputFormat::Json => serde_json::to_string_pretty(data)? + "\n",
            OutputFormat::Yaml => {
                let yaml = serde_norway::to_string(data)?;
                if self.documents == 0 {
                    yaml
                } else {
                    format!("---\n{yaml}")
                }
            }
            OutputFormat::Table => table(),
        };
        self.documents += 1;
        self.text(&text)
    }

    /// Text as it is, whatever `-o` says (version, completion scripts).
    pub fn text(&mut self, text: &str) -> anyhow::Result<()> {
        self.out.write_all(text.as_bytes())?;
        self.out.flush()?;
        Ok(())
    }
}

/// What a [`Printer::buffer`] printed.
#[cfg(test)]
#[derive(Debug, Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

#[cfg(test)]
impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

#[cfg(test)]
impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes `text` to stdout (for the few places that print before a verb runs, e.g. completion).
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// One document on stdout (for the verbs that print a single result without a [`Printer`] of their own).
pub fn print_data<T: Serialize>(
    format: OutputFormat,
    value: &T,
    table: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    Printer::stdout(format).print(value, table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Doc {
        name: &'static str,
    }

    #[test]
    fn yaml_documents_are_separated_and_json_and_tables_are_as_given() {
        let (mut printer, out) = Printer::buffer(OutputFormat::Yaml);
        printer.print(&Doc { name: "a" }, String::new).unwrap();
        printer.print(&Doc { name: "b" }, String::new).unwrap();
        assert_eq!(out.text(), "name: a\n---\nname: b\n");

        let (mut printer, out) = Printer::buffer(OutputFormat::Json);
        printer.print(&Doc { name: "a" }, String::new).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&out.text()).unwrap();
        assert_eq!(parsed["name"], "a");

        let (mut printer, out) = Printer::buffer(OutputFormat::Table);
        printer.print(&Doc { name: "a" }, || "NAME\na\n".into()).unwrap();
        assert_eq!(out.text(), "NAME\na\n");
    }
}
