//! `backuprepo create [NAME] --provider P ...` and `backuprepo update NAME ...`: kbcli's
//! commands, whose flags depend on the provider. As in kbcli, the provider (or the repository)
//! is found first, then a command is built from its parameter schema: one kebab-case flag per
//! property, typed, required ones required, enums with their legal values.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use backuprepo_api::k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use backuprepo_api::{
    parse_quantity, AccessMethod, BackupRepo, BackupRepoSpec, PvReclaimPolicy, StorageProvider,
};
use backuprepo_catalog::params;
use backuprepo_core::manifests::set_default;
use backuprepo_core::store::{NewRepo, RepoStore, RepoUpdate};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use serde_json::Value as Json;

use super::repos;

/// One schema property as a flag.
struct Prop {
    name: String,
    flag: String,
    kind: String,
    default: Option<String>,
    credential: bool,
}

/// `accessKeyId` → `access-key-id`, `geesefsMemoryLimit` → `geesefs-memory-limit`.
pub fn kebab(name: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_ascii_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_ascii_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else if c == '_' {
            out.push('-');
        } else {
            out.push(c);
        }
    }
    out
}

/// The provider's parameter schema (`null` when it has none), borrowed.
fn schema_of(provider: &StorageProvider) -> &serde_json::Value {
    provider
        .spec
        .open_api_v3_schema()
        .unwrap_or(&serde_json::Value::Null)
}

fn props(provider: &StorageProvider) -> Vec<Prop> {
    let schema = schema_of(provider);
    let creds = provider.spec.credential_fields();
    let mut out = Vec::new();
    if let Some(map) = schema.get("properties").and_then(Json::as_object) {
        for (name, p) in map {
            let kind = p
                .get("type")
                .and_then(Json::as_str)
                .unwrap_or("string")
                .to_string();
            if kind == "object" || kind == "array" || kind == "null" {
                continue;
            }
            out.push(Prop {
                flag: kebab(name),
                name: name.clone(),
                kind,
                default: p.get("default").map(|d| match d {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                }),
                credential: creds.iter().any(|c| c == name),
            });
        }
    }
    out
}

/// A pflag-style boolean: `--flag` is true, `--flag=false` is false.
fn boolish(arg: Arg) -> Arg {
    arg.num_args(0..=1)
        .require_equals(true)
        .default_missing_value("true")
        .value_parser(clap::builder::BoolishValueParser::new())
        .action(ArgAction::Set)
}

fn prop_arg(schema: &Json, p: &Prop, required: bool, with_defaults: bool) -> Arg {
    let spec = &schema["properties"][&p.name];
    let mut help = spec
        .get("description")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .trim_end()
        .to_string();
    // Every sentence ends with a full stop, the provider's description too.
    if !help.is_empty() && !help.ends_with('.') {
        help.push('.');
    }
    if let Some(values) = spec.get("enum").and_then(Json::as_array) {
        let v: Vec<String> = values
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect();
        help.push_str(&format!(" Legal values [{}].", v.join(", ")));
    }
    let (min, max) = (spec.get("minimum"), spec.get("maximum"));
    if min.is_some() || max.is_some() {
        let show = |v: Option<&Json>| v.map(|v| v.to_string()).unwrap_or_default();
        help.push_str(&format!(" Value range [{}, {}].", show(min), show(max)));
    }
    // Creating reads a credential not given from its environment variable; updating changes
    // only what is given on the command line.
    let from_env = p.credential && with_defaults;
    if p.credential {
        help.push_str(" A credential: `-` reads it from standard input, @FILE from a file");
        help.push_str(&if from_env {
            format!(
                "; when the flag is not given, ${} is read, and on a terminal a required one is asked for without echo.",
                credential_env(&p.flag)
            )
        } else {
            ".".to_string()
        });
    }
    let mut arg = Arg::new(p.name.clone())
        .long(p.flag.clone())
        .help(help)
        .required(required);
    if from_env {
        arg = arg.env(credential_env(&p.flag)).hide_env_values(true);
    }
    arg = match p.kind.as_str() {
        "boolean" => boolish(arg).value_name("true|false"),
        "integer" => arg.value_parser(clap::value_parser!(i64)).value_name("INT"),
        "number" => arg
            .value_parser(clap::value_parser!(f64))
            .value_name("NUMBER"),
        // A value may begin with `-` (a generated secret often does): the next word is the
        // value, as in kbcli.
        _ if p.credential => arg.value_name("@FILE|-|VALUE").allow_hyphen_values(true),
        _ => arg.value_name("STRING").allow_hyphen_values(true),
    };
    if let Some(values) = spec.get("enum").and_then(Json::as_array) {
        let v: Vec<String> = values
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        if !v.is_empty() {
            arg = arg.value_parser(clap::builder::PossibleValuesParser::new(v));
        }
    }
    if with_defaults {
        if let Some(d) = &p.default {
            arg = arg.default_value(d.clone());
        }
    }
    arg
}

fn value_of(m: &ArgMatches, p: &Prop) -> Option<String> {
    match p.kind.as_str() {
        "boolean" => m.get_one::<bool>(&p.name).map(|b| b.to_string()),
        "integer" => m.get_one::<i64>(&p.name).map(|v| v.to_string()),
        "number" => m.get_one::<f64>(&p.name).map(|v| v.to_string()),
        _ => m.get_one::<String>(&p.name).cloned(),
    }
}

/// Given by the user: on the command line, or (credentials) in their environment variable.
fn explicit(m: &ArgMatches, id: &str) -> bool {
    matches!(
        m.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// The environment variable a credential flag reads when it is not given:
/// `--secret-access-key` → `BACKUPREPO_SECRET_ACCESS_KEY`.
fn credential_env(flag: &str) -> String {
    format!("BACKUPREPO_{}", flag.replace('-', "_").to_ascii_uppercase())
}

/// A credential value as given: `-` reads standard input, `@FILE` reads the file (one trailing
/// newline dropped), anything else is the value itself. Keeps secrets out of shell history and
/// the process list.
fn credential_value(flag: &str, given: String, stdin_used: &mut bool) -> Result<String> {
    use std::io::Read;
    let trim = |mut v: String| {
        if v.ends_with('\n') {
            v.pop();
            if v.ends_with('\r') {
                v.pop();
            }
        }
        v
    };
    if given == "-" {
        if std::mem::replace(stdin_used, true) {
            bail!("--{flag} -: standard input is already read by another flag; use @FILE or the environment for one of them");
        }
        let mut v = String::new();
        std::io::stdin()
            .read_to_string(&mut v)
            .map_err(|e| anyhow!("--{flag} -: cannot read standard input: {e}"))?;
        return Ok(trim(v));
    }
    if let Some(path) = given.strip_prefix('@') {
        // The path is not repeated: a secret that happens to begin with `@` would be printed.
        let v = std::fs::read_to_string(path).map_err(|e| {
            anyhow!(
                "--{flag} @FILE: cannot read the file ({}); if the value itself begins with @, give it on standard input (`--{flag} -`) or in ${}",
                e.kind(),
                credential_env(flag)
            )
        })?;
        return Ok(trim(v));
    }
    Ok(given)
}

/// Accept a credential written on the command line (kbcli does), but say once, on stderr, that
/// other users see it in the process list and the shell keeps it in its history.
fn warn_literal_credentials(m: &ArgMatches, props: &[Prop]) {
    let literal: Vec<String> = props
        .iter()
        .filter(|p| p.credential && m.value_source(&p.name) == Some(ValueSource::CommandLine))
        .filter(|p| {
            m.get_one::<String>(&p.name)
                .is_some_and(|v| v != "-" && !v.starts_with('@'))
        })
        .map(|p| format!("--{}", p.flag))
        .collect();
    if let Some(first) = literal.first() {
        eprintln!(
            "Warning: {} given on the command line: other users can read it in the process list, and the shell keeps it in its history; give @FILE, - (standard input) or ${} instead",
            literal.join(", "),
            credential_env(first.trim_start_matches('-'))
        );
    }
}

/// The names a provider's parameter schema requires.
fn required_of(schema: &Json) -> Vec<&str> {
    schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default()
}

/// On a terminal, ask for each required credential not given, without echo (the terminal,
/// not standard input, is read, as ssh and sudo do).
fn ask_missing_credentials(
    provider: &StorageProvider,
    props: &[Prop],
    secret: &mut BTreeMap<String, String>,
) -> Result<()> {
    let schema = schema_of(provider);
    let required = required_of(schema);
    for p in props
        .iter()
        .filter(|p| p.credential && required.contains(&p.name.as_str()))
    {
        if secret.get(&p.name).is_some_and(|v| !v.is_empty()) {
            continue;
        }
        let v = rpassword::prompt_password(format!("{} (input is not shown): ", p.flag))
            .map_err(|e| anyhow!("--{}: cannot read it from the terminal: {e}", p.flag))?;
        secret.insert(p.name.clone(), v);
    }
    Ok(())
}

/// The credential values of `secret` resolved ([`credential_value`]); an empty one is refused.
fn resolve_credentials(
    props: &[Prop],
    secret: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    let mut stdin_used = false;
    let mut out = BTreeMap::new();
    for (name, given) in secret {
        let flag = props
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.flag.clone())
            .unwrap_or_else(|| name.clone());
        let v = credential_value(&flag, given, &mut stdin_used)?;
        if v.is_empty() {
            bail!(
                "--{flag} is empty; pass the value, `-` (standard input), @FILE, or set {}",
                credential_env(&flag)
            );
        }
        out.insert(name, v);
    }
    Ok(out)
}

/// `--provider X` / `--provider=X` from raw arguments.
fn flag_value(args: &[String], flag: &str) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == flag {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix(&format!("{flag}=")) {
            return Some(v.to_string());
        }
    }
    None
}

fn wants_help(args: &[String]) -> bool {
    args.iter().any(|a| a == "-h" || a == "--help")
}

fn example(provider: &StorageProvider, props: &[Prop], schema: &Json) -> String {
    let required = required_of(schema);
    let mut line = format!("  backuprepo create my-repo --provider {}", provider.name());
    for p in props.iter().filter(|p| required.contains(&p.name.as_str())) {
        // Credentials from files: the way the README recommends.
        let value = match p.credential {
            true => format!("@{}.txt", p.flag),
            false => format!("<{}>", p.name),
        };
        line.push_str(&format!(" \\\n    --{} {value}", p.flag));
    }
    let method = if provider.spec.supports_tool() {
        "Tool"
    } else {
        "Mount"
    };
    line.push_str(&format!(" \\\n    --access-method {method} --default"));
    format!("Example:\n{line}")
}

/// Whether missing credentials are asked for (without echo): standard input is a terminal.
fn prompting() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}

/// `method`: the `--access-method` given, if any. When the repository cannot be Mount (the
/// provider has no Mount templates, or Tool was asked for), the flags only Mount reads are
/// hidden from the help (and still accepted, as kbcli accepts them).
fn create_command(provider: &StorageProvider, prompt: bool, method: Option<&str>) -> Command {
    let schema = schema_of(provider);
    let props = props(provider);
    let tool_only = method == Some("Tool") || !provider.spec.supports_mount();
    // A parameter the Tool config template never reads is read by Mount only.
    let tool_template = provider.spec.datasafed_config_template.as_deref();
    let mount_only = |name: &str| tool_template.is_some_and(|t| !t.contains(name));
    let required = required_of(schema);
    let methods = provider.spec.access_method_names();
    let mut cmd = Command::new("backuprepo create")
        // A repeated flag overrides the earlier one, as with kbcli (pflag).
        .args_override_self(true)
        .about(format!(
            "Create a backup repository on the {:?} storage provider (access methods: {})",
            provider.name(),
            methods.join(", ")
        ))
        .after_help(example(provider, &props, schema))
        .arg(Arg::new("name").value_name("NAME").help("Name of the repository (generated when omitted)."))
        .arg(Arg::new("provider").long("provider").required(true).help("The storage provider (see `backuprepo list-storage-provider`)."))
        .arg(
            Arg::new("access-method")
                .long("access-method")
                .value_parser(["Mount", "Tool"])
                .help("How backup jobs reach the storage: Tool (datasafed) or Mount (a PVC); default Tool when supported."),
        )
        .arg(
            boolish(Arg::new("default").long("default"))
                .help("Make it the default repository (refused while another one is)."),
        )
        .arg(Arg::new("pv-reclaim-policy").long("pv-reclaim-policy").default_value("Retain").hide(tool_only).help("Reclaim policy of the PV for Mount access: Retain or Delete."))
        .arg(Arg::new("volume-capacity").long("volume-capacity").default_value("100Gi").hide(tool_only).help("Capacity of the PVC for Mount access."))
        .arg(Arg::new("path-prefix").long("path-prefix").help("Prefix of every path in the storage, e.g. team-a/."))
        .arg(
            Arg::new("dry-run")
                .long("dry-run")
                .action(ArgAction::SetTrue)
                .help("Check the storage and print the diagnosis; store nothing."),
        );
    for p in &props {
        if cmd
            .get_arguments()
            .any(|a| a.get_long() == Some(p.flag.as_str()))
        {
            continue;
        }
        // A required credential is asked for on a terminal rather than refused.
        let must = required.contains(&p.name.as_str()) && !(prompt && p.credential);
        let hide = tool_only && mount_only(&p.name);
        cmd = cmd.arg(prop_arg(schema, p, must, true).hide(hide));
    }
    cmd
}

/// The values kbcli would send: every flag given, plus schema defaults, plus "" for unset
/// string flags (so templates written for kbcli never see a missing key). Split into
/// (config, credential secret data).
fn collect(
    m: &ArgMatches,
    props: &[Prop],
    only_explicit: bool,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let (mut config, mut secret) = (BTreeMap::new(), BTreeMap::new());
    for p in props {
        let value = if explicit(m, &p.name) {
            value_of(m, p)
        } else if only_explicit {
            None
        } else if p.default.is_some() {
            value_of(m, p).or_else(|| p.default.clone())
        } else if p.kind == "string" && !p.credential {
            Some(String::new())
        } else {
            None
        };
        if let Some(v) = value {
            if p.credential {
                secret.insert(p.name.clone(), v);
            } else {
                config.insert(p.name.clone(), v);
            }
        }
    }
    (config, secret)
}

fn validate(
    provider: &StorageProvider,
    props: &[Prop],
    config: &BTreeMap<String, String>,
    secret: &BTreeMap<String, String>,
) -> Result<()> {
    let schema = schema_of(provider);
    if let Err(errors) = params::resolve(schema, provider.spec.credential_fields(), config, secret)
    {
        for e in &errors {
            let flag = match e {
                params::ParamError::Missing { name } | params::ParamError::Invalid { name, .. } => {
                    props
                        .iter()
                        .find(|p| &p.name == name)
                        .map(|p| format!("--{}", p.flag))
                        .unwrap_or_else(|| name.clone())
                }
                params::ParamError::Schema(_) => String::new(),
            };
            eprintln!("invalid value for {flag:?}: {e}");
        }
        bail!("invalid flags");
    }
    Ok(())
}

/// Parse with a generated command; `None` when help was printed.
fn parse(cmd: Command, args: Vec<String>) -> Result<Option<ArgMatches>> {
    let name = cmd.get_name().to_string();
    match cmd.try_get_matches_from(std::iter::once(name).chain(args)) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            print!("{e}");
            Ok(None)
        }
        Err(e) => Err(anyhow!(e
            .render()
            .to_string()
            .trim_start_matches("error: ")
            .trim()
            .to_string())),
    }
}

/// The provider `create` names with `--provider`; `None` when help was printed.
fn provider_flag(args: &[String]) -> Result<Option<String>> {
    match flag_value(args, "--provider") {
        Some(p) => Ok(Some(p)),
        None if wants_help(args) => {
            println!("Create a backup repository.\n\nThe flags depend on the storage provider: pass --provider to see them, e.g.\n  backuprepo create --provider s3 --help\n\nProviders: see `backuprepo list-storage-provider`.");
            Ok(None)
        }
        None => bail!("please specify the --provider flag"),
    }
}

/// Parse `create` arguments with the flags of `provider`, and run kbcli's checks: the
/// repository to create, and whether `--dry-run` was asked. `None` when help was printed.
fn plan_create(provider: &StorageProvider, args: Vec<String>) -> Result<Option<(NewRepo, bool)>> {
    let props = props(provider);
    let prompt = prompting();
    let method = flag_value(&args, "--access-method");
    let Some(m) = parse(create_command(provider, prompt, method.as_deref()), args)? else {
        return Ok(None);
    };
    let (config, mut secret) = collect(&m, &props, false);
    warn_literal_credentials(&m, &props);
    if prompt {
        ask_missing_credentials(provider, &props, &mut secret)?;
    }
    let secret = resolve_credentials(&props, secret)?;
    validate(provider, &props, &config, &secret)?;

    // Access method, reclaim policy, capacity: kbcli's checks and messages.
    let supported = provider.spec.access_methods();
    if supported.is_empty() {
        bail!(
            "invalid provider {:?}, it doesn't support any access method",
            provider.name()
        );
    }
    let method = match m.get_one::<String>("access-method") {
        Some(v) => {
            let method = if v == "Mount" {
                AccessMethod::Mount
            } else {
                AccessMethod::Tool
            };
            if !supported.contains(&method) {
                let list: Vec<&str> = supported.iter().map(|m| m.as_str()).collect();
                bail!(
                    "provider {:?} doesn't support {:?} access method, supported methods: [{}]",
                    provider.name(),
                    v,
                    list.join(" ")
                );
            }
            method
        }
        None if supported.contains(&AccessMethod::Tool) => AccessMethod::Tool,
        None => supported[0],
    };
    let policy = match m.get_one::<String>("pv-reclaim-policy").map(String::as_str) {
        Some("Retain") | None => PvReclaimPolicy::Retain,
        Some("Delete") => PvReclaimPolicy::Delete,
        Some(other) => bail!("invalid --pv-reclaim-policy {other:?}, the value must be one of [\"Retain\" \"Delete\"]"),
    };
    let capacity = m
        .get_one::<String>("volume-capacity")
        .cloned()
        .unwrap_or_default();
    if parse_quantity(&capacity).is_none() {
        bail!("invalid --volume-capacity {capacity:?}: not a quantity; use a number with an optional unit, e.g. 100Gi");
    }
    let make_default = m.get_one::<bool>("default").copied().unwrap_or(false);
    let mut repo = BackupRepo::new(
        m.get_one::<String>("name")
            .map(String::as_str)
            .unwrap_or("placeholder"),
        BackupRepoSpec {
            storage_provider_ref: provider.name().to_string(),
            access_method: Some(method),
            volume_capacity: Some(Quantity(capacity)),
            pv_reclaim_policy: policy,
            config,
            credential: None,
            path_prefix: m
                .get_one::<String>("path-prefix")
                .cloned()
                .filter(|p| !p.is_empty()),
            allowed_namespaces: None,
        },
    );
    if make_default {
        set_default(&mut repo, true);
    }
    if let Err(errs) = repo.validate() {
        let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        bail!("invalid backup repository: {}", lines.join("; "));
    }
    repo.metadata.name = m.get_one::<String>("name").cloned();
    let new = NewRepo {
        repo,
        secret,
        make_default,
    };
    Ok(Some((new, m.get_flag("dry-run"))))
}

/// `create [NAME] --provider P ...`: store the repository (and its credential Secret), then
/// report its check where the store runs it in-process. `--dry-run`: the store's checks and
/// the storage check, run from here; nothing stored.
pub async fn create<S: RepoStore>(store: &S, args: Vec<String>) -> Result<()> {
    let Some(provider_name) = provider_flag(&args)? else {
        return Ok(());
    };
    let provider = store.provider(&provider_name).await?;
    let Some((new, dry_run)) = plan_create(&provider, args)? else {
        return Ok(());
    };
    super::warn_overlaps(std::slice::from_ref(&new.repo), &store.repos().await?);
    if dry_run {
        let name = store.admit(&new).await?;
        let NewRepo {
            mut repo, secret, ..
        } = new;
        repo.metadata.name = Some(name);
        let (settings, timeout) = store.check_settings();
        let checked =
            backuprepo_local::check_unstored(&settings, timeout, repo, Some(&provider), secret)
                .await;
        return repos::dry_run_verdict(&checked);
    }
    let name = store.create(new).await?;
    // One outcome, said once: created and Ready, or created and failed its check (it stays,
    // so the next step is to fix or delete it, not to create it again).
    let settled = store.settle(std::slice::from_ref(&name)).await?;
    if settled.is_empty() {
        // A store that checks later (Kubernetes: the controller does).
        println!("Successfully create backup repo {name:?}.");
    }
    for r in settled {
        if r.phase() != Some(backuprepo_api::BackupRepoPhase::Ready) {
            bail!(
                "backup repository {name:?} was created, but it is {}: {}
Fix it with `backuprepo update {name}` (credentials) or re-apply it, then `backuprepo check {name}`; or remove it with `backuprepo delete {name}`. `backuprepo describe {name}` shows every check",
                super::phase_str(&r),
                repos::failure_message(&r)
            );
        }
        println!("Successfully create backup repo {name:?}.");
        repos::report_phase(&r)?;
    }
    Ok(())
}

fn update_command(provider: &StorageProvider) -> Command {
    let schema = schema_of(provider);
    let mut cmd = Command::new("backuprepo update")
        .args_override_self(true)
        .about("Update a backup repository's credentials or whether it is the default")
        .arg(Arg::new("name").value_name("BACKUP_REPO_NAME").required(true))
        .arg(boolish(Arg::new("default").long("default")).help(
            "--default makes it the default repository, --default=false removes that; omitted: unchanged",
        ));
    for p in props(provider).iter().filter(|p| p.credential) {
        cmd = cmd.arg(prop_arg(schema, p, false, false));
    }
    cmd
}

/// The repository `update` names; `None` when help was printed.
pub fn update_target(args: &[String]) -> Result<Option<String>> {
    match args.iter().find(|a| !a.starts_with('-')) {
        Some(n) => Ok(Some(n.clone())),
        None if wants_help(args) => {
            println!("Update a backup repository.\n\nThe credential flags depend on its provider: pass the name to see them, e.g.\n  backuprepo update my-repo --help");
            Ok(None)
        }
        None => bail!("please specify the name of the backup repository to update"),
    }
}

/// An `update` invocation, parsed with the flags of the repository's provider.
struct UpdatePlan {
    /// Credential values given explicitly.
    secret: BTreeMap<String, String>,
    /// `--default` / `--default=false`; `None` leaves the annotation as it is.
    default: Option<bool>,
    provider: StorageProvider,
    props: Vec<Prop>,
}

/// Parse `update` arguments; `None` when help was printed.
fn plan_update(provider: StorageProvider, args: Vec<String>) -> Result<Option<UpdatePlan>> {
    let Some(m) = parse(update_command(&provider), args)? else {
        return Ok(None);
    };
    let props: Vec<Prop> = props(&provider)
        .into_iter()
        .filter(|p| p.credential)
        .collect();
    let (_, secret) = collect(&m, &props, true);
    warn_literal_credentials(&m, &props);
    let secret = resolve_credentials(&props, secret)?;
    Ok(Some(UpdatePlan {
        secret,
        default: m.get_one::<bool>("default").copied(),
        provider,
        props,
    }))
}

/// `update NAME [--default[=false]] [credential flags]`: merge the credentials into the
/// repository's Secret (checked with its config against the provider's schema first), set or
/// remove the default flag; then report the check where the store runs it in-process.
pub async fn update<S: RepoStore>(store: &S, args: Vec<String>) -> Result<()> {
    let Some(name) = update_target(&args)? else {
        return Ok(());
    };
    let repo = store.repo(&name).await?;
    let provider = store.provider(&repo.spec.storage_provider_ref).await?;
    let Some(plan) = plan_update(provider, args)? else {
        return Ok(());
    };
    let check = |repo: &BackupRepo, merged: &BTreeMap<String, String>| {
        validate(&plan.provider, &plan.props, &repo.spec.config, merged)
    };
    let change = RepoUpdate {
        secret: plan.secret.clone(),
        default: plan.default,
        check: &check,
    };
    store.update(&repo, &change).await?;
    println!("Updated.");
    for r in store.settle(&[name]).await? {
        repos::report_phase(&r)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kebab_case_like_kbcli() {
        for (a, b) in [
            ("accessKeyId", "access-key-id"),
            ("geesefsMemoryLimit", "geesefs-memory-limit"),
            ("nfsSubDir", "nfs-sub-dir"),
            ("ftpTls", "ftp-tls"),
            ("path", "path"),
            ("caCert", "ca-cert"),
        ] {
            assert_eq!(kebab(a), b);
        }
    }

    #[test]
    fn every_builtin_builds_a_valid_command() {
        for p in backuprepo_catalog::builtin::all().unwrap() {
            create_command(&p, false, None).debug_assert();
            create_command(&p, true, Some("Tool")).debug_assert();
            update_command(&p).debug_assert();
        }
    }
}
