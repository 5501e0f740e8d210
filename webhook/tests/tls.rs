//! The serving certificate follows its files over real HTTPS on 127.0.0.1: plain file replacement, a
//! Kubernetes Secret volume's `..data` symlink swap, broken pairs ignored, and rotation under continuous load
//! with zero failed requests.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use common::*;
use tprotect_webhook::{
    Metrics, RunningServer,
    admission::VALIDATE_PATH,
    tls::{ReloadOutcome, ReloadingCertificate},
};

/// No periodic re-read during these tests: every reload they see came from a change notification.
const NO_TIMER: Duration = Duration::from_secs(3600);

fn rejected_reloads(metrics: &Metrics) -> bool {
    metrics
        .encode()
        .contains(r#"tprotect_webhook_certificate_reloads_total{result="rejected"}"#)
}

async fn serves(ca: &TestCa, server: &RunningServer, cert_pem: &str) -> bool {
    handshake(ca, server.https_addr(), &[b"http/1.1"]).await.0 == der_of(cert_pem)
}

/// Waits until `server` hands out `cert_pem` (it reloads on its own).
async fn until_serves(what: &str, ca: &TestCa, server: &RunningServer, cert_pem: &str) {
    eventually(what, async || serves(ca, server, cert_pem).await.then_some(()))
        .await
        .unwrap();
}

/// A CA, a directory for the certificate files, and the first pair it issued (`a`).
fn first_pair() -> (TestCa, tempfile::TempDir, (String, String)) {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let pair = ca.issue("a");
    (ca, dir, pair)
}

/// The server still answers a review (whatever its certificate went through); then it stops cleanly.
async fn answers_then_stops(ca: &TestCa, server: RunningServer) {
    post_review(&ca.https_client(), &server).await.unwrap();
    server.shutdown().await.unwrap();
}

async fn post_review(client: &reqwest::Client, server: &RunningServer) -> Result<(), String> {
    let review = Review::protect("Schedule", "CREATE", replication_schedule());
    let port = server.https_addr().port();
    let body = post_checked(client, port, VALIDATE_PATH, &review).await?;
    if body["response"]["allowed"] != true {
        return Err(format!("not allowed: {body}"));
    }
    Ok(())
}

#[tokio::test]
async fn replaced_files_are_served_and_broken_pairs_ignored() {
    let (ca, dir, (cert_a, key_a)) = first_pair();
    let files = plain_files(dir.path(), &cert_a, &key_a);
    let state = default_state();
    let metrics = state.metrics().clone();
    let server = start_server(files.clone(), state, NO_TIMER).await;
    assert!(serves(&ca, &server, &cert_a).await);
    post_review(&ca.https_client(), &server).await.unwrap();

    let (cert_b, key_b) = ca.issue("b");
    write(&files.cert, &cert_b);
    write(&files.key, &key_b);
    until_serves("certificate b served", &ca, &server, &cert_b).await;

    // Garbage where the certificate was: keep serving b.
    write(
        &files.cert,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
    );
    eventually("broken certificate rejected", async || {
        rejected_reloads(&metrics).then_some(())
    })
    .await
    .unwrap();
    assert!(
        serves(&ca, &server, &cert_b).await,
        "a broken certificate must not replace a working one"
    );
    post_review(&ca.https_client(), &server).await.unwrap();

    // A valid certificate whose key is not the one on disk: keep serving b.
    let before = metrics.encode();
    let (cert_c, key_c) = ca.issue("c");
    write(&files.cert, &cert_c);
    eventually("mismatched pair rejected", async || {
        (metrics.encode() != before).then_some(())
    })
    .await
    .unwrap();
    assert!(
        serves(&ca, &server, &cert_b).await,
        "a certificate without its key must not be served"
    );

    // The key arrives: c is served.
    write(&files.key, &key_c);
    until_serves("certificate c served", &ca, &server, &cert_c).await;
    answers_then_stops(&ca, server).await;
}

#[tokio::test]
async fn secret_volume_symlink_swap_is_followed() {
    let (ca, dir, (cert_a, key_a)) = first_pair();
    let mut volume = SecretVolume::new(dir.path(), &cert_a, &key_a);
    let state = default_state();
    let metrics = state.metrics().clone();
    let server = start_server(volume.files(), state, NO_TIMER).await;
    assert!(serves(&ca, &server, &cert_a).await);

    let (cert_b, key_b) = ca.issue("b");
    volume.update(&cert_b, &key_b);
    until_serves(
        "certificate b served after the ..data swap",
        &ca,
        &server,
        &cert_b,
    )
    .await;

    // A Secret updated with a key that does not match: keep b.
    let (_, key_other) = ca.issue("other");
    let (cert_c, key_c) = ca.issue("c");
    volume.update(&cert_c, &key_other);
    eventually("mismatched Secret rejected", async || {
        rejected_reloads(&metrics).then_some(())
    })
    .await
    .unwrap();
    assert!(serves(&ca, &server, &cert_b).await);

    volume.update(&cert_c, &key_c);
    until_serves("certificate c served", &ca, &server, &cert_c).await;
    answers_then_stops(&ca, server).await;
}

#[test]
fn reload_outcomes() {
    tprotect_webhook::install_crypto_provider();
    let (ca, dir, (cert_a, key_a)) = first_pair();
    let files = plain_files(dir.path(), &cert_a, &key_a);
    let certificate = ReloadingCertificate::load(files.clone(), Arc::new(Metrics::new())).unwrap();
    assert!(matches!(certificate.reload(), ReloadOutcome::Unchanged));

    let (cert_b, key_b) = ca.issue("b");
    write(&files.cert, &cert_b);
    write(&files.key, &key_b);
    assert!(matches!(certificate.reload(), ReloadOutcome::Loaded));
    assert_eq!(certificate.current_leaf().unwrap().to_vec(), der_of(&cert_b));
    assert!(matches!(certificate.reload(), ReloadOutcome::Unchanged));

    write(&files.key, "");
    assert!(matches!(certificate.reload(), ReloadOutcome::Rejected(_)));
    std::fs::remove_file(&files.cert).unwrap();
    assert!(matches!(
        certificate.reload(),
        ReloadOutcome::Rejected(tprotect_webhook::Error::ReadFile { .. })
    ));
    assert_eq!(certificate.current_leaf().unwrap().to_vec(), der_of(&cert_b));

    // The first load has nothing to fall back on: it fails.
    let broken = plain_files(dir.path(), "junk", "junk");
    assert!(ReloadingCertificate::load(broken, Arc::new(Metrics::new())).is_err());
}

/// A rotation between the initial load and the watch being set up sends no notification the watch can see;
/// the watch still serves the new pair (it reloads once as it starts), without waiting for the timer.
#[tokio::test]
async fn a_change_before_the_watch_starts_is_not_missed() {
    tprotect_webhook::install_crypto_provider();
    let (ca, dir, (cert_a, key_a)) = first_pair();
    let mut volume = SecretVolume::new(dir.path(), &cert_a, &key_a);
    let certificate = Arc::new(ReloadingCertificate::load(volume.files(), Arc::new(Metrics::new())).unwrap());
    let (cert_b, key_b) = ca.issue("b");
    volume.update(&cert_b, &key_b);
    let cancel = tokio_util::sync::CancellationToken::new();
    let watch = tokio::spawn(certificate.clone().watch(NO_TIMER, cancel.clone()));
    let expected = der_of(&cert_b);
    eventually(
        "the pair written before the watch started is served",
        async || {
            let leaf = certificate.current_leaf()?;
            (leaf.to_vec() == expected).then_some(())
        },
    )
    .await
    .unwrap();
    cancel.cancel();
    watch.await.unwrap();
}

#[tokio::test]
async fn alpn_offers_h2_and_http1() {
    let (ca, dir, (cert, key)) = first_pair();
    let server = start_server(plain_files(dir.path(), &cert, &key), default_state(), NO_TIMER).await;
    let (_, alpn) = handshake(&ca, server.https_addr(), &[b"h2", b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let (_, alpn) = handshake(&ca, server.https_addr(), &[b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn readiness_and_metrics_on_the_plain_port() {
    let (ca, dir, (cert, key)) = first_pair();
    let server = start_server(plain_files(dir.path(), &cert, &key), default_state(), NO_TIMER).await;
    let plain = reqwest::Client::new();
    let base = format!("http://{}", server.health_addr());
    let ready = plain.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        plain.get(format!("{base}/livez")).send().await.unwrap().status(),
        200
    );
    post_review(&ca.https_client(), &server).await.unwrap();
    let metrics = plain.get(format!("{base}/metrics")).send().await.unwrap();
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(r#"webhook="validate",kind="Schedule",operation="CREATE",allowed="true"} 1"#),
        "{text}"
    );
    // The admission port does not serve plain HTTP, and the plain port does not serve admission.
    assert!(
        plain
            .get(format!("http://{}/readyz", server.https_addr()))
            .send()
            .await
            .is_err()
    );
    let wrong = plain
        .post(format!("{base}{VALIDATE_PATH}"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 404);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_continuous_load_fails_no_request() {
    const ROTATIONS: usize = 12;
    const CLIENTS: usize = 6;
    let ca = Arc::new(TestCa::new());
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.issue("rotation-0");
    let mut volume = SecretVolume::new(dir.path(), &cert, &key);
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = plain_files(plain_dir.path(), &cert, &key);
    // Two servers: one on a Secret volume (atomic swaps), one on plain files rewritten in place (a window
    // where the certificate is new and the key old).
    let volume_server = Arc::new(start_server(volume.files(), default_state(), NO_TIMER).await);
    let plain_server =
        Arc::new(start_server(plain.clone(), default_state(), Duration::from_millis(200)).await);

    let stop = Arc::new(AtomicBool::new(false));
    let succeeded = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let server = if i % 2 == 0 {
            volume_server.clone()
        } else {
            plain_server.clone()
        };
        // Half the clients open a new TLS connection for every request, so handshakes meet every rotation.
        let client = if i % 4 < 2 {
            reqwest::Client::builder()
                .use_preconfigured_tls((*ca.client_config(&[b"http/1.1"])).clone())
                .pool_max_idle_per_host(0)
                .build()
                .unwrap()
        } else {
            ca.https_client()
        };
        let (stop, succeeded) = (stop.clone(), succeeded.clone());
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match post_review(&client, &server).await {
                    Ok(()) => {
                        succeeded.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => failures.push(error),
                }
            }
            failures
        }));
    }

    for rotation in 1..=ROTATIONS {
        let (cert, key) = ca.issue(&format!("rotation-{rotation}"));
        volume.update(&cert, &key);
        write(&plain.cert, &cert);
        write(&plain.key, &key);
        until_serves("volume server rotated", &ca, &volume_server, &cert).await;
        until_serves("plain server rotated", &ca, &plain_server, &cert).await;
        // Let load run on each certificate.
        let target = succeeded.load(Ordering::Relaxed) + 20;
        eventually("requests on the new certificate", async || {
            (succeeded.load(Ordering::Relaxed) >= target).then_some(())
        })
        .await
        .unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for client in clients {
        failures.extend(client.await.unwrap());
    }
    let total = succeeded.load(Ordering::Relaxed);
    eprintln!(
        "certificate rotation under load: {ROTATIONS} rotations, {total} requests succeeded, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} requests failed during rotation: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(total >= (ROTATIONS * 20) as u64);
    for server in [volume_server, plain_server] {
        Arc::into_inner(server).unwrap().shutdown().await.unwrap();
    }
}
