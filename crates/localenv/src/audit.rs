//! The API servers' audit logs (level Metadata, one JSON event a line): who made which request. The testbed
//! writes one per cluster ([`tprotect_testbed::Cluster::audit_log`]).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::Deserialize;

use crate::Error;

/// The user agent of every request the plugin makes (`kubectl-tprotect/<version>`), in the binary and
/// through the lifecycle library alike.
pub const PLUGIN_USER_AGENT_PREFIX: &str = "kubectl-tprotect/";
/// Verbs that change what is stored.
pub const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

/// One audit event (the fields used here).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuditEvent {
    #[serde(rename = "auditID")]
    pub audit_id: String,
    pub stage: String,
    pub verb: String,
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    pub user_agent: String,
    pub user: AuditUser,
    pub object_ref: Option<ObjectRef>,
    pub response_status: Option<ResponseStatus>,
    /// The request's body: logged for deletes only (their DeleteOptions), see the testbed's audit policy.
    pub request_object: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AuditUser {
    pub username: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectRef {
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ResponseStatus {
    pub code: u16,
}

impl AuditEvent {
    /// Made by the plugin (its user agent).
    pub fn by_plugin(&self) -> bool {
        self.user_agent.starts_with(PLUGIN_USER_AGENT_PREFIX)
    }

    /// The event of a finished request (a watch also logs one when its response starts).
    pub fn is_complete(&self) -> bool {
        self.stage == "ResponseComplete"
    }

    /// A write sent with `dryRun=All` (in its URL, or a delete's in its DeleteOptions): checked by the API
    /// server, stored nowhere.
    pub fn is_dry_run(&self) -> bool {
        self.request_uri.contains("dryRun=All")
            || self
                .request_object
                .as_ref()
                .and_then(|body| body["dryRun"].as_array())
                .is_some_and(|modes| modes.iter().any(|m| m == "All"))
    }

    /// Whether this was a write the API server carried out: a write verb, not a dry run, answered with
    /// success (a write it refused — 403, 404, 409, a webhook's denial — changed nothing). `None` when the log
    /// cannot tell: a delete's dry run travels in its body, which a 1.20 API server does not log for custom
    /// resources (it does for built-in kinds); such a delete shows in the object's resourceVersion instead (it
    /// is gone, or has a deletionTimestamp).
    pub fn stored_a_change(&self) -> Option<bool> {
        let write = self.is_complete()
            && WRITE_VERBS.contains(&self.verb.as_str())
            && !self.is_dry_run()
            && self
                .response_status
                .as_ref()
                .is_some_and(|s| (200..300).contains(&s.code));
        let body_unknown =
            matches!(self.verb.as_str(), "delete" | "deletecollection") && self.request_object.is_none();
        match (write, body_unknown) {
            (true, true) => None,
            (write, _) => Some(write),
        }
    }

    /// `resource[/subresource]`, or the URI for a request on no resource.
    pub fn resource(&self) -> String {
        match &self.object_ref {
            Some(o) if !o.subresource.is_empty() => format!("{}/{}", o.resource, o.subresource),
            Some(o) if !o.resource.is_empty() => o.resource.clone(),
            _ => self.request_uri.clone(),
        }
    }

    /// `patch appmirrorrelationships shop-dr/rel1 (200) by admin`.
    pub fn describe(&self) -> String {
        let object = self
            .object_ref
            .as_ref()
            .map(|o| format!("{}/{}", o.namespace, o.name))
            .unwrap_or_default();
        let code = self.response_status.as_ref().map_or(0, |s| s.code);
        format!(
            "{} {} {object} ({code}) by {} [{}]",
            self.verb,
            self.resource(),
            self.user.username,
            self.user_agent
        )
    }
}

/// The events of the whole lines from byte `offset` on, and the offset after the last whole line (the API
/// server may be writing the next).
pub fn read_from(path: &Path, offset: u64) -> Result<(Vec<AuditEvent>, u64), Error> {
    read_range(path, offset, None)
}

/// The events of the whole lines between two offsets [`read_from`] returned.
pub fn read_between(path: &Path, from: u64, until: u64) -> Result<Vec<AuditEvent>, Error> {
    Ok(read_range(path, from, Some(until))?.0)
}

fn read_range(path: &Path, from: u64, until: Option<u64>) -> Result<(Vec<AuditEvent>, u64), Error> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    file.seek(SeekFrom::Start(from)).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::new();
    match until {
        Some(until) => file.take(until.saturating_sub(from)).read_to_end(&mut bytes),
        None => file.read_to_end(&mut bytes),
    }
    .map_err(|e| Error::io(path, e))?;
    let Some(end) = bytes.iter().rposition(|&b| b == b'\n') else {
        return Ok((Vec::new(), from));
    };
    let events = String::from_utf8_lossy(&bytes[..end])
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    Ok((events, from + end as u64 + 1))
}

/// Every event of a log so far.
pub fn read_all(path: &Path) -> Result<Vec<AuditEvent>, Error> {
    Ok(read_from(path, 0)?.0)
}

/// Distinct requests the plugin made in `events` (audit IDs: a watch logs two events).
pub fn plugin_requests(events: &[AuditEvent]) -> usize {
    events
        .iter()
        .filter(|e| e.by_plugin())
        .map(|e| e.audit_id.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(line: &str) -> AuditEvent {
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn a_change_is_a_successful_write_that_is_not_a_dry_run() {
        let base = r#"{"auditID":"a","userAgent":"kubectl-tprotect/0.1.0","user":{"username":"admin"},
            "objectRef":{"resource":"appmirrorrelationships","namespace":"shop-dr","name":"rel1","apiGroup":"protect.trident.netapp.io"}"#;
        let complete = |rest: &str| event(&format!(r#"{base},"stage":"ResponseComplete",{rest}}}"#));
        let patch =
            complete(r#""verb":"patch","requestURI":"/apis/x?fieldManager=y","responseStatus":{"code":200}"#);
        assert!(patch.by_plugin() && patch.stored_a_change() == Some(true));
        assert_eq!(
            patch.describe(),
            "patch appmirrorrelationships shop-dr/rel1 (200) by admin [kubectl-tprotect/0.1.0]"
        );
        let dry =
            complete(r#""verb":"create","requestURI":"/apis/x?dryRun=All","responseStatus":{"code":201}"#);
        assert_eq!(dry.stored_a_change(), Some(false));
        let refused = complete(r#""verb":"create","requestURI":"/apis/x","responseStatus":{"code":409}"#);
        assert_eq!(refused.stored_a_change(), Some(false));
        let read = complete(r#""verb":"get","requestURI":"/apis/x","responseStatus":{"code":200}"#);
        assert_eq!(read.stored_a_change(), Some(false));
        let dry_delete = complete(
            r#""verb":"delete","requestURI":"/apis/x","responseStatus":{"code":200},
               "requestObject":{"kind":"DeleteOptions","dryRun":["All"]}"#,
        );
        assert!(dry_delete.is_dry_run());
        assert_eq!(dry_delete.stored_a_change(), Some(false));
        let unlogged_delete =
            complete(r#""verb":"delete","requestURI":"/apis/x","responseStatus":{"code":200}"#);
        assert_eq!(
            unlogged_delete.stored_a_change(),
            None,
            "a custom resource's DeleteOptions are not logged"
        );
        let started = event(&format!(
            r#"{base},"stage":"ResponseStarted","verb":"delete","requestURI":"/apis/x","responseStatus":{{"code":200}}}}"#
        ));
        assert_eq!(started.stored_a_change(), Some(false));
        let kubectl = event(r#"{"userAgent":"kubectl/v1.32.0","verb":"get"}"#);
        assert!(!kubectl.by_plugin());
    }

    #[test]
    fn reads_whole_lines_only_and_counts_requests_by_audit_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let plugin = r#"{"auditID":"1","stage":"ResponseStarted","verb":"watch","userAgent":"kubectl-tprotect/0.1.0"}"#;
        let done = r#"{"auditID":"1","stage":"ResponseComplete","verb":"watch","userAgent":"kubectl-tprotect/0.1.0"}"#;
        let other = r#"{"auditID":"2","stage":"ResponseComplete","verb":"get","userAgent":"kube-rs"}"#;
        std::fs::write(&path, format!("{plugin}\n{done}\n{other}\n{{\"auditID\":\"3\"")).unwrap();
        let (events, end) = read_from(&path, 0).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(plugin_requests(&events), 1);
        let (rest, again) = read_from(&path, end).unwrap();
        assert!(rest.is_empty() && again == end, "the unfinished line is not read");
        let first_line = plugin.len() as u64 + 1;
        let between = read_between(&path, first_line, end).unwrap();
        assert_eq!(
            between.iter().map(|e| e.audit_id.as_str()).collect::<Vec<_>>(),
            ["1", "2"]
        );
    }
}
