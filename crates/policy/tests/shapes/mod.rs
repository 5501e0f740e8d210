//! JSON shaped like the objects the rules read, for the property tests of the rules (`properties.rs`,
//! `borrowed.rs`) and of the admission endpoints (`webhook/tests/fuzz.rs` includes this file by path): a field
//! the rules start reading is added here once, and every property test reaches it.

#![allow(dead_code)] // each test binary uses what it needs

use proptest::prelude::*;
use serde_json::{Map, Value};

/// The field names the rules read (spec fields of every validated kind, and metadata's).
pub const FIELD_NAMES: &[&str] = &[
    "metadata",
    "name",
    "generateName",
    "labels",
    "annotations",
    "spec",
    "granularity",
    "backupRetention",
    "snapshotRetention",
    "enabled",
    "recurrenceRule",
    "applicationRef",
    "appVaultRef",
    "minute",
    "hour",
    "dayOfWeek",
    "dayOfMonth",
    "desiredState",
    "sourceApplicationUID",
    "sourceApplicationName",
    "sourceAppVaultRef",
    "destinationAppVaultRef",
    "namespaceMapping",
    "source",
    "destination",
    "promotedSnapshot",
    "storageClassName",
    "providerType",
    "providerConfig",
    "s3",
    "azure",
    "gcp",
    "bucketName",
    "endpoint",
    "providerCredentials",
    "valueFromSecret",
    "key",
    "includedNamespaces",
    "includedVirtualMachines",
    "namespace",
    "names",
    "labelSelector",
    "deletionTimestamp",
    "tprotect.io/replication-schedule",
    "tprotect.io/discard-destination-changes",
    "secure",
    "useIAM",
];

/// null, a bool or a finite number.
pub fn plain_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
    ]
}

/// One of [`FIELD_NAMES`].
pub fn known_field_name() -> impl Strategy<Value = String> {
    prop::sample::select(FIELD_NAMES).prop_map(str::to_string)
}

/// Mostly a field name the rules read, sometimes any name.
pub fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => known_field_name(),
        1 => "\\PC{0,8}",
    ]
}

/// `leaf` values in arrays and in objects keyed by [`field_name`], up to four levels deep.
pub fn arbitrary_json(leaf: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}
