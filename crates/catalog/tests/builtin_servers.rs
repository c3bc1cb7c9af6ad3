//! Every built-in provider with a real server on this machine renders a tool config that opens a
//! working storage: the seven S3-family providers against SeaweedFS (endpoint pointed there,
//! path style on, since `<bucket>.127.0.0.1` cannot resolve), `ftp` against vsftpd,
//! `azureblob` against Azurite, `local` against a temporary directory. Each round trip pushes,
//! lists, pulls (compared byte for byte) and removes an object.
//!
//! Servers come from `scripts/test-servers.sh` (BR_* variables); with BR_REQUIRE_SERVERS set
//! (CI) a missing server fails the test instead of skipping it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use backuprepo_catalog::{builtin, params, render};
use backuprepo_transfer::list::ListOptions;
use backuprepo_transfer::storage::{Input, Output};
use backuprepo_transfer::Storage;

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

fn server(prefix: &str) -> bool {
    let present = env(&format!("BR_{prefix}_ENDPOINT")).or(env(&format!("BR_{prefix}_HOST")));
    if present.is_none() && env("BR_REQUIRE_SERVERS").is_some() {
        panic!("BR_REQUIRE_SERVERS is set but the {prefix} server variables are missing; run scripts/test-servers.sh start");
    }
    present.is_some()
}

fn config_for(name: &str, dir: &std::path::Path) -> Option<BTreeMap<String, String>> {
    let mut c = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        c.insert(k.to_string(), v);
    };
    match name {
        "s3" | "oss" | "cos" | "gcs-s3comp" | "obs" | "minio" | "s3-compatible" => {
            if !server("S3") {
                return None;
            }
            set("endpoint", env("BR_S3_ENDPOINT")?);
            set("bucket", env("BR_S3_BUCKET")?);
            set("region", "us-east-1".into());
            set("accessKeyId", env("BR_S3_ACCESS_KEY")?);
            set("secretAccessKey", env("BR_S3_SECRET_KEY")?);
            set("forcePathStyle", "true".into());
        }
        "ftp" => {
            if !server("FTP") {
                return None;
            }
            set("ftpHost", env("BR_FTP_HOST")?);
            set("ftpPort", env("BR_FTP_PORT")?);
            set("ftpUser", env("BR_FTP_USER")?);
            set("ftpPassword", env("BR_FTP_PASS")?);
        }
        "azureblob" => {
            if !server("AZ") {
                return None;
            }
            set("endpoint", env("BR_AZ_ENDPOINT")?);
            set("container", env("BR_AZ_CONTAINER")?);
            set("accountName", env("BR_AZ_ACCOUNT")?);
            set("accountKey", env("BR_AZ_KEY")?);
        }
        "local" => set("path", dir.display().to_string()),
        // Mount-only providers (nfs, pvc) have no tool config.
        _ => return None,
    }
    Some(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tool_provider_round_trips_on_its_real_server() {
    let tmp = tempdir();
    let mut exercised = Vec::new();
    for p in builtin::all().unwrap() {
        let name = p.metadata.name.clone().unwrap();
        let repo_dir = tmp.join(format!("repo-{name}"));
        std::fs::create_dir_all(&repo_dir).unwrap();
        let Some(config) = config_for(&name, &repo_dir) else {
            continue;
        };
        let schema = p.spec.parameters_schema.clone().unwrap();
        let params = params::resolve(
            &schema.open_api_v3_schema.unwrap(),
            &schema.credential_fields,
            &config,
            &BTreeMap::new(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let ctx = render::Context {
            parameters: &params,
            csi_secret: None,
        };
        let rendered = render::tool_config(&p.spec, &ctx).unwrap().unwrap();
        let base = format!("builtin-{name}-{}", std::process::id());
        let storage = Storage::open(&rendered.config, &base, None)
            .unwrap_or_else(|e| panic!("{name}: open: {e}"));

        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let src = tmp.join(format!("{name}.in"));
        std::fs::write(&src, &data).unwrap();
        storage
            .push(
                Input::File(src),
                "dir/object.bin",
                None,
                None,
                std::future::pending(),
            )
            .await
            .unwrap_or_else(|e| panic!("{name}: push: {e}"));
        let mut seen = Vec::new();
        storage
            .list("dir/", &ListOptions::default(), &mut |e| {
                seen.push(e.path.clone())
            })
            .await
            .unwrap_or_else(|e| panic!("{name}: list: {e}"));
        assert!(
            seen.iter().any(|p| p.ends_with("object.bin")),
            "{name}: listed {seen:?}"
        );
        let dst = tmp.join(format!("{name}.out"));
        storage
            .pull(
                "dir/object.bin",
                Output::File(dst.clone()),
                None,
                None,
                std::future::pending(),
            )
            .await
            .unwrap_or_else(|e| panic!("{name}: pull: {e}"));
        assert!(
            std::fs::read(&dst).unwrap() == data,
            "{name}: pulled bytes differ"
        );
        storage
            .remove("dir", true)
            .await
            .unwrap_or_else(|e| panic!("{name}: rm: {e}"));
        exercised.push(name);
    }
    assert!(exercised.contains(&"local".to_string()));
    if env("BR_REQUIRE_SERVERS").is_some() {
        assert_eq!(
            exercised.len(),
            10,
            "all ten Tool providers ran: {exercised:?}"
        );
    }
    std::fs::remove_dir_all(&tmp).ok();
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("br-builtin-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
