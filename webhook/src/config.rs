//! Command line and environment. Every `serve` flag can also be set by the environment variable shown in
//! `--help`; the five `RESTORE_*` variables are the ones Trident protect's own controller reads, so the same
//! ConfigMap (`trident-protect-env-config`) can feed both.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};
use tprotect_policy::namespace::SkipRules;

use crate::{
    Error, Result,
    admission::{AdmissionConfig, PatchEncoding},
    limits::Limits,
    server::ServerConfig,
    telemetry::LogFormat,
    tls::CertificateFiles,
};

const MIB: usize = 1024 * 1024;

/// Parses `500ms`, `30s`, `2m`, `1h30m` (or ISO 8601 `PT30S`) into a non-negative duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let signed: jiff::SignedDuration = text
        .trim()
        .parse()
        .map_err(|e| format!("invalid duration {text:?}: {e}"))?;
    Duration::try_from(signed).map_err(|_| format!("duration {text:?} must not be negative"))
}

#[derive(Debug, Parser)]
#[command(
    name = "tprotect-webhook",
    version,
    about = "Admission webhook for Trident protect replication resources",
    long_about = "Validates Trident protect replication resources (refusing what would break replication, with \
                  the field, the rule and the fix), fills replication Schedule defaults, and keeps the \
                  namespace labels and annotations an operator protects from being overwritten by a restore \
                  or failover."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the admission webhook (HTTPS) and its probes and metrics (plain HTTP).
    Serve(Box<ServeArgs>),
    /// Write a self-signed CA and a serving certificate (for clusters without cert-manager); prints the
    /// caBundle for the webhook configurations.
    GenCerts(GenCertsArgs),
    /// Sleep, then exit 0: a preStop hook for images without a shell or `sleep`, so that endpoints are
    /// removed before the container gets SIGTERM.
    PreStop(PreStopArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address of the HTTPS admission listener.
    #[arg(long, env = "TPROTECT_WEBHOOK_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,

    /// Address of the plain-HTTP listener for /livez, /readyz and /metrics.
    #[arg(long, env = "TPROTECT_WEBHOOK_HEALTH_LISTEN", default_value = "0.0.0.0:8080")]
    pub health_listen: SocketAddr,

    /// PEM certificate chain (leaf first) served over HTTPS; reloaded when it changes.
    #[arg(
        long,
        env = "TPROTECT_WEBHOOK_TLS_CERT",
        default_value = "/etc/tprotect-webhook/tls/tls.crt"
    )]
    pub tls_cert: PathBuf,

    /// PEM private key of the serving certificate; reloaded when it changes.
    #[arg(
        long,
        env = "TPROTECT_WEBHOOK_TLS_KEY",
        default_value = "/etc/tprotect-webhook/tls/tls.key"
    )]
    pub tls_key: PathBuf,

    /// Re-read the certificate and key this often, even without a change notification.
    #[arg(long, env = "TPROTECT_WEBHOOK_TLS_RELOAD_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub tls_reload_interval: Duration,

    /// After SIGTERM or SIGINT, keep serving this long (not ready; HTTP/1.1 responses say
    /// `Connection: close`) before closing the listener.
    #[arg(long, env = "TPROTECT_WEBHOOK_SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,

    /// Once the listener is closed, wait at most this long for requests in progress.
    #[arg(long, env = "TPROTECT_WEBHOOK_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Most HTTPS connections open at once; one more is closed as soon as it is accepted.
    #[arg(long, env = "TPROTECT_WEBHOOK_MAX_CONNECTIONS", default_value_t = Limits::default().max_connections)]
    pub max_connections: usize,

    /// Memory all requests in progress may hold at once, in MiB: bodies and the work of reviewing them
    /// (each request reserves 4 bytes per body byte + 64 KiB). 8 MiB of it is kept for small requests. Must
    /// hold the largest request (about 33 MiB for a 7 MiB body).
    #[arg(long, env = "TPROTECT_WEBHOOK_REQUEST_MEMORY_MIB", default_value_t = Limits::default().memory_budget_bytes / MIB)]
    pub request_memory_mib: usize,

    /// Time for the TLS handshake, and for a request's head from its first byte.
    #[arg(long, env = "TPROTECT_WEBHOOK_HEADER_READ_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// Time for a request's body from its complete head.
    #[arg(long, env = "TPROTECT_WEBHOOK_BODY_READ_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,

    /// A connection with no request in progress for this long is closed (HTTP/2: GOAWAY).
    #[arg(long, env = "TPROTECT_WEBHOOK_IDLE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// User names of the Trident protect controller: only their Namespace writes are held to the restore
    /// skip rules. Comma-separated in the environment variable.
    #[arg(
        long = "controller-username",
        env = "TPROTECT_WEBHOOK_CONTROLLER_USERNAMES",
        value_delimiter = ',',
        default_value = tprotect_api::TRIDENT_CONTROLLER_USERNAME
    )]
    pub controller_usernames: Vec<String>,

    #[command(flatten)]
    pub restore: RestoreVars,

    /// Kubeconfig for the AppMirrorRelationship watch (default: in-cluster, else $KUBECONFIG or
    /// ~/.kube/config).
    #[arg(long, env = "TPROTECT_WEBHOOK_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context for the AppMirrorRelationship watch.
    #[arg(long, env = "TPROTECT_WEBHOOK_CONTEXT")]
    pub context: Option<String>,

    /// Do not watch AppMirrorRelationships (the namespace `name` label is then never remapped).
    #[arg(long, env = "TPROTECT_WEBHOOK_NO_AMR_WATCH")]
    pub no_amr_watch: bool,

    /// How JSON Patches are encoded in responses.
    #[arg(
        long,
        env = "TPROTECT_WEBHOOK_PATCH_ENCODING",
        value_enum,
        default_value = "base64"
    )]
    pub patch_encoding: PatchEncoding,

    /// Log format (the level comes from RUST_LOG, default info).
    #[arg(long, env = "TPROTECT_WEBHOOK_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Trident protect's namespace restore rules, under the variable names its controller reads.
#[derive(Debug, Clone, Default, Args)]
pub struct RestoreVars {
    /// Namespace annotation keys a restore or failover must not overwrite (comma-separated).
    #[arg(long, env = "RESTORE_SKIP_NAMESPACE_ANNOTATIONS")]
    pub restore_skip_namespace_annotations: Option<String>,
    /// Namespace label keys a restore or failover must not overwrite (comma-separated).
    #[arg(long, env = "RESTORE_SKIP_NAMESPACE_LABELS")]
    pub restore_skip_namespace_labels: Option<String>,
    /// Namespace annotation keys always restored, overriding the skip lists (comma-separated).
    #[arg(long, env = "RESTORE_FORCE_NAMESPACE_ANNOTATIONS")]
    pub restore_force_namespace_annotations: Option<String>,
    /// "true": a restore or failover changes no namespace annotation (except forced ones).
    #[arg(long, env = "RESTORE_SKIP_ALL_NAMESPACE_ANNOTATIONS")]
    pub restore_skip_all_namespace_annotations: Option<String>,
    /// "true": a restore or failover changes no namespace label.
    #[arg(long, env = "RESTORE_SKIP_ALL_NAMESPACE_LABELS")]
    pub restore_skip_all_namespace_labels: Option<String>,
}

impl RestoreVars {
    /// The value of a `RESTORE_*` variable, by its name.
    pub fn lookup(&self, variable: &str) -> Option<String> {
        use tprotect_policy::namespace as ns;
        match variable {
            ns::SKIP_ANNOTATIONS_VAR => self.restore_skip_namespace_annotations.clone(),
            ns::SKIP_LABELS_VAR => self.restore_skip_namespace_labels.clone(),
            ns::FORCE_ANNOTATIONS_VAR => self.restore_force_namespace_annotations.clone(),
            ns::SKIP_ALL_ANNOTATIONS_VAR => self.restore_skip_all_namespace_annotations.clone(),
            ns::SKIP_ALL_LABELS_VAR => self.restore_skip_all_namespace_labels.clone(),
            _ => None,
        }
    }

    /// The skip rules, parsed by the policy crate (the single reading of these variables).
    pub fn skip_rules(&self) -> Result<SkipRules> {
        SkipRules::from_vars(|variable| self.lookup(variable)).map_err(|e| Error::Config(e.to_string()))
    }
}

impl ServeArgs {
    pub fn server_config(&self) -> ServerConfig {
        ServerConfig {
            listen: self.listen,
            health_listen: self.health_listen,
            certificate: CertificateFiles {
                cert: self.tls_cert.clone(),
                key: self.tls_key.clone(),
            },
            certificate_reload_interval: self.tls_reload_interval,
            shutdown_delay: self.shutdown_delay,
            shutdown_timeout: self.shutdown_timeout,
            limits: Limits {
                max_connections: self.max_connections,
                memory_budget_bytes: self.request_memory_mib.saturating_mul(MIB),
                header_read_timeout: self.header_read_timeout,
                body_read_timeout: self.body_read_timeout,
                idle_timeout: self.idle_timeout,
                ..Limits::default()
            },
        }
    }

    pub fn admission_config(&self) -> Result<AdmissionConfig> {
        let controller_usernames: Vec<String> = self
            .controller_usernames
            .iter()
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty())
            .collect();
        Ok(AdmissionConfig {
            controller_usernames,
            skip_rules: self.restore.skip_rules()?,
            patch_encoding: self.patch_encoding,
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct GenCertsArgs {
    /// Directory to write ca.crt, tls.crt, tls.key and ca-bundle (the caBundle) into, created if missing.
    #[arg(long)]
    pub out_dir: PathBuf,
    /// Name of the webhook's Service.
    #[arg(long, default_value = "tprotect-webhook")]
    pub service: String,
    /// Namespace of the webhook's Service.
    #[arg(long, default_value = "tprotect-system")]
    pub namespace: String,
    /// Extra DNS name for the serving certificate (repeatable).
    #[arg(long = "dns")]
    pub dns_names: Vec<String>,
    /// IP address for the serving certificate (repeatable), e.g. 127.0.0.1 for a webhook registered by URL.
    #[arg(long = "ip")]
    pub ip_addresses: Vec<std::net::IpAddr>,
    /// Validity of the serving certificate in days (the CA gets a year more).
    #[arg(long, default_value_t = 365)]
    pub valid_days: i64,
}

impl GenCertsArgs {
    /// Every name the serving certificate carries.
    pub fn names(&self) -> Vec<String> {
        let mut names = crate::certs::service_dns_names(&self.service, &self.namespace);
        names.extend(self.dns_names.iter().cloned());
        names.extend(self.ip_addresses.iter().map(ToString::to_string));
        names
    }
}

#[derive(Debug, Clone, Args)]
pub struct PreStopArgs {
    /// How long to sleep.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub delay: Duration,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("PT2S"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn serve_flags_build_the_configs() {
        let cli = Cli::try_parse_from([
            "tprotect-webhook",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--controller-username",
            "a, b",
            "--controller-username",
            "c",
            "--restore-skip-namespace-annotations",
            "annotation.one/key",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("expected serve")
        };
        assert_eq!(args.listen, "127.0.0.1:0".parse().unwrap());
        let admission = args.admission_config().unwrap();
        assert_eq!(admission.controller_usernames, ["a", "b", "c"]);
        assert_eq!(
            args.restore
                .lookup("RESTORE_SKIP_NAMESPACE_ANNOTATIONS")
                .as_deref(),
            Some("annotation.one/key")
        );
        assert_eq!(args.restore.lookup("RESTORE_SKIP_NAMESPACE_LABELS"), None);
        assert_eq!(
            args.server_config().certificate_reload_interval,
            Duration::from_secs(30)
        );
    }

    #[test]
    fn limit_flags_default_to_the_library_defaults() {
        let cli = Cli::try_parse_from(["tprotect-webhook", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("expected serve")
        };
        // The test environment might set the variables; only check when it does not.
        if std::env::vars().all(|(name, _)| !name.starts_with("TPROTECT_WEBHOOK_")) {
            assert_eq!(args.server_config().limits, Limits::default());
        }
        let cli = Cli::try_parse_from([
            "tprotect-webhook",
            "serve",
            "--idle-timeout=30s",
            "--request-memory-mib=64",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("expected serve")
        };
        let limits = args.server_config().limits;
        assert_eq!(limits.idle_timeout, Duration::from_secs(30));
        assert_eq!(limits.memory_budget_bytes, 64 * MIB);
    }

    #[test]
    fn controller_username_defaults_to_trident() {
        let cli = Cli::try_parse_from(["tprotect-webhook", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("expected serve")
        };
        // The test environment might set the variable; only check when it does not.
        if std::env::var_os("TPROTECT_WEBHOOK_CONTROLLER_USERNAMES").is_none() {
            assert_eq!(
                args.controller_usernames,
                [tprotect_api::TRIDENT_CONTROLLER_USERNAME]
            );
        }
    }

    #[test]
    fn gen_certs_names() {
        let cli = Cli::try_parse_from([
            "tprotect-webhook",
            "gen-certs",
            "--out-dir",
            "/tmp/x",
            "--ip",
            "127.0.0.1",
        ])
        .unwrap();
        let Command::GenCerts(args) = cli.command else {
            panic!("expected gen-certs")
        };
        let names = args.names();
        assert!(names.contains(&"tprotect-webhook.tprotect-system.svc".to_string()));
        assert!(names.contains(&"127.0.0.1".to_string()));
    }
}
