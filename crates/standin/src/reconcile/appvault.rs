//! AppVault reconcile: check the credentials' Secrets, write the verdict.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use serde_json::json;
use tprotect_api::AppVault;

use super::write::{patch_status, with_retries};
use super::{Ctx, target, uid};
use crate::Error;
use crate::faults::{Kind, Transition};
use crate::rules::appvault::{SecretState, Step, check, decide};
use crate::rules::forms::VaultStatus;

pub(super) async fn reconcile(vault: Arc<AppVault>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    with_retries(Kind::AppVault, vault, ctx, once).await
}

async fn once(ctx: Arc<Ctx>, api: Api<AppVault>, vault: AppVault) -> Result<Action, Error> {
    let namespace = vault.namespace().unwrap_or_default();
    let secrets_api = Api::<Secret>::namespaced(ctx.local.client.clone(), &namespace);
    let mut secrets = BTreeMap::new();
    for name in vault.credential_secret_names() {
        // Only the key names are kept; values are never logged or stored.
        let state = match secrets_api.get_opt(name).await? {
            None => SecretState::Missing,
            Some(secret) => {
                let keys: BTreeSet<String> = secret
                    .data
                    .iter()
                    .flat_map(|d| d.keys())
                    .chain(secret.string_data.iter().flat_map(|d| d.keys()))
                    .cloned()
                    .collect();
                SecretState::Keys(keys)
            }
        };
        secrets.insert(name.to_string(), state);
    }
    let credentials = vault.spec.provider_credentials.clone().unwrap_or_default();
    let verdict = check(&namespace, &credentials, &secrets);
    let current = VaultStatus::from(vault.status.clone().unwrap_or_default());
    let in_phase_for = ctx.phases.in_phase_for(
        &ctx.phase_key(Kind::AppVault, &uid(&vault)),
        current.state.as_deref().unwrap_or_default(),
    );
    let step = decide(
        &current,
        &verdict,
        in_phase_for,
        ctx.config.appvault_delay,
        ctx.config
            .faults
            .is_stalled(Transition::AppVaultCheck, &vault.name_any()),
        ctx.config.profile,
    );
    match step {
        Step::Idle => Ok(Action::await_change()),
        Step::Wait(wait) => Ok(Action::requeue(wait)),
        Step::Write(written) => {
            tracing::info!(
                cluster = %ctx.local.name, %namespace, name = %vault.name_any(),
                state = written.state.as_deref().unwrap_or_default(),
                problem = verdict.problem().unwrap_or_default(), "AppVault"
            );
            let target = target(Kind::AppVault, &vault);
            patch_status(
                &ctx,
                &api,
                &target,
                &vault,
                json!({ "state": written.state, "error": written.error, "message": written.message }),
            )
            .await?;
            Ok(Action::await_change())
        }
    }
}
