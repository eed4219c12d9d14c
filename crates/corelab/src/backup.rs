//! `corelab backup DEST`, `corelab restore SRC`, `corelab verify`.
//!
//! A backup is a folder: `database/` (SQLite: a `VACUUM INTO` copy, consistent while corelab keeps
//! serving; PostgreSQL: a `pg_dump` custom-format archive), `blobs/<key>` for every blob the index
//! refers to, `manifest.json` (what, when, which schema) and `SHA256SUMS` (`sha256sum -c` format).
//! Blobs are immutable and written before any row refers to them, so listing them after the
//! database snapshot covers everything the snapshot refers to.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use corelab_app::{App, Clock};
use corelab_store::Backend;
use futures_util::StreamExt;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::config::Config;
use crate::server;

const SQLITE_FILE: &str = "database/corelab.db";
const PG_FILE: &str = "database/corelab.pgdump";

async fn file_sha(path: &Path) -> anyhow::Result<String> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        let mut f = std::fs::File::open(&p).with_context(|| format!("cannot read {}", p.display()))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = std::io::Read::read(&mut f, &mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(hex::encode(h.finalize()))
    })
    .await?
}

/// `corelab backup DEST`.
pub async fn backup(config: &Config, dest: &Path) -> anyhow::Result<ExitCode> {
    if dest.exists() && std::fs::read_dir(dest)?.next().is_some() {
        bail!("{} is not empty; give a new or empty folder", dest.display());
    }
    std::fs::create_dir_all(dest.join("database"))?;
    let app = server::open_app(config, Clock::system()).await?;
    let started = app.clock().now();
    let status = app.db().schema_status().await?;
    let mut sums: Vec<(String, String)> = Vec::new();
    let db_file = match app.db().backend() {
        Backend::Sqlite => {
            let path = dest.join(SQLITE_FILE);
            app.db().sqlite_snapshot(&path).await?;
            SQLITE_FILE
        }
        Backend::Postgres => {
            let path = dest.join(PG_FILE);
            let out = tokio::process::Command::new("pg_dump")
                .args(["--format=custom", "--no-owner", "--file"])
                .arg(&path)
                .arg(config.database_url())
                .output()
                .await
                .context("cannot run pg_dump (install the PostgreSQL client tools of the server's version)")?;
            if !out.status.success() {
                bail!("pg_dump failed: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
            PG_FILE
        }
    };
    sums.push((file_sha(&dest.join(db_file)).await?, db_file.to_string()));
    // Every blob the index refers to (now, which includes what the snapshot refers to).
    let mut after = String::new();
    let (mut count, mut bytes) = (0u64, 0u64);
    loop {
        let mut tx = app.db().read().await?;
        let page = tx.blob_refs_after(&after, 500).await?;
        drop(tx);
        let Some(last) = page.last() else { break };
        after = last.blob_key.clone();
        for r in page {
            let target = dest.join("blobs").join(&r.blob_key);
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            let mut stream =
                app.blobs().get(&r.blob_key).await.with_context(|| format!("blob {} is missing", r.blob_key))?;
            let mut file = tokio::fs::File::create(&target).await?;
            let mut h = Sha256::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                h.update(&chunk);
                bytes += chunk.len() as u64;
                file.write_all(&chunk).await?;
            }
            file.sync_all().await?;
            let sha = hex::encode(h.finalize());
            if sha != r.sha256 {
                bail!(
                    "blob {} does not match its recorded SHA-256; run `corelab verify` and investigate before backing up",
                    r.blob_key
                );
            }
            sums.push((sha, format!("blobs/{}", r.blob_key)));
            count += 1;
        }
    }
    let manifest = json!({
        "format": 1,
        "corelab_version": env!("CARGO_PKG_VERSION"),
        "created_at": started,
        "backend": app.db().backend().to_string(),
        "schema_version": status.database_version,
        "database_file": db_file,
        "blobs": count,
        "blob_bytes": bytes,
    });
    std::fs::write(dest.join("manifest.json"), serde_json::to_vec_pretty(&manifest)?)?;
    let text: String = sums.iter().map(|(sha, p)| format!("{sha}  {p}\n")).collect();
    std::fs::write(dest.join("SHA256SUMS"), text)?;
    app.db().close().await;
    println!("backup written to {}: database ({}), {count} blobs, {bytes} bytes", dest.display(), db_file);
    println!("check it anywhere with: (cd {} && sha256sum -c SHA256SUMS)", dest.display());
    Ok(ExitCode::SUCCESS)
}

/// `corelab restore SRC`: into the configured database and blob store, which must be empty.
pub async fn restore(config: &Config, src: &Path) -> anyhow::Result<ExitCode> {
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(src.join("manifest.json")).with_context(|| format!("{} has no manifest.json", src.display()))?,
    )?;
    let sums = std::fs::read_to_string(src.join("SHA256SUMS")).context("the backup has no SHA256SUMS")?;
    let mut entries: Vec<(String, PathBuf)> = Vec::new();
    for line in sums.lines() {
        let (sha, rel) = line.split_once("  ").with_context(|| format!("bad SHA256SUMS line {line:?}"))?;
        entries.push((sha.to_string(), PathBuf::from(rel)));
    }
    // First check the whole backup, so a damaged one changes nothing.
    for (sha, rel) in &entries {
        let got =
            file_sha(&src.join(rel)).await.with_context(|| format!("{} is missing from the backup", rel.display()))?;
        if &got != sha {
            bail!("{} in the backup is damaged (SHA-256 differs); nothing was restored", rel.display());
        }
    }
    let db_file = manifest["database_file"].as_str().context("manifest.json names no database file")?;
    let url = config.database_url();
    if db_file == SQLITE_FILE {
        let target =
            url.strip_prefix("sqlite://").context("the backup is SQLite: configure database.url = sqlite://PATH")?;
        let target = Path::new(target.split('?').next().unwrap_or(target));
        if target.exists() {
            bail!("{} exists; restore into a new data directory or database path", target.display());
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(src.join(SQLITE_FILE), target)?;
    } else {
        let app = server::open_app(config, Clock::system()).await?;
        let mut tx = app.db().read().await?;
        let users = tx.count_users().await?;
        drop(tx);
        app.db().close().await;
        if users > 0 {
            bail!("the target database is not empty; restore into a new database");
        }
        let out = tokio::process::Command::new("pg_restore")
            .args(["--clean", "--if-exists", "--no-owner", "--dbname"])
            .arg(&url)
            .arg(src.join(PG_FILE))
            .output()
            .await
            .context("cannot run pg_restore (install the PostgreSQL client tools)")?;
        if !out.status.success() {
            bail!("pg_restore failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
    }
    let app = server::open_app(config, Clock::system()).await?;
    let mut restored = 0u64;
    for (sha, rel) in entries.iter().filter(|(_, r)| r.starts_with("blobs")) {
        let key =
            rel.strip_prefix("blobs").context("bad blob path")?.to_string_lossy().trim_start_matches('/').to_string();
        let bytes = tokio::fs::read(src.join(rel)).await?;
        let staged = app.blobs().stage_bytes(&bytes).await?;
        if &staged.sha256 != sha {
            bail!("{} changed while restoring", rel.display());
        }
        app.blobs().commit(staged, &key).await?;
        restored += 1;
    }
    let report = app.verify_blobs().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    app.db().close().await;
    println!(
        "restored {} ({} blobs); fixity check: {} checked, {} problem(s)",
        src.display(),
        restored,
        report.checked,
        report.problems.len()
    );
    Ok(if report.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `corelab verify`: re-hashes every blob; exit 1 when any is missing or altered.
pub async fn verify(config: &Config) -> anyhow::Result<ExitCode> {
    let app: App = server::open_app(config, Clock::system()).await?;
    let report = app.verify_blobs().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    app.db().close().await;
    for p in &report.problems {
        println!("{}: {}", p.problem.to_uppercase(), p.blob_key);
    }
    println!(
        "{} blobs checked ({} bytes): {} missing, {} altered",
        report.checked,
        report.bytes,
        report.problems.iter().filter(|p| p.problem == "missing").count(),
        report.problems.iter().filter(|p| p.problem == "altered").count()
    );
    Ok(if report.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
