//! What one admission review costs in process, whole and piece by piece (never shipped): the realistic
//! AppMirrorRelationship UPDATE review `cargo xtask bench webhook` sends ([`tprotect_webhook::testing`]),
//! driven through the admission router with `tower::ServiceExt::oneshot` on a current-thread runtime, next
//! to an axum router whose handler only reads the body (the no-op server's handler), and the parts of the
//! handler on their own.
//!
//! ```text
//! cargo run --release -p tprotect-webhook --example handler_cost [-- <iterations> [<piece>]]
//! ```
//!
//! With a piece name (`router`, `noop_router`, `parse`, `validate`, `encode`, `metrics`, `clock`) only that
//! piece runs, for a profiler.

use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::{Body, Bytes},
    http::{Request, StatusCode, header},
    response::IntoResponse,
    routing::post,
};
use tower::ServiceExt;
use tprotect_policy::Operation;
use tprotect_webhook::{
    AdmissionConfig, AmrCache, AppState, Metrics,
    admission::{Answer, PatchEncoding, VALIDATE_PATH, encode_review, parse_review},
    metrics::{Endpoint, EndpointLabels, RequestLabels},
    testing::amr_update_review,
};

const PIECES: [&str; 7] = [
    "router",
    "noop_router",
    "parse",
    "validate",
    "encode",
    "metrics",
    "clock",
];

fn main() {
    let mut args = std::env::args().skip(1);
    let iterations: u32 = args
        .next()
        .map_or(200_000, |n| n.parse().expect("iterations: a number"));
    let only = args.next();
    if let Some(piece) = &only {
        assert!(
            PIECES.contains(&piece.as_str()),
            "piece must be one of {PIECES:?}"
        );
    }
    let body = Bytes::from(serde_json::to_vec(&amr_update_review()).expect("review serialises"));
    println!("body: {} bytes, {iterations} iterations", body.len());
    for piece in PIECES {
        if only.as_deref().is_none_or(|only| only == piece) {
            let elapsed = run(piece, &body, iterations);
            println!(
                "{piece:>12}: {:>8.0} ns/request",
                elapsed.as_nanos() as f64 / f64::from(iterations)
            );
        }
    }
}

fn run(piece: &str, body: &Bytes, iterations: u32) -> Duration {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let metrics = Arc::new(Metrics::new());
    match piece {
        "router" => {
            let router = tprotect_webhook::router(AppState::new(
                AdmissionConfig::default(),
                AmrCache::from_objects([]),
                metrics,
            ));
            runtime.block_on(drive(router, body, iterations))
        }
        "noop_router" => {
            let router = Router::new().route(
                VALIDATE_PATH,
                post(|body: Bytes| async move {
                    black_box(body);
                    (
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, "application/json")],
                        r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"u","allowed":true}}"#,
                    )
                        .into_response()
                }),
            );
            runtime.block_on(drive(router, body, iterations))
        }
        "parse" => time(iterations, || {
            black_box(parse_review(black_box(body)).expect("a valid review"));
        }),
        "validate" => {
            let parsed = parse_review(body).expect("a valid review");
            let object = parsed.request.object.as_ref().expect("object");
            let old = parsed.request.old_object.as_ref();
            let now = jiff::Timestamp::now();
            time(iterations, || {
                let violations = tprotect_policy::validate_json(
                    black_box("AppMirrorRelationship"),
                    Operation::Update,
                    black_box(object),
                    old,
                    now,
                );
                assert!(violations.is_empty(), "{violations:?}");
            })
        }
        "encode" => {
            let answer = Answer::allow();
            time(iterations, || {
                black_box(
                    encode_review(
                        black_box("00000000-0000-4000-8000-000000000001"),
                        black_box(&answer),
                        PatchEncoding::Base64,
                    )
                    .expect("encodes"),
                );
            })
        }
        "metrics" => time(iterations, || {
            let started = Instant::now();
            metrics.in_flight.inc();
            metrics
                .requests
                .get_or_create(&RequestLabels {
                    webhook: Endpoint::validate,
                    kind: "AppMirrorRelationship",
                    operation: "UPDATE",
                    allowed: "true",
                })
                .inc();
            metrics
                .latency
                .get_or_create(&EndpointLabels {
                    webhook: Endpoint::validate,
                })
                .observe(started.elapsed().as_secs_f64());
            metrics.in_flight.dec();
            metrics.responses.inc();
        }),
        "clock" => time(iterations, || {
            black_box(jiff::Timestamp::now());
        }),
        _ => unreachable!("checked in main"),
    }
}

async fn drive(router: Router, body: &Bytes, iterations: u32) -> Duration {
    let call = || {
        let request = Request::post(VALIDATE_PATH)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.clone()))
            .expect("request");
        router.clone().oneshot(request)
    };
    // Warm up (first-use allocations, metric series creation).
    for _ in 0..1000 {
        let response = call().await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
    }
    let started = Instant::now();
    for _ in 0..iterations {
        let response = call().await.expect("infallible");
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        black_box(bytes);
    }
    started.elapsed()
}

fn time(iterations: u32, mut piece: impl FnMut()) -> Duration {
    for _ in 0..1000 {
        piece();
    }
    let started = Instant::now();
    for _ in 0..iterations {
        piece();
    }
    started.elapsed()
}
