//! The command line of the `backuprepo` face: every command, flag and help text (clap), read
//! by `main` and dispatched over the store.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};

use crate::datasafed;

/// Repository names from the local store, for shell completion.
fn repo_names() -> clap_complete::engine::ArgValueCandidates {
    clap_complete::engine::ArgValueCandidates::new(crate::complete::repos)
}

/// backuprepo: where database backups go. Create repositories on S3-family storage, FTP,
/// Azure Blob or a local directory, check them, and stream backups in and out.
#[derive(Debug, Parser)]
#[command(name = "backuprepo", version, about, propagate_version = true)]
pub struct Cli {
    /// Home of the local store (default: $XDG_DATA_HOME/backuprepo or ~/.local/share/backuprepo).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "BACKUPREPO_HOME"
    )]
    pub home: Option<PathBuf>,
    /// Where repositories live: `local` (the store under --home) or `kube` (the cluster of the
    /// current kubeconfig context, where `backuprepo controller` checks them).
    #[arg(long, global = true, help_heading = "Global options", env = "BACKUPREPO_STORE", default_value = "local", value_parser = ["local", "kube"])]
    pub store: String,
    /// With --store kube: the namespace of the credential Secrets `create` makes (kbcli: the
    /// KubeBlocks namespace), and of `install`.
    #[arg(long = "install-namespace", global = true, help_heading = "Global options", env = "BACKUPREPO_NAMESPACE", default_value = backuprepo_deploy::DEFAULT_NAMESPACE)]
    pub install_namespace: String,
    /// With --store kube: the kubeconfig file (default $KUBECONFIG or ~/.kube/config).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "FILE"
    )]
    pub kubeconfig: Option<PathBuf>,
    /// With --store kube: the kubeconfig context (default its current context).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "NAME"
    )]
    pub context: Option<String>,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long = "log-level", global = true, help_heading = "Global options", default_value = "warn", value_parser = datasafed::LOG_LEVELS)]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a backup repository; its flags come from the provider (`create --provider s3 --help`).
    #[command(disable_help_flag = true)]
    Create {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0.., add = clap_complete::engine::ArgValueCompleter::new(crate::complete::create_args))]
        args: Vec<String>,
    },
    /// Update a repository's credentials or default flag (`update NAME --help`).
    #[command(disable_help_flag = true)]
    Update {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
    /// List backup repositories; with --repo, a path or a file flag (-r, -d, -f, --name), list
    /// files in one (the default repository without --repo); `list secrets`: the Secrets.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show repositories (spec, conditions, each check) or, with `secret NAME`, a Secret's
    /// keys and sizes (never its values).
    Describe {
        /// NAME..., `backuprepo NAME...`, `backuprepo/NAME`, or `secret NAME...`.
        #[arg(add = repo_names())]
        names: Vec<String>,
        /// Secrets: the namespace (default: every namespace).
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// Delete a repository (refused while it holds backup data, unless --force).
    Delete {
        /// NAME..., `backuprepo NAME...`, `backuprepo/NAME...`, or `secret NAME...` (with -n).
        #[arg(required = true, add = repo_names())]
        args: Vec<String>,
        /// Delete even though the repository still holds backup data (the data stays in the
        /// storage), or a Secret a repository still uses.
        #[arg(long)]
        force: bool,
        /// Do not ask for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
        /// A name that does not exist is not an error.
        #[arg(long)]
        ignore_not_found: bool,
        /// Secrets: their namespace.
        #[arg(short = 'n', long, default_value = backuprepo_local::SECRET_NAMESPACE)]
        namespace: String,
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
        #[arg(required_unless_present = "all", add = repo_names())]
        name: Option<String>,
        /// Check every repository.
        #[arg(long, conflicts_with = "name")]
        all: bool,
        /// Keep running: reconcile every repository every SECONDS (re-checks that are due run,
        /// Failed repositories recover by themselves). Stops on Ctrl-C.
        #[arg(long, value_name = "SECONDS", requires = "all", value_parser = clap::value_parser!(u64).range(1..))]
        watch: Option<u64>,
    },
    /// Create or update Secrets, BackupRepos and StorageProviders from YAML (multi-document),
    /// all or nothing.
    Apply {
        /// File, directory (its .yaml, .yml and .json files, in name order), or - for stdin;
        /// repeatable.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<String>,
    },
    /// Show backuprepo, storageprovider or secret objects (kubectl get).
    Get {
        /// KIND [NAME...] or KIND/NAME...; KIND is backuprepo, storageprovider or secret
        /// (plural and full names accepted).
        #[arg(required = true)]
        args: Vec<String>,
        /// Output format: table, wide, json, yaml, name, jsonpath=TEMPLATE,
        /// custom-columns=HEADER:PATH,...
        #[arg(short = 'o', long = "output", default_value = "table")]
        output: String,
        /// A name that does not exist is not an error.
        #[arg(long)]
        ignore_not_found: bool,
        /// Secrets: the namespace (default: every namespace).
        #[arg(short = 'n', long)]
        namespace: Option<String>,
    },
    /// Set annotations, e.g. dataprotection.kubeblocks.io/is-default-repo=true (kubectl annotate).
    Annotate {
        /// `backuprepo NAME KEY=VALUE...` or `backuprepo/NAME KEY=VALUE...`; KEY- removes.
        #[arg(required = true)]
        args: Vec<String>,
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
        /// Kubernetes: add the alerts (a PrometheusRule; needs the Prometheus Operator's
        /// CRDs) and the Grafana dashboard (a ConfigMap for Grafana's sidecar); the values
        /// file's `monitoring.enabled` does the same.
        #[arg(long)]
        monitoring: bool,
    },
    /// Print the CustomResourceDefinitions of BackupRepo and StorageProvider.
    Crds,
    /// Print a shell completion script: `source <(backuprepo completion bash)`. Completes
    /// commands and flags, and repository and provider names from the local store.
    Completion {
        /// bash, zsh, fish, powershell or elvish.
        shell: String,
    },
    /// Write man pages: backuprepo(1) on stdout, or one page per command into --out DIR.
    Man {
        /// Directory for backuprepo.1 and backuprepo-COMMAND.1.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
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
        #[command(flatten)]
        lock: datasafed::LockArgs,
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
        #[arg(add = repo_names())]
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
        #[arg(add = repo_names())]
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
        #[arg(add = repo_names())]
        repo: String,
        /// Grant name (see `backuprepo grants REPO`).
        name: String,
    },
    /// List a repository's grants: name, prefix, access, created (never a secret).
    Grants {
        /// Repository name.
        #[arg(add = repo_names())]
        repo: String,
    },
    /// Replace every scoped key of a repository's consumer namespaces now (repositories
    /// annotated backuprepo.io/scoped-credentials=true, on Kubernetes). The controller writes
    /// the new keys into the namespaces' Secrets; the old ones keep working for
    /// BACKUPREPO_KEY_GRACE (default 1 day) so running jobs finish. `describe` lists the keys.
    RotateKeys {
        /// Repository name.
        #[arg(add = repo_names())]
        repo: String,
    },
    /// Remove what interrupted work left in a repository's storage: incomplete S3 multipart
    /// uploads, temporary files, old pre-check directories (see `datasafed gc --help`).
    Gc {
        /// Repository name (default: the default repository); `--repo NAME` is the same.
        #[arg(conflicts_with = "all", add = repo_names())]
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
    /// Copy a repository's objects into another repository (any providers), as stored:
    /// encrypted and compressed objects stay as they are, and read with the source's
    /// settings. Incremental: skips what the destination already holds with the same size
    /// and stored checksum, so a second run resumes. Every copied object is verified at the
    /// destination before it counts. Nothing is deleted there without `--delete-extra`.
    #[command(
        after_help = "Examples:\n  backuprepo copy my-repo offsite\n  backuprepo copy my-repo offsite mysql/ --dry-run\n  backuprepo copy my-repo offsite --delete-extra"
    )]
    Copy {
        /// Source repository.
        #[arg(add = repo_names())]
        src: String,
        /// Destination repository.
        #[arg(add = repo_names())]
        dst: String,
        /// Only this path of the source (default: everything).
        #[arg(default_value = "")]
        prefix: String,
        /// Objects copied at once (memory stays within 64 MiB whatever this is).
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
        transfers: u16,
        /// Remove objects under the path that are at the destination and not at the source,
        /// after every copy succeeded; objects under retention or a legal hold are kept.
        #[arg(long)]
        delete_extra: bool,
        /// Say what would be copied, skipped and removed; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The datasafed-compatible transfer tool (push, pull, list, stat, rm, ...).
    Datasafed(datasafed::Args),
}

/// `--repo NAME`: how every data verb names its repository.
#[derive(Debug, Args)]
pub struct RepoArg {
    /// Repository name (default: the default repository).
    #[arg(long, add = repo_names())]
    pub repo: Option<String>,
}

impl RepoArg {
    /// `--repo`, or the positional name that `gc` and `bench` also take; both only if equal.
    pub fn or(self, positional: Option<String>) -> Result<Option<String>> {
        match (self.repo, positional) {
            (Some(a), Some(b)) if a != b => {
                bail!("the repository is named twice ({a:?} with --repo, {b:?} as an argument); give it once")
            }
            (a, b) => Ok(a.or(b)),
        }
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// With --repo: the remote path to list (a trailing / means a directory).
    pub rpath: Option<String>,
    /// List files in this repository instead of listing repositories.
    #[arg(long)]
    pub repo: Option<String>,
    /// Repositories: table, wide, json, yaml. Files: short, long, json.
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
    /// Files: recurse into subdirectories.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// Files: only directories.
    #[arg(short = 'd', long = "dirs-only")]
    pub dirs_only: bool,
    /// Files: only files.
    #[arg(short = 'f', long = "files-only")]
    pub files_only: bool,
    /// Files: glob on the base name, e.g. "*.sql".
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
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
