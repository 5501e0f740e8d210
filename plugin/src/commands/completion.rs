//! `kubectl tprotect completion bash|zsh|fish|kubectl-shim`: shell completion.
//!
//! Two routes, because kubectl runs us as a plugin:
//! - `kubectl tprotect <TAB>` is completed by kubectl's own completion (`kubectl completion bash|zsh|fish`),
//!   which since kubectl 1.26 asks an executable named `kubectl_complete-tprotect` on PATH. krew cannot install
//!   that file, so `kubectl-shim` prints it; it runs our hidden `__complete` ([`super::complete`]).
//! - `kubectl-tprotect <TAB>` (the binary called directly) is completed by the scripts clap_complete generates
//!   for `bash`, `zsh` and `fish`.

use clap::{Args, ValueEnum};

use crate::output::Printer;

pub const EXAMPLES: &str = "Examples:
  # kubectl tprotect <TAB>, through kubectl's own completion (kubectl 1.26 or later)
  kubectl tprotect completion kubectl-shim > \"${KREW_ROOT:-$HOME/.krew}/bin/kubectl_complete-tprotect\"
  chmod +x \"${KREW_ROOT:-$HOME/.krew}/bin/kubectl_complete-tprotect\"

  # kubectl-tprotect <TAB> in bash
  source <(kubectl-tprotect completion bash)";

/// The executable kubectl looks for to complete `kubectl tprotect …` (kubectl 1.26+).
pub const SHIM_NAME: &str = "kubectl_complete-tprotect";
/// The plugin's executable.
pub const BINARY_NAME: &str = "kubectl-tprotect";

/// The `completion` command's long help: where each output goes.
pub const LONG_ABOUT: &str = "Print a shell completion script, or the kubectl completion shim.

kubectl-shim (recommended): the executable kubectl 1.26+ runs to complete `kubectl tprotect <TAB>`, with
subcommands, flags, kubeconfig contexts, namespaces and relationship names from the cluster. krew cannot install
it; put it next to the plugin and make it executable, with kubectl's own completion enabled
(`source <(kubectl completion bash)`):

  kubectl tprotect completion kubectl-shim > \"${KREW_ROOT:-$HOME/.krew}/bin/kubectl_complete-tprotect\"
  chmod +x \"${KREW_ROOT:-$HOME/.krew}/bin/kubectl_complete-tprotect\"

bash, zsh, fish: completion for the binary called directly as `kubectl-tprotect …`, e.g.
`source <(kubectl-tprotect completion bash)`.";

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// What to print
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: CompletionShell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    /// bash script for `kubectl-tprotect …`
    Bash,
    /// zsh script for `kubectl-tprotect …`
    Zsh,
    /// fish script for `kubectl-tprotect …`
    Fish,
    /// the kubectl_complete-tprotect executable, for `kubectl tprotect <TAB>`
    KubectlShim,
}

/// The `kubectl_complete-tprotect` shim: kubectl passes it the words after `kubectl tprotect` (the last being
/// the one to complete) and reads cobra's protocol from its stdout.
pub fn kubectl_shim() -> String {
    format!(
        r#"#!/bin/sh
# {SHIM_NAME}: completes `kubectl tprotect <TAB>`. kubectl (1.26 or later) runs this file, found on PATH,
# with the words typed after `kubectl tprotect`, and reads the candidates from its output.
# Install: kubectl tprotect completion kubectl-shim > "${{KREW_ROOT:-$HOME/.krew}}/bin/{SHIM_NAME}"
#          chmod +x "${{KREW_ROOT:-$HOME/.krew}}/bin/{SHIM_NAME}"
exec {BINARY_NAME} __complete "$@"
"#
    )
}

/// The text `completion SHELL` prints.
pub fn script(shell: CompletionShell, root: &clap::Command) -> String {
    let shell = match shell {
        CompletionShell::KubectlShim => return kubectl_shim(),
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    let mut command = binary_command(root);
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, BINARY_NAME, &mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    if shell == clap_complete::Shell::Bash {
        return fix_bash_hyphenated_bin_name(&text);
    }
    text
}

/// clap_complete's bash script spells a subcommand's state `kubectl__tprotect__subcmd__failover` where it is
/// set and `kubectl__subcmd__tprotect__subcmd__failover` in the arm that should match it, whenever the binary's
/// name has a hyphen (clap-rs/clap#6421, open for clap_complete 4.6): no option of any subcommand would ever
/// complete. Spell the arms the way the loop sets the state.
fn fix_bash_hyphenated_bin_name(script: &str) -> String {
    let escaped_by_loop = BINARY_NAME.replace('-', "__");
    let escaped_in_arms = BINARY_NAME.replace('-', "__subcmd__");
    script.replace(
        &format!("{escaped_in_arms}__subcmd__"),
        &format!("{escaped_by_loop}__subcmd__"),
    )
}

/// The CLI as the binary `kubectl-tprotect` rather than `kubectl tprotect` (a script cannot hook a two-word
/// command; that route is kubectl's, through the shim), and without the hidden subcommands, which
/// clap_complete's bash script would otherwise offer.
fn binary_command(cli: &clap::Command) -> clap::Command {
    let mut command = clap::Command::new(BINARY_NAME)
        .bin_name(BINARY_NAME)
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true)
        .args(cli.get_arguments().cloned())
        .subcommands(cli.get_subcommands().filter(|sub| !sub.is_hide_set()).cloned());
    if let Some(about) = cli.get_about() {
        command = command.about(about.clone());
    }
    command
}

pub fn run(args: CompletionArgs, root: clap::Command, printer: &mut Printer) -> anyhow::Result<()> {
    printer.text(&script(args.shell, &root))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> clap::Command {
        <crate::cli::Cli as clap::CommandFactory>::command()
    }

    #[test]
    fn shim_calls_the_protocol_with_every_word() {
        let shim = kubectl_shim();
        assert!(shim.starts_with("#!/bin/sh\n"));
        assert!(
            shim.trim_end()
                .ends_with("exec kubectl-tprotect __complete \"$@\""),
            "{shim}"
        );
        assert!(
            shim.contains("${KREW_ROOT:-$HOME/.krew}/bin/kubectl_complete-tprotect"),
            "{shim}"
        );
    }

    #[test]
    fn scripts_are_for_the_binary_and_know_the_verbs() {
        for shell in [CompletionShell::Bash, CompletionShell::Zsh, CompletionShell::Fish] {
            let text = script(shell, &root());
            for verb in ["failover", "reverse-resync", "snapmirror"] {
                assert!(text.contains(verb), "{shell:?} lacks {verb}");
            }
            assert!(
                !text.contains("__complete"),
                "{shell:?} offers the hidden protocol command"
            );
        }
        // Registered for the binary's name: a two-word `kubectl tprotect` cannot be hooked by a script.
        assert!(script(CompletionShell::Bash, &root()).contains("-o default kubectl-tprotect\n"));
        assert!(script(CompletionShell::Zsh, &root()).starts_with("#compdef kubectl-tprotect\n"));
        assert!(script(CompletionShell::Fish, &root()).contains("complete -c kubectl-tprotect "));
    }

    /// Every state the bash script's loop sets has an arm that matches it (clap-rs/clap#6421 broke this).
    #[test]
    fn bash_states_have_their_arms() {
        let text = script(CompletionShell::Bash, &root());
        let set: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("cmd=\""))
            .filter_map(|l| l.strip_suffix('"'))
            .filter(|state| !state.is_empty())
            .collect();
        assert!(set.len() > 10, "{set:?}");
        for state in set {
            assert!(
                text.contains(&format!("\n        {state})\n")),
                "no arm for {state}"
            );
        }
    }
}
