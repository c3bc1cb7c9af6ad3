//! The StorageProvider controller (spec §2.12): a provider is `Ready` when it needs no CSI
//! driver or its `CSIDriver` object exists, `NotReady` (condition Unknown/CheckCSIDriverFailed)
//! otherwise. Status is written only when the phase changes. The legacy finalizer is removed:
//! a provider owns nothing that ownerReferences would not clean.

use std::sync::Arc;

use backuprepo_api::constants::{condition_type as ct, reason, FINALIZER};
use backuprepo_api::{StorageProvider, StorageProviderPhase, StorageProviderStatus};
use backuprepo_core::conditions::{self, TRUE, UNKNOWN};
use k8s_openapi::api::storage::v1::CSIDriver;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::resources::status_merge_patch;

pub async fn reconcile_provider(
    ctx: Arc<Context>,
    provider: Arc<StorageProvider>,
) -> Result<Action> {
    ctx.metrics.reconciled("storageprovider");
    let api: Api<StorageProvider> = Api::all(ctx.client.clone());
    let name = provider.name();
    if provider.finalizers().iter().any(|f| f == FINALIZER) {
        let rest: Vec<&String> = provider
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .collect();
        let patch = json!({
            "metadata": {
                "finalizers": rest,
                "resourceVersion": provider.metadata.resource_version,
            }
        });
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(Error::kube("remove legacy finalizer"))?;
    }
    if provider.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }

    let driver = provider
        .spec
        .csi_driver_name
        .as_deref()
        .filter(|d| !d.is_empty());
    let lookup = match driver {
        None => Ok(()),
        Some(d) => {
            let drivers: Api<CSIDriver> = Api::all(ctx.client.clone());
            // A lookup that fails (network, throttling, server errors) says nothing about the
            // driver: it is retried with backoff rather than written as NotReady.
            match drivers
                .get_opt(d)
                .await
                .map_err(Error::kube(format!("get CSIDriver {d}")))?
            {
                Some(_) => Ok(()),
                None => Err(format!("CSIDriver {d:?} not found")),
            }
        }
    };
    let (phase, status, why, msg) = match &lookup {
        Ok(()) => (
            StorageProviderPhase::Ready,
            TRUE,
            reason::CSI_DRIVER_OBJECT_FOUND,
            String::new(),
        ),
        Err(e) => (
            StorageProviderPhase::NotReady,
            UNKNOWN,
            reason::CHECK_CSI_DRIVER_FAILED,
            e.clone(),
        ),
    };
    let old = provider.status.clone();
    if old.as_ref().and_then(|s| s.phase) != Some(phase) {
        let mut new = old.clone().unwrap_or_default();
        new.phase = Some(phase);
        conditions::set(
            &mut new.conditions,
            ct::CSI_DRIVER_INSTALLED,
            status,
            why,
            conditions::truncate_message(msg),
            provider.metadata.generation,
            &ctx.now(),
        );
        let patch = status_merge_patch::<StorageProviderStatus>(old.as_ref(), &new);
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(Error::kube("patch storage provider status"))?;
        ctx.event(
            &provider.object_ref(&()),
            phase != StorageProviderPhase::Ready,
            why,
            "CheckCSIDriver",
            match &lookup {
                Ok(()) => format!("storage provider {name} is Ready"),
                Err(e) => e.clone(),
            },
        )
        .await;
    }
    ctx.succeeded(&format!("storageprovider/{name}"));
    // The CSIDriver watch wakes us when the driver appears.
    Ok(Action::await_change())
}
