//! Generation of our CRD manifests for the six Trident protect kinds.
//!
//! kube's `CustomResourceExt::crd()` runs schemars with `AddNullable`, which marks every `Option` field
//! `nullable: true`. NetApp's CRDs mark only one field nullable, and a nullable field makes the API server
//! store `null` where NetApp's schema prunes it. So [`crds`] keeps kube's CRD (names, printer columns,
//! subresources) but regenerates the schema with the same settings minus `AddNullable`: `Option` only
//! means "may be absent", and `nullable` appears only where a field's schema asks for it explicitly.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube_core::{CustomResourceExt, schema::StructuralSchemaRewriter};
use schemars::{
    JsonSchema, Schema,
    generate::SchemaSettings,
    transform::{
        RemoveRefSiblings, ReplaceBoolSchemas, ReplaceConstValue, ReplacePrefixItems,
        ReplaceUnevaluatedProperties, SetSingleExample, Transform, transform_subschemas,
    },
};
use serde_json::Value;

use crate::{AppMirrorRelationship, AppVault, Application, Result, Schedule, ShutdownSnapshot, Snapshot};

/// Our CRDs for the six kinds, sorted by name.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        crd_for::<AppMirrorRelationship>(),
        crd_for::<AppVault>(),
        crd_for::<Application>(),
        crd_for::<Schedule>(),
        crd_for::<Snapshot>(),
        crd_for::<ShutdownSnapshot>(),
    ];
    crds.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    crds
}

/// All of [`crds`] as one multi-document YAML stream (deterministic: same types, same bytes).
pub fn crds_yaml() -> Result<String> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(&crd)?);
    }
    Ok(out)
}

/// File name of a CRD's manifest under `manifests/crds/`: `<plural>.<group>.yaml`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

fn crd_for<K: CustomResourceExt + JsonSchema>() -> CustomResourceDefinition {
    let mut crd = K::crd();
    let mut schema = schema_for::<K>();
    // kube's root schema lists only spec and status; controller-gen (NetApp) also lists these three.
    let properties = schema.properties.get_or_insert_with(Default::default);
    properties.insert("apiVersion".into(), typed("string", API_VERSION_DESCRIPTION));
    properties.insert("kind".into(), typed("string", KIND_DESCRIPTION));
    properties.insert("metadata".into(), typed("object", ""));
    schema.title = None;
    for version in &mut crd.spec.versions {
        if let Some(validation) = version.schema.as_mut() {
            validation.open_api_v3_schema = Some(schema.clone());
        }
    }
    crd
}

const API_VERSION_DESCRIPTION: &str =
    "APIVersion defines the versioned schema of this representation of an object.";
const KIND_DESCRIPTION: &str =
    "Kind is a string value representing the REST resource this object represents.";

fn typed(type_: &str, description: &str) -> JSONSchemaProps {
    JSONSchemaProps {
        type_: Some(type_.into()),
        description: (!description.is_empty()).then(|| description.into()),
        ..Default::default()
    }
}

/// The structural OpenAPI v3 schema of `K`, as kube derives it but without `AddNullable`.
pub(crate) fn schema_for<K: JsonSchema>() -> JSONSchemaProps {
    let generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
            let mut replace_bool_schemas = ReplaceBoolSchemas::default();
            replace_bool_schemas.skip_additional_properties = true;
            // openapi3()'s list with `AddNullable` replaced by `RemoveNull`, then kube's structural rewrite.
            s.transforms = vec![
                Box::new(ReplaceUnevaluatedProperties::default()),
                Box::new(replace_bool_schemas),
                Box::new(RemoveNull),
                Box::new(RemoveRefSiblings::default()),
                Box::new(SetSingleExample::default()),
                Box::new(ReplaceConstValue::default()),
                Box::new(ReplacePrefixItems::default()),
                Box::new(StructuralSchemaRewriter),
            ];
        })
        .into_generator();
    let schema = generator.into_root_schema_for::<K>();
    // A failure here is a bug in our types, caught by every test that generates CRDs.
    serde_json::to_value(schema)
        .and_then(serde_json::from_value)
        .expect("schemars output of our types is a valid JSONSchemaProps")
}

/// Undoes what schemars does for `Option<T>`: drops `null` from `type` and `enum`, and unwraps
/// `anyOf: [T, {type: null}]`. Absence, not `null`, is how our types say "unset".
#[derive(Debug, Clone, Default)]
struct RemoveNull;

impl Transform for RemoveNull {
    fn transform(&mut self, schema: &mut Schema) {
        if let Some(obj) = schema.as_object_mut() {
            if let Some(Value::Array(any_of)) = obj.get("anyOf")
                && any_of.len() == 2
                && let Some(pos) = any_of.iter().position(is_null_schema)
            {
                let Some(Value::Array(mut any_of)) = obj.remove("anyOf") else {
                    unreachable!("checked above")
                };
                any_of.remove(pos);
                if let Some(Value::Object(inner)) = any_of.pop() {
                    for (key, value) in inner {
                        // The field's own keys (its description) win over the type's.
                        obj.entry(key).or_insert(value);
                    }
                }
            }
            if let Some(Value::Array(types)) = obj.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let single = types.remove(0);
                    obj.insert("type".into(), single);
                }
            }
            if let Some(Value::Array(values)) = obj.get_mut("enum") {
                values.retain(|v| !v.is_null());
            }
        }
        transform_subschemas(self, schema);
    }
}

fn is_null_schema(value: &Value) -> bool {
    value.get("type").is_some_and(|t| t == "null") || value.get("const").is_some_and(Value::is_null)
}
