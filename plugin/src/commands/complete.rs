//! `kubectl tprotect __complete WORD… PARTIAL`: the completion protocol of cobra (the Go CLI library kubectl is
//! built on, `spf13/cobra` `completions.go`), which kubectl 1.26+ speaks to a plugin through an executable
//! `kubectl_complete-tprotect` on PATH (printed by `kubectl tprotect completion kubectl-shim`). kubectl runs the
//! shim with the words typed after `kubectl tprotect`, the last being the word under the cursor (often empty).
//!
//! Output on stdout: one candidate per line, `candidate<TAB>description` when there is a description, then a
//! last line `:<directive>`, a bit set of cobra's `ShellCompDirective`s ([`directive`]). The shells' scripts
//! ignore stderr; like cobra we print a one-line summary there (and why a cluster lookup found nothing).
//!
//! What completes, all derived from the clap definition so it never drifts from the CLI:
//! - subcommands, and flags after a `-`;
//! - values of flags and arguments with fixed choices (`-o`, `--dry-run`, `completion SHELL`, …);
//! - kubeconfig context names for every `CONTEXT` flag, from the kubeconfig the line names with `--kubeconfig`,
//!   else `$KUBECONFIG`/`~/.kube/config`;
//! - namespaces for every `NAMESPACE` flag, from the cluster of `--context` (`--source-context` for `setup`);
//! - relationship names for the `NAME` of every verb on an existing relationship: AppMirrorRelationship names
//!   and their `tprotect.io/relationship` label values, in `-n` or in every namespace, on the clusters of
//!   `--context` (default: the current context) and `--peer-context`;
//! - paths (`--kubeconfig`, `--ca-file`, `--credentials-dir`) are left to the shell's file completion.
//!
//! The words are read raw, before clap (see [`intercept`]): a half-typed line is rarely a valid one, and clap
//! would consume or refuse flags such as `-n ""` or `-o ""`.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, Command, ValueHint};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// The hidden subcommands kubectl's shim and cobra's own scripts call.
pub const COMMAND: &str = "__complete";
/// Cobra's variant without descriptions.
pub const COMMAND_NO_DESCRIPTIONS: &str = "__completeNoDesc";

/// Cobra's `ShellCompDirective` bits (`1 << iota` in cobra's `completions.go`); `DEFAULT` is 0.
pub mod directive {
    /// An error occurred: the shell ignores the candidates.
    pub const ERROR: u32 = 1;
    /// No space after a single candidate.
    pub const NO_SPACE: u32 = 2;
    /// No file completion, even when there is no candidate.
    pub const NO_FILE_COMP: u32 = 4;
    /// The candidates are file extensions to filter on.
    pub const FILTER_FILE_EXT: u32 = 8;
    /// Complete directory names only.
    pub const FILTER_DIRS: u32 = 16;
    /// Keep the candidates' order.
    pub const KEEP_ORDER: u32 = 32;
    /// Let the shell do its default (file completion when there is no candidate).
    pub const DEFAULT: u32 = 0;

    /// Cobra's names, for the summary on stderr.
    pub fn describe(directive: u32) -> String {
        let names = [
            (ERROR, "ShellCompDirectiveError"),
            (NO_SPACE, "ShellCompDirectiveNoSpace"),
            (NO_FILE_COMP, "ShellCompDirectiveNoFileComp"),
            (FILTER_FILE_EXT, "ShellCompDirectiveFilterFileExt"),
            (FILTER_DIRS, "ShellCompDirectiveFilterDirs"),
            (KEEP_ORDER, "ShellCompDirectiveKeepOrder"),
        ];
        let set: Vec<&str> = names
            .iter()
            .filter(|(bit, _)| directive & bit != 0)
            .map(|(_, name)| *name)
            .collect();
        if set.is_empty() {
            "ShellCompDirectiveDefault".to_string()
        } else {
            set.join(", ")
        }
    }
}

/// One completion candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub value: String,
    /// Shown beside the value by shells that support it (zsh, fish); may be empty.
    pub description: String,
}

impl Candidate {
    pub fn new(value: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            description: description.into(),
        }
    }
}

/// The answer: candidates and a directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completions {
    pub candidates: Vec<Candidate>,
    pub directive: u32,
}

impl Completions {
    /// The protocol's text. As cobra does: only a description's first line, no trailing tab without one, and
    /// the directive last.
    pub fn render(&self, with_descriptions: bool) -> String {
        let mut out = String::new();
        for candidate in &self.candidates {
            let value = first_line(&candidate.value);
            let description = first_line(&candidate.description);
            if with_descriptions && !description.is_empty() {
                out.push_str(&format!("{value}\t{description}\n"));
            } else {
                out.push_str(&format!("{value}\n"));
            }
        }
        out.push_str(&format!(":{}\n", self.directive));
        out
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim()
}

/// What the word under the cursor is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// A subcommand of the current command.
    Subcommand,
    /// A flag of the current command.
    Flag,
    /// The value of the flag with this id.
    FlagValue(String),
    /// The positional argument with this id.
    Positional(String),
    /// Nothing we know of (an extra argument, or after an unknown word).
    Nothing,
}

/// The words before the cursor, understood against the CLI definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Subcommand names from the root, e.g. `["snapmirror", "status"]`.
    pub path: Vec<String>,
    /// Values of the flags given, by clap arg id (`context`, `peer_context`, `namespace`, …); the last wins.
    pub values: BTreeMap<String, String>,
    /// Ids of the flags given, so that a flag is not offered twice.
    pub seen: BTreeSet<String>,
    pub want: Want,
    /// The text being completed (without a `--flag=` in front).
    pub partial: String,
    /// What every candidate is prefixed with so that the shell replaces the whole word (`--flag=`).
    pub prefix: String,
}

impl Line {
    fn value(&self, id: &str) -> Option<&str> {
        self.values.get(id).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// The CLI definition with global flags propagated to every subcommand.
pub fn cli_definition(mut root: Command) -> Command {
    root.build();
    root
}

fn find_long<'a>(command: &'a Command, name: &str) -> Option<&'a Arg> {
    command.get_arguments().find(|arg| {
        arg.get_long() == Some(name)
            || arg
                .get_all_aliases()
                .is_some_and(|aliases| aliases.contains(&name))
    })
}

fn find_short(command: &Command, short: char) -> Option<&Arg> {
    command.get_arguments().find(|arg| {
        arg.get_short() == Some(short)
            || arg
                .get_all_short_aliases()
                .is_some_and(|aliases| aliases.contains(&short))
    })
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
}

/// Whether a flag's value may be the next word (not for `--dry-run`, whose value needs `=`).
fn takes_next_word(arg: &Arg) -> bool {
    takes_value(arg) && !arg.is_require_equals_set()
}

fn positionals(command: &Command) -> Vec<&Arg> {
    let mut args: Vec<&Arg> = command.get_positionals().collect();
    args.sort_by_key(|arg| arg.get_index());
    args
}

fn visible_subcommands(command: &Command) -> impl Iterator<Item = &Command> {
    command.get_subcommands().filter(|sub| !sub.is_hide_set())
}

/// Reads the words before the cursor (`words` without the last) and classifies the last one.
pub fn parse_line(root: &Command, words: &[String]) -> Line {
    let (partial, before) = match words.split_last() {
        Some((last, before)) => (last.clone(), before),
        None => (String::new(), &[][..]),
    };
    let mut command = root;
    let mut line = Line {
        path: Vec::new(),
        values: BTreeMap::new(),
        seen: BTreeSet::new(),
        want: Want::Nothing,
        partial: String::new(),
        prefix: String::new(),
    };
    let mut pending: Option<&Arg> = None;
    let mut only_positionals = false;
    let mut positional_count = 0usize;
    for word in before {
        if let Some(arg) = pending.take() {
            line.values.insert(arg.get_id().to_string(), word.clone());
            continue;
        }
        if !only_positionals && word == "--" {
            only_positionals = true;
            continue;
        }
        if !only_positionals && word.len() > 2 && word.starts_with("--") {
            let (name, value) = match word[2..].split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (&word[2..], None),
            };
            if let Some(arg) = find_long(command, name) {
                line.seen.insert(arg.get_id().to_string());
                match value {
                    Some(value) => {
                        line.values.insert(arg.get_id().to_string(), value.to_string());
                    }
                    None if takes_next_word(arg) => pending = Some(arg),
                    None => {}
                }
            }
            continue;
        }
        if !only_positionals && word.len() > 1 && word.starts_with('-') {
            let shorts = &word[1..];
            for (at, short) in shorts.char_indices() {
                let Some(arg) = find_short(command, short) else {
                    break;
                };
                line.seen.insert(arg.get_id().to_string());
                if takes_value(arg) {
                    let rest = &shorts[at + short.len_utf8()..];
                    let rest = rest.strip_prefix('=').unwrap_or(rest);
                    if !rest.is_empty() {
                        line.values.insert(arg.get_id().to_string(), rest.to_string());
                    } else if takes_next_word(arg) {
                        pending = Some(arg);
                    }
                    break;
                }
            }
            continue;
        }
        if positional_count == 0
            && !only_positionals
            && let Some(sub) = command.find_subcommand(word)
        {
            command = sub;
            line.path.push(sub.get_name().to_string());
            continue;
        }
        positional_count += 1;
    }

    line.partial = partial.clone();
    line.want = if let Some(arg) = pending {
        Want::FlagValue(arg.get_id().to_string())
    } else if !only_positionals && partial.starts_with("--") && partial.contains('=') {
        let (name, value) = partial[2..].split_once('=').unwrap_or_default();
        match find_long(command, name) {
            Some(arg) if takes_value(arg) => {
                line.prefix = format!("--{name}=");
                line.partial = value.to_string();
                Want::FlagValue(arg.get_id().to_string())
            }
            _ => Want::Nothing,
        }
    } else if !only_positionals && partial.starts_with('-') {
        Want::Flag
    } else if positional_count == 0 && !only_positionals && visible_subcommands(command).next().is_some() {
        Want::Subcommand
    } else {
        let args = positionals(command);
        let arg = args.get(positional_count).copied().or_else(|| {
            args.last()
                .copied()
                .filter(|last| last.get_num_args().is_some_and(|n| n.max_values() > 1))
        });
        match arg {
            Some(arg) => Want::Positional(arg.get_id().to_string()),
            None => Want::Nothing,
        }
    };
    line
}

/// Where candidates that only a cluster or the kubeconfig knows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Contexts,
    Namespaces,
    Relationships,
}

/// Candidates known from the CLI definition, and what still has to be looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub candidates: Vec<Candidate>,
    pub lookup: Option<Lookup>,
    pub directive: u32,
}

fn command_at<'a>(root: &'a Command, path: &[String]) -> &'a Command {
    path.iter().fold(root, |command, name| {
        command.find_subcommand(name).unwrap_or(command)
    })
}

fn help_of(arg: &Arg) -> String {
    arg.get_help().map(|help| help.to_string()).unwrap_or_default()
}

fn value_name(arg: &Arg) -> &str {
    arg.get_value_names()
        .and_then(|names| names.first())
        .map(|name| name.as_str())
        .unwrap_or("")
}

/// Candidates for the value of `arg`: fixed choices, a lookup, or the shell's file completion.
fn value_plan(arg: &Arg) -> Plan {
    let choices: Vec<Candidate> = arg
        .get_possible_values()
        .into_iter()
        .filter(|value| !value.is_hide_set())
        .map(|value| {
            Candidate::new(
                value.get_name(),
                value.get_help().map(|h| h.to_string()).unwrap_or_default(),
            )
        })
        .collect();
    let plan = |lookup, directive| Plan {
        candidates: Vec::new(),
        lookup,
        directive,
    };
    if !choices.is_empty() {
        return Plan {
            candidates: choices,
            lookup: None,
            directive: directive::NO_FILE_COMP,
        };
    }
    match (value_name(arg), arg.get_value_hint()) {
        ("CONTEXT", _) => plan(Some(Lookup::Contexts), directive::NO_FILE_COMP),
        ("NAMESPACE", _) => plan(Some(Lookup::Namespaces), directive::NO_FILE_COMP),
        ("DIR", _) | (_, ValueHint::DirPath) => plan(None, directive::FILTER_DIRS),
        ("PATH" | "FILE" | "PEM", _) | (_, ValueHint::FilePath | ValueHint::AnyPath) => {
            plan(None, directive::DEFAULT)
        }
        _ => plan(None, directive::NO_FILE_COMP),
    }
}

/// The verbs whose `NAME` is an existing relationship: every top-level verb with a `name` argument but `setup`,
/// which names a new one.
fn names_existing_relationship(path: &[String], arg_id: &str) -> bool {
    arg_id == "name" && path.len() == 1 && path[0] != "setup"
}

/// What to offer for `line`, as far as the CLI definition knows.
pub fn plan(root: &Command, line: &Line) -> Plan {
    let command = command_at(root, &line.path);
    match &line.want {
        Want::Subcommand => Plan {
            candidates: visible_subcommands(command)
                .map(|sub| {
                    Candidate::new(
                        sub.get_name(),
                        sub.get_about().map(|a| a.to_string()).unwrap_or_default(),
                    )
                })
                .collect(),
            lookup: None,
            directive: directive::NO_FILE_COMP,
        },
        Want::Flag => {
            let mut candidates = Vec::new();
            for arg in command.get_arguments() {
                if arg.is_hide_set() || arg.is_positional() {
                    continue;
                }
                let repeatable = matches!(arg.get_action(), clap::ArgAction::Count | clap::ArgAction::Append);
                if line.seen.contains(arg.get_id().as_str()) && !repeatable {
                    continue;
                }
                if let Some(long) = arg.get_long() {
                    candidates.push(Candidate::new(format!("--{long}"), help_of(arg)));
                }
                if let Some(short) = arg.get_short() {
                    candidates.push(Candidate::new(format!("-{short}"), help_of(arg)));
                }
            }
            Plan {
                candidates,
                lookup: None,
                directive: directive::NO_FILE_COMP,
            }
        }
        Want::FlagValue(id) => match command.get_arguments().find(|arg| arg.get_id() == id) {
            Some(arg) => value_plan(arg),
            None => Plan {
                candidates: Vec::new(),
                lookup: None,
                directive: directive::NO_FILE_COMP,
            },
        },
        Want::Positional(id) => {
            if names_existing_relationship(&line.path, id) {
                return Plan {
                    candidates: Vec::new(),
                    lookup: Some(Lookup::Relationships),
                    directive: directive::NO_FILE_COMP,
                };
            }
            match command.get_arguments().find(|arg| arg.get_id() == id) {
                Some(arg) => value_plan(arg),
                None => Plan {
                    candidates: Vec::new(),
                    lookup: None,
                    directive: directive::NO_FILE_COMP,
                },
            }
        }
        Want::Nothing => Plan {
            candidates: Vec::new(),
            lookup: None,
            directive: directive::NO_FILE_COMP,
        },
    }
}

/// Keeps the candidates that start with what was typed, once each, with the `--flag=` prefix put back.
pub fn finish(line: &Line, plan: Plan, looked_up: Vec<Candidate>) -> Completions {
    let mut seen = BTreeSet::new();
    let candidates = plan
        .candidates
        .into_iter()
        .chain(looked_up)
        .filter(|c| c.value.starts_with(&line.partial))
        .filter(|c| seen.insert(c.value.clone()))
        .map(|c| Candidate::new(format!("{}{}", line.prefix, c.value), c.description))
        .collect();
    Completions {
        candidates,
        directive: plan.directive,
    }
}

/// Context names of a kubeconfig, described by their cluster and namespace.
pub fn context_candidates(kubeconfig: &Kubeconfig) -> Vec<Candidate> {
    kubeconfig
        .contexts
        .iter()
        .map(|named| {
            let description = match &named.context {
                Some(context) => match context.namespace.as_deref() {
                    Some(namespace) => format!("cluster {}, namespace {namespace}", context.cluster),
                    None => format!("cluster {}", context.cluster),
                },
                None => String::new(),
            };
            Candidate::new(&named.name, description)
        })
        .collect()
}

/// An AppMirrorRelationship as listed: where, its name, its relationship label and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRelationship {
    pub context: String,
    pub namespace: String,
    pub name: String,
    pub label: Option<String>,
    pub state: Option<String>,
}

/// Relationship names: each AMR's name, and its `tprotect.io/relationship` label when that differs (the
/// commands find a relationship by either).
pub fn relationship_candidates(listed: &[ListedRelationship]) -> Vec<Candidate> {
    let mut candidates = Vec::new();
    for amr in listed {
        let state = amr.state.as_deref().map(|s| format!(", {s}")).unwrap_or_default();
        candidates.push(Candidate::new(
            &amr.name,
            format!(
                "AppMirrorRelationship in {} on {}{state}",
                amr.namespace, amr.context
            ),
        ));
        if let Some(label) = amr.label.as_deref().filter(|label| *label != amr.name) {
            candidates.push(Candidate::new(
                label,
                format!(
                    "label of AppMirrorRelationship {}/{} on {}{state}",
                    amr.namespace, amr.name, amr.context
                ),
            ));
        }
    }
    candidates
}

/// Completion must answer while the user waits at a prompt: short timeouts, and no retries.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const READ_TIMEOUT: Duration = Duration::from_secs(3);
const LOOKUP_DEADLINE: Duration = Duration::from_secs(5);

fn read_kubeconfig(line: &Line) -> Result<Kubeconfig, String> {
    match line.value("kubeconfig") {
        Some(path) => {
            Kubeconfig::read_from(PathBuf::from(path)).map_err(|e| format!("kubeconfig {path}: {e}"))
        }
        None => Kubeconfig::read().map_err(|e| format!("kubeconfig: {e}")),
    }
}

async fn client(kubeconfig: &Kubeconfig, context: &str) -> Result<kube::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &options)
        .await
        .map_err(|e| format!("context {context}: {e}"))?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    kube::Client::try_from(config).map_err(|e| format!("context {context}: {e}"))
}

fn current_context(kubeconfig: &Kubeconfig) -> Result<String, String> {
    kubeconfig
        .current_context
        .clone()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| "the kubeconfig has no current context; pass --context".to_string())
}

async fn list_namespaces(line: &Line) -> Result<Vec<Candidate>, String> {
    let kubeconfig = read_kubeconfig(line)?;
    let context = match line.value("context").or_else(|| line.value("source_context")) {
        Some(context) => context.to_string(),
        None => current_context(&kubeconfig)?,
    };
    let client = client(&kubeconfig, &context).await?;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
    let list = namespaces
        .list_metadata(&ListParams::default())
        .await
        .map_err(|e| format!("listing namespaces on {context}: {e}"))?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|ns| ns.metadata.name)
        .map(|name| Candidate::new(name, format!("namespace on {context}")))
        .collect())
}

async fn list_relationships_on(
    kubeconfig: &Kubeconfig,
    context: &str,
    namespace: Option<&str>,
) -> Result<Vec<ListedRelationship>, String> {
    let client = client(kubeconfig, context).await?;
    let resource = ApiResource::erase::<tprotect_api::AppMirrorRelationship>(&());
    let params = ListParams::default();
    let list = match namespace {
        Some(namespace) => {
            Api::<DynamicObject>::namespaced_with(client, namespace, &resource)
                .list(&params)
                .await
        }
        None => {
            let all = Api::<DynamicObject>::all_with(client.clone(), &resource)
                .list(&params)
                .await;
            match all {
                // Allowed in one namespace only: look where the context points.
                Err(kube::Error::Api(status)) if status.code == 403 => {
                    Api::<DynamicObject>::namespaced_with(
                        client.clone(),
                        client.default_namespace(),
                        &resource,
                    )
                    .list(&params)
                    .await
                }
                other => other,
            }
        }
    }
    .map_err(|e| format!("listing AppMirrorRelationships on {context}: {e}"))?;
    Ok(list
        .items
        .into_iter()
        .map(|amr| ListedRelationship {
            context: context.to_string(),
            namespace: amr.metadata.namespace.clone().unwrap_or_default(),
            name: amr.metadata.name.clone().unwrap_or_default(),
            label: amr
                .metadata
                .labels
                .as_ref()
                .and_then(|labels| labels.get(tprotect_api::RELATIONSHIP_LABEL))
                .cloned(),
            state: amr
                .data
                .pointer("/status/state")
                .and_then(|s| s.as_str())
                .map(str::to_string),
        })
        .filter(|amr| !amr.name.is_empty())
        .collect())
}

/// Lists relationships on the clusters of `--context` (or the current context) and `--peer-context`. A cluster
/// that cannot be asked is reported on stderr; the other one's names are still offered.
async fn list_relationships(line: &Line) -> Result<Vec<Candidate>, String> {
    let kubeconfig = read_kubeconfig(line)?;
    let mut contexts = vec![match line.value("context") {
        Some(context) => context.to_string(),
        None => current_context(&kubeconfig)?,
    }];
    if let Some(peer) = line.value("peer_context")
        && !contexts.iter().any(|c| c == peer)
    {
        contexts.push(peer.to_string());
    }
    let namespace = line.value("namespace");
    let results = futures::future::join_all(
        contexts
            .iter()
            .map(|context| list_relationships_on(&kubeconfig, context, namespace)),
    )
    .await;
    let mut listed = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(found) => listed.extend(found),
            Err(error) => errors.push(error),
        }
    }
    if listed.is_empty() && !errors.is_empty() {
        return Err(errors.join("; "));
    }
    for error in errors {
        eprintln!("{error}");
    }
    Ok(relationship_candidates(&listed))
}

async fn look_up(lookup: Lookup, line: &Line) -> Result<Vec<Candidate>, String> {
    let work = async {
        match lookup {
            Lookup::Contexts => read_kubeconfig(line).map(|k| context_candidates(&k)),
            Lookup::Namespaces => list_namespaces(line).await,
            Lookup::Relationships => list_relationships(line).await,
        }
    };
    tokio::time::timeout(LOOKUP_DEADLINE, work)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {LOOKUP_DEADLINE:?}")))
}

/// Completes `words` (everything after `__complete`) and returns the protocol's text.
pub async fn complete(root: Command, words: &[String], with_descriptions: bool) -> String {
    let root = cli_definition(root);
    let line = parse_line(&root, words);
    let plan = plan(&root, &line);
    let looked_up = match plan.lookup {
        Some(lookup) => look_up(lookup, &line).await.unwrap_or_else(|error| {
            eprintln!("no {lookup:?} to complete: {error}");
            Vec::new()
        }),
        None => Vec::new(),
    };
    let completions = finish(&line, plan, looked_up);
    eprintln!(
        "Completion ended with directive: {}",
        directive::describe(completions.directive)
    );
    completions.render(with_descriptions)
}

/// Runs `__complete` when it is the first argument: before clap, which would take a half-typed line apart.
/// Returns `None` for every other command line.
pub fn intercept(root: impl FnOnce() -> Command) -> Option<std::process::ExitCode> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let first = args.first()?.to_str()?;
    let with_descriptions = match first {
        COMMAND => true,
        COMMAND_NO_DESCRIPTIONS => false,
        _ => return None,
    };
    let words: Vec<String> = args[1..]
        .iter()
        .map(|word| word.to_string_lossy().into_owned())
        .collect();
    Some(run_words(root(), &words, with_descriptions))
}

fn run_words(root: Command, words: &[String], with_descriptions: bool) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => return crate::exit::report(&anyhow::Error::new(err)),
    };
    let text = runtime.block_on(complete(root, words, with_descriptions));
    match crate::output::print(&text) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => crate::exit::report(&err),
    }
}

/// The hidden `__complete` subcommand as clap parsed it. Flags before the first word are taken by clap, so
/// [`intercept`] normally answers first; this path re-reads the raw words so that both agree.
#[derive(Debug, clap::Args)]
pub struct CompleteArgs {
    /// The words after `kubectl tprotect`, the last being the one to complete
    #[arg(num_args = 0.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub words: Vec<String>,
}

/// Runs the hidden subcommand: the raw words after `__complete` on our command line.
pub async fn run(_args: CompleteArgs, root: Command) -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let at = args
        .iter()
        .position(|a| a == COMMAND || a == COMMAND_NO_DESCRIPTIONS)
        .unwrap_or(args.len());
    let with_descriptions = args.get(at).is_none_or(|a| a == COMMAND);
    let words = args.get(at + 1..).unwrap_or_default();
    crate::output::print(&complete(root, words, with_descriptions).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        // A trailing space means the cursor is on a new, empty word.
        let mut words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        if line.ends_with(' ') || line.is_empty() {
            words.push(String::new());
        }
        words
    }

    fn static_completion(line: &str) -> (Completions, Option<Lookup>, Line) {
        let root = cli_definition(<crate::cli::Cli as clap::CommandFactory>::command());
        let parsed = parse_line(&root, &words(line));
        let plan = plan(&root, &parsed);
        let lookup = plan.lookup;
        (finish(&parsed, plan, Vec::new()), lookup, parsed)
    }

    fn values(completions: &Completions) -> Vec<&str> {
        completions.candidates.iter().map(|c| c.value.as_str()).collect()
    }

    #[test]
    fn directive_bits_are_cobras() {
        assert_eq!(
            (
                directive::ERROR,
                directive::NO_SPACE,
                directive::NO_FILE_COMP,
                directive::FILTER_FILE_EXT,
                directive::FILTER_DIRS,
                directive::KEEP_ORDER
            ),
            (1, 2, 4, 8, 16, 32)
        );
        assert_eq!(
            directive::describe(directive::NO_FILE_COMP),
            "ShellCompDirectiveNoFileComp"
        );
        assert_eq!(directive::describe(0), "ShellCompDirectiveDefault");
        assert_eq!(
            directive::describe(directive::NO_SPACE | directive::NO_FILE_COMP),
            "ShellCompDirectiveNoSpace, ShellCompDirectiveNoFileComp"
        );
    }

    #[test]
    fn renders_cobras_protocol() {
        let completions = Completions {
            candidates: vec![
                Candidate::new("failover", "Fail over: run the application\non the destination"),
                Candidate::new("rel1", ""),
                Candidate::new(" padded ", "  trimmed  "),
            ],
            directive: directive::NO_FILE_COMP,
        };
        assert_eq!(
            completions.render(true),
            "failover\tFail over: run the application\nrel1\npadded\ttrimmed\n:4\n"
        );
        assert_eq!(completions.render(false), "failover\nrel1\npadded\n:4\n");
        let none = Completions {
            candidates: Vec::new(),
            directive: directive::DEFAULT,
        };
        assert_eq!(none.render(true), ":0\n");
    }

    #[test]
    fn completes_subcommands_with_descriptions() {
        let (completions, lookup, _) = static_completion("");
        let names = values(&completions);
        for verb in [
            "setup",
            "status",
            "failover",
            "reverse-resync",
            "snapmirror",
            "completion",
            "version",
        ] {
            assert!(names.contains(&verb), "{verb} missing: {names:?}");
        }
        assert!(
            !names.iter().any(|n| n.starts_with("__")),
            "hidden commands offered: {names:?}"
        );
        assert_eq!(lookup, None);
        assert_eq!(completions.directive, directive::NO_FILE_COMP);
        let failover = completions
            .candidates
            .iter()
            .find(|c| c.value == "failover")
            .unwrap();
        assert!(failover.description.starts_with("Fail over"), "{failover:?}");

        let (completions, _, _) = static_completion("re");
        assert_eq!(
            values(&completions),
            ["resync", "reverse-resync", "reverse"],
            "prefix filter keeps the definition's order"
        );
        let (completions, _, _) = static_completion("snapmirror ");
        assert_eq!(values(&completions), ["update", "status", "help"]);
    }

    #[test]
    fn completes_flags_after_a_dash_without_repeating_given_ones() {
        let (completions, _, _) = static_completion("failover rel1 --");
        let names = values(&completions);
        for flag in [
            "--context",
            "--peer-context",
            "--namespace",
            "--force",
            "--dry-run",
            "--yes",
            "--help",
        ] {
            assert!(names.contains(&flag), "{flag} missing: {names:?}");
        }
        assert!(names.iter().all(|n| n.starts_with("--")), "{names:?}");
        let (completions, _, _) = static_completion("failover rel1 --context a --");
        assert!(
            !values(&completions).contains(&"--context"),
            "given flag offered again"
        );
        assert!(values(&completions).contains(&"--peer-context"));
        let (completions, _, _) = static_completion("failover -v --");
        assert!(
            values(&completions).contains(&"--verbose"),
            "a counted flag repeats"
        );
        let (completions, _, _) = static_completion("status -");
        let names = values(&completions);
        assert!(
            names.contains(&"-n") && names.contains(&"-A") && names.contains(&"--all-namespaces"),
            "{names:?}"
        );
    }

    #[test]
    fn completes_fixed_choices() {
        let (completions, _, _) = static_completion("status -o ");
        assert_eq!(values(&completions), ["table", "json", "yaml"]);
        let (completions, _, _) = static_completion("status --output=j");
        assert_eq!(values(&completions), ["--output=json"]);
        let (completions, _, _) = static_completion("delete rel1 --dry-run=");
        assert_eq!(
            values(&completions),
            ["--dry-run=none", "--dry-run=client", "--dry-run=server"]
        );
        let (completions, _, _) = static_completion("completion ");
        assert_eq!(values(&completions), ["bash", "zsh", "fish", "kubectl-shim"]);
        let (completions, _, _) = static_completion("--context a status -o ");
        assert_eq!(
            values(&completions),
            ["table", "json", "yaml"],
            "after a flag given before the verb"
        );
    }

    #[test]
    fn dry_run_without_equals_does_not_swallow_the_next_word() {
        let (_, lookup, line) = static_completion("failover --dry-run ");
        assert_eq!(line.want, Want::Positional("name".into()));
        assert_eq!(lookup, Some(Lookup::Relationships));
    }

    #[test]
    fn relationship_names_for_verbs_on_an_existing_relationship() {
        for verb in crate::cli::testing::VERBS_ON_A_RELATIONSHIP {
            let (completions, lookup, line) = static_completion(&format!("{verb} "));
            assert_eq!(lookup, Some(Lookup::Relationships), "{verb}");
            assert_eq!(completions.directive, directive::NO_FILE_COMP, "{verb}");
            assert_eq!(line.path, [verb]);
        }
        let (_, lookup, _) = static_completion("setup ");
        assert_eq!(lookup, None, "setup names a new relationship");
        let (_, lookup, _) = static_completion("failover rel1 ");
        assert_eq!(lookup, None, "only one NAME");
    }

    #[test]
    fn context_and_namespace_flags_look_up_and_keep_the_flags_given() {
        let (_, lookup, line) =
            static_completion("--kubeconfig /k failover --context a -n ns --peer-context ");
        assert_eq!(lookup, Some(Lookup::Contexts));
        assert_eq!(line.values.get("kubeconfig").map(String::as_str), Some("/k"));
        assert_eq!(line.values.get("context").map(String::as_str), Some("a"));
        assert_eq!(line.values.get("namespace").map(String::as_str), Some("ns"));
        for line in ["setup r --source-context ", "--context "] {
            let (_, lookup, _) = static_completion(line);
            assert_eq!(lookup, Some(Lookup::Contexts), "{line}");
        }
        let (_, lookup, _) = static_completion("setup r --destination-context=");
        assert_eq!(lookup, Some(Lookup::Contexts));
        let (_, lookup, _) = static_completion("failover -n ");
        assert_eq!(lookup, Some(Lookup::Namespaces));
        let (_, lookup, line) = static_completion("failover -nprod ");
        assert_eq!(lookup, Some(Lookup::Relationships));
        assert_eq!(line.values.get("namespace").map(String::as_str), Some("prod"));
        let (_, lookup, line) = static_completion("-n ");
        assert_eq!(
            (lookup, line.path.len()),
            (Some(Lookup::Namespaces), 0),
            "before the verb"
        );
    }

    #[test]
    fn paths_are_left_to_the_shell() {
        let (completions, lookup, _) = static_completion("status --kubeconfig ");
        assert_eq!((lookup, completions.directive), (None, directive::DEFAULT));
        assert!(completions.candidates.is_empty());
    }

    #[test]
    fn looked_up_candidates_are_filtered_and_prefixed() {
        let root = cli_definition(<crate::cli::Cli as clap::CommandFactory>::command());
        let line = parse_line(&root, &words("failover --context=tp"));
        assert_eq!(line.prefix, "--context=");
        let plan = plan(&root, &line);
        let completions = finish(
            &line,
            plan,
            vec![
                Candidate::new("tprotect-source", "cluster a"),
                Candidate::new("other", ""),
                Candidate::new("tprotect-source", "duplicate"),
            ],
        );
        assert_eq!(
            completions.candidates,
            [Candidate::new("--context=tprotect-source", "cluster a")]
        );
    }

    #[test]
    fn relationship_candidates_offer_names_and_differing_labels() {
        let listed = [
            ListedRelationship {
                context: "dst".into(),
                namespace: "app".into(),
                name: "rel1".into(),
                label: Some("rel1".into()),
                state: Some("Established".into()),
            },
            ListedRelationship {
                context: "dst".into(),
                namespace: "app2".into(),
                name: "amr-generated".into(),
                label: Some("payments".into()),
                state: None,
            },
        ];
        assert_eq!(
            relationship_candidates(&listed),
            [
                Candidate::new("rel1", "AppMirrorRelationship in app on dst, Established"),
                Candidate::new("amr-generated", "AppMirrorRelationship in app2 on dst"),
                Candidate::new(
                    "payments",
                    "label of AppMirrorRelationship app2/amr-generated on dst"
                ),
            ]
        );
    }

    #[test]
    fn contexts_from_a_kubeconfig() {
        let kubeconfig = Kubeconfig::from_yaml(
            "apiVersion: v1\nkind: Config\ncurrent-context: a\nclusters: []\nusers: []\ncontexts:\n- name: a\n  context: {cluster: ca, user: u, namespace: prod}\n- name: b\n  context: {cluster: cb, user: u}\n",
        )
        .unwrap();
        assert_eq!(
            context_candidates(&kubeconfig),
            [
                Candidate::new("a", "cluster ca, namespace prod"),
                Candidate::new("b", "cluster cb")
            ]
        );
    }

    #[test]
    fn after_double_dash_only_positionals() {
        let (_, lookup, line) = static_completion("failover -- -");
        assert_eq!(line.want, Want::Positional("name".into()));
        assert_eq!(lookup, Some(Lookup::Relationships));
    }
}
