//! Schedule reconcile: create a Snapshot at each occurrence, prune to the retention, record the run.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tprotect_api::{Schedule, Snapshot, SnapshotSpec};

use super::write::{patch_status, with_retries};
use super::{Ctx, target, uid};
use crate::clock::tick;
use crate::faults::Kind;
use crate::rules::schedule::{Step, cadence, decide, retention, snapshot_name, to_prune};
use crate::{Error, SCHEDULE_LABEL};

pub(super) async fn reconcile(schedule: Arc<Schedule>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    with_retries(Kind::Schedule, schedule, ctx, once).await
}

async fn once(ctx: Arc<Ctx>, api: Api<Schedule>, schedule: Schedule) -> Result<Action, Error> {
    let namespace = schedule.namespace().unwrap_or_default();
    let name = schedule.name_any();
    let schedule_uid = uid(&schedule);
    let now = Timestamp::now();
    let enabled = schedule.is_enabled();
    if !enabled {
        // Re-enabling starts from the occurrence it is re-enabled at, without catching up.
        ctx.set_last_run(&schedule_uid, None);
    }
    let cadence_result = cadence(&schedule.spec);
    let step = decide(
        enabled,
        cadence_result.clone(),
        retention(&schedule.spec),
        |cadence| {
            let last = ctx.last_run(&schedule_uid).unwrap_or_else(|| {
                let baseline = cadence.index_at(ctx.clock.to_sim(now));
                ctx.set_last_run(&schedule_uid, Some(baseline));
                baseline
            });
            tick(cadence, &ctx.clock, last, now)
        },
    );
    let current_error = schedule.status.as_ref().and_then(|s| s.error.clone());
    let target = target(Kind::Schedule, &schedule);
    match step {
        Step::Idle => Ok(Action::await_change()),
        Step::Wait(wait) => {
            if current_error.is_some() {
                patch_status(&ctx, &api, &target, &schedule, json!({ "error": null })).await?;
            }
            Ok(Action::requeue(wait))
        }
        Step::Invalid(problem) => {
            if current_error.as_deref() != Some(problem.as_str()) {
                patch_status(&ctx, &api, &target, &schedule, json!({ "error": problem })).await?;
            }
            Ok(Action::await_change())
        }
        Step::Run { index } => {
            let Ok(cadence) = cadence_result else {
                return Ok(Action::await_change());
            };
            let keep = retention(&schedule.spec).unwrap_or(0);
            let snapshot = snapshot_name(&name, cadence.occurrence(index));
            create_snapshot(&ctx, &schedule, &snapshot).await?;
            prune(&ctx, &schedule, keep).await?;
            patch_status(
                &ctx,
                &api,
                &target,
                &schedule,
                json!({
                    "lastScheduleTime": ctx.config.profile.timestamp(now),
                    "error": null,
                }),
            )
            .await?;
            ctx.set_last_run(&schedule_uid, Some(index));
            tracing::info!(cluster = %ctx.local.name, %namespace, schedule = %name, %snapshot, "scheduled snapshot");
            Ok(Action::requeue(
                tick(&cadence, &ctx.clock, index, Timestamp::now()).wake_in,
            ))
        }
    }
}

async fn create_snapshot(ctx: &Ctx, schedule: &Schedule, name: &str) -> Result<(), Error> {
    let namespace = schedule.namespace().unwrap_or_default();
    let api = Api::<Snapshot>::namespaced(ctx.local.client.clone(), &namespace);
    let mut snapshot = Snapshot::new(
        name,
        SnapshotSpec {
            application_ref: schedule.spec.application_ref.clone(),
            app_vault_ref: schedule.spec.app_vault_ref.clone(),
            reclaim_policy: schedule.spec.snapshot_reclaim_policy,
            ..Default::default()
        },
    );
    snapshot.metadata.namespace = Some(namespace);
    snapshot.metadata.labels = Some([(SCHEDULE_LABEL.to_string(), schedule.name_any())].into());
    snapshot.metadata.owner_references = Some(vec![OwnerReference {
        api_version: Schedule::api_version(&()).to_string(),
        kind: Schedule::kind(&()).to_string(),
        name: schedule.name_any(),
        uid: uid(schedule),
        controller: Some(true),
        block_owner_deletion: None,
    }]);
    match api.create(&PostParams::default(), &snapshot).await {
        Ok(_) => Ok(()),
        // Created before a restart: the name is the occurrence's.
        Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Deletes the Schedule's oldest Snapshots beyond `keep`.
async fn prune(ctx: &Ctx, schedule: &Schedule, keep: usize) -> Result<(), Error> {
    let namespace = schedule.namespace().unwrap_or_default();
    let api = Api::<Snapshot>::namespaced(ctx.local.client.clone(), &namespace);
    let schedule_uid = uid(schedule);
    let owned: Vec<(Timestamp, String)> = api
        .list(&ListParams::default().labels(&format!("{SCHEDULE_LABEL}={}", schedule.name_any())))
        .await?
        .items
        .into_iter()
        .filter(|s| s.owner_references().iter().any(|o| o.uid == schedule_uid))
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .map(|s| {
            let created = s
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
            (created, s.name_any())
        })
        .collect();
    for name in to_prune(&owned, keep) {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => tracing::info!(cluster = %ctx.local.name, %namespace, snapshot = %name, "pruned"),
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}
