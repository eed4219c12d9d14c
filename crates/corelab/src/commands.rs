//! Command-line tools that act on the server's data directly (the operator already has access
//! to the database): accounts, the audit trail, charters, trials, response evaluation.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use corelab_app::users::NewUser;
use corelab_app::{Actor, App, AppError, Clock};
use corelab_domain::charter::check_charter;

use crate::cli::{AuditCommand, CharterCommand, ExportCommand, RecistCommand, TrialCommand, UserCommand};
use crate::config::Config;
use crate::server;

/// The operator running this command, as the audit trail records it.
fn operator() -> Actor {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    Actor::operator(&user)
}

/// Turns a use-case error into an operator message (charter problems one per line).
fn explain(e: AppError) -> anyhow::Error {
    match e {
        AppError::InvalidCharter(problems) => {
            let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            anyhow::anyhow!("the charter has {} problem(s):\n{}", problems.len(), lines.join("\n"))
        }
        other => anyhow::anyhow!("{other}"),
    }
}

async fn app(config: &Config) -> anyhow::Result<App> {
    server::open_app(config, Clock::system()).await
}

pub async fn user(config: &Config, cmd: UserCommand) -> anyhow::Result<ExitCode> {
    let app = app(config).await?;
    let op = operator();
    match cmd {
        UserCommand::Add { username, name, email, admin, password_stdin } => {
            let password = if password_stdin {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s).context("reading the password from standard input")?;
                Some(s.trim_end_matches(['\n', '\r']).to_string())
            } else {
                None
            };
            let created = app
                .create_user(&op, NewUser { username, display_name: name, email, is_system_admin: admin, password })
                .await
                .map_err(explain)?;
            println!("created account {} ({})", created.user.username, created.user.id);
            if let Some(pw) = created.generated_password {
                println!("one-time password (must be changed at first login): {pw}");
            }
        }
        UserCommand::List => {
            println!("{:<24} {:<32} {:<6} {:<9} locked", "username", "name", "admin", "disabled");
            for u in app.list_users(&op).await.map_err(explain)? {
                println!(
                    "{:<24} {:<32} {:<6} {:<9} {}",
                    u.username, u.display_name, u.is_system_admin, u.disabled, u.locked
                );
            }
        }
        UserCommand::Disable { username, reason } => {
            app.set_user_disabled(&op, &username, true, &reason).await.map_err(explain)?;
            println!("disabled {username} and ended its sessions");
        }
        UserCommand::Enable { username, reason } => {
            app.set_user_disabled(&op, &username, false, &reason).await.map_err(explain)?;
            println!("enabled {username}");
        }
        UserCommand::ResetPassword { username, reason } => {
            let pw = app.reset_password(&op, &username, &reason).await.map_err(explain)?;
            println!("new one-time password for {username} (must be changed at next login): {pw}");
        }
    }
    app.db().close().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn audit(config: &Config, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify = cmd;
    let app = app(config).await?;
    let report = app.db().verify_audit_chain().await?;
    app.db().close().await;
    match report.first_bad {
        None => {
            println!("audit trail intact: {} records, every hash and link verified", report.records_checked);
            Ok(ExitCode::SUCCESS)
        }
        Some(bad) => {
            println!("audit trail BROKEN at record #{} (id {}): {}", bad.seq, bad.id, bad.problem);
            println!("{} records checked up to and including that one", report.records_checked);
            Ok(ExitCode::from(1))
        }
    }
}

fn read_file(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

pub fn charter(cmd: CharterCommand) -> anyhow::Result<ExitCode> {
    let CharterCommand::Check { file } = cmd;
    let text = read_file(&file)?;
    let check = check_charter(&text);
    for p in &check.problems {
        println!("{}:{p}", file.display());
    }
    let errors = check.errors().count();
    let warnings = check.warnings().count();
    if errors > 0 {
        println!("{}: {errors} error(s), {warnings} warning(s)", file.display());
        Ok(ExitCode::from(1))
    } else {
        println!("{}: valid charter ({warnings} warning(s))", file.display());
        Ok(ExitCode::SUCCESS)
    }
}

pub async fn trial(config: &Config, cmd: TrialCommand) -> anyhow::Result<ExitCode> {
    let app = app(config).await?;
    let op = operator();
    let find = |protocol: String| {
        let app = app.clone();
        let op = op.clone();
        async move {
            app.list_trials(&op)
                .await
                .map_err(explain)?
                .into_iter()
                .find(|t| t.protocol_id == protocol)
                .ok_or_else(|| anyhow::anyhow!("no trial with protocol ID {protocol}"))
        }
    };
    match cmd {
        TrialCommand::Create { charter } => {
            let t = app.create_trial(&op, &read_file(&charter)?).await.map_err(explain)?;
            println!("created trial {} ({}), charter version 1, id {}", t.protocol_id, t.name, t.id);
        }
        TrialCommand::Amend { trial, charter, reason } => {
            let t = find(trial).await?;
            let changes = app.amend_trial(&op, t.id, &read_file(&charter)?, &reason).await.map_err(explain)?;
            println!("amended {}: charter version {}", t.protocol_id, t.charter_version + 1);
            for c in changes {
                println!("  {c}");
            }
        }
        TrialCommand::Diff { trial, from, to } => {
            let t = find(trial).await?;
            let changes = app.charter_diff(&op, t.id, from, to).await.map_err(explain)?;
            if changes.is_empty() {
                println!("no differences between versions {from} and {to}");
            }
            for c in changes {
                println!("{c}");
            }
        }
        TrialCommand::List => {
            for t in app.list_trials(&op).await.map_err(explain)? {
                println!("{}\t{}\tv{}\t{}", t.protocol_id, t.therapeutic_area, t.charter_version, t.name);
            }
        }
    }
    app.db().close().await;
    Ok(ExitCode::SUCCESS)
}

pub fn recist(cmd: RecistCommand) -> anyhow::Result<ExitCode> {
    let RecistCommand::Evaluate { file } = cmd;
    let text = read_file(&file)?;
    match corelab_domain::response::evaluate_json(&text) {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("corelab: {}: {e}", file.display());
            Ok(ExitCode::from(1))
        }
    }
}

/// `corelab export sdtm --trial ID --out DIR [--all-reads]`.
pub async fn export(config: &Config, cmd: ExportCommand) -> anyhow::Result<ExitCode> {
    let ExportCommand::Sdtm { trial, out, all_reads } = cmd;
    if out.exists() && std::fs::read_dir(&out)?.next().is_some() {
        anyhow::bail!("{} is not empty; give a new or empty folder", out.display());
    }
    let app = app(config).await?;
    let op = operator();
    let t = app
        .list_trials(&op)
        .await
        .map_err(explain)?
        .into_iter()
        .find(|t| t.protocol_id == trial || t.id.to_string() == trial)
        .ok_or_else(|| anyhow::anyhow!("no trial with protocol ID or id {trial}"))?;
    let export = app.export_sdtm(&op, t.id, all_reads, &corelab_app::sdtm::SdtmRequest::All).await.map_err(explain)?;
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let write = |name: &str, bytes: &[u8]| -> anyhow::Result<()> {
        let path = out.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
    };
    for ds in ["TU", "TR", "RS"] {
        let lower = ds.to_ascii_lowercase();
        write(&format!("{lower}.xpt"), &export.xpt(ds).map_err(explain)?)?;
        write(&format!("{lower}.csv"), export.csv(ds).map_err(explain)?.as_bytes())?;
    }
    write("define.xml", export.define_xml().as_bytes())?;
    write("define.csv", export.define_csv().as_bytes())?;
    let d = &export.datasets;
    println!(
        "exported SDTM of {} ({}) to {}: TU {} records, TR {}, RS {}",
        t.protocol_id,
        if all_reads { "all reads" } else { "accepted reads" },
        out.display(),
        d.tu.rows.len(),
        d.tr.rows.len(),
        d.rs.rows.len()
    );
    app.db().close().await;
    Ok(ExitCode::SUCCESS)
}
