//! `tprotect-webhook`: a thin shell over the library (flags in, server out).

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tprotect_webhook::{
    AmrCache, AppState, Metrics, Server, amr_cache, certs,
    config::{Cli, Command, GenCertsArgs, ServeArgs},
    telemetry,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tprotect_webhook::install_crypto_provider();
    match Cli::parse().command {
        Command::Serve(args) => serve(*args).await,
        Command::GenCerts(args) => gen_certs(&args),
        Command::PreStop(args) => {
            tokio::time::sleep(args.delay).await;
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format);
    let metrics = Arc::new(Metrics::new());
    let admission = args.admission_config()?;
    let background = CancellationToken::new();
    let amr_cache = if args.no_amr_watch {
        tracing::warn!("AppMirrorRelationship watch disabled: the namespace `name` label is never remapped");
        AmrCache::disabled()
    } else {
        let client = amr_cache::kube_client(args.kubeconfig.as_deref(), args.context.as_deref())
            .await
            .context("cannot build the Kubernetes client for the AppMirrorRelationship watch")?;
        let cache = AmrCache::spawn(client, metrics.amr_cache.clone(), background.clone());
        metrics.export_amrs(cache.clone());
        cache
    };
    let state = AppState::new(admission, amr_cache, metrics);
    let running = Server::new(args.server_config(), state).start().await?;
    let result = running.run_until(shutdown_signal()).await;
    background.cancel();
    Ok(result?)
}

/// Resolves on SIGTERM (the kubelet stopping the pod) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM; only Ctrl-C will stop the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("received SIGTERM"),
        _ = tokio::signal::ctrl_c() => tracing::info!("received SIGINT"),
    }
}

fn gen_certs(args: &GenCertsArgs) -> anyhow::Result<()> {
    let names = args.names();
    let generated = certs::generate(&names, args.valid_days, jiff::Timestamp::now())?;
    let written = certs::write_files(&args.out_dir, &generated)?;
    for path in &written {
        eprintln!("wrote {}", path.display());
    }
    eprintln!("serving certificate for: {}", names.join(", "));
    eprintln!(
        "caBundle for the webhook configurations (in {}, and printed on stdout):",
        args.out_dir.join(certs::CA_BUNDLE_FILE).display()
    );
    println!("{}", generated.ca_bundle());
    Ok(())
}
