//! Colour only on a terminal, and never with `NO_COLOR`: the plugin's logs (stderr) and its help run through a
//! real pseudo-terminal (util-linux `script`) and through a pipe. The logging command is one that logs at debug
//! level before it fails on an unreachable cluster: building a kube client logs the system's root certificates.

use std::path::Path;
use std::process::{Command, Output};

const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-tprotect");

/// A kubeconfig whose clusters refuse connections at once (port 1 on loopback).
fn dead_kubeconfig(dir: &Path) -> String {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]\n\
         users: [{name: u, user: {token: t}}]\n\
         contexts: [{name: a, context: {cluster: c, user: u}}, {name: b, context: {cluster: c, user: u}}]\n\
         current-context: a\n",
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

fn args(kubeconfig: &str) -> Vec<String> {
    [
        "status",
        "x",
        "--kubeconfig",
        kubeconfig,
        "--context",
        "a",
        "--peer-context",
        "b",
    ]
    .map(String::from)
    .to_vec()
}

/// The plugin with a clean colour environment: a colour-capable TERM, none of the overrides.
fn plugin_command(program: &str) -> Command {
    let mut command = Command::new(program);
    command
        .env("TPROTECT_LOG", "debug")
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CI");
    command
}

/// Runs the plugin on a pseudo-terminal; `script` copies what the terminal showed to its stdout.
fn on_terminal(args: Vec<String>, no_color: bool) -> String {
    let line = std::iter::once(PLUGIN.to_string())
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ");
    let mut command = plugin_command("script");
    command.args(["-qec", &line, "/dev/null"]);
    if no_color {
        command.env("NO_COLOR", "1");
    }
    text(command.output().expect("run script (util-linux)"))
}

fn text(output: Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

/// An SGR sequence (colour, bold, dim): ESC [ digits and semicolons, then `m`. Cursor movement is not colour.
fn has_colour(text: &str) -> bool {
    text.split('\u{1b}').skip(1).any(|rest| {
        rest.strip_prefix('[').is_some_and(|rest| {
            let end = rest.find(|c: char| !(c.is_ascii_digit() || c == ';'));
            end.is_some_and(|end| rest[end..].starts_with('m'))
        })
    })
}

#[test]
fn logs_are_coloured_on_a_terminal_only_without_no_color() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dead_kubeconfig(dir.path());

    let coloured = on_terminal(args(&kubeconfig), false);
    assert!(
        coloured.contains("DEBUG"),
        "no debug log on the terminal:\n{coloured}"
    );
    assert!(
        has_colour(&coloured),
        "a terminal without NO_COLOR gets colour:\n{coloured:?}"
    );

    let no_color = on_terminal(args(&kubeconfig), true);
    assert!(
        no_color.contains("DEBUG"),
        "no debug log with NO_COLOR:\n{no_color}"
    );
    assert!(!has_colour(&no_color), "NO_COLOR=1 on a terminal:\n{no_color:?}");

    let piped = text(plugin_command(PLUGIN).args(args(&kubeconfig)).output().unwrap());
    assert!(piped.contains("DEBUG"), "no debug log through a pipe:\n{piped}");
    assert!(!has_colour(&piped), "stderr is a pipe:\n{piped:?}");
}

#[test]
fn help_is_coloured_on_a_terminal_only_without_no_color() {
    let help = || vec!["--help".to_string()];
    assert!(has_colour(&on_terminal(help(), false)));
    let no_color = on_terminal(help(), true);
    assert!(
        no_color.contains("Usage:") && !has_colour(&no_color),
        "{no_color:?}"
    );
    let piped = text(plugin_command(PLUGIN).args(help()).output().unwrap());
    assert!(piped.contains("Usage:") && !has_colour(&piped), "{piped:?}");
}

#[test]
fn sgr_detection() {
    assert!(has_colour("\u{1b}[2mtime\u{1b}[0m"));
    assert!(has_colour("\u{1b}[38;5;4mx"));
    assert!(!has_colour("\r\u{1b}[2K\u{1b}[1Aspinner \u{1b}[?25l"));
    assert!(!has_colour("plain"));
}
