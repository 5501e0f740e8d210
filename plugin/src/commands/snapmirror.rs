//! `kubectl tprotect snapmirror update|status`: start and follow an ONTAP SnapMirror update of an existing
//! relationship, or show one. The work is in `tprotect_ontap`; this file wires flags, credentials and output.
//!
//! Progress goes to stderr, data to stdout. Exit codes: 0 done, 1 refused or failed (with ONTAP's message and
//! code), 2 bad flags, 3 `--timeout` reached (the transfer may still complete on the cluster).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Subcommand};
use k8s_openapi::api::core::v1::Secret;
use serde::Serialize;
use tprotect_ontap::{
    ClientOptions, ClusterHost, CodedMessage, CredentialSource, Credentials, OntapClient, OntapError,
    Progress, TlsOptions, Transfer, TransferStarted, UpdateOutcome, UpdateRequest, VolumePath,
    format_duration,
};

use crate::args::{DryRun, GlobalArgs, parse_duration};
use crate::exit::{self, CodedError};
use crate::output;

/// `snapmirror` and its flags (shared by `update` and `status`, given before or after them).
#[derive(Debug, Args)]
pub struct SnapmirrorArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: SnapmirrorCommand,
}

#[derive(Debug, Subcommand)]
pub enum SnapmirrorCommand {
    /// Start a SnapMirror update of an existing, snapmirrored, healthy relationship (never creates, resyncs or
    /// resumes one), and with --wait follow it to the end
    Update(Box<UpdateArgs>),
    /// Show a SnapMirror relationship's state, health, unhealthy reasons, lag and last transfer
    Status(Box<StatusArgs>),
}

/// Where the cluster is and how to talk to it.
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// Management address of the ONTAP cluster that holds the DESTINATION volume (HTTPS)
    #[arg(long, value_name = "HOST[:PORT]", value_parser = parse_host)]
    pub hostname: ClusterHost,
    /// Kubernetes Secret with keys `username` and `password`, read from the namespace -n of the --context
    /// cluster
    #[arg(long, value_name = "NAME", conflicts_with = "credentials_dir")]
    pub secret: Option<String>,
    /// Directory with files `username` and `password`, e.g. a Secret mounted at /mnt/secret. Without --secret
    /// and --credentials-dir, ONTAP_USERNAME and ONTAP_PASSWORD are used
    #[arg(long, value_name = "DIR")]
    pub credentials_dir: Option<PathBuf>,
    /// Verify the cluster's TLS certificate (true|false; yes|no also work). false is insecure
    #[arg(long, value_name = "BOOL", default_value = "true", value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub verify_tls: bool,
    /// PEM file with the CA certificate(s) that signed the cluster's certificate, trusted in addition to the
    /// system's roots
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Pause between two looks at a running job or transfer
    #[arg(long, hide = true, value_name = "DURATION", value_parser = parse_duration, default_value = "2s")]
    pub poll_interval: Duration,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Source endpoint of the relationship, checked against ONTAP's
    #[arg(long, value_name = "SVM:VOL", value_parser = parse_volume_path)]
    pub source: VolumePath,
    /// Destination endpoint: the relationship is looked up by it
    #[arg(long, value_name = "SVM:VOL", value_parser = parse_volume_path)]
    pub destination: VolumePath,
    /// Follow the job and the transfer until they end; a failed transfer exits 1, --timeout exits 3
    #[arg(long)]
    pub wait: bool,
    /// Update even if ONTAP reports the relationship unhealthy (nothing else is overridden)
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Destination endpoint of the relationship
    #[arg(long, value_name = "SVM:VOL", value_parser = parse_volume_path)]
    pub destination: VolumePath,
}

fn parse_host(text: &str) -> Result<ClusterHost, String> {
    text.parse().map_err(|err| match err {
        OntapError::InvalidHostname { reason, .. } => reason,
        other => other.to_string(),
    })
}

fn parse_volume_path(text: &str) -> Result<VolumePath, String> {
    text.parse().map_err(|err| match err {
        OntapError::InvalidPath { reason, .. } => reason,
        other => other.to_string(),
    })
}

pub async fn run(global: &GlobalArgs, command: SnapmirrorCommand) -> anyhow::Result<()> {
    // The ONTAP client names its provider itself; the kube client (for --secret) uses the process default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match command {
        SnapmirrorCommand::Update(args) => update(global, *args).await,
        SnapmirrorCommand::Status(args) => status(global, *args).await,
    }
}

async fn update(global: &GlobalArgs, args: UpdateArgs) -> anyhow::Result<()> {
    if args.wait && global.no_wait {
        return Err(usage_error(
            "--wait and --no-wait contradict each other: pass one",
        ));
    }
    let dry_run = global.dry_run != DryRun::None;
    let client = connect(global, &args.connection).await?;
    let request = UpdateRequest {
        source: args.source.clone(),
        destination: args.destination.clone(),
        force: args.force,
        wait: args.wait,
        dry_run,
    };
    let mut started = false;
    let result = tprotect_ontap::update(&client, &request, &mut |event| {
        started |= matches!(event, Progress::Started(_));
        report_progress(&event);
    })
    .await;
    let outcome = result.map_err(|err| {
        // After the POST, only an interrupted wait leaves the outcome open; a failed job or transfer is final.
        let open = !matches!(
            err,
            OntapError::JobFailed { .. } | OntapError::TransferFailed { .. }
        );
        let hint = if started && open {
            format!(
                "; the transfer was started and may still complete: see `kubectl tprotect snapmirror status \
                 --hostname {} --destination {}`",
                client.host(),
                args.destination
            )
        } else {
            String::new()
        };
        command_error(err, &hint)
    })?;
    let report = UpdateReport {
        hostname: client.host().to_string(),
        source: args.source.to_string(),
        destination: args.destination.to_string(),
        dry_run,
        waited: args.wait,
        outcome: &outcome,
    };
    output::print_data(global.output, &report, || update_table(&report))
}

async fn status(global: &GlobalArgs, args: StatusArgs) -> anyhow::Result<()> {
    let client = connect(global, &args.connection).await?;
    let status = tprotect_ontap::status(&client, &args.destination)
        .await
        .map_err(|err| command_error(err, ""))?;
    let report = StatusReport::new(client.host().to_string(), status);
    output::print_data(global.output, &report, || status_table(&report))
}

/// Flags that contradict each other exit 2, like clap's own usage errors.
fn usage_error(message: &str) -> anyhow::Error {
    anyhow::Error::new(CodedError {
        code: exit::USAGE,
        message: message.to_owned(),
    })
}

/// Timeouts get their own exit code; everything else exits 1 with the library's message.
fn command_error(err: OntapError, hint: &str) -> anyhow::Error {
    if err.is_timeout() {
        CodedError::timeout(format!("{err}{hint}"))
    } else if hint.is_empty() {
        anyhow::Error::new(err)
    } else {
        anyhow::Error::new(err).context(hint.trim_start_matches("; ").to_owned())
    }
}

async fn connect(global: &GlobalArgs, args: &ConnectionArgs) -> anyhow::Result<OntapClient> {
    if !args.verify_tls {
        if args.ca_file.is_some() {
            return Err(usage_error(
                "--ca-file has no effect with --verify-tls=false: drop one of them",
            ));
        }
        eprintln!(
            "warning: --verify-tls=false: the TLS certificate of {} is not checked; anyone on the network path \
             can impersonate the cluster and capture the ONTAP credentials",
            args.hostname
        );
    }
    let credentials = tokio::time::timeout(global.timeout, load_credentials(global, args))
        .await
        .map_err(|_| {
            CodedError::timeout(format!(
                "timed out after {} reading the ONTAP credentials",
                format_duration(global.timeout)
            ))
        })??;
    tracing::debug!(%credentials, "ONTAP credentials loaded");
    let options = ClientOptions {
        tls: TlsOptions {
            verify: args.verify_tls,
            ca_file: args.ca_file.clone(),
            system_roots: true,
        },
        poll_interval: args.poll_interval,
        overall_timeout: Some(global.timeout),
        user_agent: concat!("kubectl-tprotect/", env!("CARGO_PKG_VERSION")).to_owned(),
        ..ClientOptions::default()
    };
    Ok(OntapClient::new(args.hostname.clone(), credentials, options)?)
}

async fn load_credentials(global: &GlobalArgs, args: &ConnectionArgs) -> anyhow::Result<Credentials> {
    if let Some(name) = &args.secret {
        return read_secret(global, name).await;
    }
    if let Some(dir) = &args.credentials_dir {
        return Ok(Credentials::from_dir(dir)?);
    }
    match Credentials::from_env()? {
        Some(credentials) => Ok(credentials),
        None => bail!(
            "no ONTAP credentials: pass --secret NAME (a Secret with keys username and password, in -n), \
             --credentials-dir DIR (files username and password), or set ONTAP_USERNAME and ONTAP_PASSWORD"
        ),
    }
}

/// A kube client for `--kubeconfig`/`--context` (or in-cluster when neither is given and there is no
/// kubeconfig), and the namespace to use.
async fn kube_client(global: &GlobalArgs) -> anyhow::Result<(kube::Client, String)> {
    use kube::config::{Config, KubeConfigOptions, Kubeconfig};
    let options = KubeConfigOptions {
        context: global.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match (&global.kubeconfig, &global.context) {
        (Some(path), _) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &options).await?
        }
        (None, Some(_)) => Config::from_kubeconfig(&options).await?,
        (None, None) => Config::infer().await?,
    };
    let namespace = global
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    Ok((kube::Client::try_from(config)?, namespace))
}

async fn read_secret(global: &GlobalArgs, name: &str) -> anyhow::Result<Credentials> {
    let (client, namespace) = kube_client(global).await?;
    let context = global.context.as_deref().unwrap_or("the current context");
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client, &namespace);
    let secret = match secrets.get(name).await {
        Ok(secret) => secret,
        Err(kube::Error::Api(status)) if status.is_not_found() => {
            bail!("Secret {namespace}/{name} not found in {context} (--secret, -n)")
        }
        Err(err) => {
            return Err(anyhow::Error::new(err)
                .context(format!("cannot read Secret {namespace}/{name} in {context}")));
        }
    };
    let data = secret.data.unwrap_or_default();
    let value = |key: &str| {
        data.get(key).map(|bytes| bytes.0.clone()).with_context(|| {
            format!("Secret {namespace}/{name} has no key `{key}` (it needs `username` and `password`)")
        })
    };
    let (username, password) = (value("username")?, value("password")?);
    let source = CredentialSource::Secret {
        namespace: namespace.clone(),
        name: name.to_owned(),
    };
    Ok(Credentials::from_bytes(&username, &password, source)?)
}

fn report_progress(event: &Progress<'_>) {
    match event {
        Progress::Found(relationship) => {
            let state = relationship.state.as_ref().map_or("unknown", |s| s.as_str());
            let health = match relationship.healthy {
                Some(true) => "healthy",
                Some(false) => "unhealthy",
                None => "health unknown",
            };
            let lag = relationship
                .lag_time
                .as_ref()
                .map(|lag| format!(", lag {}", format_duration(lag.duration)))
                .unwrap_or_default();
            eprintln!(
                "Found relationship {} ({state}, {health}{lag})",
                relationship.uuid
            );
        }
        Progress::ForcedPastUnhealthy(reasons) => {
            eprintln!(
                "warning: updating an unhealthy relationship because of --force: {}",
                join_reasons(reasons)
            );
        }
        Progress::Started(TransferStarted::Created { transfer_uuid }) => {
            eprintln!("Transfer {transfer_uuid} started (201 Created)");
        }
        Progress::Started(TransferStarted::Accepted { job_uuid }) => {
            eprintln!("Update accepted as job {job_uuid} (202 Accepted)");
        }
        Progress::Job(job) => eprintln!("Job {}: {}", job.uuid, job.state),
        Progress::TransferIdentified(uuid) => eprintln!("Transfer {uuid} started by the job"),
        Progress::Transfer(transfer) => {
            let bytes = transfer
                .bytes_transferred
                .map(|b| format!(", {}", format_bytes(b)))
                .unwrap_or_default();
            eprintln!("Transfer {}: {}{bytes}", transfer.uuid, transfer.state);
        }
    }
}

fn join_reasons(reasons: &[CodedMessage]) -> String {
    reasons
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `update -o json|yaml`.
#[derive(Debug, Serialize)]
struct UpdateReport<'a> {
    hostname: String,
    source: String,
    destination: String,
    dry_run: bool,
    waited: bool,
    #[serde(flatten)]
    outcome: &'a UpdateOutcome,
}

fn update_table(report: &UpdateReport<'_>) -> String {
    let outcome = report.outcome;
    let relationship = &outcome.relationship;
    let mut lines = vec![format!(
        "relationship {} -> {} ({}) on {}",
        report.source, report.destination, relationship.uuid, report.hostname
    )];
    if report.dry_run {
        lines.push(format!(
            "dry run: every check passed; would POST /api/snapmirror/relationships/{}/transfers (nothing sent)",
            relationship.uuid
        ));
    }
    match &outcome.started {
        Some(TransferStarted::Created { transfer_uuid }) if outcome.transfer.is_none() => {
            lines.push(format!("update started: transfer {transfer_uuid}"));
        }
        Some(TransferStarted::Accepted { job_uuid }) if outcome.job.is_none() => {
            lines.push(format!("update started: job {job_uuid}"));
        }
        _ => {}
    }
    if let Some(job) = &outcome.job {
        lines.push(format!("job {}: {}", job.uuid, job.state));
    }
    if let Some(transfer) = &outcome.transfer {
        lines.push(transfer_line(transfer));
    }
    if !outcome.forced_past.is_empty() {
        lines.push(format!(
            "forced past unhealthy: {}",
            join_reasons(&outcome.forced_past)
        ));
    }
    lines.join("\n") + "\n"
}

fn transfer_line(transfer: &Transfer) -> String {
    let mut line = format!("transfer {}: {}", transfer.uuid, transfer.state);
    if let Some(bytes) = transfer.bytes_transferred {
        line.push_str(&format!(", {}", format_bytes(bytes)));
    }
    if let Some(end) = &transfer.end_time {
        line.push_str(&format!(", ended {end}"));
    }
    if let Some(info) = &transfer.error_info {
        line.push_str(&format!(", {info}"));
    }
    line
}

/// `status -o json|yaml`.
#[derive(Debug, Serialize)]
struct StatusReport {
    hostname: String,
    uuid: String,
    source: Option<String>,
    destination: Option<String>,
    state: Option<String>,
    healthy: Option<bool>,
    unhealthy_reason: Vec<CodedMessage>,
    lag_time: Option<String>,
    lag_seconds: Option<u64>,
    last_transfer: Option<LastTransfer>,
}

#[derive(Debug, Serialize)]
struct LastTransfer {
    uuid: Option<String>,
    state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_transferred: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_info: Option<CodedMessage>,
}

impl StatusReport {
    fn new(hostname: String, status: tprotect_ontap::RelationshipStatus) -> Self {
        let relationship = status.relationship;
        let last_transfer = match status.last_transfer {
            Some(transfer) => Some(LastTransfer {
                uuid: Some(transfer.uuid),
                state: Some(transfer.state.to_string()),
                bytes_transferred: transfer.bytes_transferred,
                end_time: transfer.end_time,
                error_info: transfer.error_info,
            }),
            // ONTAP no longer has the transfer's record: what the relationship says of it.
            None => relationship.transfer.as_ref().map(|summary| LastTransfer {
                uuid: summary.uuid.clone(),
                state: summary.state.as_ref().map(ToString::to_string),
                bytes_transferred: None,
                end_time: None,
                error_info: None,
            }),
        };
        Self {
            hostname,
            source: relationship.source_path().map(str::to_owned),
            destination: relationship.destination_path().map(str::to_owned),
            uuid: relationship.uuid,
            state: relationship.state.map(|s| s.to_string()),
            healthy: relationship.healthy,
            unhealthy_reason: relationship.unhealthy_reason,
            lag_seconds: relationship.lag_time.as_ref().map(|lag| lag.duration.as_secs()),
            lag_time: relationship.lag_time.map(|lag| lag.iso8601),
            last_transfer,
        }
    }
}

fn status_table(report: &StatusReport) -> String {
    let unknown = "-";
    let mut rows: Vec<(&str, String)> = vec![
        (
            "DESTINATION",
            report.destination.clone().unwrap_or_else(|| unknown.into()),
        ),
        ("SOURCE", report.source.clone().unwrap_or_else(|| unknown.into())),
        ("UUID", report.uuid.clone()),
        ("STATE", report.state.clone().unwrap_or_else(|| unknown.into())),
        (
            "HEALTHY",
            report.healthy.map_or_else(|| unknown.into(), |h| h.to_string()),
        ),
    ];
    for (index, reason) in report.unhealthy_reason.iter().enumerate() {
        rows.push((if index == 0 { "UNHEALTHY" } else { "" }, reason.to_string()));
    }
    let lag = match (&report.lag_time, report.lag_seconds) {
        (Some(iso), Some(seconds)) => format!("{} ({iso})", format_duration(Duration::from_secs(seconds))),
        _ => unknown.into(),
    };
    rows.push(("LAG", lag));
    let last = report.last_transfer.as_ref().map_or_else(
        || unknown.into(),
        |t| {
            let mut text = format!(
                "{} {}",
                t.uuid.as_deref().unwrap_or(unknown),
                t.state.as_deref().unwrap_or("state unknown")
            );
            if let Some(bytes) = t.bytes_transferred {
                text.push_str(&format!(", {}", format_bytes(bytes)));
            }
            if let Some(end) = &t.end_time {
                text.push_str(&format!(", ended {end}"));
            }
            if let Some(info) = &t.error_info {
                text.push_str(&format!(", {info}"));
            }
            text
        },
    );
    rows.push(("LAST TRANSFER", last));
    rows.iter()
        .map(|(key, value)| format!("{key:<14} {value}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::OutputFormat;
    use crate::cli::Cli;
    use crate::commands::Command;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kubectl-tprotect").chain(args.iter().copied()))
    }

    fn update_args(cli: Cli) -> UpdateArgs {
        match cli.command {
            Command::Snapmirror(SnapmirrorArgs {
                command: SnapmirrorCommand::Update(args),
                ..
            }) => *args,
            other => panic!("expected snapmirror update, got {other:?}"),
        }
    }

    const BASE: &[&str] = &[
        "snapmirror",
        "update",
        "--hostname",
        "cluster1:8443",
        "--source",
        "s1:v1",
        "--destination",
        "s2:v2",
    ];

    #[test]
    fn update_parses_with_defaults() {
        let args = update_args(parse(BASE).unwrap());
        assert!(args.connection.verify_tls);
        assert!(!args.wait && !args.force);
        assert_eq!(args.source.to_string(), "s1:v1");
        assert_eq!(args.connection.hostname.to_string(), "cluster1:8443");
        assert_eq!(args.connection.poll_interval, Duration::from_secs(2));
    }

    #[test]
    fn verify_tls_takes_true_false_yes_no() {
        for (value, expected) in [("true", true), ("false", false), ("yes", true), ("no", false)] {
            let mut args = BASE.to_vec();
            let flag = format!("--verify-tls={value}");
            args.push(&flag);
            assert_eq!(
                update_args(parse(&args).unwrap()).connection.verify_tls,
                expected,
                "{value}"
            );
            let mut args = BASE.to_vec();
            args.extend(["--verify-tls", value]);
            assert_eq!(
                update_args(parse(&args).unwrap()).connection.verify_tls,
                expected,
                "{value}"
            );
        }
        let mut args = BASE.to_vec();
        args.push("--verify-tls=maybe");
        assert!(parse(&args).is_err());
    }

    #[test]
    fn bad_paths_name_the_flag() {
        let args = [
            "snapmirror",
            "update",
            "--hostname",
            "c1",
            "--source",
            "s1:v1",
            "--destination",
            "s2-v2",
        ];
        let error = parse(&args).unwrap_err().to_string();
        assert!(
            error.contains("--destination <SVM:VOL>") && error.contains("no ':'"),
            "{error}"
        );
        let args = [
            "snapmirror",
            "status",
            "--hostname",
            "https://c1",
            "--destination",
            "s2:v2",
        ];
        let error = parse(&args).unwrap_err().to_string();
        assert!(
            error.contains("--hostname") && error.contains("without a scheme"),
            "{error}"
        );
    }

    #[test]
    fn secret_and_credentials_dir_conflict() {
        let mut args = BASE.to_vec();
        args.extend(["--secret", "s", "--credentials-dir", "/mnt/secret"]);
        assert!(parse(&args).is_err());
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let mut args = BASE.to_vec();
        args.extend([
            "-n",
            "kubeflow",
            "-o",
            "json",
            "--timeout",
            "90s",
            "--context",
            "dst",
        ]);
        let Command::Snapmirror(SnapmirrorArgs { global, .. }) = parse(&args).unwrap().command else {
            panic!("not snapmirror")
        };
        assert_eq!(global.namespace.as_deref(), Some("kubeflow"));
        assert_eq!(global.output, OutputFormat::Json);
        assert_eq!(global.timeout, Duration::from_secs(90));
    }

    #[test]
    fn bytes_format() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1_048_576), "1.0 MiB");
        assert_eq!(format_bytes(1536), "1.5 KiB");
    }
}
