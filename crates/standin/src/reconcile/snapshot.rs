//! Snapshot and ShutdownSnapshot reconcile.

use std::fmt::Debug;
use std::sync::Arc;

use jiff::Timestamp;
use kube::api::{Api, Patch};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tprotect_api::{
    AppVault, Application, ShutdownSnapshot, Snapshot, SnapshotStatus, TRIDENT_PROTECT_NAMESPACE,
};

use super::write::{params, patch_status, with_retries};
use super::{Ctx, target, uid};
use crate::conditions::{ConditionUpdate, upsert};
use crate::faults::{Kind, Transition};
use crate::rules::forms::{Archive, VaultStatus};
use crate::rules::snapshot::{Observation, Step, VaultState, decide, state_written};
use crate::{APPLICATION_SHUTDOWN_CONDITION, APPLICATION_SHUTDOWN_REASON, Error, SNAPSHOT_READY_CONDITION};

/// What the reconcile needs of a Snapshot or a ShutdownSnapshot (one schema, two kinds).
pub(crate) trait SnapshotKind:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    const KIND: Kind;
    fn application_ref(&self) -> Option<&str>;
    fn app_vault_ref(&self) -> Option<&str>;
    fn snapshot_status(&self) -> Option<&SnapshotStatus>;
}

/// The two kinds' specs and statuses have the same fields, so their impls are the same.
macro_rules! snapshot_kind {
    ($($type:ty => $kind:expr),+) => {$(
        impl SnapshotKind for $type {
            const KIND: Kind = $kind;
            fn application_ref(&self) -> Option<&str> {
                self.spec.application_ref.as_deref()
            }
            fn app_vault_ref(&self) -> Option<&str> {
                self.spec.app_vault_ref.as_deref()
            }
            fn snapshot_status(&self) -> Option<&SnapshotStatus> {
                self.status.as_ref()
            }
        }
    )+};
}

snapshot_kind!(Snapshot => Kind::Snapshot, ShutdownSnapshot => Kind::ShutdownSnapshot);

pub(super) async fn reconcile<K: SnapshotKind>(snapshot: Arc<K>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    with_retries(K::KIND, snapshot, ctx, once::<K>).await
}

async fn once<K: SnapshotKind>(ctx: Arc<Ctx>, api: Api<K>, snapshot: K) -> Result<Action, Error> {
    let namespace = snapshot.namespace().unwrap_or_default();
    let name = snapshot.name_any();
    let status = snapshot.snapshot_status().cloned().unwrap_or_default();
    let state = status.state.as_deref();
    let in_phase_for = ctx.phases.in_phase_for(
        &ctx.phase_key(K::KIND, &uid(&snapshot)),
        state.unwrap_or_default(),
    );
    let profile = ctx.config.profile;
    let running = match state.unwrap_or_default() {
        "" => profile.snapshot_running_state().is_none(),
        state => state == tprotect_api::SNAPSHOT_STATE_RUNNING,
    };

    // Look at the Application and the AppVault only when they matter (at completion).
    let mut application = None;
    let mut vault = VaultState::Missing;
    let mut vault_prefix = None;
    if running {
        if let Some(app) = snapshot.application_ref().filter(|a| !a.is_empty()) {
            application = Api::<Application>::namespaced(ctx.local.client.clone(), &namespace)
                .get_opt(app)
                .await?;
        }
        if let Some(vault_name) = snapshot.app_vault_ref().filter(|v| !v.is_empty()) {
            let found = Api::<AppVault>::namespaced(ctx.local.client.clone(), TRIDENT_PROTECT_NAMESPACE)
                .get_opt(vault_name)
                .await?;
            vault_prefix = found.as_ref().and_then(|v| v.spec.prefix.clone());
            let status = found.map(|v| VaultStatus::from(v.status.unwrap_or_default()));
            vault = VaultState::of(status.as_ref());
        }
    }
    let application_uid = application.as_ref().and_then(|a| a.metadata.uid.clone());
    let step = decide(
        &Observation {
            namespace: &namespace,
            state,
            in_phase_for,
            delay: ctx.config.snapshot_delay,
            stalled: ctx
                .config
                .faults
                .is_stalled(Transition::SnapshotCompletion, &name),
            application: snapshot.application_ref(),
            application_uid: application_uid.as_deref(),
            app_vault: snapshot.app_vault_ref(),
            vault,
        },
        profile,
    );

    let now = Timestamp::now();
    let generation = snapshot.meta().generation;
    let mut conditions = status.conditions.clone().unwrap_or_default();
    let mut set = |update| {
        if profile.writes_conditions() {
            upsert(&mut conditions, update, generation, now)
        }
    };
    let mut patch = serde_json::Map::new();
    let action = match &step {
        Step::Idle => return Ok(Action::await_change()),
        Step::Wait(wait) => return Ok(Action::requeue(*wait)),
        Step::Start => {
            set(ConditionUpdate::new(
                SNAPSHOT_READY_CONDITION,
                false,
                "Running",
                "snapshot in progress",
            ));
            patch.insert("appVaultRef".into(), json!(snapshot.app_vault_ref()));
            Action::requeue(
                ctx.config
                    .snapshot_delay
                    .max(std::time::Duration::from_millis(10)),
            )
        }
        Step::Complete {
            application,
            application_uid,
        } => {
            let created = snapshot.meta().creation_timestamp.as_ref().map_or(now, |t| t.0);
            let snapshot_uid = uid(&snapshot);
            let path = profile.archive_path(&Archive {
                application,
                application_uid,
                started: created,
                snapshot: &name,
                snapshot_uid: &snapshot_uid,
                vault_prefix: vault_prefix.as_deref(),
            });
            if K::KIND == Kind::ShutdownSnapshot && profile.writes_conditions() {
                record_shutdown(&ctx, &namespace, application, &name, &path).await?;
            }
            set(ConditionUpdate::new(
                SNAPSHOT_READY_CONDITION,
                true,
                "Completed",
                "",
            ));
            patch.insert("appArchivePath".into(), json!(path));
            patch.insert("appVaultRef".into(), json!(snapshot.app_vault_ref()));
            patch.insert("completionTimestamp".into(), profile.timestamp(now));
            patch.insert("error".into(), serde_json::Value::Null);
            Action::await_change()
        }
        Step::Fail(error) => {
            set(ConditionUpdate::new(
                SNAPSHOT_READY_CONDITION,
                false,
                "Failed",
                error.clone(),
            ));
            patch.insert("error".into(), json!(error));
            Action::await_change()
        }
    };
    let Some(state) = state_written(&step, profile) else {
        // The variant: no status while the snapshot runs.
        return Ok(action);
    };
    tracing::info!(cluster = %ctx.local.name, kind = K::KIND.as_str(), %namespace, %name, state, "snapshot");
    patch.insert("state".into(), json!(state));
    if profile.writes_conditions() {
        patch.insert("conditions".into(), serde_json::to_value(&conditions)?);
    }
    let target = target(K::KIND, &snapshot);
    patch_status(&ctx, &api, &target, &snapshot, serde_json::Value::Object(patch)).await?;
    Ok(action)
}

/// A ShutdownSnapshot stops the source application (planned swap): Trident protect deletes the app's resources,
/// keeping PVCs and PVs. The stand-in runs no workloads; it records the shutdown as the Application condition
/// [`APPLICATION_SHUTDOWN_CONDITION`] (True, reason [`APPLICATION_SHUTDOWN_REASON`], naming the ShutdownSnapshot
/// and its archive), written before the ShutdownSnapshot reports Completed.
async fn record_shutdown(
    ctx: &Ctx,
    namespace: &str,
    application: &str,
    snapshot: &str,
    archive: &str,
) -> Result<(), Error> {
    let api = Api::<Application>::namespaced(ctx.local.client.clone(), namespace);
    for _ in 0..5 {
        let Some(app) = api.get_opt(application).await? else {
            return Ok(());
        };
        let mut conditions = app
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let before = conditions.clone();
        upsert(
            &mut conditions,
            ConditionUpdate::new(
                APPLICATION_SHUTDOWN_CONDITION,
                true,
                APPLICATION_SHUTDOWN_REASON,
                format!(
                    "shut down for a planned swap by ShutdownSnapshot {snapshot:?} (archive {archive}); its \
                     resources were deleted, PVCs and PVs kept"
                ),
            ),
            app.meta().generation,
            Timestamp::now(),
        );
        if conditions == before {
            return Ok(());
        }
        let patch = json!({
            "metadata": { "resourceVersion": app.resource_version() },
            "status": { "conditions": conditions },
        });
        match api
            .patch_status(application, &params(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.is_conflict() && !status.is_already_exists() => {
                ctx.config.faults.record_conflict();
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(Error::Conflicts(format!("Application {namespace}/{application}")))
}
