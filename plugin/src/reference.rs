//! The command reference (`docs/reference.md`) and the README's command summary, generated from the clap
//! definition so that they cannot drift from the CLI. The test below regenerates both and fails on a
//! difference; `UPDATE_DOCS=1 cargo test -p kubectl-tprotect reference` rewrites them.

use std::fmt::Write as _;

use clap::{Arg, Command};

/// Between these two lines README.md carries the generated command summary.
pub const README_BEGIN: &str =
    "<!-- BEGIN generated command summary: UPDATE_DOCS=1 cargo test -p kubectl-tprotect reference -->";
pub const README_END: &str = "<!-- END generated command summary -->";

/// The commands worth a section: visible ones, without clap's `help`, depth first.
fn documented(command: &Command) -> Vec<&Command> {
    let mut out = Vec::new();
    for sub in command.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        out.push(sub);
        out.extend(documented(sub));
    }
    out
}

fn full_name(command: &Command) -> String {
    command.get_bin_name().unwrap_or(command.get_name()).to_string()
}

/// GitHub's anchor for a heading.
fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Text fit for a table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn help_text(arg: &Arg) -> String {
    arg.get_long_help()
        .or(arg.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default()
}

fn flag_names(arg: &Arg) -> String {
    let mut names = Vec::new();
    if let Some(short) = arg.get_short() {
        names.push(format!("`-{short}`"));
    }
    if let Some(long) = arg.get_long() {
        let optional_value =
            arg.is_require_equals_set() && arg.get_num_args().is_some_and(|n| n.min_values() == 0);
        names.push(if optional_value {
            format!("`--{long}[=VALUE]`")
        } else {
            format!("`--{long}`")
        });
    }
    names.join(", ")
}

/// The fixed choices of a value, as `a` \| `b`; empty when the value is free.
fn choices(arg: &Arg) -> String {
    arg.get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| format!("`{}`", v.get_name()))
        .collect::<Vec<_>>()
        .join(" \\| ")
}

fn value_column(arg: &Arg) -> String {
    if !arg.get_action().takes_values() {
        return String::new();
    }
    let choices = choices(arg);
    if !choices.is_empty() {
        return choices;
    }
    arg.get_value_names()
        .map(|names| {
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn default_column(arg: &Arg) -> String {
    // A switch's `false` or a counter's `0` says nothing.
    if !arg.get_action().takes_values() {
        return String::new();
    }
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| format!("`{}`", v.to_string_lossy()))
        .collect();
    defaults.join(", ")
}

fn flags_table(out: &mut String, args: &[&Arg]) {
    out.push_str("| Flag | Value | Default | Description |\n|---|---|---|---|\n");
    for arg in args {
        let required = if arg.is_required_set() { " (required)" } else { "" };
        let _ = writeln!(
            out,
            "| {}{required} | {} | {} | {} |",
            flag_names(arg),
            value_column(arg),
            default_column(arg),
            cell(&help_text(arg))
        );
    }
}

/// `docs/reference.md`.
pub fn reference_markdown(root: &Command) -> String {
    let mut out = String::new();
    let name = full_name(root);
    let _ = writeln!(out, "# `{name}` command reference\n");
    out.push_str(
        "<!-- Generated from the CLI definition (plugin/src/cli.rs and plugin/src/commands/) by\n     \
         `UPDATE_DOCS=1 cargo test -p kubectl-tprotect reference`. Do not edit by hand. -->\n\n",
    );
    if let Some(about) = root.get_about() {
        let _ = writeln!(out, "{about}\n");
    }
    let commands = documented(root);
    out.push_str("Commands:");
    for (i, command) in commands.iter().enumerate() {
        let heading = full_name(command);
        let short = heading.strip_prefix(&format!("{name} ")).unwrap_or(&heading);
        let _ = write!(
            out,
            "{} [`{short}`](#{})",
            if i == 0 { "" } else { " ·" },
            anchor(&heading)
        );
    }
    out.push_str("\n\n## Flags before the command\n\nThe cluster flags may also come before the command's name (those after it win); `-v` is taken anywhere. Each command below lists the flags it reads.\n\n");
    let globals: Vec<&Arg> = root
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_positional())
        .collect();
    flags_table(&mut out, &globals);
    for command in commands {
        let heading = full_name(command);
        let _ = writeln!(out, "\n## {heading}\n");
        if let Some(about) = command.get_about() {
            let _ = writeln!(out, "{about}\n");
        }
        if let Some(long) = command.get_long_about() {
            let _ = writeln!(out, "```text\n{}\n```\n", long.to_string().trim_end());
        }
        let usage = command.clone().render_usage().to_string();
        let _ = writeln!(out, "```text\n{}\n```", usage.trim_end());
        let positionals: Vec<&Arg> = command.get_positionals().filter(|a| !a.is_hide_set()).collect();
        if !positionals.is_empty() {
            out.push_str("\n| Argument | Value | Description |\n|---|---|---|\n");
            for arg in positionals {
                let value_name = arg
                    .get_value_names()
                    .and_then(|n| n.first())
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| arg.get_id().to_string().to_uppercase());
                let required = if arg.is_required_set() { " (required)" } else { "" };
                let _ = writeln!(
                    out,
                    "| `{value_name}`{required} | {} | {} |",
                    choices(arg),
                    cell(&help_text(arg))
                );
            }
        }
        // Global flags (propagated into every subcommand by `build`) and clap's help/version are above.
        let own: Vec<&Arg> = command
            .get_arguments()
            .filter(|a| {
                !a.is_hide_set()
                    && !a.is_positional()
                    && !a.is_global_set()
                    && !matches!(a.get_id().as_str(), "help" | "version")
            })
            .collect();
        if !own.is_empty() {
            out.push('\n');
            flags_table(&mut out, &own);
        }
    }
    out
}

/// The README's table: one line per command, linking into the reference.
pub fn readme_summary(root: &Command) -> String {
    let mut out = String::from("| Command | What it does |\n|---|---|\n");
    for command in documented(root) {
        if command.has_subcommands() {
            continue;
        }
        let heading = full_name(command);
        let about = command.get_about().map(|a| a.to_string()).unwrap_or_default();
        let _ = writeln!(
            out,
            "| [`{heading}`](docs/reference.md#{}) | {} |",
            anchor(&heading),
            cell(&about)
        );
    }
    out
}

/// `readme` with the text between the markers replaced by `summary`.
pub fn with_summary(readme: &str, summary: &str) -> Result<String, String> {
    let begin = readme
        .find(README_BEGIN)
        .ok_or_else(|| format!("README.md lacks the line {README_BEGIN}"))?;
    let after_begin = begin + README_BEGIN.len();
    let end = readme[after_begin..]
        .find(README_END)
        .map(|at| at + after_begin)
        .ok_or_else(|| format!("README.md lacks the line {README_END} after the BEGIN line"))?;
    Ok(format!("{}\n{summary}{}", &readme[..after_begin], &readme[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn workspace_root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("plugin/ has a parent")
            .to_path_buf()
    }

    fn first_difference(expected: &str, actual: &str) -> String {
        for (n, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
            if e != a {
                return format!("line {}:\n  generated: {e}\n  on disk:   {a}", n + 1);
            }
        }
        format!(
            "lengths differ: generated {} lines, on disk {} lines",
            expected.lines().count(),
            actual.lines().count()
        )
    }

    /// docs/reference.md and README.md's command summary are what the CLI definition generates.
    #[test]
    fn reference_docs_match_the_cli() {
        let root_cmd =
            crate::commands::complete::cli_definition(<crate::cli::Cli as clap::CommandFactory>::command());
        let root = workspace_root();
        let reference_path = root.join("docs/reference.md");
        let readme_path = root.join("README.md");
        let reference = reference_markdown(&root_cmd);
        let readme_on_disk = std::fs::read_to_string(&readme_path).expect("README.md");
        let readme = with_summary(&readme_on_disk, &readme_summary(&root_cmd)).unwrap();
        if std::env::var_os("UPDATE_DOCS").is_some_and(|v| v == "1") {
            std::fs::create_dir_all(root.join("docs")).unwrap();
            std::fs::write(&reference_path, &reference).unwrap();
            std::fs::write(&readme_path, &readme).unwrap();
            eprintln!(
                "rewrote {} and the summary in {}",
                reference_path.display(),
                readme_path.display()
            );
            return;
        }
        let hint = "the CLI changed: run `UPDATE_DOCS=1 cargo test -p kubectl-tprotect reference` and commit docs/reference.md and README.md";
        let on_disk = std::fs::read_to_string(&reference_path).unwrap_or_default();
        assert!(
            on_disk == reference,
            "docs/reference.md is out of date ({hint}); {}",
            first_difference(&reference, &on_disk)
        );
        assert!(
            readme_on_disk == readme,
            "README.md's command summary is out of date ({hint}); {}",
            first_difference(&readme, &readme_on_disk)
        );
    }

    #[test]
    fn reference_covers_every_visible_command_and_flag() {
        let root =
            crate::commands::complete::cli_definition(<crate::cli::Cli as clap::CommandFactory>::command());
        let text = reference_markdown(&root);
        for heading in [
            "## kubectl tprotect setup",
            "## kubectl tprotect failover",
            "## kubectl tprotect snapmirror update",
            "## kubectl tprotect completion",
        ] {
            assert!(text.contains(&format!("{heading}\n")), "{heading} missing");
        }
        assert!(!text.contains("__complete"), "hidden command documented");
        assert!(
            !text.contains("## kubectl tprotect help"),
            "clap's help command documented"
        );
        assert!(
            text.contains("| `--source-context` (required) | `CONTEXT` |"),
            "required flag with value name"
        );
        assert!(
            text.contains("| `-o`, `--output` | `table` \\| `json` \\| `yaml` |"),
            "choices"
        );
        assert!(text.contains("| `--interval` | `DURATION` | `5m` |"), "a default");
        assert!(text.contains("`--dry-run[=VALUE]`"), "optional value");
        assert!(
            text.contains("Usage: kubectl tprotect failover [OPTIONS] <NAME>"),
            "usage"
        );
        assert!(text.contains("(#kubectl-tprotect-reverse-resync)"), "anchors");
        // Each command lists the flags it reads; a global flag (-v) only in the global table.
        let failover = text.split("## kubectl tprotect failover\n").nth(1).unwrap();
        let failover = failover.split("\n## ").next().unwrap();
        assert!(failover.contains("`--kubeconfig`"), "{failover}");
        assert!(failover.contains("`--force`"), "{failover}");
        assert!(!failover.contains("`--verbose`"), "{failover}");
    }

    /// The `kubectl tprotect …` commands in README.md's shell blocks, continuation lines joined, cut at a
    /// comment or redirection.
    fn readme_commands(readme: &str) -> Vec<String> {
        let mut commands = Vec::new();
        let mut in_shell = false;
        let mut joined = String::new();
        for line in readme.lines() {
            if line.starts_with("```") {
                // Any shell block, whatever the doc test's marker after the language (`sh not-run`, …).
                in_shell = line == "```sh" || line.starts_with("```sh ");
                continue;
            }
            if !in_shell {
                continue;
            }
            joined.push_str(line);
            if let Some(open) = joined.strip_suffix('\\') {
                joined = open.to_string();
                continue;
            }
            let text = std::mem::take(&mut joined);
            if let Some(at) = text.find("kubectl tprotect ") {
                let command = &text[at..];
                let end = command.find(['#', '>', '|', ';']).unwrap_or(command.len());
                commands.push(command[..end].trim().to_string());
            }
        }
        commands
    }

    /// Every `kubectl tprotect …` command the README shows is one the CLI accepts.
    #[test]
    fn readme_commands_parse() {
        use clap::Parser;
        let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README.md");
        let commands = readme_commands(&readme);
        assert!(commands.len() >= 8, "{commands:?}");
        assert!(
            commands
                .iter()
                .any(|c| c.starts_with("kubectl tprotect setup payments --source-context prod"))
        );
        for command in &commands {
            let words = command.split_whitespace().skip(2);
            if let Err(error) =
                crate::cli::Cli::try_parse_from(std::iter::once("kubectl-tprotect").chain(words))
            {
                panic!("README.md shows `{command}`, which the CLI refuses:\n{error}");
            }
        }
    }

    #[test]
    fn summary_replaces_only_between_markers() {
        let readme = format!("intro\n{README_BEGIN}\nold\n{README_END}\ntail\n");
        assert_eq!(
            with_summary(&readme, "new\n").unwrap(),
            format!("intro\n{README_BEGIN}\nnew\n{README_END}\ntail\n")
        );
        assert!(with_summary("no markers", "x").is_err());
        assert_eq!(
            anchor("kubectl tprotect reverse-resync"),
            "kubectl-tprotect-reverse-resync"
        );
        assert_eq!(cell("a |\n b"), "a \\| b");
    }
}
