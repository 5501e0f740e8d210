//! Snapshot and ShutdownSnapshot rules (same schema).

use crate::json::Json;

use crate::report::{self, Report, child};

pub(crate) fn validate(report: &mut Report, object: &Json<'_>) {
    let Some(spec) = report::spec(report, object, "add spec with applicationRef and appVaultRef") else {
        return;
    };
    if let Some(name) = report::required_string(
        report,
        spec,
        "spec",
        "applicationRef",
        "set spec.applicationRef to the name of the Application to snapshot",
    ) {
        report::check_object_name(report, "spec.applicationRef", "Application", name);
    }
    // The CRD lets appVaultTargetsRef (NetApp Backup and Recovery service only) stand in for appVaultRef.
    if child(spec, "appVaultTargetsRef").is_some() && child(spec, "appVaultRef").is_none() {
        return;
    }
    if let Some(name) = report::required_string(
        report,
        spec,
        "spec",
        "appVaultRef",
        "set spec.appVaultRef to the name of the application's AppVault",
    ) {
        report::check_object_name(report, "spec.appVaultRef", "AppVault", name);
    }
}
