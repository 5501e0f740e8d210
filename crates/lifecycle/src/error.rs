//! Why a run stopped. Every message names the cluster, the namespace and the object, and says what to do.

use std::time::Duration;

use crate::PlanError;

/// Why [`crate::runner::run`] (or a part of it) did not reach its goal.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The planner refused: bad input, wrong state, a failed relationship, another operation in progress.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Another live run holds the relationship's lock.
    #[error(
        "relationship {relationship} is locked by {holder} since {since}{by} (Lease {namespace}/{lease} on {cluster}); wait or run it again after {expires}"
    )]
    Locked {
        relationship: String,
        holder: String,
        since: String,
        /// ", by a failback" when the lock carries an operation record.
        by: String,
        cluster: String,
        namespace: String,
        lease: String,
        expires: String,
    },
    /// The operation did not finish within `--timeout`. It may still finish on the cluster.
    #[error(
        "timed out after {}s waiting for {waiting_for} on {cluster}; last seen: {last_state}{}. The operation continues on the cluster: run the same command again to follow it",
        after.as_secs(),
        last_error.as_ref().map(|e| format!(", error: {e}")).unwrap_or_default()
    )]
    Timeout {
        waiting_for: String,
        cluster: String,
        last_state: String,
        last_error: Option<String>,
        after: Duration,
    },
    /// An object ended in a failed state, or reported the same error for longer than the grace period.
    #[error("{kind} {namespace}/{name} on {cluster} failed: {error}")]
    Failed {
        kind: String,
        cluster: String,
        namespace: String,
        name: String,
        error: String,
    },
    /// A Kubernetes API request failed.
    #[error("{}", kube_message(.cluster, .verb, .resource, .namespace, .name, .source))]
    Kube {
        cluster: String,
        verb: String,
        resource: String,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// A destructive step was not confirmed (no TTY and no `--yes`, or the user said no).
    #[error(
        "confirmation failed ({reason}); nothing was changed. Asked to confirm: {what}. Run again to be asked again (--yes confirms without a terminal)"
    )]
    NotConfirmed { what: String, reason: String },
    /// The lock was taken by someone else, or could not be renewed, while this run held it.
    #[error(
        "lost the lock of relationship {relationship} (Lease {namespace}/{lease} on {cluster}): {reason}; stopped before the next step. Run the command again to resume"
    )]
    LostLock {
        relationship: String,
        cluster: String,
        namespace: String,
        lease: String,
        reason: String,
    },
    /// The kubeconfig could not be read.
    #[error(transparent)]
    Kubeconfig(#[from] crate::clusters::KubeconfigError),
    /// Something this program got wrong (a bug), with enough detail to report it.
    #[error("internal error: {0}")]
    Internal(String),
}

impl RunError {
    /// A failed API request, described by what it tried to do where.
    pub fn kube(
        cluster: &str,
        verb: &str,
        resource: &str,
        namespace: &str,
        name: &str,
        source: kube::Error,
    ) -> Self {
        RunError::Kube {
            cluster: cluster.to_string(),
            verb: verb.to_string(),
            resource: resource.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            source,
        }
    }

    /// The HTTP status of a failed API request, if that is what this is.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            RunError::Kube { source, .. } => api_status(source),
            _ => None,
        }
    }

    /// A request that could not reach its cluster at all.
    pub fn is_connection_error(&self) -> bool {
        matches!(self, RunError::Kube { source, .. } if is_connection_error(source))
    }

    /// The cause of a connection error, for "unreachable" messages.
    pub fn connection_error_text(&self) -> String {
        match self {
            RunError::Kube { source, .. } => with_causes(source),
            other => other.to_string(),
        }
    }

    /// A timeout (the plugin exits with its own code for it).
    pub fn is_timeout(&self) -> bool {
        matches!(self, RunError::Timeout { .. })
    }
}

/// The HTTP status code of an API error response.
pub fn api_status(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// True for errors that mean the cluster could not be reached at all (refused, timed out, TLS, DNS), as
/// opposed to an answer from its API server.
pub fn is_connection_error(error: &kube::Error) -> bool {
    matches!(
        error,
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::TlsRequired
    ) || matches!(error, kube::Error::Auth(_))
}

/// An error with its causes, for messages ("client error (Connect): tcp connect error: Connection refused").
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn kube_message(
    cluster: &str,
    verb: &str,
    resource: &str,
    namespace: &str,
    name: &str,
    source: &kube::Error,
) -> String {
    let object = match (namespace.is_empty(), name.is_empty()) {
        (true, true) => resource.to_string(),
        (true, false) => format!("{resource} {name}"),
        (false, true) => format!("{resource} in namespace {namespace}"),
        (false, false) => format!("{resource} {namespace}/{name}"),
    };
    match source {
        kube::Error::Api(status) if status.code == 403 => {
            let user = forbidden_user(&status.message).unwrap_or("the current user");
            let scope = if namespace.is_empty() {
                String::new()
            } else {
                format!(" in {namespace}")
            };
            format!(
                "RBAC denied: user {user} cannot {verb} {resource}{scope} on {cluster} ({name_part}Kubernetes said: {message}). Ask for the kubectl-tprotect operator ClusterRole",
                name_part = if name.is_empty() {
                    String::new()
                } else {
                    format!("object {name}; ")
                },
                message = status.message
            )
        }
        kube::Error::Api(status) if status.message.contains("failed calling webhook") => {
            let webhook =
                quoted_after(&status.message, "failed calling webhook \"").unwrap_or("an admission webhook");
            format!(
                "{verb} {object} on {cluster} failed: the admission webhook {webhook} does not answer, and the API server refuses every write it guards until it does ({}). Fix the webhook (kubectl --context {cluster} get validatingwebhookconfiguration,mutatingwebhookconfiguration; for this project's: kubectl --context {cluster} -n tprotect-system get pods), then run the command again: it continues where it stopped",
                status.message
            )
        }
        kube::Error::Api(status) => {
            format!(
                "{verb} {object} on {cluster} failed: {} ({} {})",
                status.message, status.code, status.reason
            )
        }
        other if is_connection_error(other) => {
            format!(
                "{verb} {object} on {cluster} failed: cluster unreachable: {}",
                with_causes(other)
            )
        }
        other => format!("{verb} {object} on {cluster} failed: {other}"),
    }
}

/// The user name in an API server's "forbidden" message (`User "alice" cannot …`).
fn forbidden_user(message: &str) -> Option<&str> {
    quoted_after(message, "User \"")
}

/// The text between `prefix` (which ends with a quote) and the next quote.
fn quoted_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.split_once(prefix)?.1;
    rest.split_once('"').map(|(quoted, _)| quoted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure(message, reason)
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn forbidden_names_user_verb_resource_namespace_and_cluster() {
        let error = RunError::kube(
            "tprotect-destination",
            "patch",
            "appmirrorrelationships",
            "app1",
            "rel1",
            api_error(
                403,
                "Forbidden",
                "appmirrorrelationships.protect.trident.netapp.io \"rel1\" is forbidden: User \"alice\" cannot patch resource \"appmirrorrelationships\" in API group \"protect.trident.netapp.io\" in the namespace \"app1\"",
            ),
        );
        let text = error.to_string();
        assert!(
            text.starts_with(
                "RBAC denied: user alice cannot patch appmirrorrelationships in app1 on tprotect-destination"
            ),
            "{text}"
        );
        assert_eq!(error.status_code(), Some(403));
    }

    #[test]
    fn other_api_errors_name_the_object_and_cluster() {
        let error = RunError::kube(
            "ctx",
            "get",
            "appvaults",
            "trident-protect",
            "vault1",
            api_error(404, "NotFound", "appvaults \"vault1\" not found"),
        );
        assert_eq!(
            error.to_string(),
            "get appvaults trident-protect/vault1 on ctx failed: appvaults \"vault1\" not found (404 NotFound)"
        );
    }

    #[test]
    fn a_webhook_that_does_not_answer_is_named_with_the_fix() {
        let error = RunError::kube(
            "dr",
            "patch",
            "appmirrorrelationships",
            "app1",
            "rel1",
            api_error(
                500,
                "InternalError",
                "Internal error occurred: failed calling webhook \"replication.validate.tprotect.io\": Post \"https://127.0.0.1:1/validate\": dial tcp 127.0.0.1:1: connect: connection refused",
            ),
        );
        let text = error.to_string();
        assert!(
            text.contains("the admission webhook replication.validate.tprotect.io does not answer"),
            "{text}"
        );
        assert!(
            text.contains("kubectl --context dr -n tprotect-system get pods"),
            "{text}"
        );
    }

    #[test]
    fn timeout_message_carries_the_last_state_and_error() {
        let error = RunError::Timeout {
            waiting_for: "AppMirrorRelationship app1/rel1 to be Promoted".into(),
            cluster: "dst".into(),
            last_state: "Promoting".into(),
            last_error: Some("volume busy".into()),
            after: Duration::from_secs(90),
        };
        let text = error.to_string();
        assert!(text.contains("timed out after 90s"), "{text}");
        assert!(
            text.contains("last seen: Promoting, error: volume busy"),
            "{text}"
        );
        assert!(error.is_timeout());
    }
}
