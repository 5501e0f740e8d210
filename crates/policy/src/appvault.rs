//! AppVault rules.

use crate::json::Json;

use crate::report::{self, Report, child, describe, did_you_mean, key_path, quote};

/// Provider types as the CRD and NetApp's examples write them. One docs page lists lower-case spellings
/// (`aws`, `generic-s3`, …); whether the controller accepts those is unverified, so they get a "did you mean".
const PROVIDER_TYPES: [&str; 6] = ["AWS", "Azure", "GCP", "GenericS3", "OntapS3", "StorageGridS3"];

/// The providerConfig block each provider type reads, with its required keys.
fn provider_block(provider_type: &str) -> (&'static str, &'static [&'static str]) {
    match provider_type {
        "Azure" => ("azure", &["accountName", "bucketName", "endpoint"]),
        "GCP" => ("gcp", &["bucketName", "projectID"]),
        _ => ("s3", &["bucketName", "endpoint"]),
    }
}

pub(crate) fn validate(report: &mut Report, object: &Json<'_>) {
    let Some(spec) = report::spec(
        report,
        object,
        "add spec with providerType, providerConfig and providerCredentials",
    ) else {
        return;
    };
    let provider_type = check_provider_type(report, spec);
    if let Some(provider_type) = provider_type {
        check_provider_config(report, spec, provider_type);
    } else if child(spec, "providerConfig").is_none() {
        report.push(
            "spec.providerConfig",
            "is required",
            "add spec.providerConfig with the provider's block (s3, azure or gcp)",
        );
    }
    check_credentials(report, spec);
}

/// Returns the provider type the object means: the exact value, or the one a "did you mean" names (so the
/// provider block can still be checked).
fn check_provider_type(report: &mut Report, spec: &Json<'_>) -> Option<&'static str> {
    let path = "spec.providerType";
    let list = PROVIDER_TYPES.join(", ");
    let Some(value) = child(spec, "providerType") else {
        report.push(
            path,
            "is required",
            format!("set spec.providerType to one of {list}"),
        );
        return None;
    };
    let Some(provider_type) = value.as_str() else {
        report.push(
            path,
            format!("must be a string, got {}", describe(value)),
            format!("use one of {list}"),
        );
        return None;
    };
    if let Some(exact) = PROVIDER_TYPES.iter().find(|p| **p == provider_type) {
        return Some(exact);
    }
    let suggestion = did_you_mean(provider_type, &PROVIDER_TYPES);
    report.push(
        path,
        format!(
            "must be one of {list} (case-sensitive), got {}{}",
            quote(provider_type),
            suggestion
                .map(|s| format!(" (did you mean {}?)", quote(s)))
                .unwrap_or_default()
        ),
        match suggestion {
            Some(s) => format!("set spec.providerType: {s}"),
            None => format!("use one of {list}"),
        },
    );
    suggestion
}

fn check_provider_config(report: &mut Report, spec: &Json<'_>, provider_type: &str) {
    let (block, required) = provider_block(provider_type);
    let path = "spec.providerConfig";
    let block_path = format!("{path}.{block}");
    let example = required
        .iter()
        .map(|k| format!("{k}: …"))
        .collect::<Vec<_>>()
        .join(", ");
    let Some(config) = child(spec, "providerConfig") else {
        report.push(
            path,
            "is required",
            format!("add spec.providerConfig.{block} with {example}"),
        );
        return;
    };
    if !report.require_object(
        path,
        config,
        format!("add spec.providerConfig.{block} with {example}"),
    ) {
        return;
    }
    let Some(settings) = child(config, block) else {
        let other = ["s3", "azure", "gcp"]
            .into_iter()
            .find(|b| *b != block && child(config, b).is_some());
        let rule = match other {
            Some(other) => format!(
                "is required for providerType {provider_type}; found providerConfig.{other}, which {provider_type} \
                 does not read"
            ),
            None => format!("is required for providerType {provider_type}"),
        };
        report.push(
            block_path,
            rule,
            format!("add spec.providerConfig.{block} with {example}"),
        );
        return;
    };
    if !report.require_object(&block_path, settings, format!("write {example}")) {
        return;
    }
    for key in required {
        let fix = format!("set {block_path}.{key}");
        report::required_string(report, settings, &block_path, key, &fix);
    }
    if block == "s3" {
        for key in ["secure", "skipCertValidation"] {
            match child(settings, key) {
                None => {}
                Some(Json::String(s)) if s == "true" || s == "false" => {}
                Some(Json::Bool(b)) => report.push(
                    format!("{block_path}.{key}"),
                    format!("must be the string \"true\" or \"false\", got the boolean {b}"),
                    format!("quote it: {key}: \"{b}\""),
                ),
                Some(other) => report.push(
                    format!("{block_path}.{key}"),
                    format!(
                        "must be the string \"true\" or \"false\", got {}",
                        describe(other)
                    ),
                    format!("write {key}: \"true\" or {key}: \"false\""),
                ),
            }
        }
        match child(settings, "useIAM") {
            None | Some(Json::Bool(_)) => {}
            Some(other) => report.push(
                format!("{block_path}.useIAM"),
                format!("must be a boolean, got {}", describe(other)),
                "write useIAM: true or useIAM: false, without quotes",
            ),
        }
    }
}

fn check_credentials(report: &mut Report, spec: &Json<'_>) {
    let path = "spec.providerCredentials";
    let Some(credentials) = child(spec, "providerCredentials") else {
        return;
    };
    let Some(entries) = credentials.entries() else {
        report.push(
            path,
            format!(
                "must be a map of credential name to valueFromSecret, got {}",
                describe(credentials)
            ),
            "e.g. providerCredentials: {accessKeyID: {valueFromSecret: {name: s3-secret, key: accessKeyID}}}",
        );
        return;
    };
    for (name, entry) in entries {
        let entry_path = key_path(path, name);
        let secret_path = format!("{entry_path}.valueFromSecret");
        let example = format!("{{name: <secret in this namespace>, key: {name}}}");
        if !entry.is_object() {
            report.push(
                &entry_path,
                format!("must be an object with valueFromSecret, got {}", describe(entry)),
                format!("write {name}: {{valueFromSecret: {example}}}"),
            );
            continue;
        }
        match child(entry, "valueFromSecret") {
            None => report.push(
                &secret_path,
                "is required",
                format!("add valueFromSecret: {example}"),
            ),
            Some(secret) if !secret.is_object() => report.push(
                &secret_path,
                format!("must be an object with key and name, got {}", describe(secret)),
                format!("write valueFromSecret: {example}"),
            ),
            Some(secret) => {
                report::required_string(
                    report,
                    secret,
                    &secret_path,
                    "key",
                    "set key to the key inside the Secret that holds the credential",
                );
                if let Some(secret_name) = report::required_string(
                    report,
                    secret,
                    &secret_path,
                    "name",
                    "set name to a Secret in the AppVault's namespace",
                ) {
                    report::check_object_name(report, &format!("{secret_path}.name"), "Secret", secret_name);
                }
            }
        }
    }
}
