//! Shared test fixtures: AdmissionReview builders, resource fixtures, certificates, HTTPS clients, servers.
#![allow(dead_code)]

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use http_body_util::BodyExt;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
use serde_json::{Value, json};
use tower::ServiceExt;
use tprotect_webhook::{
    AdmissionConfig, AmrCache, AppState, Metrics, RunningServer, Server, ServerConfig, admission::Clock,
    tls::CertificateFiles,
};

pub const NOW: &str = "2025-01-07T12:25:48Z";
pub const CONTROLLER: &str = "system:serviceaccount:trident-protect:trident-protect-controller-manager";

pub fn fixed_clock() -> Clock {
    let now: jiff::Timestamp = NOW.parse().unwrap();
    Arc::new(move || now)
}

pub fn state(config: AdmissionConfig, cache: AmrCache) -> AppState {
    tprotect_webhook::install_crypto_provider();
    AppState::with_clock(config, cache, Arc::new(Metrics::new()), fixed_clock())
}

pub fn default_state() -> AppState {
    state(AdmissionConfig::default(), AmrCache::from_objects([]))
}

/// An AdmissionReview v1 request.
#[derive(Clone, Debug)]
pub struct Review {
    pub uid: String,
    pub group: String,
    pub kind: String,
    pub resource: String,
    pub operation: String,
    pub namespace: Option<String>,
    pub name: String,
    pub username: String,
    pub object: Option<Value>,
    pub old_object: Option<Value>,
}

impl Review {
    pub fn protect(kind: &str, operation: &str, object: Value) -> Self {
        let resource = format!("{}s", kind.to_lowercase());
        Self {
            uid: uuid(),
            group: "protect.trident.netapp.io".into(),
            kind: kind.into(),
            resource,
            operation: operation.into(),
            namespace: object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .map(str::to_string),
            name: object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            username: "alice".into(),
            object: Some(object),
            old_object: None,
        }
    }

    pub fn namespace(operation: &str, object: Value, old: Option<Value>, username: &str) -> Self {
        Self {
            uid: uuid(),
            group: String::new(),
            kind: "Namespace".into(),
            resource: "namespaces".into(),
            operation: operation.into(),
            namespace: None,
            name: object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            username: username.into(),
            object: Some(object),
            old_object: old,
        }
    }

    pub fn with_old(mut self, old: Value) -> Self {
        self.old_object = Some(old);
        self
    }

    pub fn to_json(&self) -> Value {
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": self.uid,
                "kind": {"group": self.group, "version": "v1", "kind": self.kind},
                "resource": {"group": self.group, "version": "v1", "resource": self.resource},
                "requestKind": {"group": self.group, "version": "v1", "kind": self.kind},
                "requestResource": {"group": self.group, "version": "v1", "resource": self.resource},
                "name": self.name,
                "namespace": self.namespace,
                "operation": self.operation,
                "userInfo": {"username": self.username, "uid": "u-1", "groups": ["system:authenticated"]},
                "object": self.object,
                "oldObject": self.old_object,
                "dryRun": false,
                "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
            }
        })
    }

    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_json()).unwrap()
    }
}

pub fn uuid() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "00000000-0000-4000-8000-{:012x}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[path = "../../../crates/api/tests/seed-003/examples.rs"]
mod seed;

/// Seed 003's replication Schedule (shared with the rules' tests).
pub fn replication_schedule() -> Value {
    seed::replication_schedule()
}

/// A realistic AppMirrorRelationship as the API server sends it (shared with the benchmarks).
pub use tprotect_webhook::testing::amr;

/// A realistic AMR UPDATE review (what a benchmark or load test sends).
pub fn amr_update_review() -> Review {
    Review::protect("AppMirrorRelationship", "UPDATE", amr("Established")).with_old(amr("Established"))
}

pub struct Reply {
    pub status: StatusCode,
    pub json: Value,
}

/// Sends `body` through `router` (no network) and reads the JSON answer.
pub async fn call(router: axum::Router, path: &str, body: Vec<u8>) -> Reply {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "non-JSON answer ({status}): {e}: {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    Reply { status, json }
}

/// A test CA that issues serving certificates for 127.0.0.1 and localhost.
pub struct TestCa {
    issuer: Option<Issuer<'static, KeyPair>>,
    pub pem: String,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    pub fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "tprotect-webhook test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            issuer: Some(Issuer::new(params, key)),
        }
    }

    /// A CA made elsewhere: trusted by the clients, but it cannot issue here.
    pub fn trusting(pem: &str) -> Self {
        Self {
            pem: pem.to_string(),
            issuer: None,
        }
    }

    /// A leaf (PEM cert, PEM key) whose common name is `cn`, so tests can tell leaves apart.
    pub fn issue(&self, cn: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params
            .signed_by(&key, self.issuer.as_ref().expect("this CA cannot issue"))
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    pub fn root_store(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.pem.as_bytes()).unwrap())
            .unwrap();
        roots
    }

    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(self.root_store())
                .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// An HTTPS client trusting only this CA (HTTP/1.1, keep-alive pool).
    pub fn https_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .use_preconfigured_tls((*self.client_config(&[b"http/1.1"])).clone())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }
}

/// The DER of the leaf certificate a fresh TLS handshake with `addr` presents, and the negotiated ALPN.
pub async fn handshake(ca: &TestCa, addr: SocketAddr, alpn: &[&[u8]]) -> (Vec<u8>, Option<Vec<u8>>) {
    let connector = tokio_rustls::TlsConnector::from(ca.client_config(alpn));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (_, connection) = tls.get_ref();
    let leaf = connection.peer_certificates().unwrap()[0].to_vec();
    (leaf, connection.alpn_protocol().map(<[u8]>::to_vec))
}

pub fn der_of(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
}

pub fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap();
}

/// A server on 127.0.0.1 with ephemeral ports, serving the certificate files given.
pub async fn start_server(
    files: CertificateFiles,
    state: AppState,
    reload_interval: Duration,
) -> RunningServer {
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        health_listen: "127.0.0.1:0".parse().unwrap(),
        certificate: files,
        certificate_reload_interval: reload_interval,
        shutdown_delay: Duration::ZERO,
        shutdown_timeout: Duration::from_secs(30),
        limits: tprotect_webhook::Limits::default(),
    };
    Server::new(config, state).start().await.unwrap()
}

/// Writes a leaf into `dir/tls.crt` and `dir/tls.key`.
pub fn plain_files(dir: &Path, cert: &str, key: &str) -> CertificateFiles {
    let files = CertificateFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
    };
    write(&files.cert, cert);
    write(&files.key, key);
    files
}

/// A Kubernetes Secret volume: `tls.crt -> ..data/tls.crt`, `..data -> ..<version>/`. Updates write a new
/// version directory, point `..data_tmp` at it and rename it over `..data` (atomic), as the kubelet does.
pub struct SecretVolume {
    pub dir: PathBuf,
    version: u32,
}

impl SecretVolume {
    pub fn new(dir: &Path, cert: &str, key: &str) -> Self {
        let mut volume = Self {
            dir: dir.to_path_buf(),
            version: 0,
        };
        volume.update(cert, key);
        std::os::unix::fs::symlink("..data/tls.crt", dir.join("tls.crt")).unwrap();
        std::os::unix::fs::symlink("..data/tls.key", dir.join("tls.key")).unwrap();
        volume
    }

    pub fn files(&self) -> CertificateFiles {
        CertificateFiles {
            cert: self.dir.join("tls.crt"),
            key: self.dir.join("tls.key"),
        }
    }

    pub fn update(&mut self, cert: &str, key: &str) {
        self.version += 1;
        let version = format!("..2025_01_07_12_00_00.{:04}", self.version);
        let version_dir = self.dir.join(&version);
        std::fs::create_dir(&version_dir).unwrap();
        write(&version_dir.join("tls.crt"), cert);
        write(&version_dir.join("tls.key"), key);
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&version, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
    }
}

pub use tprotect_testbed::eventually;

/// POSTs `review` to `path` of the HTTPS listener on `port`; returns the answer unless it is anything but a 200
/// AdmissionReview echoing the review's uid.
pub async fn post_checked(
    client: &reqwest::Client,
    port: u16,
    path: &str,
    review: &Review,
) -> Result<Value, String> {
    let url = format!("https://localhost:{port}{path}");
    let response = client
        .post(url)
        .body(review.body())
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| format!("reading the answer: {e:?}"))?;
    if status != 200 || body["response"]["uid"] != review.uid.as_str() {
        return Err(format!("unexpected answer {status}: {body}"));
    }
    Ok(body)
}

/// Runs `command` and returns its stdout; panics with its stderr unless it succeeds.
#[track_caller]
pub fn stdout_of(command: &mut std::process::Command) -> String {
    String::from_utf8(tprotect_testbed::run_ok(command).stdout).unwrap()
}

/// The `tprotect-webhook` binary of this build.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_tprotect-webhook")
}

/// The JSON log lines of a child, as they arrive.
pub fn log_lines(stderr: std::process::ChildStderr) -> Arc<std::sync::Mutex<Vec<Value>>> {
    use std::io::BufRead;
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let value = serde_json::from_str(&line).unwrap_or_else(|_| json!({ "raw": line }));
            sink.lock().unwrap().push(value);
        }
    });
    lines
}

pub fn find_log(lines: &std::sync::Mutex<Vec<Value>>, message: &str) -> Option<Value> {
    lines
        .lock()
        .unwrap()
        .iter()
        .find(|l| l["fields"]["message"] == message)
        .cloned()
}

/// The webhook binary serving on loopback with its own `gen-certs` certificate (JSON logs, no AMR watch).
pub struct WebhookProcess {
    pub child: std::process::Child,
    pub https_addr: SocketAddr,
    pub health_addr: SocketAddr,
    pub ca: TestCa,
    pub ca_bundle: String,
    pub ca_pem: String,
    pub lines: Arc<std::sync::Mutex<Vec<Value>>>,
    _dir: tempfile::TempDir,
}

impl WebhookProcess {
    /// Starts `tprotect-webhook serve` with `args` added; returns once it is serving.
    pub async fn start(args: &[&str]) -> Self {
        use std::process::{Command, Stdio};
        tprotect_webhook::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let mut generated = Command::new(binary());
        generated
            .args(tprotect_webhook::testing::LOOPBACK_GEN_CERTS)
            .arg(dir.path())
            .env_clear();
        let ca_bundle = stdout_of(&mut generated);
        let ca_pem = std::fs::read_to_string(dir.path().join("ca.crt")).unwrap();
        let mut child = Command::new(binary())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--health-listen",
                "127.0.0.1:0",
                "--no-amr-watch",
                "--log-format",
                "json",
            ])
            .args(args)
            .arg("--tls-cert")
            .arg(dir.path().join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.path().join("tls.key"))
            .env_clear()
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = log_lines(child.stderr.take().unwrap());
        let serving = eventually("the binary is serving", async || {
            find_log(&lines, "serving admission reviews")
        })
        .await
        .unwrap();
        let addr = |field: &str| serving["fields"][field].as_str().unwrap().parse().unwrap();
        Self {
            https_addr: addr("https_addr"),
            health_addr: addr("health_addr"),
            child,
            ca: TestCa::trusting(&ca_pem),
            ca_bundle,
            ca_pem,
            lines,
            _dir: dir,
        }
    }

    /// VmRSS and VmHWM in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    pub fn sigterm(&self) {
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn sigterm_and_wait(&mut self) -> std::process::ExitStatus {
        self.sigterm();
        tokio::task::block_in_place(|| self.child.wait()).unwrap()
    }

    /// The text of `/metrics` on the plain port.
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.health_addr);
        reqwest::get(url).await.unwrap().text().await.unwrap()
    }

    /// A TLS connection to the HTTPS listener (HTTP/1.1 by ALPN).
    pub async fn connect(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let connector = tokio_rustls::TlsConnector::from(self.ca.client_config(&[b"http/1.1"]));
        let tcp = tokio::net::TcpStream::connect(self.https_addr).await.unwrap();
        connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap()
    }
}

impl Drop for WebhookProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
