//! `kubectl backuprepo ...`: the binary installed (or linked) as `kubectl-backuprepo` is a
//! kubectl plugin. It works on the cluster (`--store kube`) of kubectl's current context, and
//! takes kubectl's flags before the command: `--kubeconfig`, `--context`, and `--namespace`
//! (`-n`), the namespace of the credential Secrets `create` makes (kbcli: the KubeBlocks
//! namespace), as `--install-namespace` is for `backuprepo`.

use std::ffi::OsString;

/// The arguments as `backuprepo` reads them: `--store kube` unless a store is named, and a
/// leading `--namespace`/`-n` as `--install-namespace` (after the command, `-n` keeps its
/// meaning there, e.g. `get secret -n NS`).
pub fn args(given: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut it = given.into_iter();
    let mut out: Vec<OsString> = vec![it.next().unwrap_or_else(|| "kubectl-backuprepo".into())];
    let rest: Vec<OsString> = it.collect();
    let store_named = rest
        .iter()
        .any(|a| a == "--store" || a.to_string_lossy().starts_with("--store="))
        || std::env::var_os("BACKUPREPO_STORE").is_some();
    if !store_named {
        out.extend(["--store".into(), "kube".into()]);
    }
    let mut i = 0;
    let mut leading = true;
    while i < rest.len() {
        let a = rest[i].to_string_lossy().into_owned();
        if leading && !a.starts_with('-') {
            leading = false;
        }
        match a.as_str() {
            "-n" | "--namespace" if leading => {
                out.push("--install-namespace".into());
                if let Some(v) = rest.get(i + 1) {
                    out.push(v.clone());
                }
                i += 2;
                continue;
            }
            _ if leading && a.starts_with("--namespace=") => {
                out.push(format!("--install-namespace={}", &a["--namespace=".len()..]).into());
            }
            // A flag with its value: the value is not the command.
            "--kubeconfig" | "--context" | "--store" | "--home" | "--log-level" if leading => {
                out.push(rest[i].clone());
                if let Some(v) = rest.get(i + 1) {
                    out.push(v.clone());
                }
                i += 2;
                continue;
            }
            _ => out.push(rest[i].clone()),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    fn v(args: &[&str]) -> Vec<String> {
        super::args(args.iter().map(|s| s.into()))
            .into_iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn kubectl_flags_before_the_command() {
        if std::env::var_os("BACKUPREPO_STORE").is_some() {
            return;
        }
        assert_eq!(
            v(&[
                "kubectl-backuprepo",
                "-n",
                "kb-system",
                "--context",
                "prod",
                "get",
                "secret",
                "-n",
                "x"
            ]),
            [
                "kubectl-backuprepo",
                "--store",
                "kube",
                "--install-namespace",
                "kb-system",
                "--context",
                "prod",
                "get",
                "secret",
                "-n",
                "x"
            ]
        );
        assert_eq!(
            v(&["kubectl-backuprepo", "--namespace=ops", "list"]),
            [
                "kubectl-backuprepo",
                "--store",
                "kube",
                "--install-namespace=ops",
                "list"
            ]
        );
        assert_eq!(
            v(&["kubectl-backuprepo", "--store", "local", "list"]),
            ["kubectl-backuprepo", "--store", "local", "list"]
        );
    }
}
