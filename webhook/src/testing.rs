//! Realistic admission requests for benchmarks and load tests, defined once so that a measurement in process
//! (`examples/handler_cost.rs`) and one over the network send the same bytes.

use serde_json::{Value, json};

/// `tprotect-webhook gen-certs` for a webhook on loopback, registered by URL (followed by the output
/// directory): what the benchmarks and the binary's tests serve with.
pub const LOOPBACK_GEN_CERTS: [&str; 6] = [
    "gen-certs",
    "--ip",
    "127.0.0.1",
    "--dns",
    "localhost",
    "--out-dir",
];

/// A Trident protect recurrence rule: every 5 minutes since 2022.
pub const RULE: &str = "DTSTART:20220101T000200Z\nRRULE:FREQ=MINUTELY;INTERVAL=5";

/// A realistic AppMirrorRelationship as the API server sends it: managed fields, last-applied annotation,
/// status.
pub fn amr(desired_state: &str) -> Value {
    json!({
        "apiVersion": "protect.trident.netapp.io/v1",
        "kind": "AppMirrorRelationship",
        "metadata": {
            "name": "amr-16061e80-1b05-4e80-9d26-d326dc1953d8",
            "namespace": "my-app-namespace",
            "uid": "3c0c6f1e-3f3c-4b8f-9d8e-0a0b0c0d0e0f",
            "resourceVersion": "12345",
            "generation": 2,
            "creationTimestamp": "2025-01-07T10:00:00Z",
            "labels": {"tprotect.io/relationship": "rel1"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"protect.trident.netapp.io/v1\",\"kind\":\"AppMirrorRelationship\"}"},
            "managedFields": [{
                "manager": "kubectl-client-side-apply",
                "operation": "Update",
                "apiVersion": "protect.trident.netapp.io/v1",
                "time": "2025-01-07T10:00:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:desiredState": {}, "f:recurrenceRule": {}, "f:namespaceMapping": {}}}
            }]
        },
        "spec": {
            "desiredState": desired_state,
            "destinationAppVaultRef": "generic-s3-trident-protect-dst-bucket-8fe0b902-f369-4317-93d1-ad7f2edc02b5",
            "namespaceMapping": [{"destination": "my-app-namespace", "source": "my-app-namespace"}],
            "recurrenceRule": RULE,
            "sourceAppVaultRef": "generic-s3-trident-protect-src-bucket-b643cc50-0429-4ad5-971f-ac4a83621922",
            "sourceApplicationName": "my-app-name",
            "sourceApplicationUID": "7498d32c-328e-4ddd-9029-122540866aeb",
            "storageClassName": "sc-vsim-2"
        },
        "status": {
            "state": desired_state,
            "conditions": [],
            "destinationApplicationRef": "my-app-name",
            "destinationNamespaces": ["my-app-namespace"],
            "lastTransfer": {"startTimestamp": "2025-01-07T12:20:00Z", "completionTimestamp": "2025-01-07T12:20:31Z"}
        }
    })
}

/// An AdmissionReview v1 for an UPDATE of an Established AppMirrorRelationship that stays Established (the
/// common case: the controller updating it). The body `cargo xtask bench webhook` sends.
pub fn amr_update_review() -> Value {
    let group = "protect.trident.netapp.io";
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "00000000-0000-4000-8000-000000000001",
            "kind": {"group": group, "version": "v1", "kind": "AppMirrorRelationship"},
            "resource": {"group": group, "version": "v1", "resource": "appmirrorrelationships"},
            "requestKind": {"group": group, "version": "v1", "kind": "AppMirrorRelationship"},
            "requestResource": {"group": group, "version": "v1", "resource": "appmirrorrelationships"},
            "name": "amr-16061e80-1b05-4e80-9d26-d326dc1953d8",
            "namespace": "my-app-namespace",
            "operation": "UPDATE",
            "userInfo": {"username": "alice", "uid": "u-1", "groups": ["system:authenticated"]},
            "object": amr("Established"),
            "oldObject": amr("Established"),
            "dryRun": false,
            "options": {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"},
        }
    })
}
