//! A no-op admission server for `cargo xtask bench webhook` (never shipped): the same axum + rustls stack as
//! `tprotect-webhook` ([`tprotect_webhook::server::serve_https`], the same certificate loading and ALPN), but
//! its handler reads the request body and answers a fixed "allowed" AdmissionReview without looking at it. The
//! benchmark compares the webhook's throughput and latency with this floor.
//!
//! ```text
//! noop_admission_server --listen 127.0.0.1:8443 --tls-cert tls.crt --tls-key tls.key
//! ```

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context;
use axum::{
    Router,
    body::Bytes,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::post,
};
use clap::Parser;
use tprotect_webhook::{
    Metrics,
    admission::{MUTATE_PATH, VALIDATE_PATH},
    tls::{CertificateFiles, ReloadingCertificate},
};

/// The answer to every request: allowed, with a fixed uid.
const FIXED_REVIEW: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"00000000-0000-4000-8000-000000000001","allowed":true}}"#;

#[derive(Debug, Parser)]
#[command(about = "No-op AdmissionReview server (benchmark comparison only)")]
struct Args {
    #[arg(long)]
    listen: SocketAddr,
    #[arg(long)]
    tls_cert: PathBuf,
    #[arg(long)]
    tls_key: PathBuf,
}

/// Takes the body (so the request is read as the webhook reads it), answers the fixed review.
async fn fixed_review(body: Bytes) -> impl IntoResponse {
    // Keep the read from being optimised away.
    std::hint::black_box(body.len());
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        FIXED_REVIEW,
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tprotect_webhook::install_crypto_provider();
    let args = Args::parse();
    let files = CertificateFiles {
        cert: args.tls_cert,
        key: args.tls_key,
    };
    let certificate = ReloadingCertificate::load(files, Arc::new(Metrics::new()))?;
    let tls = certificate.server_config()?;
    let router = Router::new()
        .route(VALIDATE_PATH, post(fixed_review))
        .route(MUTATE_PATH, post(fixed_review));
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let handle = axum_server::Handle::new();
    let served = tprotect_webhook::server::serve_https(listener, tls, router, handle.clone())?;
    let Some(addr) = handle.listening().await else {
        return Err(served.await?.err().map_or_else(
            || anyhow::anyhow!("listener stopped before it started"),
            anyhow::Error::from,
        ));
    };
    eprintln!("no-op admission server listening on https://{addr}");
    tokio::select! {
        result = served => result??,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
