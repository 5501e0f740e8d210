//! Seed 003's example objects, reconstructed in the YAML files beside this one (the seed's text lost the
//! `apiVersion`, `metadata:`/`spec:` lines and the recurrence rule bodies; the policy's seed tests check every
//! other line against the seed). Included by path by the tests of the model, the rules and the webhook.

#![allow(dead_code)] // each test binary uses what it needs

use serde_json::Value;

pub const AMR: &str = include_str!("app-mirror-relationship.yaml");
/// As printed: `granularity: custom`, which the enum (and the webhook) refuse.
pub const SCHEDULE_AS_PRINTED: &str = include_str!("schedule.yaml");
pub const SHUTDOWN_SNAPSHOT: &str = include_str!("shutdown-snapshot.yaml");
pub const APPLICATION: &str = include_str!("application.yaml");

/// The AppVault provider types the seed lists (`• aws`, …) and the value the CRD's enum has for each.
pub const PROVIDER_TYPES: [(&str, &str); 6] = [
    ("aws", "AWS"),
    ("azure", "Azure"),
    ("gcp", "GCP"),
    ("generic-s3", "GenericS3"),
    ("ontap-s3", "OntapS3"),
    ("storagegrid-s3", "StorageGridS3"),
];

pub fn parse(yaml: &str) -> Value {
    serde_norway::from_str(yaml).expect("seed 003's example is YAML")
}

/// The seed's replication Schedule with the documented `granularity: Custom`.
pub fn replication_schedule() -> Value {
    let mut schedule = parse(SCHEDULE_AS_PRINTED);
    schedule["spec"]["granularity"] = "Custom".into();
    schedule
}

/// The seed's AppMirrorRelationship.
pub fn amr() -> Value {
    parse(AMR)
}
