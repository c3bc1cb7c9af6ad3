//! `backuprepo`: one binary for the BackupRepo control plane and data path.
//!
//! - kbcli's `backuprepo` commands (`create`, `update`, `list`, `describe`, `delete`,
//!   `list-storage-provider`) plus `check`;
//! - the seed's kubectl flows (`apply -f`, `get`, `annotate`, `secret create`, `install -f`);
//! - the data verbs against a repository by name (`push`, `pull`, `list --repo`, `stat`, `rm`);
//! - the datasafed face: run as `datasafed` (by name, e.g. a symlink) it is a drop-in for
//!   KubeBlocks' transfer tool; `backuprepo datasafed <verb>` is the same.
//!
//! Resources live in the local store under `--home` (`BACKUPREPO_HOME`), or with `--store kube`
//! (`BACKUPREPO_STORE=kube`) in the cluster of the current kubeconfig context.

mod args;
mod complete;
mod control;
mod datasafed;
mod pipe;
mod plugin;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use backuprepo_core::store::{InstallRequest, RepoStore};
use backuprepo_operator::KubeStore;
use clap::Parser;

use args::{Cli, Command, SecretCommand};

use datasafed::Verb;

fn main() -> ExitCode {
    // One TLS crypto provider (ring) for every client of the process, the Kubernetes one too.
    backuprepo_transfer::service::install_crypto_provider();
    pipe::quiet_on_closed_stdout();
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let name = std::path::Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name == "datasafed" {
        let args = datasafed::Args::parse_from(std::env::args_os());
        return datasafed::main(args);
    }
    complete::answer_if_asked();
    let cli = if name == "kubectl-backuprepo" {
        Cli::parse_from(plugin::args(std::env::args_os()))
    } else {
        Cli::parse()
    };
    if let Command::Datasafed(args) = cli.command {
        return datasafed::main(args);
    }
    if let Command::ProbeWorker = cli.command {
        return backuprepo_operator::probe_worker::worker_main();
    }
    datasafed::init_logging(&cli.log_level);
    let result = match cli.command {
        Command::Controller => controller(),
        // What needs no store: printed manifests.
        Command::Crds => {
            print!("{}", backuprepo_deploy::crds_yaml());
            Ok(())
        }
        Command::Completion { shell } => complete::script(&shell),
        Command::Man { out } => complete::man(out.as_deref()),
        Command::Install {
            file,
            print: true,
            namespace,
            image,
            allowed_namespaces,
            monitoring,
        } => install_request(
            file.as_deref(),
            namespace,
            image,
            allowed_namespaces,
            monitoring,
        )
        .and_then(|request| {
            let opts = backuprepo_operator::store::install_options(&cli.install_namespace, request);
            print!("{}", backuprepo_deploy::install_yaml(&opts)?);
            Ok(())
        }),
        command => on_store(
            cli.store == "kube",
            cli.home,
            cli.install_namespace,
            backuprepo_operator::store::Target {
                kubeconfig: cli.kubeconfig,
                context: cli.context,
            },
            command,
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => pipe::failure(&format!("{e:#}")),
    }
}

/// Open the store (`--store`) and run the command on it.
fn on_store(
    kube: bool,
    home: Option<PathBuf>,
    namespace: String,
    target: backuprepo_operator::store::Target,
    command: Command,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let result = rt.block_on(async {
        if kube {
            run(&KubeStore::connect_to(namespace, &target).await?, command).await
        } else {
            // Only the commands that make objects may make a store. The others, given a
            // --home (or BACKUPREPO_HOME) where there is none, read an empty store made
            // aside (the built-in providers, no repository) and say so, instead of creating
            // one at a mistyped path.
            let makes = matches!(
                command,
                Command::Create { .. }
                    | Command::Apply { .. }
                    | Command::Install { .. }
                    | Command::Secret(_)
            );
            if let (Some(h), false) = (&home, makes) {
                if !h.exists() {
                    eprintln!(
                        "Note: there is no local store at {} (--home or BACKUPREPO_HOME) yet; nothing was created there (`backuprepo create` or `apply` makes it)",
                        h.display()
                    );
                    let empty = tempfile::tempdir().context("cannot make a temporary directory")?;
                    let store = control::open_local(Some(empty.path().join("store")))?;
                    return run(&store, command).await;
                }
            }
            run(&control::open_local(home)?, command).await
        }
    });
    // A reader thread may still be blocked on stdin after a failed push; do not wait for it.
    rt.shutdown_background();
    result
}

/// `backuprepo controller`: the operator, on its own runtime (no local store).
fn controller() -> Result<()> {
    let cfg = backuprepo_operator::OperatorConfig::from_env().map_err(|e| anyhow::anyhow!(e))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let config = kube::Config::infer().await.map_err(|e| {
            anyhow::anyhow!("cannot reach a Kubernetes API server (kubeconfig or in-cluster service account): {e}")
        })?;
        backuprepo_operator::controller::run_from_config(config, cfg).await
    })
}

/// What `install` is asked for: the values file's text, the controller's namespace and image.
fn install_request(
    file: Option<&str>,
    namespace: Option<String>,
    image: Option<String>,
    allowed_namespaces: Option<String>,
    monitoring: bool,
) -> Result<InstallRequest> {
    Ok(InstallRequest {
        values: file.map(control::manifests::read_input).transpose()?,
        namespace,
        image,
        allowed_namespaces,
        monitoring,
    })
}

/// The one dispatcher: every control-plane command, over whichever store.
async fn run<S: RepoStore>(store: &S, command: Command) -> Result<()> {
    use control::{create, data, grants, kubectl, manifests, repos};
    match command {
        Command::Create { args } => create::create(store, args).await,
        Command::Update { args } => create::update(store, args).await,
        Command::List(a) => {
            let files_flag = a.recursive || a.dirs_only || a.files_only || a.name.is_some();
            if a.repo.is_none() && a.rpath.is_none() && !files_flag {
                let output = a.output.as_deref().unwrap_or("table");
                return repos::list(store, output).await;
            }
            // `list secrets` (a path of that name: `list secrets/` or `--repo`).
            if let (None, Some("secret" | "secrets")) = (&a.repo, a.rpath.as_deref()) {
                let output = a.output.as_deref().unwrap_or("table");
                return kubectl::get_secrets(store, &[], None, output, false).await;
            }
            let output = a.output.unwrap_or_else(|| "short".into());
            if !["short", "long", "json"].contains(&output.as_str()) {
                bail!("listing files: -o must be short, long or json");
            }
            data::run(
                store,
                a.repo.as_deref(),
                Verb::List {
                    rpath: a.rpath.unwrap_or_else(|| "/".into()),
                    dirs_only: a.dirs_only,
                    files_only: a.files_only,
                    recursive: a.recursive,
                    max_depth: -1,
                    // Sorted by path, also with -r (where datasafed streams unsorted).
                    sort: Some("path".into()),
                    reverse: false,
                    newer_than: None,
                    older_than: None,
                    name: a.name,
                    output_format: output,
                },
            )
            .await
        }
        Command::Describe { names, namespace } => {
            match kubectl::targets(&names, Some(kubectl::Kind::Repo)) {
                Ok((kubectl::Kind::Secret, n)) => {
                    kubectl::describe_secrets(store, &n, namespace.as_deref()).await
                }
                Ok((kubectl::Kind::Repo, n)) => repos::describe(store, &n).await,
                Ok((kubectl::Kind::Provider, _)) => {
                    bail!("describe supports backuprepo and secret objects; see a provider with `backuprepo get storageprovider NAME -o yaml`")
                }
                Err(e) => Err(e),
            }
        }
        Command::Delete {
            args,
            force,
            yes,
            ignore_not_found,
            namespace,
        } => match kubectl::targets(&args, Some(kubectl::Kind::Repo))? {
            (kubectl::Kind::Secret, names) => {
                kubectl::delete_secrets(store, &names, &namespace, force, ignore_not_found).await
            }
            (kubectl::Kind::Repo, names) => {
                repos::delete_each(store, &names, force, yes, ignore_not_found).await
            }
            (kubectl::Kind::Provider, _) => {
                bail!("delete supports backuprepo and secret objects")
            }
        },
        Command::ListStorageProvider { output } => repos::list_providers(store, &output).await,
        Command::Check { name, all, watch } => match (name, all, watch) {
            (Some(name), _, _) => repos::check(store, &name).await,
            (None, _, Some(secs)) => repos::watch(store, secs).await,
            (None, _, None) => repos::check_all(store).await,
        },
        Command::Apply { files } => manifests::apply(store, &files).await,
        Command::Get {
            args,
            output,
            ignore_not_found,
            namespace,
        } => {
            let (kind, names) = kubectl::targets(&args, None)?;
            let ns = namespace.as_deref();
            manifests::get(store, kind, &names, &output, ignore_not_found, ns).await
        }
        Command::Annotate { args, overwrite } => manifests::annotate(store, &args, overwrite).await,
        Command::Install {
            file,
            namespace,
            image,
            allowed_namespaces,
            monitoring,
            ..
        } => {
            let request = install_request(
                file.as_deref(),
                namespace,
                image,
                allowed_namespaces,
                monitoring,
            )?;
            manifests::install(store, file.as_deref(), request).await
        }
        Command::Secret(SecretCommand::Create {
            name,
            namespace,
            from_literal,
        }) => manifests::create_secret(store, &name, &namespace, &from_literal).await,
        Command::Push {
            repo,
            lpath,
            rpath,
            compress,
            expected_size,
            no_clobber,
            lock,
        } => {
            let verb = Verb::Push {
                lpath,
                rpath,
                compress,
                expected_size,
                no_clobber,
                lock,
            };
            data::run(store, repo.repo.as_deref(), verb).await
        }
        Command::Pull {
            repo,
            rpath,
            lpath,
            decompress,
        } => {
            let verb = Verb::Pull {
                rpath,
                lpath,
                decompress,
            };
            data::run(store, repo.repo.as_deref(), verb).await
        }
        Command::Stat { repo, rpath, json } => {
            data::run(store, repo.repo.as_deref(), Verb::Stat { rpath, json }).await
        }
        Command::Rm {
            repo,
            rpath,
            recursive,
            ignore_not_found,
        } => {
            data::rm(
                store,
                repo.repo.as_deref(),
                &rpath,
                recursive,
                ignore_not_found,
            )
            .await
        }
        Command::Gc {
            name,
            repo,
            all,
            older_than,
            dry_run,
        } => {
            let names: Vec<Option<String>> = if all {
                store
                    .current_all()
                    .await?
                    .iter()
                    .filter(|r| r.phase() == Some(backuprepo_api::BackupRepoPhase::Ready))
                    .map(|r| Some(r.name().to_string()))
                    .collect()
            } else {
                vec![repo.or(name)?]
            };
            for n in names {
                if let Some(n) = &n {
                    println!("backuprepo/{n}:");
                }
                let verb = Verb::Gc {
                    older_than,
                    dry_run,
                };
                data::run(store, n.as_deref(), verb).await?;
            }
            Ok(())
        }
        Command::Copy {
            src,
            dst,
            prefix,
            transfers,
            delete_extra,
            dry_run,
        } => {
            let opts = backuprepo_transfer::storage::CopyOptions {
                prefix,
                transfers: transfers.into(),
                delete_extra,
            };
            data::copy(store, &src, &dst, &opts, dry_run).await
        }
        Command::Grant {
            repo,
            prefix,
            read_only,
            name,
            output,
        } => grants::grant(store, &repo, &prefix, read_only, name, output).await,
        Command::Revoke { repo, name } => grants::revoke(store, &repo, &name).await,
        Command::Grants { repo } => grants::list(store, &repo).await,
        Command::RotateKeys { repo } => grants::rotate_keys(store, &repo).await,
        Command::Bench {
            name,
            repo,
            size,
            max_memory,
        } => {
            let name = repo.or(name)?;
            data::run(store, name.as_deref(), Verb::Bench { size, max_memory }).await
        }
        Command::Verify {
            repo,
            rpath,
            decompress,
            sample,
        } => {
            let sample = sample
                .map(|s| datasafed::parse_percent(&s))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--sample: {e}"))?;
            let verb = Verb::Verify {
                rpath,
                decompress,
                sample,
            };
            data::run(store, repo.repo.as_deref(), verb).await
        }
        // Run before a store is opened.
        Command::Crds
        | Command::Completion { .. }
        | Command::Man { .. }
        | Command::Datasafed(_)
        | Command::Controller
        | Command::ProbeWorker => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definitions_are_consistent() {
        Cli::command().debug_assert();
        datasafed::Args::command().debug_assert();
    }
}
