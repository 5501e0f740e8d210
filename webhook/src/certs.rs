//! A self-signed CA and a serving certificate, for clusters without cert-manager
//! (`tprotect-webhook gen-certs`). The CA's PEM, base64-encoded, is the `caBundle` of the webhook
//! configurations.

use std::{
    io::Write,
    net::IpAddr,
    path::{Path, PathBuf},
};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};

use crate::{Error, Result};

/// File names written by [`write_files`], as a `kubernetes.io/tls` Secret names its keys.
pub const CA_FILE: &str = "ca.crt";
pub const CERT_FILE: &str = "tls.crt";
pub const KEY_FILE: &str = "tls.key";
/// The `caBundle` value (base64 of `ca.crt`), so that a recipe can read it from a file: redirecting stdout
/// into the output directory fails before the command has created it.
pub const CA_BUNDLE_FILE: &str = "ca-bundle";

/// A CA certificate and a serving certificate and key it signed, all PEM.
#[derive(Clone)]
pub struct GeneratedCertificates {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for GeneratedCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("GeneratedCertificates")
            .field("ca_pem", &self.ca_pem)
            .finish_non_exhaustive()
    }
}

impl GeneratedCertificates {
    /// The `caBundle` value of a webhook configuration: the CA PEM, base64-encoded.
    pub fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes())
    }
}

/// The DNS names the API server uses for a Service: `svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`.
pub fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// `rcgen`'s date for midnight UTC of the day `t` falls on, shifted by `days`.
fn day_of(t: jiff::Timestamp, days: i64) -> Result<(i32, u8, u8)> {
    let date = t
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(jiff::Span::new().days(days))
        .map_err(|e| Error::Config(format!("certificate validity out of range: {e}")))?;
    // jiff dates are always valid calendar dates in range for rcgen.
    Ok((
        i32::from(date.year()),
        date.month().unsigned_abs(),
        date.day().unsigned_abs(),
    ))
}

fn set_validity(params: &mut CertificateParams, now: jiff::Timestamp, valid_days: i64) -> Result<()> {
    // Start a day early: clocks of the API server and of whoever runs this need not agree.
    let (y, m, d) = day_of(now, -1)?;
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = day_of(now, valid_days)?;
    params.not_after = rcgen::date_time_ymd(y, m, d);
    Ok(())
}

/// A fresh ECDSA P-256 CA (valid `valid_days` + 1 year) and a serving certificate for `names` (DNS names or IP
/// addresses) valid `valid_days` from `now`.
pub fn generate(names: &[String], valid_days: i64, now: jiff::Timestamp) -> Result<GeneratedCertificates> {
    if names.is_empty() {
        return Err(Error::Config(
            "a serving certificate needs at least one DNS name or IP address".into(),
        ));
    }
    if !(1..=3650).contains(&valid_days) {
        return Err(Error::Config(format!(
            "validity must be 1 to 3650 days, got {valid_days}"
        )));
    }
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tprotect-webhook CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_validity(&mut ca_params, now, valid_days + 365)?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.subject_alt_names = names
        .iter()
        .map(|name| match name.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(name.clone().try_into()?)),
        })
        .collect::<Result<Vec<_>, rcgen::Error>>()?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, names[0].as_str());
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, now, valid_days)?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(GeneratedCertificates {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn write_file(path: &Path, contents: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let error = |source| Error::WriteFile {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(error)?;
    file.write_all(contents.as_bytes()).map_err(error)
}

/// Writes `ca.crt`, `tls.crt`, `tls.key` (mode 0600) and `ca-bundle` into `dir`, creating it; returns the
/// paths written.
pub fn write_files(dir: &Path, generated: &GeneratedCertificates) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|source| Error::WriteFile {
        path: dir.to_path_buf(),
        source,
    })?;
    let ca = dir.join(CA_FILE);
    let cert = dir.join(CERT_FILE);
    let key = dir.join(KEY_FILE);
    write_file(&ca, &generated.ca_pem, 0o644)?;
    write_file(&cert, &generated.cert_pem, 0o644)?;
    write_file(&key, &generated.key_pem, 0o600)?;
    let bundle = dir.join(CA_BUNDLE_FILE);
    write_file(&bundle, &generated.ca_bundle(), 0o644)?;
    Ok(vec![ca, cert, key, bundle])
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::tls::{CertificateFiles, ReloadingCertificate};

    #[test]
    fn generated_pair_loads_as_a_serving_certificate() {
        crate::install_crypto_provider();
        let names = service_dns_names("tprotect-webhook", "tprotect-system");
        assert_eq!(names[2], "tprotect-webhook.tprotect-system.svc");
        let generated = generate(
            &[names, vec!["127.0.0.1".into()]].concat(),
            30,
            jiff::Timestamp::now(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let paths = write_files(dir.path(), &generated).unwrap();
        assert_eq!(paths.len(), 4);
        assert_eq!(std::fs::read_to_string(&paths[3]).unwrap(), generated.ca_bundle());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&paths[2]).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let files = CertificateFiles {
            cert: paths[1].clone(),
            key: paths[2].clone(),
        };
        ReloadingCertificate::load(files, Arc::new(crate::Metrics::new())).unwrap();
        let bundle = base64::engine::general_purpose::STANDARD
            .decode(generated.ca_bundle())
            .unwrap();
        assert!(
            String::from_utf8(bundle)
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert!(!format!("{generated:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn refuses_no_names_and_absurd_validity() {
        let now = jiff::Timestamp::now();
        assert!(matches!(generate(&[], 30, now), Err(Error::Config(_))));
        assert!(matches!(generate(&["a".into()], 0, now), Err(Error::Config(_))));
        assert!(matches!(
            generate(&["a".into()], 100_000, now),
            Err(Error::Config(_))
        ));
    }
}
