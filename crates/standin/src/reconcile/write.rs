//! Status writes: JSON merge patches of the status subresource carrying the `resourceVersion` the decision was
//! based on (a 409 Conflict means someone wrote in between: read again, decide again), never whole objects, so
//! fields the stand-in does not know survive. Plus the injected faults that act on writes.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{Ctx, target};
use crate::faults::{Kind, Target};
use crate::{Error, FIELD_MANAGER};

/// How many times one reconcile reads again after a 409 Conflict before giving up (the controller then retries).
const MAX_ATTEMPTS: usize = 5;

pub(crate) fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

/// A `resourceVersion` older than `current`: what a write based on a stale read carries.
fn stale(current: &str) -> String {
    match current.parse::<u64>() {
        Ok(version) if version > 1 => (version - 1).to_string(),
        Ok(version) => (version + 1).to_string(),
        Err(_) => "1".to_string(),
    }
}

/// Merge-patches `status` of `object`, conditional on the `resourceVersion` it was read at. Returns the object as
/// written.
pub(crate) async fn patch_status<K>(
    ctx: &Ctx,
    api: &Api<K>,
    target: &Target,
    object: &K,
    status: Value,
) -> Result<K, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut version = object.resource_version().unwrap_or_default();
    if ctx.config.faults.take_conflict(target) {
        tracing::info!(?target, "fault: writing status with a stale resourceVersion");
        version = stale(&version);
    }
    let patch = json!({ "metadata": { "resourceVersion": version }, "status": status });
    Ok(api
        .patch_status(&object.name_any(), &params(), &Patch::Merge(&patch))
        .await?)
}

fn status_error<K: Serialize>(object: &K) -> Option<String> {
    serde_json::to_value(object)
        .ok()?
        .pointer("/status/error")?
        .as_str()
        .map(str::to_string)
}

/// Runs `once` on `object` (of `kind`, given the object's Api in its namespace), reading the object again and
/// running `once` again after each 409 Conflict. Plays the injected transient error for the object first: written
/// at one reconcile, restored at the next.
pub(crate) async fn with_retries<K, F, Fut>(
    kind: Kind,
    object: Arc<K>,
    ctx: Arc<Ctx>,
    mut once: F,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug,
    F: FnMut(Arc<Ctx>, Api<K>, K) -> Fut,
    Fut: Future<Output = Result<Action, Error>>,
{
    let api = Api::<K>::namespaced(ctx.local.client.clone(), &object.namespace().unwrap_or_default());
    let target = target(kind, &*object);
    let mut once = |object| once(ctx.clone(), api.clone(), object);
    let injected = ctx.config.faults.take_transient_error(&target);
    let mut object = (*object).clone();
    let mut attempt = 1;
    loop {
        let result = match &injected {
            Some(message) => {
                let previous = status_error(&object);
                match patch_status(&ctx, &api, &target, &object, json!({ "error": message })).await {
                    Ok(_) => {
                        tracing::info!(?target, message, "fault: transient status.error written");
                        ctx.restore_errors
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(target.clone(), previous);
                        // Our own write wakes us; this requeue is the fallback.
                        return Ok(Action::requeue(Duration::from_millis(200)));
                    }
                    Err(error) => Err(error),
                }
            }
            None => restore_then(&ctx, &api, &target, &mut object, &mut once).await,
        };
        match result {
            Err(error) if error.is_conflict() && attempt < MAX_ATTEMPTS => {
                ctx.config.faults.record_conflict();
                tracing::info!(?target, attempt, "409 Conflict; reading the object again");
                attempt += 1;
                match api.get_opt(&object.name_any()).await? {
                    Some(fresh) => object = fresh,
                    None => return Ok(Action::await_change()),
                }
            }
            other => return other,
        }
    }
}

async fn restore_then<K, F, Fut>(
    ctx: &Ctx,
    api: &Api<K>,
    target: &Target,
    object: &mut K,
    once: &mut F,
) -> Result<Action, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    F: FnMut(K) -> Fut,
    Fut: Future<Output = Result<Action, Error>>,
{
    let restore = ctx
        .restore_errors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(target)
        .cloned();
    if let Some(previous) = restore {
        *object = patch_status(ctx, api, target, object, json!({ "error": previous })).await?;
        ctx.restore_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(target);
        tracing::info!(?target, "fault: transient status.error cleared");
    }
    once(object.clone()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_versions_differ_from_the_current_one() {
        assert_eq!(stale("1234"), "1233");
        assert_eq!(stale("1"), "2");
        assert_eq!(stale("opaque"), "1");
    }
}
