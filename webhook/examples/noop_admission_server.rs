//! A no-op admission server for `cargo xtask bench webhook` (never shipped): the same hyper + rustls stack as
//! `tprotect-webhook` ([`tprotect_webhook::server::HttpsServer`]: the same certificate loading and ALPN, the
//! same limits, the body read whole within its memory budget before the router sees it), but
//! its handler reads the request body and answers a fixed "allowed" AdmissionReview without looking at it. The
//! benchmark compares the webhook's throughput and latency with this floor.
//!
//! `--parse` makes it do the least any webhook must do with a review before answering, so the benchmark can
//! show how much of the webhook's cost is reading JSON at all: `syntax` checks the body is JSON (serde_json
//! into `IgnoredAny`, nothing allocated), `value` parses it into a `serde_json::Value` and drops it, `uid`
//! reads only `request.uid` and echoes it, which a real API server requires: that mode can be registered as a
//! webhook, so the benchmark can measure what calling any webhook costs the API server.
//!
//! `--count-listen` serves the number of reviews answered on plain HTTP (`GET /count`), so the benchmark can
//! see when the API server starts and stops calling it.
//!
//! ```text
//! noop_admission_server --listen 127.0.0.1:8443 --tls-cert tls.crt --tls-key tls.key [--parse syntax]
//!     [--count-listen 127.0.0.1:8080]
//! ```

use std::{
    borrow::Cow,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use anyhow::Context;
use axum::{
    Router,
    body::Bytes,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::{get, post},
};
use clap::Parser;
use tprotect_webhook::{
    Limits, Metrics,
    admission::{MUTATE_PATH, VALIDATE_PATH},
    limits::MemoryBudget,
    server::HttpsServer,
    tls::{CertificateFiles, ReloadingCertificate},
};

/// The answer to every request: allowed, with a fixed uid.
const FIXED_REVIEW: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"00000000-0000-4000-8000-000000000001","allowed":true}}"#;

/// Reviews answered so far (served by `--count-listen`).
static ANSWERED: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Parser)]
#[command(about = "No-op AdmissionReview server (benchmark comparison only)")]
struct Args {
    #[arg(long)]
    listen: SocketAddr,
    #[arg(long)]
    tls_cert: PathBuf,
    #[arg(long)]
    tls_key: PathBuf,
    /// What to do with the body before answering.
    #[arg(long, value_enum, default_value_t = Parse::None)]
    parse: Parse,
    /// Plain-HTTP address serving `GET /count`, the number of reviews answered.
    #[arg(long)]
    count_listen: Option<SocketAddr>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Parse {
    /// Nothing: read it and answer.
    None,
    /// Check it is JSON, allocating nothing.
    Syntax,
    /// Parse it into a `serde_json::Value`.
    Value,
    /// Read `request.uid` only and answer with it: what an API server accepts.
    Uid,
}

/// The one field of a review the `uid` mode reads; serde skips the rest without allocating.
#[derive(serde::Deserialize)]
struct UidOnly<'a> {
    #[serde(borrow)]
    request: UidRequest<'a>,
}

#[derive(serde::Deserialize)]
struct UidRequest<'a> {
    #[serde(borrow)]
    uid: Cow<'a, str>,
}

/// Takes the body (so the request is read as the webhook reads it), parses it as `parse` says, answers the
/// fixed review, or in `uid` mode the same with the request's uid (HTTP 400 if the body had to be JSON and was
/// not).
fn fixed_review(parse: Parse, body: &Bytes) -> axum::response::Response {
    let parsed = match parse {
        // Keep the read from being optimised away.
        Parse::None => Ok(std::hint::black_box(body.len()) > 0),
        Parse::Syntax => serde_json::from_slice::<serde::de::IgnoredAny>(body).map(|_| true),
        Parse::Value => {
            serde_json::from_slice::<serde_json::Value>(body).map(|v| std::hint::black_box(v).is_object())
        }
        Parse::Uid => {
            return match serde_json::from_slice::<UidOnly>(body) {
                Ok(review) => {
                    let answer = serde_json::json!({
                        "apiVersion": "admission.k8s.io/v1",
                        "kind": "AdmissionReview",
                        "response": {"uid": review.request.uid, "allowed": true}
                    });
                    ([(header::CONTENT_TYPE, "application/json")], answer.to_string()).into_response()
                }
                Err(_) => StatusCode::BAD_REQUEST.into_response(),
            };
        }
    };
    let status = if parsed.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    (status, [(header::CONTENT_TYPE, "application/json")], FIXED_REVIEW).into_response()
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
    let parse = args.parse;
    let answer = move |body: Bytes| async move {
        ANSWERED.fetch_add(1, Ordering::Relaxed);
        fixed_review(parse, &body)
    };
    if let Some(count_listen) = args.count_listen {
        let listener = tokio::net::TcpListener::bind(count_listen)
            .await
            .with_context(|| format!("cannot listen on {count_listen}"))?;
        let count = Router::new().route(
            "/count",
            get(|| async { ANSWERED.load(Ordering::Relaxed).to_string() }),
        );
        tokio::spawn(async move { axum::serve(listener, count).await });
    }
    let router = Router::new()
        .route(VALIDATE_PATH, post(answer))
        .route(MUTATE_PATH, post(answer));
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let limits = Limits::default();
    let budget = MemoryBudget::new(&limits);
    let server = HttpsServer::start(listener, tls, router, limits, budget, Arc::new(Metrics::new()))?;
    eprintln!(
        "no-op admission server listening on https://{}",
        server.local_addr()
    );
    tokio::signal::ctrl_c().await?;
    server.shutdown(std::time::Duration::from_secs(5)).await;
    Ok(())
}
