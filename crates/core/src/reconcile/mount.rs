//! Steps 3 and 4 of a reconcile, which only Mount needs: the CSI secret and StorageClass, and
//! the PVC template.

use super::*;

/// What steps 3 and 4 render from: the repository, its provider, the merged parameters.
pub(super) struct Render<'i, 'a> {
    pub(super) input: &'i Input<'a>,
    pub(super) provider: &'i StorageProvider,
    pub(super) parameters: &'i BTreeMap<String, String>,
}

/// Step 3: the CSI secret and StorageClass (Kubernetes, Mount only; condition
/// StorageClassCreated). KubeBlocks makes them for every access method; a Tool repository never
/// mounts, and its CSI secret would only be one more copy of the credentials in the cluster.
pub(super) fn storage_class_step(
    r: &Render<'_, '_>,
    step: &mut Step<'_>,
    out: &mut Output,
) -> Option<()> {
    let (input, provider, parameters) = (r.input, r.provider, r.parameters);
    let repo = input.repo;
    let method = repo.access_method();
    let spec = &provider.spec;
    let settings = input.settings;
    if settings.mount_supported && method == AccessMethod::Mount {
        let secret_ref = if spec.csi_driver_secret_template.is_some() {
            // The name in status is kept (KubeBlocks' random suffix) only if it is one this
            // rule derives, in the controller's namespace: status is writable by others, and
            // the controller writes this Secret.
            let r = step
                .status
                .generated_csi_driver_secret
                .clone()
                .filter(|r| {
                    r.namespace.as_deref() == Some(settings.namespace.as_str())
                        && r.name.as_deref().is_some_and(|n| {
                            backuprepo_api::names::is_derived_name(
                                name_prefix::CSI_DRIVER_SECRET,
                                repo.name(),
                                n,
                            )
                        })
                })
                .unwrap_or_else(|| SecretReference {
                    name: Some(derived_name(
                        name_prefix::CSI_DRIVER_SECRET,
                        repo.name(),
                        input.name_suffix,
                    )),
                    namespace: Some(settings.namespace.clone()),
                });
            step.status.generated_csi_driver_secret = Some(r.clone());
            Some(r)
        } else {
            None
        };
        let ctx = render::Context {
            parameters,
            csi_secret: secret_ref.as_ref().map(|r| {
                (
                    r.name.as_deref().unwrap_or(""),
                    r.namespace.as_deref().unwrap_or(""),
                )
            }),
        };
        match render::csi_secret(spec, &ctx) {
            Ok(data) => out.csi_secret = secret_ref.clone().zip(data),
            Err(e) => {
                step.set(
                    ct::STORAGE_CLASS_CREATED,
                    FALSE,
                    reason::PREPARE_CSI_SECRET_FAILED,
                    e.to_string(),
                );
                return None;
            }
        }
        match render::storage_class(spec, &ctx) {
            Ok(Some(mut sc)) => {
                let sc_name = step
                    .status
                    .generated_storage_class_name
                    .clone()
                    .unwrap_or_else(|| {
                        derived_name(name_prefix::STORAGE_CLASS, repo.name(), input.name_suffix)
                    });
                step.status.generated_storage_class_name = Some(sc_name.clone());
                sc.metadata.name = Some(sc_name);
                sc.volume_binding_mode = Some("Immediate".into());
                sc.reclaim_policy = Some(repo.spec.pv_reclaim_policy.as_str().into());
                out.storage_class = Some(sc);
            }
            Ok(None) => {}
            Err(e) => {
                step.set(
                    ct::STORAGE_CLASS_CREATED,
                    FALSE,
                    reason::PREPARE_STORAGE_CLASS_FAILED,
                    e.to_string(),
                );
                return None;
            }
        }
        step.set(
            ct::STORAGE_CLASS_CREATED,
            TRUE,
            reason::STORAGE_CLASS_CREATED,
            "",
        );
    } else {
        step.set(
            ct::STORAGE_CLASS_CREATED,
            TRUE,
            reason::SKIPPED,
            if method == AccessMethod::Tool {
                "Tool access needs no StorageClass or CSI secret"
            } else {
                "this store does not create StorageClasses or CSI secrets"
            },
        );
    }
    Some(())
}

/// Step 4: the PVC template renders (Mount only; condition PVCTemplateChecked).
pub(super) fn pvc_step(r: &Render<'_, '_>, step: &mut Step<'_>, out: &mut Output) -> Option<()> {
    let (input, provider, parameters) = (r.input, r.provider, r.parameters);
    let spec = &provider.spec;
    if input.repo.access_method() == AccessMethod::Mount
        && spec.persistent_volume_claim_template.is_some()
    {
        let ctx = render::Context {
            parameters,
            csi_secret: None,
        };
        let sc = step
            .status
            .generated_storage_class_name
            .clone()
            .unwrap_or_default();
        match render::pvc(spec, &ctx, &sc) {
            Ok(pvc) => {
                out.pvc = pvc;
                step.set(
                    ct::PVC_TEMPLATE_CHECKED,
                    TRUE,
                    reason::PVC_TEMPLATE_CHECKED,
                    "",
                );
            }
            Err(e) => {
                step.set(
                    ct::PVC_TEMPLATE_CHECKED,
                    FALSE,
                    reason::BAD_PVC_TEMPLATE,
                    e.to_string(),
                );
                return None;
            }
        }
    } else {
        step.set(ct::PVC_TEMPLATE_CHECKED, TRUE, reason::SKIPPED, "");
    }
    Some(())
}

pub(super) fn csi_driver_installed(p: &StorageProvider) -> bool {
    // A provider without a CSI driver needs none (its status says so once the provider
    // controller ran; the rule is the same without it).
    if p.spec
        .csi_driver_name
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        return true;
    }
    p.status
        .as_ref()
        .is_some_and(|s| conditions::is_true(&s.conditions, ct::CSI_DRIVER_INSTALLED))
}
