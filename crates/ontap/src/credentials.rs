//! ONTAP credentials. Neither the password nor the username ever reaches Debug, Display, a log or an error
//! message: error messages say where the credentials came from instead.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::OntapError;

/// Where the credentials came from; named in the message of a 401 so the user knows what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// A Kubernetes Secret with keys `username` and `password`.
    Secret { namespace: String, name: String },
    /// A directory with files `username` and `password` (a mounted Secret, e.g. `/mnt/secret`).
    Directory(PathBuf),
    /// The environment variables `ONTAP_USERNAME` and `ONTAP_PASSWORD`.
    Environment,
    /// Given directly by the program using this library.
    Caller,
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret { namespace, name } => write!(f, "Secret {namespace}/{name} (--secret)"),
            Self::Directory(dir) => write!(f, "files in {} (--credentials-dir)", dir.display()),
            Self::Environment => {
                write!(f, "environment variables {USERNAME_ENV}/{PASSWORD_ENV}")
            }
            Self::Caller => f.write_str("credentials given by the caller"),
        }
    }
}

pub const USERNAME_ENV: &str = "ONTAP_USERNAME";
pub const PASSWORD_ENV: &str = "ONTAP_PASSWORD";

/// A username and password for HTTP basic authentication, and where they came from.
#[derive(Clone)]
pub struct Credentials {
    username: String,
    password: String,
    source: CredentialSource,
}

impl Credentials {
    /// Fails when either part is empty: ONTAP would answer 401, and the message here is clearer.
    pub fn new(
        username: impl Into<String>,
        password: impl Into<String>,
        source: CredentialSource,
    ) -> Result<Self, OntapError> {
        let (username, password) = (username.into(), password.into());
        for (part, value) in [("username", &username), ("password", &password)] {
            if value.is_empty() {
                return Err(OntapError::Credentials {
                    source_of: source.clone(),
                    problem: format!("the {part} is empty"),
                });
            }
        }
        Ok(Self {
            username,
            password,
            source,
        })
    }

    /// From the raw values of a Secret's `username` and `password` keys or files: UTF-8, and one trailing
    /// newline (`\n` or `\r\n`, as `echo` and editors add) removed; other whitespace is kept, it may be meant.
    pub fn from_bytes(
        username: &[u8],
        password: &[u8],
        source: CredentialSource,
    ) -> Result<Self, OntapError> {
        let text = |part: &str, bytes: &[u8]| {
            String::from_utf8(bytes.to_vec())
                .map(trim_one_newline)
                .map_err(|_| OntapError::Credentials {
                    source_of: source.clone(),
                    problem: format!("the {part} is not UTF-8 text"),
                })
        };
        let username = text("username", username)?;
        let password = text("password", password)?;
        Self::new(username, password, source)
    }

    /// Reads the files `username` and `password` in `dir` (a Secret mounted as a volume), like
    /// [`Credentials::from_bytes`].
    pub fn from_dir(dir: &Path) -> Result<Self, OntapError> {
        let source = CredentialSource::Directory(dir.to_owned());
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|err| OntapError::Credentials {
                source_of: source.clone(),
                problem: format!("cannot read {}: {err}", path.display()),
            })
        };
        let username = read("username")?;
        let password = read("password")?;
        Self::from_bytes(&username, &password, source)
    }

    /// Reads `ONTAP_USERNAME` and `ONTAP_PASSWORD`; `None` when neither is set.
    pub fn from_env() -> Result<Option<Self>, OntapError> {
        let username = std::env::var(USERNAME_ENV).ok();
        let password = std::env::var(PASSWORD_ENV).ok();
        match (username, password) {
            (None, None) => Ok(None),
            (Some(username), Some(password)) => {
                Self::new(username, password, CredentialSource::Environment).map(Some)
            }
            (username, _) => {
                let missing = if username.is_none() {
                    USERNAME_ENV
                } else {
                    PASSWORD_ENV
                };
                Err(OntapError::Credentials {
                    source_of: CredentialSource::Environment,
                    problem: format!("{missing} is not set"),
                })
            }
        }
    }

    pub fn source(&self) -> &CredentialSource {
        &self.source
    }

    pub(crate) fn username(&self) -> &str {
        &self.username
    }

    pub(crate) fn password(&self) -> &str {
        &self.password
    }
}

fn trim_one_newline(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &"<redacted>")
            .field("password", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "credentials from {}", self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "admin-user-7d1f";
    const PASS: &str = "hunter2-9c4e";

    #[test]
    fn debug_and_display_never_show_username_or_password() {
        let credentials = Credentials::new(USER, PASS, CredentialSource::Caller).unwrap();
        for text in [
            format!("{credentials:?}"),
            format!("{credentials:#?}"),
            credentials.to_string(),
        ] {
            assert!(!text.contains(USER) && !text.contains(PASS), "{text}");
        }
        assert!(format!("{credentials:?}").contains("<redacted>"));
    }

    #[test]
    fn empty_parts_are_rejected_without_echoing_the_other() {
        let error = Credentials::new(USER, "", CredentialSource::Environment).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("password is empty"), "{text}");
        assert!(!text.contains(USER), "{text}");
    }

    #[test]
    fn reads_a_mounted_secret_and_trims_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("username"), format!("{USER}\n")).unwrap();
        std::fs::write(dir.path().join("password"), format!("{PASS} \r\n")).unwrap();
        let credentials = Credentials::from_dir(dir.path()).unwrap();
        assert_eq!(credentials.username(), USER);
        assert_eq!(credentials.password(), format!("{PASS} "));
        assert_eq!(
            credentials.source(),
            &CredentialSource::Directory(dir.path().to_owned())
        );
    }

    #[test]
    fn secret_values_must_be_text() {
        let error = Credentials::from_bytes(b"admin", &[0xff, 0xfe], CredentialSource::Caller).unwrap_err();
        assert!(error.to_string().contains("password is not UTF-8"), "{error}");
        let credentials = Credentials::from_bytes(b"admin\n", b"pw\n\n", CredentialSource::Caller).unwrap();
        assert_eq!(
            (credentials.username(), credentials.password()),
            ("admin", "pw\n")
        );
    }

    #[test]
    fn missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("username"), USER).unwrap();
        let text = Credentials::from_dir(dir.path()).unwrap_err().to_string();
        assert!(text.contains("password"), "{text}");
        assert!(text.contains("--credentials-dir"), "{text}");
        assert!(!text.contains(USER), "{text}");
    }

    #[test]
    fn sources_name_the_flag_or_variables() {
        let secret = CredentialSource::Secret {
            namespace: "kubeflow".into(),
            name: "ontap".into(),
        };
        assert_eq!(secret.to_string(), "Secret kubeflow/ontap (--secret)");
        assert_eq!(
            CredentialSource::Directory("/mnt/secret".into()).to_string(),
            "files in /mnt/secret (--credentials-dir)"
        );
        assert_eq!(
            CredentialSource::Environment.to_string(),
            "environment variables ONTAP_USERNAME/ONTAP_PASSWORD"
        );
    }
}
