//! `kubectl tprotect snapmirror update|status`: start and follow an ONTAP SnapMirror update of an existing
//! relationship, or show one (and, with `--fail-on`, gate a pipeline on it). The work is in `tprotect_ontap`;
//! this file wires flags, credentials, output and the Kubeflow Pipelines outputs.
//!
//! Progress goes to stderr, data to stdout. Exit codes: 0 done (or skipped), 1 refused or failed (with ONTAP's
//! message and code), 2 bad flags, 3 `--timeout` reached (the transfer may still complete on the cluster), 4 a
//! `status --fail-on` condition holds, 5 `update --if-busy=fail` met a transfer in progress.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Subcommand, ValueEnum};
use k8s_openapi::api::core::v1::Secret;
use serde::{Deserialize, Serialize};
use tprotect_ontap::{
    ClientOptions, ClusterHost, CodedMessage, Condition, CredentialSource, Credentials, HeldCondition,
    IfBusy, OntapClient, OntapError, Progress, Relationship, TlsOptions, Transfer, TransferStarted,
    UpdateOutcome, UpdateRequest, UpdateResult, UpdateSummary, VolumePath, format_duration, held_conditions,
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

const UPDATE_LONG_ABOUT: &str = "\
Start a SnapMirror update of an existing, snapmirrored, healthy relationship, and with --wait follow it to the
end.

Nothing else is ever done to the relationship: it is never created, initialized, resynced or resumed. The
update is one POST to ONTAP, sent after every check passed, and never sent again blindly.

A transfer already in progress on the relationship (ONTAP's own schedule, or the run before a rerun) is met
as --if-busy says:
  wait (default)  wait for it to end, then start a new transfer. The running transfer replicates a snapshot
                  taken when it started, which may miss data written since (by the pipeline step before this
                  one, say), so it is never taken as this update. The wait counts against --timeout.
  skip            start nothing and exit 0, saying so (\"result\": \"skipped\" in -o json).
  fail            start nothing and exit 5.
ONTAP's refusal of the POST because a transfer started meanwhile (code 13303844, \"Another transfer is in
progress\") is met the same way; only then is the POST sent again, once that transfer ended. When ONTAP
accepts the POST as a job and refuses in the job, only --wait (which follows the job) sees it.

If the POST's answer is lost (the connection dropped, or no answer came in time, after the request was sent),
the transfer MAY have started: the command says so and how to look (snapmirror status), and does not send it
again.

After --wait, the relationship is read again: -o json|yaml shows its state and lag after the transfer, and the
transfer's bytes and end time. --kfp-executor-input writes the same figures as Kubeflow Pipelines outputs
(examples/kubeflow/).

Exit codes: 0 done or skipped, 1 refused or failed (with ONTAP's message and code), 2 bad flags, 3 --timeout
reached (a started transfer may still complete), 5 a transfer in progress and --if-busy=fail.

Examples:
  # Update and wait for the transfer; the cluster's certificate is signed by the CA in ca.pem
  kubectl tprotect snapmirror update --hostname cluster2.example.com --source svm1:vol1 \\
    --destination svm2:vol1_dst --secret ontap-admin -n kubeflow --ca-file ca.pem --wait

  # From a scheduled job: leave a transfer that is already running alone
  kubectl tprotect snapmirror update --hostname cluster2.example.com --source svm1:vol1 \\
    --destination svm2:vol1_dst --credentials-dir /mnt/secret --wait --if-busy skip -o json";

const STATUS_LONG_ABOUT: &str = "\
Show a SnapMirror relationship's state, health, unhealthy reasons, lag and last transfer.

With --fail-on the command gates a pipeline: it shows the status as usual, and exits 4 when any condition
holds, naming each one that does (in -o json also, under fail_on.held). Conditions, comma-separated or with
--fail-on repeated:
  unhealthy       ONTAP reports the relationship unhealthy, or does not say whether it is healthy
  lag=DURATION    the lag (how old the newest transferred snapshot is) is longer than DURATION (90s, 15m,
                  1h30m, or ISO 8601 as ONTAP writes lags: P1D, PT36H), or ONTAP reports no lag
  state!=STATE    the state is not STATE (e.g. state!=snapmirrored), or ONTAP reports none
  state=STATE     the state is STATE (e.g. state=broken_off)
What ONTAP does not report fails the gate: a gate that passes on missing data passes when it should not.

Exit codes: 0 shown and no --fail-on condition holds, 1 failed (e.g. no such relationship), 2 bad flags, 3
--timeout reached, 4 a --fail-on condition holds.

Examples:
  kubectl tprotect snapmirror status --hostname cluster2.example.com --destination svm2:vol1_dst \\
    --secret ontap-admin -n kubeflow --fail-on unhealthy,lag=2h,state!=snapmirrored";

#[derive(Debug, Subcommand)]
pub enum SnapmirrorCommand {
    /// Start a SnapMirror update of an existing, snapmirrored, healthy relationship (never creates, resyncs or
    /// resumes one), and with --wait follow it to the end
    #[command(long_about = UPDATE_LONG_ABOUT)]
    Update(Box<UpdateArgs>),
    /// Show a SnapMirror relationship's state, health, unhealthy reasons, lag and last transfer; --fail-on
    /// makes it a pipeline gate
    #[command(long_about = STATUS_LONG_ABOUT)]
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
    /// Like --ca-file, for a file that may be absent, such as a key of an optional Secret or ConfigMap mount:
    /// trusted when it exists (and then it must be valid PEM); when the certificate is not trusted, the error
    /// names the ones that were absent. Repeatable; ignored with --verify-tls=false
    #[arg(long, value_name = "PEM")]
    pub ca_file_if_present: Vec<PathBuf>,
    /// Pause between two looks at a running job or transfer
    #[arg(long, hide = true, value_name = "DURATION", value_parser = parse_duration, default_value = "2s")]
    pub poll_interval: Duration,
}

/// `--if-busy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BusyPolicy {
    /// Wait for the running transfer to end, then start a new one
    Wait,
    /// Start nothing, exit 0
    Skip,
    /// Start nothing, exit 5
    Fail,
}

impl From<BusyPolicy> for IfBusy {
    fn from(policy: BusyPolicy) -> Self {
        match policy {
            BusyPolicy::Wait => IfBusy::Wait,
            BusyPolicy::Skip => IfBusy::Skip,
            BusyPolicy::Fail => IfBusy::Fail,
        }
    }
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
    /// When a transfer is already in progress: wait for it to end, then start a new one (the running one may
    /// miss data written since it started); skip: start nothing, exit 0; fail: start nothing, exit 5
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = BusyPolicy::Wait)]
    pub if_busy: BusyPolicy,
    /// Kubeflow Pipelines: the step's executor input (pass the placeholder {{$}},
    /// dsl.PIPELINE_TASK_EXECUTOR_INPUT_PLACEHOLDER). After the update, each output parameter the component
    /// declares (result, state, healthy, lag_seconds, bytes_transferred, transfer_end_time, transfer_uuid) is
    /// written to its file, and a Metrics artifact gets lag_seconds and bytes_transferred. Needs --wait
    #[arg(long, value_name = "JSON")]
    pub kfp_executor_input: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Destination endpoint of the relationship
    #[arg(long, value_name = "SVM:VOL", value_parser = parse_volume_path)]
    pub destination: VolumePath,
    /// Exit 4 when a condition holds: unhealthy, lag=DURATION, state!=STATE, state=STATE (comma-separated or
    /// repeated; see --help)
    #[arg(long, value_name = "CONDITION", value_delimiter = ',', value_parser = parse_condition)]
    pub fail_on: Vec<Condition>,
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

fn parse_condition(text: &str) -> Result<Condition, String> {
    Condition::parse(text, parse_lag_limit).map_err(|err| match err {
        OntapError::InvalidCondition { reason, .. } => reason,
        other => other.to_string(),
    })
}

/// A duration as --timeout takes it, or in ISO 8601 as ONTAP writes `lag_time` (`P1D`): lags run to days,
/// which the friendly format does not take.
fn parse_lag_limit(text: &str) -> Result<Duration, String> {
    parse_duration(text).or_else(|friendly| {
        tprotect_ontap::parse_iso8601_duration(text)
            .map_err(|_| format!("{friendly}; for days use ISO 8601, e.g. P1D or P1DT12H"))
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
    // Checked before anything is sent: a step whose outputs cannot be written must not start a transfer.
    let kfp_outputs = match &args.kfp_executor_input {
        None => None,
        Some(_) if !args.wait || dry_run => {
            return Err(usage_error(
                "--kfp-executor-input needs --wait and no --dry-run: its outputs describe the finished transfer",
            ));
        }
        Some(text) => Some(
            KfpOutputs::parse(text)
                .map_err(|problem| usage_error(&format!("--kfp-executor-input: {problem}")))?,
        ),
    };
    let (client, absent_ca_files) = connect(global, &args.connection).await?;
    let request = UpdateRequest {
        source: args.source.clone(),
        destination: args.destination.clone(),
        force: args.force,
        wait: args.wait,
        dry_run,
        if_busy: args.if_busy.into(),
    };
    let mut started = false;
    let result = tprotect_ontap::update(&client, &request, &mut |event| {
        match event {
            Progress::Started(_) => started = true,
            // A job that refused the update started nothing.
            Progress::Busy(_) => started = false,
            _ => {}
        }
        report_progress(&event, &request);
    })
    .await;
    let outcome = result.map_err(|err| {
        let status_command = format!(
            "kubectl tprotect snapmirror status --hostname {} --destination {}",
            client.host(),
            args.destination
        );
        let hint = match &err {
            OntapError::PostAnswerLost { .. } => format!(
                "; see whether it did with `{status_command}`: a transfer queued, transferring, or ended just \
                 after the POST is it. Running the update again is safe: with --if-busy=wait (the default) it \
                 waits for that transfer, then starts another"
            ),
            OntapError::UntrustedCertificate { .. } => absent_ca_hint(&absent_ca_files),
            // After the POST, only an interrupted wait leaves the outcome open; a failed job or transfer is final.
            OntapError::JobFailed { .. } | OntapError::TransferFailed { .. } => String::new(),
            _ if started => format!(
                "; the transfer was started and may still complete: see `{status_command}`"
            ),
            _ => String::new(),
        };
        command_error(err, &hint)
    })?;
    if let (UpdateResult::Skipped, Some(busy)) = (outcome.result, &outcome.busy) {
        eprintln!("Nothing started: {busy} (--if-busy=skip)");
    }
    let report = UpdateReport {
        hostname: client.host().to_string(),
        source: args.source.to_string(),
        destination: args.destination.to_string(),
        dry_run,
        waited: args.wait,
        if_busy: request.if_busy,
        summary: outcome.summary(),
        outcome: &outcome,
    };
    output::print_data(global.output, &report, || update_table(&report))?;
    if let Some(outputs) = kfp_outputs {
        outputs.write(&report.summary).with_context(|| {
            format!(
                "the update ended ({}), but its Kubeflow outputs could not be written",
                report.summary.result.as_str()
            )
        })?;
    }
    Ok(())
}

async fn status(global: &GlobalArgs, args: StatusArgs) -> anyhow::Result<()> {
    let (client, absent_ca_files) = connect(global, &args.connection).await?;
    let status = tprotect_ontap::status(&client, &args.destination)
        .await
        .map_err(|err| {
            let hint = match err {
                OntapError::UntrustedCertificate { .. } => absent_ca_hint(&absent_ca_files),
                _ => String::new(),
            };
            command_error(err, &hint)
        })?;
    let held = held_conditions(&args.fail_on, &status.relationship);
    let fail_on = (!args.fail_on.is_empty()).then(|| FailOnReport {
        conditions: args.fail_on.iter().map(ToString::to_string).collect(),
        held: held.clone(),
    });
    let report = StatusReport::new(client.host().to_string(), status, fail_on);
    output::print_data(global.output, &report, || status_table(&report))?;
    if held.is_empty() {
        return Ok(());
    }
    Err(anyhow::Error::new(CodedError {
        code: exit::GATE,
        message: format!(
            "--fail-on: {} for {}: {}",
            if held.len() == 1 {
                "a condition holds".to_owned()
            } else {
                format!("{} conditions hold", held.len())
            },
            args.destination,
            semicolon_separated(&held)
        ),
    }))
}

/// Flags that contradict each other exit 2, like clap's own usage errors.
fn usage_error(message: &str) -> anyhow::Error {
    anyhow::Error::new(CodedError {
        code: exit::USAGE,
        message: message.to_owned(),
    })
}

/// Timeouts and `--if-busy=fail` get their own exit codes; everything else exits 1 with the library's message.
fn command_error(err: OntapError, hint: &str) -> anyhow::Error {
    let code = if err.is_timeout() {
        exit::TIMEOUT
    } else if matches!(err, OntapError::Busy { .. }) {
        exit::BUSY
    } else {
        exit::FAILURE
    };
    if code == exit::FAILURE && hint.is_empty() {
        return anyhow::Error::new(err);
    }
    anyhow::Error::new(CodedError {
        code,
        message: format!("{err}{hint}"),
    })
}

/// Said when the certificate is not trusted and `--ca-file-if-present` files were absent.
fn absent_ca_hint(absent: &[PathBuf]) -> String {
    if absent.is_empty() {
        return String::new();
    }
    let paths: Vec<String> = absent.iter().map(|p| p.display().to_string()).collect();
    format!(
        "; no CA was found at {} (--ca-file-if-present): is the Secret or ConfigMap that holds it mounted \
         there, with that key?",
        paths.join(", ")
    )
}

/// The client, and the `--ca-file-if-present` files that were absent (named if the certificate is refused).
async fn connect(global: &GlobalArgs, args: &ConnectionArgs) -> anyhow::Result<(OntapClient, Vec<PathBuf>)> {
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
    let mut ca_files: Vec<PathBuf> = args.ca_file.iter().cloned().collect();
    let mut absent = Vec::new();
    if args.verify_tls {
        for path in &args.ca_file_if_present {
            if path.exists() {
                ca_files.push(path.clone());
            } else {
                tracing::info!(path = %path.display(), "no CA file here (--ca-file-if-present)");
                absent.push(path.clone());
            }
        }
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
            ca_files,
            system_roots: true,
        },
        poll_interval: args.poll_interval,
        overall_timeout: Some(global.timeout),
        user_agent: concat!("kubectl-tprotect/", env!("CARGO_PKG_VERSION")).to_owned(),
        ..ClientOptions::default()
    };
    let client = OntapClient::new(args.hostname.clone(), credentials, options)?;
    Ok((client, absent))
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

/// `snapmirrored, healthy, lag 1m2s`.
fn relationship_words(relationship: &Relationship) -> String {
    let state = relationship
        .state
        .as_ref()
        .map_or("state unknown", |s| s.as_str());
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
    format!("{state}, {health}{lag}")
}

fn report_progress(event: &Progress<'_>, request: &UpdateRequest) {
    match event {
        Progress::Found(relationship) => {
            eprintln!(
                "Found relationship {} ({})",
                relationship.uuid,
                relationship_words(relationship)
            );
        }
        Progress::ForcedPastUnhealthy(reasons) => {
            eprintln!(
                "warning: updating an unhealthy relationship because of --force: {}",
                semicolon_separated(reasons)
            );
        }
        Progress::Busy(busy) => eprintln!(
            "Busy: {busy}; waiting for it to end, then starting a new transfer (--if-busy=wait; the running one \
             may not hold data written since it started)"
        ),
        Progress::BusyTransferNow(transfer) => eprintln!(
            "Transfer in progress {}: {} (not this update's; waiting)",
            transfer.uuid.as_deref().unwrap_or("(no UUID)"),
            transfer.state.as_ref().map_or("state unknown", |s| s.as_str())
        ),
        Progress::BusyEnded(relationship) => eprintln!(
            "The transfer in progress on {} ended: {}",
            request.destination,
            relationship
                .transfer
                .as_ref()
                .and_then(|t| t.state.as_ref())
                .map_or("state unknown", |s| s.as_str())
        ),
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
        Progress::Finished(relationship) => {
            eprintln!("Relationship now: {}", relationship_words(relationship));
        }
    }
}

/// ONTAP's reasons, or the conditions that hold, on one line: `a; b; c`.
fn semicolon_separated(reasons: &[impl std::fmt::Display]) -> String {
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

/// `update -o json|yaml`: the summary (state and lag after the transfer, its bytes and end time) at the top,
/// then the details.
#[derive(Debug, Serialize)]
struct UpdateReport<'a> {
    hostname: String,
    source: String,
    destination: String,
    dry_run: bool,
    waited: bool,
    if_busy: IfBusy,
    #[serde(flatten)]
    summary: UpdateSummary,
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
    for waited in &outcome.waited_for {
        lines.push(format!("waited for a transfer in progress to end: {waited}"));
    }
    match (&outcome.busy, report.dry_run, report.if_busy) {
        (Some(busy), true, IfBusy::Wait) => lines.push(format!(
            "dry run: every check passed; {busy}: --if-busy=wait would wait for it, then POST \
             /api/snapmirror/relationships/{}/transfers (nothing sent)",
            relationship.uuid
        )),
        (Some(busy), _, _) => lines.push(format!(
            "skipped: {busy}; nothing was started (--if-busy=skip){}",
            if report.dry_run { " (dry run)" } else { "" }
        )),
        (None, true, _) => lines.push(format!(
            "dry run: every check passed; would POST /api/snapmirror/relationships/{}/transfers (nothing sent)",
            relationship.uuid
        )),
        (None, false, _) => {}
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
        lines.push(format!("relationship now: {}", relationship_words(relationship)));
    }
    if !outcome.forced_past.is_empty() {
        lines.push(format!(
            "forced past unhealthy: {}",
            semicolon_separated(&outcome.forced_past)
        ));
    }
    lines.join("\n") + "\n"
}

fn transfer_line(transfer: &Transfer) -> String {
    format!(
        "transfer {}: {}{}",
        transfer.uuid,
        transfer.state,
        transfer_details(
            transfer.bytes_transferred,
            &transfer.end_time,
            &transfer.error_info
        )
    )
}

/// `, 1.2 MiB, ended …, error` for what ONTAP said of a transfer.
fn transfer_details(
    bytes: Option<u64>,
    end_time: &Option<String>,
    error_info: &Option<CodedMessage>,
) -> String {
    let mut text = String::new();
    if let Some(bytes) = bytes {
        text.push_str(&format!(", {}", format_bytes(bytes)));
    }
    if let Some(end) = end_time {
        text.push_str(&format!(", ended {end}"));
    }
    if let Some(info) = error_info {
        text.push_str(&format!(", {info}"));
    }
    text
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
    #[serde(skip_serializing_if = "Option::is_none")]
    fail_on: Option<FailOnReport>,
}

/// `--fail-on`: the conditions asked for and those that hold.
#[derive(Debug, Serialize)]
struct FailOnReport {
    conditions: Vec<String>,
    held: Vec<HeldCondition>,
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
    fn new(
        hostname: String,
        status: tprotect_ontap::RelationshipStatus,
        fail_on: Option<FailOnReport>,
    ) -> Self {
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
            fail_on,
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
            format!(
                "{} {}{}",
                t.uuid.as_deref().unwrap_or(unknown),
                t.state.as_deref().unwrap_or("state unknown"),
                transfer_details(t.bytes_transferred, &t.end_time, &t.error_info)
            )
        },
    );
    rows.push(("LAST TRANSFER", last));
    if let Some(fail_on) = &report.fail_on {
        let held = if fail_on.held.is_empty() {
            format!("none of {} holds", fail_on.conditions.join(","))
        } else {
            semicolon_separated(&fail_on.held)
        };
        rows.push(("FAIL-ON", held));
    }
    rows.iter()
        .map(|(key, value)| format!("{key:<14} {value}\n"))
        .collect()
}

/// The parts of Kubeflow Pipelines' ExecutorInput (protobuf JSON, as the `{{$}}` placeholder gives it) that say
/// where a step's outputs go.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecutorInput {
    #[serde(default)]
    outputs: ExecutorOutputs,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecutorOutputs {
    #[serde(default)]
    parameters: BTreeMap<String, OutputParameter>,
    #[serde(default)]
    artifacts: BTreeMap<String, ArtifactList>,
    /// Where the step writes its ExecutorOutput (artifact metadata).
    #[serde(default)]
    output_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutputParameter {
    output_file: String,
}

#[derive(Debug, Default, Deserialize)]
struct ArtifactList {
    #[serde(default)]
    artifacts: Vec<RuntimeArtifact>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeArtifact {
    #[serde(default)]
    name: String,
    #[serde(default)]
    uri: String,
    #[serde(default, rename = "type")]
    artifact_type: ArtifactType,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactType {
    #[serde(default)]
    schema_title: Option<String>,
}

/// The output parameters this command can fill ([`KfpOutputs::parameter_text`] says how each reads).
const KFP_PARAMETERS: [&str; 7] = [
    "result",
    "state",
    "healthy",
    "lag_seconds",
    "bytes_transferred",
    "transfer_end_time",
    "transfer_uuid",
];
const KFP_METRICS_SCHEMA: &str = "system.Metrics";

/// Where a step's declared outputs go, checked before the update starts.
#[derive(Debug)]
struct KfpOutputs {
    parameters: BTreeMap<String, PathBuf>,
    /// `(output name, artifact name, uri)` of each Metrics artifact.
    metrics: Vec<(String, String, String)>,
    executor_output: Option<PathBuf>,
}

impl KfpOutputs {
    fn parse(text: &str) -> Result<Self, String> {
        let input: ExecutorInput = serde_json::from_str(text).map_err(|err| {
            format!("not a Kubeflow Pipelines executor input ({err}); pass the placeholder {{{{$}}}}")
        })?;
        let outputs = input.outputs;
        let mut parameters = BTreeMap::new();
        for (name, parameter) in outputs.parameters {
            if !KFP_PARAMETERS.contains(&name.as_str()) {
                return Err(format!(
                    "the component declares the output parameter `{name}`, which this command does not produce \
                     (it produces: {})",
                    KFP_PARAMETERS.join(", ")
                ));
            }
            parameters.insert(name, PathBuf::from(parameter.output_file));
        }
        let mut metrics = Vec::new();
        for (name, list) in outputs.artifacts {
            let [artifact] = list.artifacts.as_slice() else {
                return Err(format!(
                    "the output artifact `{name}` is a list of {}; this command writes one Metrics artifact",
                    list.artifacts.len()
                ));
            };
            let schema = artifact
                .artifact_type
                .schema_title
                .as_deref()
                .unwrap_or("(no type)");
            if schema != KFP_METRICS_SCHEMA {
                return Err(format!(
                    "the output artifact `{name}` is a {schema}; this command writes only {KFP_METRICS_SCHEMA} \
                     (dsl.Metrics)"
                ));
            }
            metrics.push((name, artifact.name.clone(), artifact.uri.clone()));
        }
        let executor_output = outputs.output_file.map(PathBuf::from);
        if !metrics.is_empty() && executor_output.is_none() {
            return Err("it names no outputFile, where a Metrics artifact's values go".into());
        }
        Ok(Self {
            parameters,
            metrics,
            executor_output,
        })
    }

    /// The text KFP reads from an output parameter's file. A pipeline parameter must hold a value, so where
    /// ONTAP said nothing a number is -1 and a text empty (documented in examples/kubeflow/README.md).
    fn parameter_text(name: &str, summary: &UpdateSummary) -> String {
        let number = |value: Option<u64>| value.map_or_else(|| "-1".to_owned(), |v| v.to_string());
        match name {
            "result" => summary.result.as_str().to_owned(),
            "state" => summary
                .state
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            // Not known to be healthy is not healthy.
            "healthy" => (summary.healthy == Some(true)).to_string(),
            "lag_seconds" => number(summary.lag_seconds),
            "bytes_transferred" => number(summary.bytes_transferred),
            "transfer_end_time" => summary.transfer_end_time.clone().unwrap_or_default(),
            "transfer_uuid" => summary.transfer_uuid.clone().unwrap_or_default(),
            other => unreachable!("{other} was checked against KFP_PARAMETERS"),
        }
    }

    fn write(&self, summary: &UpdateSummary) -> anyhow::Result<()> {
        for (name, path) in &self.parameters {
            write_file(path, &Self::parameter_text(name, summary))
                .with_context(|| format!("output parameter `{name}`"))?;
        }
        let Some(executor_output) = &self.executor_output else {
            return Ok(());
        };
        if self.metrics.is_empty() {
            return Ok(());
        }
        // Metrics are the artifact's metadata; KFP's own Python executor writes them the same way.
        let mut values = serde_json::Map::new();
        if let Some(lag) = summary.lag_seconds {
            values.insert("lag_seconds".into(), lag.into());
        }
        if let Some(bytes) = summary.bytes_transferred {
            values.insert("bytes_transferred".into(), bytes.into());
        }
        let artifacts: serde_json::Map<String, serde_json::Value> = self
            .metrics
            .iter()
            .map(|(output, name, uri)| {
                let artifact = serde_json::json!({"name": name, "uri": uri, "metadata": values});
                (output.clone(), serde_json::json!({"artifacts": [artifact]}))
            })
            .collect();
        let document = serde_json::json!({ "artifacts": artifacts });
        write_file(executor_output, &serde_json::to_string(&document)?)
            .context("the executor output (Metrics artifact)")
    }
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::OutputFormat;
    use crate::cli::Cli;
    use crate::cli::testing::parse;
    use crate::commands::Command;

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
        for (command_line, flag, reason) in [
            (
                "snapmirror update --hostname c1 --source s1:v1 --destination s2-v2",
                "--destination <SVM:VOL>",
                "no ':'",
            ),
            (
                "snapmirror status --hostname https://c1 --destination s2:v2",
                "--hostname",
                "without a scheme",
            ),
        ] {
            let args: Vec<&str> = command_line.split_whitespace().collect();
            let error = parse(&args).unwrap_err().to_string();
            assert!(
                error.contains(flag) && error.contains(reason),
                "{command_line}: {error}"
            );
        }
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
    fn if_busy_defaults_to_wait_and_takes_skip_and_fail() {
        assert_eq!(update_args(parse(BASE).unwrap()).if_busy, BusyPolicy::Wait);
        for (value, expected) in [("skip", BusyPolicy::Skip), ("fail", BusyPolicy::Fail)] {
            let mut args = BASE.to_vec();
            args.extend(["--if-busy", value]);
            assert_eq!(update_args(parse(&args).unwrap()).if_busy, expected);
        }
        let mut args = BASE.to_vec();
        args.extend(["--if-busy", "later"]);
        assert!(parse(&args).is_err());
    }

    fn status_args(args: &[&str]) -> Result<StatusArgs, clap::Error> {
        let mut all = vec![
            "snapmirror",
            "status",
            "--hostname",
            "c1",
            "--destination",
            "s2:v2",
        ];
        all.extend(args);
        parse(&all).map(|cli| match cli.command {
            Command::Snapmirror(SnapmirrorArgs {
                command: SnapmirrorCommand::Status(args),
                ..
            }) => *args,
            other => panic!("expected snapmirror status, got {other:?}"),
        })
    }

    #[test]
    fn fail_on_takes_a_list_or_repeats_and_names_a_bad_condition() {
        let args = status_args(&[
            "--fail-on",
            "unhealthy,lag=1h30m",
            "--fail-on",
            "state!=snapmirrored",
        ])
        .unwrap();
        let conditions: Vec<String> = args.fail_on.iter().map(ToString::to_string).collect();
        assert_eq!(conditions, ["unhealthy", "lag=1h30m", "state!=snapmirrored"]);
        assert!(status_args(&[]).unwrap().fail_on.is_empty());
        let error = status_args(&["--fail-on", "unhealthy,lagging"])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("--fail-on <CONDITION>") && error.contains("unhealthy, lag=DURATION"),
            "{error}"
        );
        let error = status_args(&["--fail-on", "lag=soon"]).unwrap_err().to_string();
        assert!(error.contains("invalid duration \"soon\""), "{error}");
        let error = status_args(&["--fail-on", "lag=1d"]).unwrap_err().to_string();
        assert!(error.contains("for days use ISO 8601, e.g. P1D"), "{error}");
        let args = status_args(&["--fail-on", "lag=P1DT12H"]).unwrap();
        assert_eq!(args.fail_on[0].to_string(), "lag=36h");
    }

    /// An executor input as KFP makes it (protobuf JSON, camelCase), with outputs under `root`.
    fn executor_input(root: &Path, parameters: &[&str], metrics: bool) -> String {
        let parameters: serde_json::Map<String, serde_json::Value> = parameters
            .iter()
            .map(|name| {
                let file = root.join("outputs").join(name).display().to_string();
                ((*name).to_owned(), serde_json::json!({ "outputFile": file }))
            })
            .collect();
        let mut outputs = serde_json::json!({
            "parameters": parameters,
            "outputFile": root.join("executor_output.json").display().to_string(),
        });
        if metrics {
            outputs["artifacts"] = serde_json::json!({"metrics": {"artifacts": [{
                "name": "metrics", "uri": "minio://bucket/run/metrics",
                "type": {"schemaTitle": "system.Metrics", "schemaVersion": "0.0.1"}
            }]}});
        }
        serde_json::json!({"inputs": {"parameterValues": {"x": "y"}}, "outputs": outputs}).to_string()
    }

    fn summary(result: UpdateResult) -> UpdateSummary {
        UpdateSummary {
            result,
            state: Some(tprotect_ontap::RelationshipState::Snapmirrored),
            healthy: Some(true),
            lag_time: Some("PT1M2S".into()),
            lag_seconds: Some(62),
            transfer_uuid: Some("t1".into()),
            bytes_transferred: Some(1_048_576),
            transfer_end_time: Some("2026-11-22T00:01:00+00:00".into()),
        }
    }

    #[test]
    fn kfp_outputs_go_to_the_declared_files_and_metrics_to_the_executor_output() {
        let dir = tempfile::tempdir().unwrap();
        let names = KFP_PARAMETERS;
        let outputs = KfpOutputs::parse(&executor_input(dir.path(), &names, true)).unwrap();
        outputs.write(&summary(UpdateResult::Updated)).unwrap();
        let read = |name: &str| std::fs::read_to_string(dir.path().join("outputs").join(name)).unwrap();
        assert_eq!(read("result"), "updated");
        assert_eq!(read("state"), "snapmirrored");
        assert_eq!(read("healthy"), "true");
        assert_eq!(read("lag_seconds"), "62");
        assert_eq!(read("bytes_transferred"), "1048576");
        assert_eq!(read("transfer_end_time"), "2026-11-22T00:01:00+00:00");
        assert_eq!(read("transfer_uuid"), "t1");
        let executor_output: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("executor_output.json")).unwrap())
                .unwrap();
        let artifact = &executor_output["artifacts"]["metrics"]["artifacts"][0];
        assert_eq!(artifact["uri"], "minio://bucket/run/metrics");
        assert_eq!(
            artifact["metadata"],
            serde_json::json!({"lag_seconds": 62, "bytes_transferred": 1048576})
        );
        assert!(
            executor_output.get("parameterValues").is_none(),
            "parameters are read from their files"
        );
    }

    #[test]
    fn kfp_outputs_say_unknown_with_documented_sentinels() {
        let dir = tempfile::tempdir().unwrap();
        let outputs = KfpOutputs::parse(&executor_input(dir.path(), &KFP_PARAMETERS, false)).unwrap();
        let silent = UpdateSummary {
            state: None,
            healthy: None,
            lag_time: None,
            lag_seconds: None,
            transfer_uuid: None,
            bytes_transferred: None,
            transfer_end_time: None,
            ..summary(UpdateResult::Updated)
        };
        outputs.write(&silent).unwrap();
        let read = |name: &str| std::fs::read_to_string(dir.path().join("outputs").join(name)).unwrap();
        assert_eq!(
            (read("lag_seconds"), read("bytes_transferred")),
            ("-1".into(), "-1".into())
        );
        assert_eq!(
            (read("state"), read("transfer_end_time")),
            (String::new(), String::new())
        );
        assert_eq!(read("healthy"), "false");
        assert!(
            !dir.path().join("executor_output.json").exists(),
            "no Metrics artifact declared"
        );
    }

    #[test]
    fn kfp_outputs_the_command_cannot_fill_are_refused_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let error =
            KfpOutputs::parse(&executor_input(dir.path(), &["state", "throughput"], false)).unwrap_err();
        assert!(
            error.contains("output parameter `throughput`") && error.contains("lag_seconds"),
            "{error}"
        );
        let mut input: serde_json::Value =
            serde_json::from_str(&executor_input(dir.path(), &[], true)).unwrap();
        input["outputs"]["artifacts"]["metrics"]["artifacts"][0]["type"]["schemaTitle"] =
            "system.Model".into();
        let error = KfpOutputs::parse(&input.to_string()).unwrap_err();
        assert!(error.contains("is a system.Model"), "{error}");
        let error = KfpOutputs::parse("{{$}}").unwrap_err();
        assert!(
            error.contains("not a Kubeflow Pipelines executor input"),
            "{error}"
        );
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "nothing written"
        );
    }

    #[test]
    fn bytes_format() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1_048_576), "1.0 MiB");
        assert_eq!(format_bytes(1536), "1.5 KiB");
    }
}
