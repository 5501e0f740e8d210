//! Validated inputs: a SnapMirror endpoint path `SVM:VOLUME` and the cluster management host `HOST[:PORT]`.

use std::fmt;
use std::str::FromStr;

use reqwest::Url;

use crate::OntapError;

/// `SVM:VOLUME`, as ONTAP writes `source.path` and `destination.path` of a volume relationship.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VolumePath {
    svm: String,
    volume: String,
}

impl VolumePath {
    pub fn svm(&self) -> &str {
        &self.svm
    }

    pub fn volume(&self) -> &str {
        &self.volume
    }
}

/// ONTAP limits SVM names to 47 characters of letters, digits, `.`, `-` and `_`.
const SVM_MAX: usize = 47;
/// ONTAP volume names start with a letter or `_`, use letters, digits and `_`, up to 203 characters.
const VOLUME_MAX: usize = 203;

impl FromStr for VolumePath {
    type Err = OntapError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| OntapError::InvalidPath {
            input: text.to_owned(),
            reason: format!("{reason}; expected SVM:VOLUME, e.g. svm1:vol1"),
        };
        let (svm, volume) = text
            .split_once(':')
            .ok_or_else(|| invalid("no ':' between SVM and volume"))?;
        if volume.contains(':') {
            return Err(invalid("more than one ':'"));
        }
        if svm.is_empty() {
            return Err(invalid("the SVM name is empty"));
        }
        if volume.is_empty() {
            return Err(invalid("the volume name is empty"));
        }
        if svm.len() > SVM_MAX {
            return Err(invalid(&format!(
                "the SVM name is longer than {SVM_MAX} characters"
            )));
        }
        if let Some(c) = svm
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        {
            return Err(invalid(&format!(
                "the SVM name contains {c:?} (allowed: letters, digits, . - _)"
            )));
        }
        if volume.len() > VOLUME_MAX {
            return Err(invalid(&format!(
                "the volume name is longer than {VOLUME_MAX} characters"
            )));
        }
        if let Some(c) = volume.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_')) {
            return Err(invalid(&format!(
                "the volume name contains {c:?} (allowed: letters, digits, _)"
            )));
        }
        if volume.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(invalid("the volume name must start with a letter or '_'"));
        }
        Ok(Self {
            svm: svm.to_owned(),
            volume: volume.to_owned(),
        })
    }
}

impl fmt::Display for VolumePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.svm, self.volume)
    }
}

/// The cluster management address `HOST`, `HOST:PORT`, `IPv4[:PORT]` or `[IPv6][:PORT]`, reached over HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterHost {
    text: String,
    base: Url,
}

impl ClusterHost {
    /// `https://HOST[:PORT]/api/`.
    pub fn api_base(&self) -> &Url {
        &self.base
    }
}

impl FromStr for ClusterHost {
    type Err = OntapError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| OntapError::InvalidHostname {
            input: text.to_owned(),
            reason: reason.to_owned(),
        };
        if text.contains("://") {
            return Err(invalid(
                "give the host name only, without a scheme (HTTPS is always used)",
            ));
        }
        // Anything that would make the URL carry a path, query or user info is refused, not interpreted.
        if let Some(c) = text
            .chars()
            .find(|c| matches!(c, '/' | '?' | '#' | '@' | '\\') || c.is_whitespace())
        {
            return Err(invalid(&format!("contains {c:?}; expected HOST or HOST:PORT")));
        }
        if text.is_empty() {
            return Err(invalid("is empty"));
        }
        let base = Url::parse(&format!("https://{text}/api/"))
            .map_err(|err| invalid(&format!("{err}; expected HOST or HOST:PORT")))?;
        if base.host_str().is_none_or(str::is_empty) {
            return Err(invalid("has no host"));
        }
        Ok(Self {
            text: text.to_owned(),
            base,
        })
    }
}

impl fmt::Display for ClusterHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_paths_parse_and_print() {
        let path: VolumePath = "ai221_data:sm_dest".parse().unwrap();
        assert_eq!(path.svm(), "ai221_data");
        assert_eq!(path.volume(), "sm_dest");
        assert_eq!(path.to_string(), "ai221_data:sm_dest");
        assert!("svm-1.example:_vol9".parse::<VolumePath>().is_ok());
    }

    #[test]
    fn bad_volume_paths_say_why() {
        let cases = [
            ("vol1", "no ':'"),
            (":vol1", "SVM name is empty"),
            ("svm1:", "volume name is empty"),
            ("svm1:vol:1", "more than one"),
            ("svm 1:vol1", "SVM name contains ' '"),
            ("svm1:vol-1", "volume name contains '-'"),
            ("svm1:/vol/vol1", "volume name contains '/'"),
            ("svm1:1vol", "must start with a letter"),
        ];
        for (input, expected) in cases {
            let text = input.parse::<VolumePath>().unwrap_err().to_string();
            assert!(text.contains(expected), "{input}: {text}");
            assert!(text.contains("SVM:VOLUME"), "{input}: {text}");
        }
        let long_svm = format!("{}:vol", "s".repeat(48));
        assert!(long_svm.parse::<VolumePath>().is_err());
        let long_volume = format!("svm:{}", "v".repeat(204));
        assert!(long_volume.parse::<VolumePath>().is_err());
    }

    #[test]
    fn hosts_with_and_without_port() {
        let host: ClusterHost = "cluster1.example.com".parse().unwrap();
        assert_eq!(host.api_base().as_str(), "https://cluster1.example.com/api/");
        let host: ClusterHost = "127.0.0.1:8443".parse().unwrap();
        assert_eq!(host.api_base().as_str(), "https://127.0.0.1:8443/api/");
        assert_eq!(host.to_string(), "127.0.0.1:8443");
        let host: ClusterHost = "[::1]:8443".parse().unwrap();
        assert_eq!(host.api_base().as_str(), "https://[::1]:8443/api/");
    }

    #[test]
    fn hosts_that_would_smuggle_a_url_are_refused() {
        for bad in [
            "https://cluster1",
            "cluster1/api",
            "user@cluster1",
            "cluster1?x=1",
            "cluster1#x",
            "",
            "cluster 1",
            "cluster1:notaport",
            "cluster1:99999",
        ] {
            assert!(bad.parse::<ClusterHost>().is_err(), "{bad:?} should be refused");
        }
    }
}
