//! Typed confirmation of destructive steps. On a terminal the user types the relationship's name (a `y` is
//! too easy to give by reflex when the step discards data); without a terminal the step is refused unless
//! `--yes` was given, with a hint saying so. Nothing is read from or written to stdout: stdout carries data.

use std::io::{BufRead, IsTerminal, Write};

/// What the user is asked to confirm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// The relationship's name: the text the user must type.
    pub relationship: String,
    /// What will be lost, in one or more sentences.
    pub warning: String,
}

/// Why a destructive step did not go ahead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "{warning}\nRefusing without confirmation: stdin is not a terminal. Re-run with --yes to confirm (nothing was changed)"
    )]
    NoTerminal { warning: String },
    #[error("confirmation failed: typed {typed:?}, expected {expected:?} (nothing was changed)")]
    Mismatch { typed: String, expected: String },
    #[error("confirmation aborted: no answer (nothing was changed)")]
    NoAnswer,
}

impl Refused {
    /// Why, in a few words (the warning itself is said by the caller).
    pub fn reason(&self) -> String {
        match self {
            Refused::NoTerminal { .. } => "stdin is not a terminal to ask on".into(),
            Refused::Mismatch { typed, expected } => format!("typed {typed:?}, expected {expected:?}"),
            Refused::NoAnswer => "no answer".into(),
        }
    }
}

/// Asks for confirmation. `yes` (from `--yes`) confirms without asking; otherwise `terminal` says whether
/// `input` is an interactive terminal. The question goes to `prompt_out` (stderr in the binary).
pub fn confirm(
    prompt: &Prompt,
    yes: bool,
    terminal: bool,
    input: &mut dyn BufRead,
    prompt_out: &mut dyn Write,
) -> Result<(), Refused> {
    if yes {
        return Ok(());
    }
    if !terminal {
        return Err(Refused::NoTerminal {
            warning: prompt.warning.clone(),
        });
    }
    // A failed write to the terminal must not confirm anything: the read below still decides.
    let _ = write!(
        prompt_out,
        "WARNING: {}\nType the relationship name ({}) to confirm: ",
        prompt.warning, prompt.relationship
    );
    let _ = prompt_out.flush();
    let mut answer = String::new();
    match input.read_line(&mut answer) {
        Ok(0) | Err(_) => Err(Refused::NoAnswer),
        Ok(_) => {
            let typed = answer.trim();
            if typed == prompt.relationship {
                Ok(())
            } else {
                Err(Refused::Mismatch {
                    typed: typed.to_string(),
                    expected: prompt.relationship.clone(),
                })
            }
        }
    }
}

/// [`confirm`] on the process's stdin and stderr.
pub fn confirm_interactive(prompt: &Prompt, yes: bool) -> Result<(), Refused> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let mut input = stdin.lock();
    let mut stderr = std::io::stderr();
    confirm(prompt, yes, terminal, &mut input, &mut stderr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt() -> Prompt {
        Prompt {
            relationship: "rel1".into(),
            warning: "resync discards every change written on tprotect-destination since the failover".into(),
        }
    }

    fn ask(yes: bool, terminal: bool, typed: &str) -> (Result<(), Refused>, String) {
        let mut input = std::io::Cursor::new(typed.as_bytes().to_vec());
        let mut out = Vec::new();
        let result = confirm(&prompt(), yes, terminal, &mut input, &mut out);
        (result, String::from_utf8(out).unwrap())
    }

    #[test]
    fn yes_confirms_without_asking_even_on_a_terminal() {
        let (result, shown) = ask(true, true, "");
        assert_eq!(result, Ok(()));
        assert!(shown.is_empty(), "nothing asked: {shown:?}");
        assert_eq!(ask(true, false, "").0, Ok(()));
    }

    #[test]
    fn no_terminal_without_yes_is_refused_with_a_hint() {
        let (result, shown) = ask(false, false, "rel1\n");
        let err = result.unwrap_err();
        assert!(matches!(err, Refused::NoTerminal { .. }));
        let message = err.to_string();
        assert!(message.contains("--yes"), "{message}");
        assert!(message.contains("tprotect-destination"), "{message}");
        assert!(shown.is_empty(), "must not prompt without a terminal: {shown:?}");
    }

    #[test]
    fn terminal_needs_the_exact_name() {
        let (result, shown) = ask(false, true, "rel1\n");
        assert_eq!(result, Ok(()));
        assert!(shown.contains("Type the relationship name (rel1)"), "{shown}");
        assert!(shown.contains("discards every change"), "{shown}");
        assert_eq!(
            ask(false, true, "  rel1  \n").0,
            Ok(()),
            "surrounding blanks are ignored"
        );
        for wrong in ["y\n", "yes\n", "REL1\n", "rel\n", "\n"] {
            let err = ask(false, true, wrong).0.unwrap_err();
            assert!(matches!(err, Refused::Mismatch { .. }), "{wrong:?}: {err}");
        }
    }

    #[test]
    fn end_of_input_aborts() {
        assert_eq!(ask(false, true, "").0, Err(Refused::NoAnswer));
    }
}
