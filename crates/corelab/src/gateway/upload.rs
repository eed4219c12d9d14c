//! `corelab upload PATH --subject ID --visit ID --central URL --token TOKEN`: de-identify a folder
//! (or ZIP archive) of DICOM files at the site and upload it with the gateway's queue semantics. Resumable: the
//! spool keeps what was de-identified but not yet acknowledged, and the journal what central
//! acknowledged, so a second run sends only what is missing.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use corelab_dicom::deid::read_match_keys;

use super::central::{self, Central};
use super::site::SiteProfile;
use super::spool::Spool;
use super::zipread::{Entry, ZipArchive};
use crate::config::Config;

#[derive(Debug, Clone, Args)]
pub struct UploadArgs {
    /// A DICOM file, a folder (read recursively) or a ZIP archive of them.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// The subject every file belongs to (follows the trial's subject ID pattern for the site).
    #[arg(long, value_name = "ID")]
    pub subject: String,
    /// The visit (Clinical Trial Time Point ID) of every file.
    #[arg(long, value_name = "ID")]
    pub visit: String,
    #[arg(long, value_name = "URL")]
    pub central: Option<String>,
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Spool directory of the upload queue (default <data_dir>/upload); the same one resumes.
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// Give up after this many failed attempts in a row (the queue stays for the next run).
    #[arg(long, default_value_t = 8)]
    pub attempts: u32,
}

/// What `corelab upload` reads: a file of the folder, or an entry of the ZIP archive.
enum Item {
    File(PathBuf),
    Entry(Entry),
}

fn walk(root: &Path) -> Vec<PathBuf> {
    if root.is_file() {
        return vec![root.to_path_buf()];
    }
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

pub async fn run(config: &Config, args: UploadArgs) -> anyhow::Result<ExitCode> {
    let usage = |m: String| {
        eprintln!("corelab upload: {m}");
        Ok(ExitCode::from(2))
    };
    let central_url = args.central.clone().or_else(|| config.gateway.central.clone());
    let token = args.token.clone().or_else(|| config.gateway.token.as_ref().map(|t| t.expose().to_string()));
    let (Some(central_url), Some(token)) = (central_url, token) else {
        return usage("give --central URL and --token TOKEN".into());
    };
    if !args.path.exists() {
        return usage(format!("{} does not exist", args.path.display()));
    }
    let central = match Central::new(&central_url, &token) {
        Ok(c) => c,
        Err(m) => return usage(m),
    };
    let spool = Spool::open(&args.spool.clone().unwrap_or_else(|| config.data_dir.join("upload")))?;
    // Central down: de-identify and queue with the settings of an earlier run, send later.
    let cfg = match super::settings_from_central(&central, &spool).await {
        Ok((c, fresh)) => {
            if !fresh {
                eprintln!("corelab upload: central is unreachable; using the site's settings from an earlier run");
            }
            c
        }
        Err(e) => return usage(format!("cannot fetch the site's settings from central: {e}")),
    };
    let profile = SiteProfile::new(cfg).map_err(anyhow::Error::msg)?;
    if !profile.subject_ok(&args.subject) {
        return usage(format!(
            "subject ID {:?} does not follow the trial's pattern {} for site {}",
            args.subject, profile.config.subject_id_pattern, profile.config.site_id
        ));
    }
    if profile.visit_label(&args.visit).is_none() {
        let ids: Vec<&str> = profile.config.visits.iter().map(|v| v.id.as_str()).collect();
        return usage(format!("{:?} is not a visit of the trial; its visits are: {}", args.visit, ids.join(", ")));
    }
    let delivered = spool.delivered();
    let is_zip = args.path.is_file() && args.path.extension().is_some_and(|x| x.eq_ignore_ascii_case("zip"));
    let mut archive = if is_zip {
        match ZipArchive::open(&args.path) {
            Ok(z) => Some(z),
            Err(m) => return usage(format!("{}: {m}", args.path.display())),
        }
    } else {
        None
    };
    let files: Vec<Item> = match &archive {
        Some(z) => z.entries.iter().cloned().map(Item::Entry).collect(),
        None => walk(&args.path).into_iter().map(Item::File).collect(),
    };
    let mut seen: HashSet<String> = HashSet::new();
    let (mut skipped, mut refused) = (0usize, Vec::<(String, String)>::new());
    let rel = |i: &Item| match i {
        Item::File(p) => p.strip_prefix(&args.path).unwrap_or(p).display().to_string(),
        Item::Entry(e) => e.name.clone(),
    };
    eprintln!(
        "corelab upload: de-identifying {} file(s) for subject {} visit {}",
        files.len(),
        args.subject,
        args.visit
    );
    for f in &files {
        let read = match (f, archive.as_mut()) {
            (Item::File(p), _) => std::fs::read(p).map_err(|e| format!("cannot read it: {}", e.kind())),
            (Item::Entry(e), Some(z)) => z.read(e),
            (Item::Entry(_), None) => Err("not in an archive".into()),
        };
        let bytes = match read {
            Ok(b) => b,
            Err(m) => {
                refused.push((rel(f), m));
                continue;
            }
        };
        let keys = match read_match_keys(bytes.as_slice()) {
            Ok(k) => k,
            Err(e) => {
                refused.push((rel(f), format!("not a DICOM instance corelab can read: {e}")));
                continue;
            }
        };
        let Some(sop) = keys.sop_instance_uid.as_ref() else {
            refused.push((rel(f), "no SOP Instance UID".into()));
            continue;
        };
        let uid = profile.new_uid(sop);
        if delivered.contains(&uid) || !seen.insert(uid.clone()) {
            skipped += 1;
            continue;
        }
        if spool.queue_dir().join(format!("{uid}.dcm")).is_file() {
            continue;
        }
        match profile.deidentify(&bytes, &keys, &args.subject, &args.visit) {
            Ok((uid, out)) => {
                spool.enqueue(&uid, &out)?;
            }
            Err(m) => refused.push((rel(f), m)),
        }
    }
    let queue = spool.queued();
    let total_bytes: u64 = queue.iter().map(|(_, n)| n).sum();
    let total = queue.len();
    let bar = indicatif::ProgressBar::new(total_bytes);
    if std::io::stderr().is_terminal() {
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {msg} {bytes}/{total_bytes} ETA {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut sent = 0usize;
    let mut sent_bytes = 0u64;
    bar.set_message(format!("0/{total} instances"));
    let mut failures = 0u32;
    let mut delay = Duration::from_millis(500);
    let mut central_refused = Vec::new();
    let mut last_error = None;
    loop {
        let pass = central::drain_once(
            &central,
            &spool,
            config.gateway.batch_instances,
            config.gateway.batch_bytes,
            |n, b| {
                sent += n;
                sent_bytes += b;
                bar.set_position(sent_bytes);
                bar.set_message(format!("{sent}/{total} instances"));
            },
        )
        .await;
        central_refused.extend(pass.refused);
        match pass.error {
            None => break,
            Some(e) => {
                failures += 1;
                bar.suspend(|| eprintln!("corelab upload: {e}; retrying in {} ms", delay.as_millis()));
                last_error = Some(e.to_string());
                if failures >= args.attempts.max(1) {
                    break;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(60));
            }
        }
    }
    bar.finish_and_clear();
    let left = spool.queued().len();
    println!("sent:     {sent} instance(s), {sent_bytes} bytes");
    println!("skipped:  {skipped} (already sent or duplicates)");
    println!("refused:  {}", refused.len() + central_refused.len());
    for (file, why) in &refused {
        println!("  {file}: {why}");
    }
    for (uid, why) in &central_refused {
        println!("  {uid}: {why}");
    }
    if left > 0 {
        println!(
            "queued:   {left} not yet acknowledged ({}); run the same command again to resume",
            last_error.unwrap_or_default()
        );
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::from(if refused.is_empty() && central_refused.is_empty() { 0 } else { 1 }))
}
