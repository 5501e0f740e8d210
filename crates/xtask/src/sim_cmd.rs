//! `cargo xtask sim`: runs the Trident protect STAND-IN controller (`crates/standin`, for tests and the demo only)
//! against the clusters of `cargo xtask up`, under the controller's identity, until Ctrl-C.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tprotect_standin::{Profile, StandIn, StandInConfig};

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Recurrences run this many times faster than real time (60: a 5-minute interval passes in 5 seconds)
    #[arg(long, default_value_t = 60.0)]
    time_scale: f64,
    /// How long every transition takes, in milliseconds (Establishing → Established, Promoting → Promoted, …)
    #[arg(long, default_value_t = 2000)]
    delay_ms: u64,
    /// Which plausible form of each field NetApp leaves undocumented the stand-in writes: `documented` (what
    /// NetApp shows) or `variant` (the other plausible form; see docs/trident-protect-fields.md)
    /// [default: $TPROTECT_STANDIN_PROFILE, else documented]
    #[arg(long)]
    profile: Option<Profile>,
    /// Kubeconfig with the contexts tprotect-source-controller and tprotect-destination-controller
    /// [default: the one `cargo xtask up` wrote]
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

const SOURCE: &str = "tprotect-source";
const DESTINATION: &str = "tprotect-destination";

async fn controller_client(
    kubeconfig: &kube::config::Kubeconfig,
    cluster: &str,
) -> anyhow::Result<kube::Client> {
    crate::cluster_cmds::kube_client(kubeconfig, &format!("{cluster}-controller")).await
}

pub fn run(args: SimArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never)
        .init();
    let path = args
        .kubeconfig
        .unwrap_or_else(|| crate::cluster_cmds::up_dir().join("kubeconfig"));
    anyhow::ensure!(
        path.is_file(),
        "{} does not exist: start the clusters with `cargo xtask up` first",
        path.display()
    );
    let kubeconfig =
        kube::config::Kubeconfig::read_from(&path).with_context(|| format!("reading {}", path.display()))?;
    let profile = match args.profile {
        Some(profile) => profile,
        None => Profile::from_env()?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let standin = StandIn::new(
            controller_client(&kubeconfig, SOURCE).await?,
            controller_client(&kubeconfig, DESTINATION).await?,
            StandInConfig {
                time_scale: args.time_scale,
                source_name: SOURCE.into(),
                destination_name: DESTINATION.into(),
                profile,
                ..StandInConfig::default()
            }
            .with_delays(Duration::from_millis(args.delay_ms)),
        );
        eprintln!(
            "Trident protect STAND-IN (tests and demo only) on {SOURCE} and {DESTINATION}, time scale {}x, \
             transitions {} ms, profile {profile}; Ctrl-C stops it",
            args.time_scale, args.delay_ms
        );
        standin
            .run(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await;
        anyhow::Ok(())
    })
}
