//! The rustls client configuration, built here (ring provider only) and handed to reqwest preconfigured, so
//! that `--ca-file` and `--verify-tls=false` mean exactly what they say.
//!
//! Default trust: the operating system's roots through `rustls-native-certs` (maintained by the rustls project;
//! on Debian it reads `/etc/ssl/certs/ca-certificates.crt`, and honours `SSL_CERT_FILE`/`SSL_CERT_DIR`). ONTAP
//! management certificates are normally signed by an organisation's own CA, which administrators add to the
//! system store, not by a public CA — so the system store is the right default, and `webpki-roots`' compiled-in
//! Mozilla list would add nothing but staleness. `--ca-file` adds a CA on top.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::OntapError;

/// How the server certificate is checked.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// `false` accepts any certificate (still over TLS, but anyone in the path can impersonate the cluster).
    pub verify: bool,
    /// PEM files with one or more CA certificates each, trusted in addition to the system's.
    pub ca_files: Vec<PathBuf>,
    /// Trust the operating system's roots too (default). Tests turn this off to prove a CA file is what
    /// made a connection trusted.
    pub system_roots: bool,
}

impl Default for TlsOptions {
    fn default() -> Self {
        Self {
            verify: true,
            ca_files: Vec::new(),
            system_roots: true,
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the client configuration for [`TlsOptions`].
pub fn client_config(options: &TlsOptions) -> Result<ClientConfig, OntapError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| OntapError::TlsSetup(err.to_string()))?;
    if !options.verify {
        let verifier = AcceptAnyServerCert {
            algorithms: provider.signature_verification_algorithms,
        };
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth());
    }
    let mut roots = RootCertStore::empty();
    if options.system_roots {
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::debug!(%error, "skipping unreadable system certificate store entry");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(added, ignored, "system root certificates");
    }
    for path in &options.ca_files {
        for certificate in read_ca_file(path)? {
            roots.add(certificate).map_err(|err| OntapError::CaFile {
                path: path.clone(),
                problem: format!("a certificate is not usable as a trust anchor: {err}"),
            })?;
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, OntapError> {
    let ca_error = |problem: String| OntapError::CaFile {
        path: path.to_owned(),
        problem,
    };
    let pem = std::fs::read(path).map_err(|err| ca_error(format!("cannot read it: {err}")))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| ca_error(format!("not valid PEM: {err}")))?;
    if certificates.is_empty() {
        return Err(ca_error("contains no PEM CERTIFICATE block".into()));
    }
    Ok(certificates)
}

/// `--verify-tls=false`: accepts any certificate chain and name, but still checks that the server holds the
/// key of the certificate it presented (the handshake signatures), like `curl -k`.
#[derive(Debug)]
struct AcceptAnyServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The rustls error somewhere in a reqwest error's chain. `io::Error::source` skips the error it wraps (and
/// hyper-rustls wraps it in two), so an io::Error is descended through `get_ref` instead.
pub(crate) fn find_rustls_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        current = match error.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How `client_config` refuses to trust the CA file at `path`, as shown.
    fn ca_file_refusal(path: PathBuf) -> String {
        let options = TlsOptions {
            ca_files: vec![path],
            ..TlsOptions::default()
        };
        client_config(&options).unwrap_err().to_string()
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let text = ca_file_refusal(path.clone());
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("no PEM CERTIFICATE"), "{text}");
    }

    #[test]
    fn a_missing_ca_file_is_refused() {
        let text = ca_file_refusal("/nonexistent/ca.pem".into());
        assert!(text.contains("/nonexistent/ca.pem"), "{text}");
        assert!(text.contains("cannot read"), "{text}");
    }

    #[test]
    fn unverified_config_builds() {
        let options = TlsOptions {
            verify: false,
            ..TlsOptions::default()
        };
        assert!(client_config(&options).is_ok());
    }

    #[test]
    fn rustls_errors_are_found_inside_io_errors() {
        let inner = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, inner));
        let found = find_rustls_error(&io).unwrap();
        assert!(matches!(
            found,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        ));
    }
}
