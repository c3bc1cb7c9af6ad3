//! `backuprepo install --print` on the real API server: the CRDs are Established with our
//! printer columns, the admission policy and its binding are accepted and their CEL compiles
//! within the real cost budget, and both kubectl apply modes take the whole output.

use crate::harness::{cluster, text};

#[test]
fn the_install_applies_client_side_and_server_side() {
    let Some(c) = cluster("the_install_applies_client_side_and_server_side") else {
        return;
    };
    // The README's order: CRDs, wait, then the rest (client-side apply).
    c.sh_ok(
        "$BACKUPREPO crds | kubectl apply -f -
         kubectl wait --for=condition=Established --timeout=60s \
           crd/backuprepos.dataprotection.kubeblocks.io crd/storageproviders.dataprotection.kubeblocks.io
         $BACKUPREPO install --print | kubectl apply -f -",
    );
    // And server-side, as `--store kube install` does.
    let out =
        c.sh_ok("$BACKUPREPO install --print | kubectl apply --server-side --force-conflicts -f -");
    assert!(out.contains("validatingadmissionpolicy.admissionregistration.k8s.io/backuprepo-single-default serverside-applied"), "{out}");

    for crd in ["backuprepos", "storageproviders"] {
        let name = format!("crd/{crd}.dataprotection.kubeblocks.io");
        let condition = |type_: &str| {
            let path = format!("jsonpath={{.status.conditions[?(@.type==\"{type_}\")].status}}");
            c.kubectl_ok(&["get", &name, "-o", &path], None)
        };
        assert_eq!(condition("Established"), "True", "{name}");
        // A structural schema: the API server names any violation in NonStructuralSchema.
        let nonstructural = condition("NonStructuralSchema");
        assert_eq!(nonstructural, "", "{name} is not structural");
    }

    // kubectl shows our printer columns.
    let columns = c.kubectl_ok(
        &[
            "get",
            "crd/backuprepos.dataprotection.kubeblocks.io",
            "-o",
            "jsonpath={.spec.versions[0].additionalPrinterColumns[*].name}",
        ],
        None,
    );
    assert_eq!(columns, "STATUS STORAGEPROVIDER ACCESSMETHOD DEFAULT AGE");
    let sp = c.kubectl_ok(&["get", "storageproviders", "-o", "name"], None);
    for p in [
        "s3",
        "oss",
        "cos",
        "gcs-s3comp",
        "obs",
        "minio",
        "s3-compatible",
        "ftp",
        "nfs",
        "pvc",
        "azureblob",
    ] {
        assert!(
            sp.lines()
                .any(|l| l == format!("storageprovider.dataprotection.kubeblocks.io/{p}")),
            "{p} missing from {sp}"
        );
    }

    // The admission policy: accepted, type-checked by the API server without a warning, bound.
    // The status controller type-checks the CEL against the CRD schema.
    let vap = c.wait(60, "the policy is type-checked", || {
        let p = c.get(&["validatingadmissionpolicy", "backuprepo-single-default"])?;
        (p["status"]["observedGeneration"] == p["metadata"]["generation"]).then_some(p)
    });
    let warnings = &vap["status"]["typeChecking"]["expressionWarnings"];
    assert!(
        warnings.is_null() || warnings.as_array().is_some_and(Vec::is_empty),
        "CEL warnings: {warnings}"
    );
    let binding = c
        .get(&[
            "validatingadmissionpolicybinding",
            "backuprepo-single-default",
        ])
        .expect("the binding");
    assert_eq!(binding["spec"]["policyName"], "backuprepo-single-default");

    // The install's ServiceAccount may do what the controller needs, and not more.
    let sa = "system:serviceaccount:backuprepo-system:backuprepo-controller";
    let can = |verb: &str, what: &str, ns: Option<&str>| {
        let mut args = vec!["auth", "can-i", verb, what, "--as", sa];
        if let Some(ns) = ns {
            args.extend_from_slice(&["-n", ns]);
        }
        let o = c.kubectl(&args, None);
        String::from_utf8_lossy(&o.stdout).trim() == "yes"
    };
    assert!(can(
        "patch",
        "backuprepos.dataprotection.kubeblocks.io/status",
        None
    ));
    assert!(can(
        "update",
        "leases.coordination.k8s.io",
        Some("backuprepo-system")
    ));
    assert!(
        !can("delete", "secrets", Some("default")),
        "no delete on Secrets"
    );
    assert!(
        !can("create", "jobs.batch", Some("default")),
        "Jobs only in its namespace"
    );
    assert!(can("create", "jobs.batch", Some("backuprepo-system")));
    let o = c.kubectl(&["auth", "can-i", "*", "*", "--as", sa], None);
    assert!(!o.status.success(), "no wildcard: {}", text(&o));
}
