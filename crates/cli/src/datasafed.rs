//! The datasafed face: the verbs, flags, output formats, messages and exit codes of
//! KubeBlocks' `datasafed`, so existing backup scripts run unchanged.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use backuprepo_transfer::compress::{self, Codec};
use backuprepo_transfer::config::{ToolConfig, DEFAULT_CONFIG_PATH};
use backuprepo_transfer::crypto::Encryption;
use backuprepo_transfer::list::{self, Format, ListOptions, SortBy};
use backuprepo_transfer::retention::LockMode;
use backuprepo_transfer::storage::{Input, Output, RetainUntil};
use backuprepo_transfer::{Error, Storage};
use clap::{Parser, Subcommand};

use crate::progress::Progress;

/// datasafed-compatible transfer tool: streams backups into and out of a repository.
///
/// The storage comes from the config file (-c), or from DATASAFED_LOCAL_BACKEND_PATH (a local
/// directory). DATASAFED_BACKEND_BASE_PATH confines every path under a base path.
/// DATASAFED_ENCRYPTION_ALGORITHM (AES-128-CFB, AES-192-CFB, AES-256-CFB, AES-256-GCM-STREAM)
/// and DATASAFED_ENCRYPTION_PASS_PHRASE encrypt objects (stored as <path>.enc).
#[derive(Debug, Parser)]
#[command(name = "datasafed", version, disable_version_flag = true)]
pub struct Args {
    /// Config file (INI with a [storage] section).
    #[arg(short = 'c', long = "conf", global = true, help_heading = "Global options", default_value = DEFAULT_CONFIG_PATH)]
    conf: PathBuf,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long = "log-level", global = true, help_heading = "Global options", default_value = "info", value_parser = LOG_LEVELS)]
    log_level: String,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Push a local file (or stdin with "-") to a remote path. An object already at the path
    /// is replaced, as datasafed does, unless --no-clobber is given.
    Push {
        /// Local file, or "-" for stdin.
        lpath: String,
        /// Remote path.
        rpath: String,
        /// Compress with this algorithm before upload.
        #[arg(short = 'z', long = "compress", value_parser = parse_codec_name)]
        compress: Option<String>,
        /// How big the stream from stdin will be, when it is known to be huge (e.g. 2TiB):
        /// parts are then sized so that it fits in 9,500 parts, which takes about SIZE / 9,500
        /// of memory per part. Without it, parts are at most 8 MiB (40 MiB of part buffers):
        /// on S3 a stream past 70 GiB continues into segments the service joins, up to 5 TiB.
        /// A file's own size is used without asking.
        #[arg(long = "expected-size", value_name = "SIZE", env = "DATASAFED_EXPECTED_SIZE", value_parser = parse_expected_size)]
        expected_size: Option<u64>,
        /// Refuse, writing nothing, when an object is already at the remote path (checked
        /// before the upload starts).
        #[arg(short = 'n', long = "no-clobber")]
        no_clobber: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Pull a remote file to a local file (or stdout with "-").
    Pull {
        /// Remote path.
        rpath: String,
        /// Local file, or "-" for stdout.
        lpath: String,
        /// Decompress with this algorithm (the one used on push).
        #[arg(short = 'd', long = "decompress", value_parser = parse_codec_name)]
        decompress: Option<String>,
    },
    /// List remote files and directories (directories end with "/").
    List {
        /// Remote path; a trailing "/" means a directory.
        rpath: String,
        /// Only directories.
        #[arg(short = 'd', long = "dirs-only", conflicts_with = "files_only")]
        dirs_only: bool,
        /// Only files.
        #[arg(short = 'f', long = "files-only")]
        files_only: bool,
        /// Recurse into subdirectories (results stream unsorted).
        #[arg(short = 'r', long = "recursive")]
        recursive: bool,
        /// With -r, how deep to go (1 = direct children); negative = unlimited.
        #[arg(long = "max-depth", default_value_t = -1, allow_negative_numbers = true)]
        max_depth: i64,
        /// Sort by path, size or mtime.
        #[arg(short = 's', long = "sort", value_parser = enum_parser(&["path", "size", "mtime"]), conflicts_with = "recursive")]
        sort: Option<String>,
        /// Reverse the order.
        #[arg(long = "reverse")]
        reverse: bool,
        /// Only entries modified after this unix time (exclusive).
        #[arg(long = "newer-than")]
        newer_than: Option<i64>,
        /// Only entries modified before this unix time (exclusive).
        #[arg(long = "older-than")]
        older_than: Option<i64>,
        /// Glob on the base name, e.g. "*.sql".
        #[arg(long = "name")]
        name: Option<String>,
        /// Output format: short, long or json.
        #[arg(short = 'o', long = "output-format", default_value = "short", value_parser = enum_parser(&["short", "long", "json"]))]
        output_format: String,
    },
    /// Count entries and bytes under a remote path (recursive).
    Stat {
        /// Remote path.
        rpath: String,
        /// Print JSON.
        #[arg(long = "json")]
        json: bool,
    },
    /// Read every object under a path end to end and check it, writing nothing: encryption
    /// tags (AES-256-GCM-STREAM), compression framing, and the length. One line per damaged
    /// object (`damaged: PATH: WHY`), a summary, exit 1 if any is damaged.
    Verify {
        /// Remote path (default: everything).
        #[arg(default_value = "")]
        rpath: String,
        /// The compression used on push (default: recognised by its magic number).
        #[arg(short = 'd', long = "decompress", value_parser = parse_codec_name)]
        decompress: Option<String>,
        /// Check only this percentage of the objects, picked at random.
        #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
        sample: Option<f64>,
    },
    /// Remove what interrupted work left under the base path (incomplete S3 multipart
    /// uploads, temporary files of local and FTP writes, pre-check directories), and nothing
    /// else. Prints each thing removed.
    Gc {
        /// Only what is at least this old: 24h, 30m, 90s, 7d, 0s.
        #[arg(long = "older-than", value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
        older_than: std::time::Duration,
        /// Print what would be removed; remove nothing.
        #[arg(long = "dry-run")]
        dry_run: bool,
    },
    /// Measure push and pull on this storage over the settings that can be changed
    /// (`chunk_size` × `upload_concurrency`) within a memory limit, print a table and
    /// recommend settings. Writes generated data under the temporary directory and removes it
    /// at the end, also when interrupted. Takes well under a minute at the defaults.
    Bench {
        /// Bytes pushed per setting.
        #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_expected_size)]
        size: u64,
        /// Skip settings whose estimated peak memory is above this.
        #[arg(long = "max-memory", value_name = "SIZE", default_value = "64MiB", value_parser = parse_expected_size)]
        max_memory: u64,
    },
    /// Remove a remote file, or a directory tree with -r.
    Rm {
        /// Remote path.
        rpath: String,
        /// Remove everything under the path.
        #[arg(short = 'r', long = "recursive")]
        recursive: bool,
    },
    /// Remove an empty remote directory (no-op on object stores).
    Rmdir {
        /// Remote path.
        rpath: String,
    },
    /// Create a remote directory (no-op on object stores).
    Mkdir {
        /// Remote path.
        rpath: String,
    },
    /// Print a config value, e.g. "storage.root".
    Getconf {
        /// section.key
        item: String,
    },
    /// Print the version.
    Version {
        /// Include build details.
        #[arg(short = 'v', long = "verbose")]
        verbose: bool,
    },
}

fn enum_parser(values: &'static [&'static str]) -> impl Fn(&str) -> Result<String, String> + Clone {
    move |v: &str| {
        if values.contains(&v) {
            Ok(v.to_string())
        } else {
            Err(format!("{v} is not included in {}", values.join(",")))
        }
    }
}

fn parse_codec_name(v: &str) -> Result<String, String> {
    if compress::NAMES.contains(&v) {
        Ok(v.to_string())
    } else {
        Err(format!(
            "{v} is not included in {}",
            compress::NAMES.join(",")
        ))
    }
}

pub fn main(args: Args) -> ExitCode {
    if let Verb::Version { verbose } = args.verb {
        println!("datasafed: {}", env!("CARGO_PKG_VERSION"));
        if verbose {
            println!("implementation: backuprepo {}", env!("CARGO_PKG_VERSION"));
            println!(
                "platform: {}/{}",
                std::env::consts::OS,
                std::env::consts::ARCH
            );
        }
        return ExitCode::SUCCESS;
    }
    init_logging(&args.log_level);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(run(args));
    // A reader thread may still be blocked on an input that never ends (after a signal or a
    // failed upload); do not wait for it.
    rt.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => crate::pipe::failure(&e.to_string()),
    }
}

/// The values of `--log-level` (anything else is refused, not silently read as `error`).
pub const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(format!(
        "error,backuprepo={level},backuprepo_transfer={level},backuprepo_local={level},backuprepo_operator={level}"
    ))
    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour only on a terminal: log files and pipes get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .try_init();
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default().trim().to_string()
}

/// Load the config as datasafed does: DATASAFED_LOCAL_BACKEND_PATH wins over the file.
fn load_config(conf: &std::path::Path) -> Result<ToolConfig, Error> {
    let local = env("DATASAFED_LOCAL_BACKEND_PATH");
    if !local.is_empty() {
        return Ok(ToolConfig::local_backend(&local)?);
    }
    Ok(ToolConfig::load(conf)?)
}

fn open_storage(conf: &std::path::Path) -> Result<(ToolConfig, Storage), Error> {
    if !env("DATASAFED_KOPIA_REPO_ROOT").is_empty() {
        return Err(Error::Unsupported(
            "kopia mode (DATASAFED_KOPIA_REPO_ROOT) is not supported by this datasafed; unset it to store plain objects".into(),
        ));
    }
    let cfg = load_config(conf)?;
    let storage = storage_for(&cfg, &env("DATASAFED_BACKEND_BASE_PATH"))?;
    Ok((cfg, storage))
}

/// A storage for a config under a base path, encrypted when DATASAFED_ENCRYPTION_ALGORITHM is
/// set (with DATASAFED_ENCRYPTION_PASS_PHRASE).
pub fn storage_for(cfg: &ToolConfig, base_path: &str) -> Result<Storage, Error> {
    let algorithm = env("DATASAFED_ENCRYPTION_ALGORITHM");
    let encryption = if algorithm.is_empty() {
        None
    } else {
        Some(Encryption::new(
            &algorithm,
            &std::env::var("DATASAFED_ENCRYPTION_PASS_PHRASE").unwrap_or_default(),
        )?)
    };
    Storage::open(cfg, base_path, encryption)
}

/// MiB, and MB/s: the units of the bench table.
fn mib(n: u64) -> String {
    format!("{:.0}Mi", n as f64 / f64::from(1u32 << 20))
}

fn mb_per_s(v: f64) -> String {
    format!("{:.1} MB/s", v / 1e6)
}

async fn bench(storage: &Storage, size: u64, max_memory: u64) -> Result<(), Error> {
    use backuprepo_transfer::storage::{BenchOptions, Trial};
    let opts = BenchOptions {
        size,
        max_memory,
        ..BenchOptions::default()
    };
    println!(
        "{:<12}{:<14}{:<10}PUSH ({} each)",
        "CHUNK_SIZE",
        "CONCURRENCY",
        "MEMORY",
        mib(size)
    );
    let mut row = |t: &Trial| {
        let push = match (t.push, t.skipped) {
            (Some(v), _) => mb_per_s(v),
            (None, Some(why)) => format!("skipped: {why}"),
            (None, None) => "-".to_string(),
        };
        println!(
            "{:<12}{:<14}{:<10}{push}",
            mib(t.chunk_size),
            t.concurrency,
            mib(t.memory)
        );
    };
    let report = storage
        .bench(&opts, backuprepo_transfer::stop_signal(), &mut row)
        .await?;
    if let Some(pull) = report.pull {
        println!(
            "pull: {} (one streaming GET; the settings above do not change it)",
            mb_per_s(pull)
        );
    }
    match report.best() {
        Some(_) if !report.tunable => println!(
            "recommended: the defaults (this storage takes one stream; chunk_size and upload_concurrency do not apply)"
        ),
        Some(t) => println!(
            "recommended: chunk_size = {}, upload_concurrency = {} (push {}, about {} of memory)",
            mib(t.chunk_size),
            t.concurrency,
            t.push.map(mb_per_s).unwrap_or_default(),
            mib(t.memory)
        ),
        None => {
            return Err(Error::Config(format!(
                "no setting was measured: every one needs more than --max-memory {}; raise it",
                mib(max_memory)
            )))
        }
    }
    Ok(())
}

/// `verify`: one line per object that is not good, then the summary; an error when any is
/// damaged.
async fn verify(
    storage: &Storage,
    rpath: &str,
    codec: Option<Codec>,
    sample: Option<f64>,
) -> Result<(), Error> {
    use backuprepo_transfer::storage::{Outcome, VerifyOptions};
    let opts = VerifyOptions {
        codec,
        sample_percent: sample,
    };
    let mut report = |e: &backuprepo_transfer::list::Entry, outcome: &Outcome| match outcome {
        Outcome::Good => {}
        Outcome::Damaged(why) => println!("damaged: {}: {why}", e.path),
        Outcome::Unauthenticated => println!(
            "unverified: {}: unauthenticated (AES-CFB), cannot verify",
            e.path
        ),
    };
    let summary = Progress::track(&format!("verify {rpath}"), None, |counter| {
        storage.verify(rpath, &opts, counter, &mut report)
    })
    .await?;
    let mut line = format!(
        "{} objects verified, {} damaged",
        summary.verified, summary.damaged
    );
    if summary.unauthenticated > 0 {
        line.push_str(&format!(
            ", {} unauthenticated (cannot verify)",
            summary.unauthenticated
        ));
    }
    println!("{line}");
    if summary.damaged > 0 {
        return Err(Error::Corrupt(format!(
            "{} of {} objects are damaged",
            summary.damaged, summary.verified
        )));
    }
    Ok(())
}

/// A duration: a whole number with a unit s, m, h or d (`24h`, `0s`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: use e.g. 24h, 30m, 90s, 7d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("{s:?}: the unit must be s, m, h or d (e.g. 24h)")),
    };
    Ok(std::time::Duration::from_secs(n.saturating_mul(secs)))
}

/// A push's object lock (S3 buckets with object lock), on both faces.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LockArgs {
    /// Lock the object until this date (2027-01-31, or RFC 3339) or for this long (30d),
    /// replacing the repository's retention for this push (S3 buckets with object lock).
    #[arg(long = "retain-until", value_name = "DATE|DURATION", value_parser = RetainUntil::parse)]
    pub retain_until: Option<RetainUntil>,
    /// Object-lock mode of --retain-until (default: the repository's, else GOVERNANCE).
    #[arg(long = "lock-mode", value_name = "MODE", value_parser = LockMode::parse, requires = "retain_until")]
    pub lock_mode: Option<LockMode>,
    /// Put a legal hold on the object: nobody can remove it until the hold is lifted.
    #[arg(long = "legal-hold")]
    pub legal_hold: bool,
}

/// `--sample`: a percentage above 0, at most 100.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    match s.trim_end_matches('%').parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 100.0 => Ok(p),
        _ => Err(format!(
            "{s:?} is not a percentage: use a number above 0, at most 100"
        )),
    }
}

/// `--expected-size`: bytes, or a number with a unit (`2TiB`, `500GB`).
pub fn parse_expected_size(s: &str) -> Result<u64, String> {
    backuprepo_transfer::size::parse_bytes(s)
        .ok_or_else(|| format!("{s:?} is not a size: use bytes or a number with a unit, e.g. 2TiB"))
}

fn codec(name: Option<String>) -> Result<Option<Codec>, Error> {
    name.map(|n| Codec::parse(&n)).transpose()
}

async fn run(args: Args) -> Result<(), Error> {
    let (cfg, mut storage) = open_storage(&args.conf)?;
    run_verb(&cfg, &mut storage, args.verb).await
}

/// A read's error with the path it was about and, for "not found" and a failed
/// decompression, what is there instead and the fix ([`Storage::explain_missing`]).
async fn explained(
    storage: &Storage,
    verb: &str,
    rpath: &str,
    codec: Option<Codec>,
    e: Error,
) -> Error {
    let why = match (&e, codec) {
        (Error::NotFound | Error::DirNotFound, _) => Some(storage.explain_missing(rpath).await),
        (Error::Io { .. } | Error::Corrupt(_), Some(c)) => storage.explain_codec(rpath, c).await,
        _ => None,
    };
    match why {
        Some(why) => Error::Storage(format!("{verb} {rpath:?}: {e}: {why}")),
        None if verb == "pull" => Error::Storage(format!("{verb} {rpath:?}: {e}")),
        None => e,
    }
}

/// Run one verb against an opened storage (shared with `backuprepo push --repo ...`).
pub async fn run_verb(cfg: &ToolConfig, storage: &mut Storage, verb: Verb) -> Result<(), Error> {
    match verb {
        Verb::Push {
            lpath,
            rpath,
            compress,
            expected_size,
            no_clobber,
            lock,
        } => {
            let fail = |e: Error| Error::Storage(format!("push to {rpath:?}: {e}"));
            let codec = codec(compress).map_err(fail)?;
            storage
                .set_lock(lock.retain_until, lock.lock_mode, lock.legal_hold)
                .map_err(fail)?;
            if no_clobber && storage.object_size(&rpath).await.map_err(fail)?.is_some() {
                return Err(fail(Error::Storage(format!(
                    "{rpath:?} exists already and --no-clobber was given; nothing was written (push to another path, or remove it first)"
                ))));
            }
            let (input, total) = if lpath == "-" {
                (Input::Stdin { expected_size }, expected_size)
            } else {
                let p = PathBuf::from(&lpath);
                let len = std::fs::metadata(&p).ok().map(|m| m.len());
                (Input::File(p), len)
            };
            Progress::transfer(&format!("push {rpath}"), total, |counter| {
                storage.push(
                    input,
                    &rpath,
                    codec,
                    counter,
                    backuprepo_transfer::stop_signal(),
                )
            })
            .await
            .map(|_| ())
            .map_err(fail)
        }
        Verb::Pull {
            rpath,
            lpath,
            decompress,
        } => {
            let fail = |e: Error| Error::Storage(format!("pull {rpath:?}: {e}"));
            let codec = codec(decompress).map_err(fail)?;
            let output = if lpath == "-" {
                Output::Stdout
            } else if lpath.is_empty()
                || lpath.ends_with('/')
                || std::path::Path::new(&lpath).is_dir()
            {
                let name = rpath
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or_default();
                return Err(fail(Error::InvalidPath(format!(
                    "invalid local path {lpath:?}: it names a directory; give the file to write, e.g. {:?}, or - for stdout",
                    std::path::Path::new(&lpath).join(name).display()
                ))));
            } else {
                let p = std::path::absolute(&lpath)
                    .map_err(|e| fail(Error::io("resolve local path", e)))?;
                Output::File(p)
            };
            // The bar's total: the object's size, when that is what the pull writes (asked
            // only when there is a bar to show it).
            let total = match codec {
                None if Progress::shown() => storage.object_size(&rpath).await.ok().flatten(),
                _ => None,
            };
            let pulled = Progress::transfer(&format!("pull {rpath}"), total, |counter| {
                storage.pull(
                    &rpath,
                    output,
                    codec,
                    counter,
                    backuprepo_transfer::stop_signal(),
                )
            })
            .await;
            match pulled {
                Ok(_) => Ok(()),
                Err(e) => Err(explained(storage, "pull", &rpath, codec, e).await),
            }
        }
        Verb::List {
            rpath,
            dirs_only,
            files_only,
            recursive,
            max_depth,
            sort,
            reverse,
            newer_than,
            older_than,
            name,
            output_format,
        } => {
            let name = name
                .map(|n| {
                    glob::Pattern::new(&n)
                        .map_err(|e| Error::Config(format!("invalid --name pattern {n:?}: {e}")))
                })
                .transpose()?;
            let sort_by = sort.as_deref().map(|s| match s {
                "size" => SortBy::Size,
                "mtime" => SortBy::Mtime,
                _ => SortBy::Path,
            });
            // The storage streams a recursive listing; a sort asked for with -r (only the
            // backuprepo face asks) is done here, after collecting it.
            let sort_after = sort_by.filter(|_| recursive);
            let opts = ListOptions {
                dirs_only,
                files_only,
                recursive,
                max_depth: u32::try_from(max_depth).ok().filter(|d| *d > 0),
                sort: sort_by.filter(|_| !recursive),
                reverse,
                newer_than,
                older_than,
                name,
            };
            let format = match output_format.as_str() {
                "long" => Format::Long,
                "json" => Format::Json,
                _ => Format::Short,
            };
            let mut out = std::io::BufWriter::new(backuprepo_transfer::stdout::stdout());
            let mut entries = Vec::new();
            let mut write_err = None;
            // A recursive listing streams unsorted; asked to sort (the backuprepo face always
            // does), it is collected first.
            let collect = format == Format::Json || sort_after.is_some();
            let listed = storage
                .list(&rpath, &opts, &mut |e| {
                    if collect {
                        entries.push(e.clone());
                    } else if let Err(err) = writeln!(out, "{}", list::line(e, format)) {
                        write_err.get_or_insert(err);
                    }
                })
                .await;
            if let Err(e) = listed {
                return Err(explained(storage, "list", &rpath, None, e).await);
            }
            if let Some(by) = sort_after {
                list::sort(&mut entries, by, opts.reverse);
            }
            if collect && format != Format::Json {
                for e in &entries {
                    if let Err(err) = writeln!(out, "{}", list::line(e, format)) {
                        write_err.get_or_insert(err);
                        break;
                    }
                }
            }
            if format == Format::Json {
                let s =
                    serde_json::to_string(&entries).map_err(|e| Error::Storage(e.to_string()))?;
                writeln!(out, "{s}").map_err(|e| Error::io("write output", e))?;
            }
            if let Some(e) = write_err {
                return Err(Error::io("write output", e));
            }
            out.flush().map_err(|e| Error::io("write output", e))
        }
        Verb::Stat { rpath, json } => {
            let r = match storage.stat(&rpath).await {
                Ok(r) => r,
                Err(e) => return Err(explained(storage, "stat", &rpath, None, e).await),
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&r).map_err(|e| Error::Storage(e.to_string()))?
                );
            } else {
                print!("{}", r.text());
            }
            Ok(())
        }
        Verb::Verify {
            rpath,
            decompress,
            sample,
        } => match verify(storage, &rpath, codec(decompress)?, sample).await {
            Err(e @ (Error::NotFound | Error::DirNotFound)) => {
                Err(explained(storage, "verify", &rpath, None, e).await)
            }
            r => r,
        },
        Verb::Gc {
            older_than,
            dry_run,
        } => {
            let opts = backuprepo_transfer::storage::GcOptions {
                older_than,
                dry_run,
                full_walk: true,
            };
            let verb = if dry_run { "would remove" } else { "removed" };
            let n = storage
                .gc(&opts, &mut |what| println!("{verb}: {what}"))
                .await?;
            if n == 0 {
                println!("nothing to remove");
            }
            Ok(())
        }
        Verb::Bench { size, max_memory } => bench(storage, size, max_memory).await,
        Verb::Rm { rpath, recursive } => storage.remove(&rpath, recursive).await,
        Verb::Rmdir { rpath } => storage.rmdir(&rpath).await,
        Verb::Mkdir { rpath } => storage.mkdir(&rpath).await,
        Verb::Getconf { item } => {
            println!("{}", cfg.get(&item)?);
            Ok(())
        }
        Verb::Version { .. } => Ok(()),
    }
}
