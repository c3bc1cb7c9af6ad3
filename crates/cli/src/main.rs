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

mod control;
mod datasafed;
mod pipe;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use backuprepo_core::store::{InstallRequest, RepoStore};
use backuprepo_operator::KubeStore;
use clap::{Args, Parser, Subcommand};

use datasafed::Verb;

/// backuprepo: where database backups go. Create repositories on S3-family storage, FTP,
/// Azure Blob or a local directory, check them, and stream backups in and out.
#[derive(Debug, Parser)]
#[command(name = "backuprepo", version, about, propagate_version = true)]
struct Cli {
    /// Home of the local store (default: $XDG_DATA_HOME/backuprepo or ~/.local/share/backuprepo).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "BACKUPREPO_HOME"
    )]
    home: Option<PathBuf>,
    /// Where repositories live: `local` (the store under --home) or `kube` (the cluster of the
    /// current kubeconfig context, where `backuprepo controller` checks them).
    #[arg(long, global = true, help_heading = "Global options", env = "BACKUPREPO_STORE", default_value = "local", value_parser = ["local", "kube"])]
    store: String,
    /// With --store kube: the namespace of the credential Secrets `create` makes (kbcli: the
    /// KubeBlocks namespace), and of `install`.
    #[arg(long = "install-namespace", global = true, help_heading = "Global options", env = "BACKUPREPO_NAMESPACE", default_value = backuprepo_deploy::DEFAULT_NAMESPACE)]
    install_namespace: String,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long = "log-level", global = true, help_heading = "Global options", default_value = "warn", value_parser = datasafed::LOG_LEVELS)]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a backup repository; its flags come from the provider (`create --provider s3 --help`).
    #[command(disable_help_flag = true)]
    Create {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
    /// Update a repository's credentials or default flag (`update NAME --help`).
    #[command(disable_help_flag = true)]
    Update {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
    /// List backup repositories; with --repo or a path, list files in one.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show a repository: spec, conditions and the result of each check.
    Describe {
        /// Repository names.
        names: Vec<String>,
    },
    /// Delete a repository (refused while it holds backup data, unless --force).
    Delete {
        /// NAME, or `backuprepo NAME` as with kubectl.
        #[arg(num_args = 1..=2, required = true)]
        args: Vec<String>,
        /// Delete even though the repository still holds backup data (the data stays in the storage).
        #[arg(long)]
        force: bool,
        /// Do not ask for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// List the storage providers (built-in and applied).
    #[command(name = "list-storage-provider", visible_alias = "list-sp")]
    ListStorageProvider {
        /// Output format: table, wide, json or yaml.
        #[arg(short = 'o', long = "output", default_value = "table")]
        output: String,
    },
    /// Check a repository against its storage now (put, get, list, multipart, delete).
    Check {
        /// Repository name (or --all).
        #[arg(required_unless_present = "all")]
        name: Option<String>,
        /// Check every repository.
        #[arg(long, conflicts_with = "name")]
        all: bool,
        /// Keep running: reconcile every repository every SECONDS (re-checks that are due run,
        /// Failed repositories recover by themselves). Stops on Ctrl-C.
        #[arg(long, value_name = "SECONDS", requires = "all", value_parser = clap::value_parser!(u64).range(1..))]
        watch: Option<u64>,
    },
    /// Create or update Secrets, BackupRepos and StorageProviders from YAML (multi-document).
    Apply {
        /// File, or - for stdin.
        #[arg(short = 'f', long = "filename", required = true)]
        file: String,
    },
    /// Show backuprepo or storageprovider objects (kubectl get).
    Get {
        /// backuprepo or storageprovider (plural and full names accepted).
        kind: String,
        /// Object name (all when omitted).
        name: Option<String>,
        /// Output format: table, wide, json or yaml.
        #[arg(short = 'o', long = "output", default_value = "table")]
        output: String,
    },
    /// Set annotations, e.g. dataprotection.kubeblocks.io/is-default-repo=true (kubectl annotate).
    Annotate {
        /// backuprepo
        kind: String,
        /// Repository name.
        name: String,
        /// key=value to set, key- to remove.
        #[arg(required = true)]
        changes: Vec<String>,
        /// Replace existing values.
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new(), default_value = "false")]
        overwrite: bool,
    },
    /// Install. Local store: the repository of a KubeBlocks values file's `backupRepo:` block.
    /// With --store kube: everything the operator needs (namespace, CRDs, built-in providers,
    /// RBAC, controller, admission policy, and the values file's repository), applied to the
    /// cluster. With --print: those manifests, printed.
    ///
    /// `backuprepo install --print | kubectl apply -f -` needs the CRDs established first:
    /// apply `backuprepo crds`, `kubectl wait --for=condition=Established crd --all`, then the rest.
    Install {
        /// values.yaml (KubeBlocks chart values; only `backupRepo:` is read).
        #[arg(short = 'f', long = "values")]
        file: Option<String>,
        /// Print the Kubernetes manifests instead of installing.
        #[arg(long)]
        print: bool,
        /// Kubernetes: the controller's namespace (default: --install-namespace).
        #[arg(long)]
        namespace: Option<String>,
        /// Kubernetes: the controller image.
        #[arg(long)]
        image: Option<String>,
        /// Kubernetes: the namespaces a repository without spec.allowedNamespaces hands its
        /// config to ("team-a,team-b", or "*" for every namespace; default every namespace,
        /// as in KubeBlocks).
        #[arg(long, value_name = "NS,NS|*")]
        allowed_namespaces: Option<String>,
    },
    /// Print the CustomResourceDefinitions of BackupRepo and StorageProvider.
    Crds,
    /// Run the Kubernetes operator (BackupRepo and StorageProvider controllers) against the
    /// cluster of the current kubeconfig context or the in-cluster service account. Serves
    /// /metrics and /healthz (BACKUPREPO_METRICS_ADDR, default 0.0.0.0:8080).
    Controller,
    /// The controller's sandboxed Tool check (internal: a request on stdin, JSON on stdout).
    #[command(hide = true)]
    ProbeWorker,
    /// Credential Secrets (kubectl create secret generic).
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Push a local file (or - for stdin) into a repository. An object already at the remote
    /// path is replaced, unless --no-clobber is given.
    Push {
        #[command(flatten)]
        repo: RepoArg,
        /// Local file, or - for stdin.
        lpath: String,
        /// Remote path inside the repository.
        rpath: String,
        /// Compress with this algorithm (zstd, gzip, lz4, ...).
        #[arg(short = 'z', long = "compress")]
        compress: Option<String>,
        /// How big a stream from stdin will be, when it is known to be huge (see
        /// `datasafed push --help`).
        #[arg(long = "expected-size", value_name = "SIZE", env = "DATASAFED_EXPECTED_SIZE", value_parser = datasafed::parse_expected_size)]
        expected_size: Option<u64>,
        /// Refuse, writing nothing, when an object is already at the remote path.
        #[arg(short = 'n', long = "no-clobber")]
        no_clobber: bool,
    },
    /// Pull a file from a repository to a local file (or - for stdout).
    Pull {
        #[command(flatten)]
        repo: RepoArg,
        /// Remote path inside the repository.
        rpath: String,
        /// Local file, or - for stdout.
        lpath: String,
        /// Decompress with the algorithm used on push.
        #[arg(short = 'd', long = "decompress")]
        decompress: Option<String>,
    },
    /// Count files and bytes under a path of a repository.
    Stat {
        #[command(flatten)]
        repo: RepoArg,
        /// Remote path (default: the whole repository).
        #[arg(default_value = "")]
        rpath: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Read every object under a path of a repository end to end and check it, writing
    /// nothing (see `datasafed verify --help`); exit 1 if any is damaged.
    Verify {
        #[command(flatten)]
        repo: RepoArg,
        /// Remote path (default: the whole repository).
        #[arg(default_value = "")]
        rpath: String,
        /// The compression used on push (default: recognised by its magic number).
        #[arg(short = 'd', long = "decompress")]
        decompress: Option<String>,
        /// Check only this percentage of the objects, picked at random.
        #[arg(long, value_name = "PERCENT")]
        sample: Option<String>,
    },
    /// Measure push and pull on a repository's storage over chunk_size × upload_concurrency
    /// within a memory limit; print a table and recommend settings. Removes what it wrote,
    /// also when interrupted (see `datasafed bench --help`).
    Bench {
        /// Repository name (default: the default repository); `--repo NAME` is the same.
        name: Option<String>,
        #[command(flatten)]
        repo: RepoArg,
        /// Bytes pushed per setting.
        #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = datasafed::parse_expected_size)]
        size: u64,
        /// Skip settings whose estimated peak memory is above this.
        #[arg(long = "max-memory", value_name = "SIZE", default_value = "64MiB", value_parser = datasafed::parse_expected_size)]
        max_memory: u64,
    },
    /// Make a key on the storage limited to <pathPrefix>/PREFIX/ of a repository (read and list
    /// only with --read-only), and write a ready-to-use datasafed config for it (mode 0600).
    /// Needs an IAM API at the storage (providers minio and s3-compatible).
    Grant {
        /// Repository name.
        repo: String,
        /// The part of the repository the key may use, e.g. the namespace `team-a`.
        #[arg(long)]
        prefix: String,
        /// Read and list only.
        #[arg(long = "read-only")]
        read_only: bool,
        /// The grant's name (default: from the prefix).
        #[arg(long)]
        name: Option<String>,
        /// Where to write the config (default: NAME.conf; `-` prints it, with the secret).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<String>,
    },
    /// Delete a grant's key on the storage.
    Revoke {
        /// Repository name.
        repo: String,
        /// Grant name (see `backuprepo grants REPO`).
        name: String,
    },
    /// List a repository's grants: name, prefix, access, created (never a secret).
    Grants {
        /// Repository name.
        repo: String,
    },
    /// Replace every scoped key of a repository's consumer namespaces now (repositories
    /// annotated backuprepo.io/scoped-credentials=true, on Kubernetes). The controller writes
    /// the new keys into the namespaces' Secrets; the old ones keep working for
    /// BACKUPREPO_KEY_GRACE (default 1 day) so running jobs finish. `describe` lists the keys.
    RotateKeys {
        /// Repository name.
        repo: String,
    },
    /// Remove what interrupted work left in a repository's storage: incomplete S3 multipart
    /// uploads, temporary files, old pre-check directories (see `datasafed gc --help`).
    Gc {
        /// Repository name (default: the default repository); `--repo NAME` is the same.
        #[arg(conflicts_with = "all")]
        name: Option<String>,
        #[command(flatten)]
        repo: RepoArg,
        /// Every Ready repository.
        #[arg(long)]
        all: bool,
        /// Only what is at least this old: 24h, 30m, 90s, 7d, 0s.
        #[arg(long = "older-than", value_name = "DURATION", default_value = "24h", value_parser = datasafed::parse_duration)]
        older_than: std::time::Duration,
        /// Print what would be removed; remove nothing.
        #[arg(long = "dry-run")]
        dry_run: bool,
    },
    /// Remove a file, or a directory and everything under it with -r, from a repository. A
    /// missing path is an error (exit 1) unless --ignore-not-found is given.
    Rm {
        #[command(flatten)]
        repo: RepoArg,
        /// Remote path.
        rpath: String,
        /// Remove everything under the path (needed for a directory).
        #[arg(short = 'r', long)]
        recursive: bool,
        /// A missing path is not an error.
        #[arg(long)]
        ignore_not_found: bool,
    },
    /// The datasafed-compatible transfer tool (push, pull, list, stat, rm, ...).
    Datasafed(datasafed::Args),
}

/// `--repo NAME`: how every data verb names its repository.
#[derive(Debug, Args)]
struct RepoArg {
    /// Repository name (default: the default repository).
    #[arg(long)]
    repo: Option<String>,
}

impl RepoArg {
    /// `--repo`, or the positional name that `gc` and `bench` also take; both only if equal.
    fn or(self, positional: Option<String>) -> Result<Option<String>> {
        match (self.repo, positional) {
            (Some(a), Some(b)) if a != b => {
                bail!("the repository is named twice ({a:?} with --repo, {b:?} as an argument); give it once")
            }
            (a, b) => Ok(a.or(b)),
        }
    }
}

#[derive(Debug, Args)]
struct ListArgs {
    /// With --repo: the remote path to list (a trailing / means a directory).
    rpath: Option<String>,
    /// List files in this repository instead of listing repositories.
    #[arg(long)]
    repo: Option<String>,
    /// Repositories: table, wide, json, yaml. Files: short, long, json.
    #[arg(short = 'o', long = "output")]
    output: Option<String>,
    /// Files: recurse into subdirectories.
    #[arg(short = 'r', long)]
    recursive: bool,
    /// Files: only directories.
    #[arg(short = 'd', long = "dirs-only")]
    dirs_only: bool,
    /// Files: only files.
    #[arg(short = 'f', long = "files-only")]
    files_only: bool,
    /// Files: glob on the base name, e.g. "*.sql".
    #[arg(long)]
    name: Option<String>,
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// Create a Secret from literal values (like `kubectl create secret generic`).
    Create {
        name: String,
        /// Namespace.
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        /// KEY=VALUE (repeatable).
        #[arg(long = "from-literal")]
        from_literal: Vec<String>,
    },
}

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
    let cli = Cli::parse();
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
        Command::Install {
            file,
            print: true,
            namespace,
            image,
            allowed_namespaces,
        } => install_request(file.as_deref(), namespace, image, allowed_namespaces).and_then(
            |request| {
                let opts =
                    backuprepo_operator::store::install_options(&cli.install_namespace, request);
                print!("{}", backuprepo_deploy::install_yaml(&opts)?);
                Ok(())
            },
        ),
        command => on_store(
            cli.store == "kube",
            cli.home,
            cli.install_namespace,
            command,
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => pipe::failure(&format!("{e:#}")),
    }
}

/// Open the store (`--store`) and run the command on it.
fn on_store(kube: bool, home: Option<PathBuf>, namespace: String, command: Command) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let result = rt.block_on(async {
        if kube {
            run(&KubeStore::connect(namespace).await?, command).await
        } else {
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

/// `delete NAME` or `delete backuprepo NAME`, as with kubectl.
fn delete_names(args: Vec<String>) -> Result<Vec<String>> {
    match args.as_slice() {
        [kind, name] => {
            if !matches!(
                kind.as_str(),
                "backuprepo" | "backuprepos" | "backuprepos.dataprotection.kubeblocks.io"
            ) {
                bail!("delete supports backuprepo objects: `backuprepo delete NAME` or `backuprepo delete backuprepo NAME`");
            }
            Ok(vec![name.clone()])
        }
        _ => Ok(args),
    }
}

/// What `install` is asked for: the values file's text, the controller's namespace and image.
fn install_request(
    file: Option<&str>,
    namespace: Option<String>,
    image: Option<String>,
    allowed_namespaces: Option<String>,
) -> Result<InstallRequest> {
    Ok(InstallRequest {
        values: file.map(control::manifests::read_input).transpose()?,
        namespace,
        image,
        allowed_namespaces,
    })
}

/// The one dispatcher: every control-plane command, over whichever store.
async fn run<S: RepoStore>(store: &S, command: Command) -> Result<()> {
    use control::{create, data, grants, manifests, repos};
    match command {
        Command::Create { args } => create::create(store, args).await,
        Command::Update { args } => create::update(store, args).await,
        Command::List(a) => {
            if a.repo.is_none() && a.rpath.is_none() {
                let output = a.output.as_deref().unwrap_or("table");
                return repos::list(store, output).await;
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
                    sort: None,
                    reverse: false,
                    newer_than: None,
                    older_than: None,
                    name: a.name,
                    output_format: output,
                },
            )
            .await
        }
        Command::Describe { names } => repos::describe(store, &names).await,
        Command::Delete { args, force, yes } => {
            repos::delete(store, &delete_names(args)?, force, yes).await
        }
        Command::ListStorageProvider { output } => repos::list_providers(store, &output).await,
        Command::Check { name, all, watch } => match (name, all, watch) {
            (Some(name), _, _) => repos::check(store, &name).await,
            (None, _, Some(secs)) => repos::watch(store, secs).await,
            (None, _, None) => repos::check_all(store).await,
        },
        Command::Apply { file } => manifests::apply(store, &file).await,
        Command::Get { kind, name, output } => {
            manifests::get(store, &kind, name.as_deref(), &output).await
        }
        Command::Annotate {
            kind,
            name,
            changes,
            overwrite,
        } => manifests::annotate(store, &kind, &name, &changes, overwrite).await,
        Command::Install {
            file,
            namespace,
            image,
            allowed_namespaces,
            ..
        } => {
            let request = install_request(file.as_deref(), namespace, image, allowed_namespaces)?;
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
        } => {
            let verb = Verb::Push {
                lpath,
                rpath,
                compress,
                expected_size,
                no_clobber,
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
        Command::Crds | Command::Datasafed(_) | Command::Controller | Command::ProbeWorker => {
            Ok(())
        }
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
