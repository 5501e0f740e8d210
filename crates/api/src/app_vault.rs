//! AppVault: an object-store bucket Trident protect keeps application archives in.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

protect_kind_spec! {
    /// Spec of an AppVault: the bucket, how to reach it, and the credentials to use.
    #[kube(
        kind = "AppVault",
        plural = "appvaults",
        status = "AppVaultStatus",
        doc = "AppVault is the Schema for the appvaults API",
        printcolumn(
            name = "State",
            type_ = "string",
            description = "The current state of the AppVault",
            json_path = ".status.state"
        ),
        printcolumn(
            name = "Error",
            type_ = "string",
            description = "The error associated with the AppVault",
            json_path = ".status.error"
        ),
        printcolumn(
            name = "Message",
            type_ = "string",
            description = "The message associated with the AppVault",
            json_path = ".status.message"
        )
    )]
    pub struct AppVaultSpec {
        /// Secret holding the data mover (Kopia or Restic) repository password.
        pub data_mover_password_secret_ref: Option<String>,
        /// Path prefixed to everything stored in the vault.
        pub prefix: Option<String>,
        /// Provider-specific configuration.
        #[schemars(required)]
        pub provider_config: Option<ProviderConfig>,
        /// Credentials by name (`accessKeyID`, `secretAccessKey`, `sessionToken`, `accountKey`, `credentials`).
        pub provider_credentials: Option<BTreeMap<String, ProviderCredential>>,
        /// Provider: `AWS`, `Azure`, `GCP`, `GenericS3`, `OntapS3`, `StorageGridS3` (a free string in NetApp's
        /// CRD; see the `PROVIDER_TYPE_*` constants).
        #[schemars(required)]
        pub provider_type: Option<String>,
    }
}

/// Provider configuration of an AppVault: one of `s3`, `azure`, `gcp`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ProviderConfig {
    /// Azure blob storage.
    pub azure: Option<AzureConfig>,
    /// Google Cloud Storage.
    pub gcp: Option<GcpConfig>,
    /// S3 and S3-compatible stores (ONTAP S3, StorageGRID, generic S3, AWS).
    pub s3: Option<S3Config>,
}

/// Azure configuration of an AppVault.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureConfig {
    /// Storage account name.
    pub account_name: String,
    /// Container name.
    pub bucket_name: String,
    /// Endpoint.
    pub endpoint: String,
}

/// Google Cloud configuration of an AppVault.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpConfig {
    /// Bucket name.
    pub bucket_name: String,
    /// Project ID.
    #[serde(rename = "projectID")]
    pub project_id: String,
}

/// S3 configuration of an AppVault.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Config {
    /// Bucket name.
    pub bucket_name: String,
    /// Endpoint (host or host:port).
    pub endpoint: String,
    /// Proxy URL.
    #[serde(rename = "proxyURL")]
    pub proxy_url: Option<String>,
    /// Root CA certificate (PEM).
    #[serde(rename = "rootCA")]
    pub root_ca: Option<String>,
    /// Use TLS; true when absent.
    pub secure: Option<BoolString>,
    /// Skip certificate validation.
    pub skip_cert_validation: Option<BoolString>,
    /// Use IAM credentials; false when absent.
    #[serde(rename = "useIAM")]
    pub use_iam: Option<bool>,
}

/// A boolean NetApp spells as the string `"true"` or `"false"`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum BoolString {
    /// `"true"`.
    #[serde(rename = "true")]
    True,
    /// `"false"`.
    #[serde(rename = "false")]
    False,
}

impl From<bool> for BoolString {
    fn from(value: bool) -> Self {
        if value { Self::True } else { Self::False }
    }
}

impl From<BoolString> for bool {
    fn from(value: BoolString) -> Self {
        value == BoolString::True
    }
}

/// One credential of an AppVault.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderCredential {
    /// The Secret key holding the value.
    pub value_from_secret: SecretKeyRef,
}

/// A key of a Secret in the AppVault's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyRef {
    /// Key in the Secret.
    pub key: String,
    /// Secret name.
    pub name: String,
}

/// Observed state of an AppVault.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct AppVaultStatus {
    /// Error, if any.
    pub error: Option<String>,
    /// Message.
    pub message: Option<String>,
    /// State: a free string, see `APP_VAULT_STATE_*`.
    pub state: Option<String>,
    /// Vault UID.
    pub uid: Option<String>,
}

impl AppVault {
    /// Names of the Secrets the credentials reference, sorted and deduplicated.
    pub fn credential_secret_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .spec
            .provider_credentials
            .iter()
            .flat_map(|creds| creds.values())
            .map(|c| c.value_from_secret.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// `status.state`, if Trident protect has written one.
    pub fn state(&self) -> Option<&str> {
        self.status.as_ref()?.state.as_deref()
    }
}
