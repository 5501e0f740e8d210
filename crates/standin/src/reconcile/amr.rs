//! AppMirrorRelationship reconcile: observe the AMR's cluster and its peer (the source), decide, carry out the
//! side effects (destination Application, namespaces), write the status.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams, Patch, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tprotect_api::{
    AMR_STATE_ESTABLISHED, AppMirrorRelationship, AppVault, Application, ApplicationSpec, DesiredState,
    IncludedNamespace, RELATIONSHIP_LABEL, SNAPSHOT_STATE_COMPLETED, ShutdownSnapshot, Snapshot,
    TRIDENT_PROTECT_NAMESPACE,
};
use tprotect_policy::namespace::{NamespaceMeta, SkipRules, merge};

use super::write::{params, patch_status, with_retries};
use super::{AFTER_WRITE, Ctx, target, uid};
use crate::Error;
use crate::clock::{Cadence, tick};
use crate::faults::{Kind, Transition};
use crate::rules::amr::{
    Delays, FinalizerStep, NamespaceMerge, Observation, Prerequisites, PromotedSnapshot, SourceApp, Stalls,
    StatusInputs, Step, TransferClock, decide, finalizer_step, status_patch,
};
use crate::rules::forms::{
    Phase, RELATIONSHIP_FINALIZER, archive_basename, parse_destination_application_ref,
};

pub(super) async fn reconcile(amr: Arc<AppMirrorRelationship>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    with_retries(Kind::AppMirrorRelationship, amr, ctx, once).await
}

/// The source namespaces to look for the source Application in: the mapping's, else the AMR's own.
fn source_namespaces(amr: &AppMirrorRelationship) -> Vec<String> {
    let mut namespaces: Vec<String> = amr.source_namespaces().into_iter().map(str::to_string).collect();
    namespaces.dedup();
    if namespaces.is_empty() {
        namespaces.push(amr.namespace().unwrap_or_default());
    }
    namespaces
}

/// What the reconcile learnt about the source, beyond [`Prerequisites`].
struct SourceView {
    reachable: Result<(), String>,
    app: SourceApp,
    app_object: Option<Application>,
    vault_on_source: Option<bool>,
}

async fn observe_source(ctx: &Ctx, amr: &AppMirrorRelationship) -> Result<SourceView, Error> {
    let mut view = SourceView {
        reachable: Ok(()),
        app: SourceApp::Missing {
            namespaces: source_namespaces(amr),
        },
        app_object: None,
        vault_on_source: None,
    };
    if let Some(name) = amr
        .spec
        .source_application_name
        .as_deref()
        .filter(|n| !n.is_empty())
    {
        for namespace in source_namespaces(amr) {
            let api = Api::<Application>::namespaced(ctx.peer.client.clone(), &namespace);
            match ctx.on_peer(api.get_opt(name)).await? {
                Err(reason) => {
                    view.reachable = Err(reason);
                    view.app = SourceApp::Unreachable;
                    return Ok(view);
                }
                Ok(None) => {}
                Ok(Some(app)) => {
                    let found = app.metadata.uid.clone().unwrap_or_default();
                    view.app = if Some(found.as_str()) == amr.spec.source_application_uid.as_deref() {
                        SourceApp::Found { namespace }
                    } else {
                        SourceApp::UidMismatch {
                            namespace,
                            uid: found,
                        }
                    };
                    view.app_object = Some(app);
                    break;
                }
            }
        }
    }
    if let Some(vault) = amr.spec.source_app_vault_ref.as_deref().filter(|n| !n.is_empty()) {
        let api = Api::<AppVault>::namespaced(ctx.peer.client.clone(), TRIDENT_PROTECT_NAMESPACE);
        match ctx.on_peer(api.get_opt(vault)).await? {
            Err(reason) => {
                view.reachable = Err(reason);
                view.app = SourceApp::Unreachable;
            }
            Ok(found) => view.vault_on_source = Some(found.is_some()),
        }
    } else if view.reachable.is_ok() {
        // Nothing to look up, but say whether the source answers (promotion depends on it).
        let api = Api::<Namespace>::all(ctx.peer.client.clone());
        if let Err(reason) = ctx.on_peer(api.get_opt("default")).await? {
            view.reachable = Err(reason);
            view.app = SourceApp::Unreachable;
        }
    }
    Ok(view)
}

async fn vault_exists(ctx: &Ctx, name: Option<&str>) -> Result<bool, Error> {
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Ok(false);
    };
    let api = Api::<AppVault>::namespaced(ctx.local.client.clone(), TRIDENT_PROTECT_NAMESPACE);
    Ok(api.get_opt(name).await?.is_some())
}

/// The ShutdownSnapshot on the source whose archive basename is `spec.promotedSnapshot`.
async fn find_promoted_snapshot(ctx: &Ctx, amr: &AppMirrorRelationship) -> Result<PromotedSnapshot, Error> {
    let Some(basename) = amr.spec.promoted_snapshot.clone().filter(|b| !b.is_empty()) else {
        return Ok(PromotedSnapshot::NotRequested);
    };
    let api = Api::<ShutdownSnapshot>::all(ctx.peer.client.clone());
    Ok(match ctx.on_peer(api.list(&ListParams::default())).await? {
        Err(reason) => PromotedSnapshot::Unverifiable { basename, reason },
        Ok(list) => list
            .items
            .into_iter()
            .find(|s| {
                s.status
                    .as_ref()
                    .and_then(|st| st.app_archive_path.as_deref())
                    .and_then(archive_basename)
                    .is_some_and(|b| b == basename)
            })
            .map_or(PromotedSnapshot::NotFound { basename }, |s| {
                PromotedSnapshot::Found {
                    name: s.name_any(),
                    completion: s.status.and_then(|st| st.completion_timestamp).map(|t| t.0),
                }
            }),
    })
}

/// The newest Completed Snapshot of the source Application: what a transfer carries.
async fn latest_snapshot(
    ctx: &Ctx,
    source: &SourceView,
    application: &str,
) -> Result<Option<(String, Option<Timestamp>)>, Error> {
    let SourceApp::Found { namespace } = &source.app else {
        return Ok(None);
    };
    let api = Api::<Snapshot>::namespaced(ctx.peer.client.clone(), namespace);
    let Ok(list) = ctx.on_peer(api.list(&ListParams::default())).await? else {
        return Ok(None);
    };
    Ok(list
        .items
        .into_iter()
        .filter(|s| s.spec.application_ref.as_deref() == Some(application))
        .filter(|s| s.state() == Some(SNAPSHOT_STATE_COMPLETED))
        .map(|s| {
            let completion = s
                .status
                .as_ref()
                .and_then(|st| st.completion_timestamp.clone())
                .map(|t| t.0);
            (completion, s.name_any())
        })
        .max()
        .map(|(completion, name)| (name, completion)))
}

fn recurrence(amr: &AppMirrorRelationship) -> Result<Cadence, String> {
    let text = amr
        .spec
        .recurrence_rule
        .as_deref()
        .ok_or_else(|| "spec.recurrenceRule is not set".to_string())?;
    Cadence::from_recurrence_rule(text)
}

async fn once(
    ctx: Arc<Ctx>,
    api: Api<AppMirrorRelationship>,
    amr: AppMirrorRelationship,
) -> Result<Action, Error> {
    let namespace = amr.namespace().unwrap_or_default();
    let name = amr.name_any();
    let amr_uid = uid(&amr);
    let profile = ctx.config.profile;
    if let Some(action) = finalizer(&ctx, &api, &amr).await? {
        return Ok(action);
    }
    let now = Timestamp::now();
    let desired = amr.spec.desired_state;
    let state = amr.state().map(str::to_string);
    let phase = format!(
        "{}/{}",
        state.as_deref().unwrap_or_default(),
        desired.map(DesiredState::as_str).unwrap_or_default()
    );
    let in_phase_for = ctx
        .phases
        .in_phase_for(&ctx.phase_key(Kind::AppMirrorRelationship, &amr_uid), &phase);

    let source = observe_source(&ctx, &amr).await?;
    let cadence = recurrence(&amr);
    let prerequisites = Prerequisites {
        source_cluster: ctx.peer.name.clone(),
        destination_cluster: ctx.local.name.clone(),
        source_reachable: source.reachable.clone(),
        application_name: amr.spec.source_application_name.clone(),
        application_uid: amr.spec.source_application_uid.clone(),
        source_vault: amr.spec.source_app_vault_ref.clone(),
        destination_vault: amr.spec.destination_app_vault_ref.clone(),
        source_app: source.app.clone(),
        source_vault_on_source: source.vault_on_source,
        source_vault_on_destination: vault_exists(&ctx, amr.spec.source_app_vault_ref.as_deref()).await?,
        destination_vault_on_destination: vault_exists(&ctx, amr.spec.destination_app_vault_ref.as_deref())
            .await?,
        recurrence_problem: cadence.as_ref().err().cloned(),
    };
    let promoted_snapshot = if desired == Some(DesiredState::Promoted) {
        find_promoted_snapshot(&ctx, &amr).await?
    } else {
        PromotedSnapshot::NotRequested
    };
    let transfer = match (&cadence, state.as_deref()) {
        (Err(problem), _) => TransferClock::Invalid(problem.clone()),
        (Ok(cadence), Some(AMR_STATE_ESTABLISHED)) => {
            let last = ctx.last_run(&amr_uid).unwrap_or_else(|| {
                // First sight of an Established AMR (e.g. after a restart): the next occurrence is the next transfer.
                let baseline = cadence.index_at(ctx.clock.to_sim(now));
                ctx.set_last_run(&amr_uid, Some(baseline));
                baseline
            });
            let tick = tick(cadence, &ctx.clock, last, now);
            if tick.due {
                TransferClock::Due
            } else {
                TransferClock::NotDue(tick.wake_in)
            }
        }
        (Ok(_), _) => TransferClock::NotDue(ctx.config.retry_interval),
    };
    let faults = &ctx.config.faults;
    let application = amr.spec.source_application_name.clone().unwrap_or_default();
    let destination_application = profile.destination_application_name(&application, &amr_uid);
    let destination_application_exists = if !profile.creates_application_before_promoted()
        && desired == Some(DesiredState::Promoted)
        && Phase::of(state.as_deref()) == Phase::Promoted
    {
        Api::<Application>::namespaced(ctx.local.client.clone(), &namespace)
            .get_opt(&destination_application)
            .await?
            .is_some()
    } else {
        true
    };
    let observation = Observation {
        desired,
        state: state.clone(),
        in_phase_for,
        missing: prerequisites.missing(),
        source_reachable: source.reachable.clone(),
        promoted_snapshot: promoted_snapshot.clone(),
        transfer,
        stalls: Stalls {
            establish: faults.is_stalled(Transition::Establish, &name),
            promote: faults.is_stalled(Transition::Promote, &name),
            resync: faults.is_stalled(Transition::Resync, &name),
            transfer: faults.is_stalled(Transition::Transfer, &name),
        },
        failure: faults.relationship_failure(&name),
        destination_application_exists,
    };
    let delays = Delays {
        establish: ctx.config.establish_delay,
        promote: ctx.config.promote_delay,
        resync: ctx.config.resync_delay,
        retry: ctx.config.retry_interval,
    };
    let step = decide(&observation, &delays, profile);

    // Side effects first: whoever sees the new state also sees what it promises.
    let mut namespace_merge = None;
    match &step {
        Step::Promote => {
            namespace_merge = Some(promote(&ctx, &amr, &source, &destination_application).await?);
        }
        Step::CreateApplication => {
            create_destination_application(&ctx, &amr, &source, &destination_application).await?;
        }
        Step::Resync if profile.resync_deletes_application() => {
            let reference = amr
                .status
                .as_ref()
                .and_then(|s| s.destination_application_ref.clone())
                .unwrap_or_default();
            let (app_namespace, app) = parse_destination_application_ref(&reference, &namespace)
                .unwrap_or((&namespace, &destination_application));
            let apps = Api::<Application>::namespaced(ctx.local.client.clone(), app_namespace);
            match apps.delete(app, &DeleteParams::default()).await {
                Ok(_) => {
                    tracing::info!(cluster = %ctx.local.name, namespace = %app_namespace, application = %app, "resync: destination Application deleted")
                }
                Err(kube::Error::Api(status)) if status.is_not_found() => {}
                Err(error) => return Err(error.into()),
            }
        }
        _ => {}
    }
    let latest = match &step {
        Step::Establish | Step::Transfer | Step::Resync => {
            latest_snapshot(&ctx, &source, &application).await?
        }
        _ => None,
    };
    let status = amr.status.clone().unwrap_or_default();
    let inputs = StatusInputs {
        now,
        generation: amr.meta().generation,
        state: state.clone(),
        conditions: status.conditions.clone().unwrap_or_default(),
        error: status.error.clone(),
        source_cluster: ctx.peer.name.clone(),
        destination_cluster: ctx.local.name.clone(),
        namespace: namespace.clone(),
        destination_namespaces: amr
            .destination_namespaces()
            .into_iter()
            .map(str::to_string)
            .collect(),
        application,
        destination_application,
        latest_snapshot: latest,
        promoted_snapshot,
        namespace_merge,
    };
    if let Some(patch) = status_patch(&step, &inputs, profile) {
        tracing::info!(
            cluster = %ctx.local.name, %namespace, %name, ?step,
            state = patch.get("state").and_then(|s| s.as_str()).unwrap_or(state.as_deref().unwrap_or_default()),
            "AppMirrorRelationship"
        );
        let target = target(Kind::AppMirrorRelationship, &amr);
        patch_status(&ctx, &api, &target, &amr, patch).await?;
    }
    let transferred = matches!(step, Step::Establish | Step::Transfer)
        || (matches!(step, Step::Resync) && !profile.resync_passes_through_establishing());
    if let (true, Ok(cadence)) = (transferred, &cadence) {
        let current = cadence.index_at(ctx.clock.to_sim(now));
        ctx.set_last_run(&amr_uid, Some(current));
        return Ok(Action::requeue(
            tick(cadence, &ctx.clock, current, Timestamp::now()).wake_in,
        ));
    }
    Ok(match step {
        Step::Idle => Action::await_change(),
        Step::Wait(wait) => Action::requeue(wait),
        Step::Blocked(_) | Step::Fail(_) => Action::requeue(ctx.config.retry_interval),
        Step::Enter(_)
        | Step::Promote
        | Step::CreateApplication
        | Step::Resync
        | Step::Establish
        | Step::Transfer => Action::requeue(AFTER_WRITE),
    })
}

/// The variant's finalizer: put on at first sight; on deletion removed after `delete_delay` (the clean-up a
/// controller would do). `Some(action)` when that is all this reconcile does.
async fn finalizer(
    ctx: &Ctx,
    api: &Api<AppMirrorRelationship>,
    amr: &AppMirrorRelationship,
) -> Result<Option<Action>, Error> {
    let deleting = amr.metadata.deletion_timestamp.is_some();
    let has_finalizer = amr.finalizers().iter().any(|f| f == RELATIONSHIP_FINALIZER);
    let deleting_for = if deleting {
        ctx.phases
            .in_phase_for(&ctx.phase_key(Kind::AppMirrorRelationship, &uid(amr)), "deleting")
    } else {
        std::time::Duration::ZERO
    };
    let step = finalizer_step(
        ctx.config.profile,
        deleting,
        has_finalizer,
        deleting_for,
        ctx.config.delete_delay,
    );
    let finalizers = |keep_ours: bool| -> Vec<String> {
        let mut list: Vec<String> = amr
            .finalizers()
            .iter()
            .filter(|f| *f != RELATIONSHIP_FINALIZER)
            .cloned()
            .collect();
        if keep_ours {
            list.push(RELATIONSHIP_FINALIZER.to_string());
        }
        list
    };
    let write = |list: Vec<String>| async move {
        let patch = json!({
            "metadata": { "resourceVersion": amr.resource_version(), "finalizers": list }
        });
        api.patch(&amr.name_any(), &params(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
    };
    Ok(match step {
        None => None,
        Some(FinalizerStep::Wait(wait)) => Some(Action::requeue(wait)),
        Some(FinalizerStep::Add) => {
            write(finalizers(true)).await?;
            Some(Action::requeue(AFTER_WRITE))
        }
        Some(FinalizerStep::Remove) => {
            write(finalizers(false)).await?;
            tracing::info!(cluster = %ctx.local.name, namespace = %amr.namespace().unwrap_or_default(), name = %amr.name_any(), "AppMirrorRelationship cleaned up: finalizer removed");
            Some(Action::await_change())
        }
    })
}

/// Promotion's side effects on the destination: its namespaces exist and carry the source namespaces' labels and
/// annotations by the documented merge, and the destination Application exists.
async fn promote(
    ctx: &Ctx,
    amr: &AppMirrorRelationship,
    source: &SourceView,
    destination_application: &str,
) -> Result<NamespaceMerge, Error> {
    for mapping in amr.namespace_mappings() {
        ensure_namespace(ctx, source, &mapping.source, &mapping.destination).await?;
    }
    let outcome = match &source.reachable {
        Err(reason) => NamespaceMerge::SourceUnreachable(reason.clone()),
        Ok(()) => merge_namespaces(ctx, amr).await?,
    };
    if ctx.config.profile.creates_application_before_promoted() {
        create_destination_application(ctx, amr, source, destination_application).await?;
    }
    Ok(outcome)
}

/// Creates the destination namespace `name` if missing: empty (the merge follows as an UPDATE), or under the
/// variant with the source namespace's labels and annotations merged in (one CREATE).
async fn ensure_namespace(ctx: &Ctx, source: &SourceView, from: &str, name: &str) -> Result<(), Error> {
    let api = Api::<Namespace>::all(ctx.local.client.clone());
    if api.get_opt(name).await?.is_some() {
        return Ok(());
    }
    let mut metadata = kube::api::ObjectMeta {
        name: Some(name.to_string()),
        ..Default::default()
    };
    if ctx.config.profile.creates_namespace_with_metadata() && source.reachable.is_ok() {
        let peer = Api::<Namespace>::all(ctx.peer.client.clone());
        if let Ok(Some(source_namespace)) = ctx.on_peer(peer.get_opt(from)).await? {
            let empty = NamespaceMeta {
                name: name.to_string(),
                ..Default::default()
            };
            let merged = merge(&meta(&source_namespace)?, &empty, &SkipRules::none());
            metadata.labels = Some(merged.labels.into_iter().collect());
            metadata.annotations = Some(merged.annotations.into_iter().collect());
        }
    }
    let namespace = Namespace {
        metadata,
        ..Default::default()
    };
    match api.create(&PostParams::default(), &namespace).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// For each mapping, the destination namespace's labels and annotations become `merge(source, destination)` with
/// no skip rules (the webhook enforces the skip lists): written as an UPDATE of the Namespace (a merge patch
/// conditional on the resourceVersion read, so the admission webhook sees the old and the new object and no
/// destination-only key is dropped).
async fn merge_namespaces(ctx: &Ctx, amr: &AppMirrorRelationship) -> Result<NamespaceMerge, Error> {
    let peer = Api::<Namespace>::all(ctx.peer.client.clone());
    let local = Api::<Namespace>::all(ctx.local.client.clone());
    let mut merged = Vec::new();
    let mut missing_sources = Vec::new();
    for mapping in amr.namespace_mappings() {
        let source = match ctx.on_peer(peer.get_opt(&mapping.source)).await? {
            Err(reason) => return Ok(NamespaceMerge::SourceUnreachable(reason)),
            Ok(None) => {
                missing_sources.push(mapping.source.clone());
                continue;
            }
            Ok(Some(ns)) => meta(&ns)?,
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let current = local.get(&mapping.destination).await?;
            let before = meta(&current)?;
            let after = merge(&source, &before, &SkipRules::none());
            if after == before {
                break;
            }
            let patch = json!({
                "metadata": {
                    "resourceVersion": current.resource_version(),
                    "labels": after.labels,
                    "annotations": after.annotations,
                }
            });
            match local
                .patch(&mapping.destination, &params(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => break,
                Err(kube::Error::Api(status)) if status.is_conflict() && attempts < 5 => {
                    ctx.config.faults.record_conflict();
                }
                Err(error) => return Err(error.into()),
            }
        }
        tracing::info!(
            cluster = %ctx.local.name, source = %mapping.source, destination = %mapping.destination,
            "namespace labels and annotations merged"
        );
        merged.push((mapping.source.clone(), mapping.destination.clone()));
    }
    Ok(NamespaceMerge::Merged {
        merged,
        missing_sources,
    })
}

fn meta(namespace: &Namespace) -> Result<NamespaceMeta, Error> {
    NamespaceMeta::from_object(&serde_json::to_value(namespace)?).map_err(|e| Error::Invalid(e.to_string()))
}

/// The destination Application: named like the source one, in the AMR's namespace, including the mapped
/// destination namespaces (with the source's label selectors when the source could be read). No owner reference:
/// deleting the AMR leaves it as an independent application.
async fn create_destination_application(
    ctx: &Ctx,
    amr: &AppMirrorRelationship,
    source: &SourceView,
    name: &str,
) -> Result<(), Error> {
    let namespace = amr.namespace().unwrap_or_default();
    let api = Api::<Application>::namespaced(ctx.local.client.clone(), &namespace);
    if api.get_opt(name).await?.is_some() {
        return Ok(());
    }
    let selectors: BTreeMap<&str, _> = source
        .app_object
        .as_ref()
        .and_then(|app| app.spec.included_namespaces.as_ref())
        .into_iter()
        .flatten()
        .map(|included| (included.namespace.as_str(), included.label_selector.clone()))
        .collect();
    let mut included: Vec<IncludedNamespace> = amr
        .namespace_mappings()
        .iter()
        .map(|m| IncludedNamespace {
            namespace: m.destination.clone(),
            label_selector: selectors.get(m.source.as_str()).cloned().flatten(),
        })
        .collect();
    if included.is_empty() {
        included.push(IncludedNamespace {
            namespace: namespace.clone(),
            label_selector: None,
        });
    }
    let mut app = Application::new(
        name,
        ApplicationSpec {
            included_namespaces: Some(included),
            ..Default::default()
        },
    );
    app.metadata.namespace = Some(namespace.clone());
    if let Some(relationship) = amr.labels().get(RELATIONSHIP_LABEL)
        && ctx.config.profile.labels_destination_application()
    {
        app.metadata.labels = Some([(RELATIONSHIP_LABEL.to_string(), relationship.clone())].into());
    }
    match api.create(&PostParams::default(), &app).await {
        Ok(_) => {
            tracing::info!(cluster = %ctx.local.name, %namespace, application = %name, "destination Application created");
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(()),
        Err(error) => Err(error.into()),
    }
}
