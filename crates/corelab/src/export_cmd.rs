//! `corelab package` (the regulatory package) and `corelab report` (a report as HTML or PDF), run
//! by the operator on the server (as `cli:<user>`, a system administrator, in the audit trail).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use corelab_app::reports::ReportKind;
use corelab_app::{Actor, App, Clock};
use uuid::Uuid;

use crate::config::Config;
use crate::server;

fn operator() -> Actor {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    Actor::operator(&user)
}

/// A trial by id or protocol ID.
async fn find_trial(app: &App, op: &Actor, trial: &str) -> anyhow::Result<Uuid> {
    let trials = app.list_trials(op).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    trials
        .into_iter()
        .find(|t| t.protocol_id == trial || t.id.to_string() == trial)
        .map(|t| t.id)
        .ok_or_else(|| anyhow::anyhow!("no trial {trial}: give its protocol ID or id (`corelab trial list`)"))
}

/// `corelab package --trial T [--subject S] --out FILE.zip`.
pub async fn package(config: &Config, trial: &str, subject: Option<&str>, out: &Path) -> anyhow::Result<ExitCode> {
    if out.exists() {
        bail!("{} exists; give a new file name", out.display());
    }
    let app = server::open_app(config, Clock::system()).await?;
    let op = operator();
    let trial_id = find_trial(&app, &op, trial).await?;
    let tmp = out.with_extension("zip.partial");
    let file = std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    let result = app.regulatory_package(&op, trial_id, subject, std::io::BufWriter::new(file)).await;
    let (writer, summary) = match result {
        Ok(x) => x,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            bail!("{e}");
        }
    };
    let file = writer.into_inner().map_err(|e| anyhow::anyhow!("cannot write {}: {}", tmp.display(), e.error()))?;
    file.sync_all()?;
    std::fs::rename(&tmp, out)?;
    println!(
        "wrote {}: {} files, {} images, {} read versions, {} signatures, {} audit records; manifest SHA-256 {}",
        out.display(),
        summary.files,
        summary.images,
        summary.read_versions,
        summary.signatures,
        summary.audit_records,
        summary.manifest_sha256
    );
    app.db().close().await;
    Ok(ExitCode::SUCCESS)
}

/// `corelab report NAME --trial T --out FILE.html|FILE.pdf`.
pub async fn report(config: &Config, name: &str, trial: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let kind = ReportKind::parse(name).ok_or_else(|| {
        anyhow::anyhow!(
            "no report {name}: choose one of {}",
            ReportKind::ALL.iter().map(|k| k.slug()).collect::<Vec<_>>().join(", ")
        )
    })?;
    let pdf = match out.extension().and_then(|e| e.to_str()) {
        Some("pdf") => true,
        Some("html") => false,
        _ => bail!("--out must end in .html or .pdf"),
    };
    let app = server::open_app(config, Clock::system()).await?;
    let op = operator();
    let trial_id = find_trial(&app, &op, trial).await?;
    let html =
        corelab_web::pages::report_document(&app, &op, trial_id, kind).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let bytes = if pdf {
        corelab_web::pages::print_pdf(&html).await.map_err(|e| anyhow::anyhow!("{e}"))?
    } else {
        html.into_bytes()
    };
    std::fs::write(out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {} ({} bytes)", out.display(), bytes.len());
    app.db().close().await;
    Ok(ExitCode::SUCCESS)
}
