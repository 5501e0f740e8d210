//! Data on stdout. Writes go through here so a closed pipe surfaces as an io::Error (turned into success by
//! `exit::report`) instead of `println!`'s panic.

use std::io::Write;

use serde::Serialize;

use crate::cli::OutputFormat;

/// Writes `text` to stdout.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Writes a serializable value as JSON or YAML; `Table` falls back to the caller's table text.
pub fn print_data<T: Serialize>(
    format: OutputFormat,
    value: &T,
    table: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    let text = match format {
        OutputFormat::Json => serde_json::to_string_pretty(value)? + "\n",
        OutputFormat::Yaml => serde_norway::to_string(value)?,
        OutputFormat::Table => table(),
    };
    print(&text)
}
