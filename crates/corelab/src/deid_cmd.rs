//! `corelab deid`: offline de-identification of a file or a folder with a trial's charter, for sites
//! and data managers without a server. Same engine as ingest (`corelab_dicom::deid`), streaming
//! each file (header in memory, pixel data copied through in chunks), N files in parallel.
//!
//! What it writes (see docs/deid.md):
//! - `OUT/<subject>/<study UID>/<series UID>/<SOP instance UID>.dcm`, with the de-identified UIDs;
//!   original file and folder names are never reused (they often hold names or record numbers).
//!   Each file goes to a temporary file beside its final name, is flushed to disk and renamed into
//!   place (never over an existing file) only when complete. Files are flushed in batches (one
//!   `syncfs` for up to 256 files or 64 MiB), so a name never appears on data not yet on disk.
//! - `OUT/deid-report.json`: per input file its running index (position in the sorted walk of IN),
//!   what happened and, for written files, the output path and which engine report applies; each
//!   distinct engine report is listed once. No input path, no value from the input.
//!
//! Threads: a walker lists IN in sorted order into a bounded queue; N workers read, check and
//! de-identify into temporary files and gather them into batches; a flusher makes each batch durable
//! and renames its files (its disk wait overlaps with the workers' next files); this thread writes
//! the report and the progress. Memory does not depend on the number of files (a
//! batch holds paths and reports, not file contents).
//!
//! Nothing derived from the content of an input file is printed, except pseudonymous output
//! paths; messages name input files by their path relative to IN (the user's own names).
//!
//! Exit codes: 0 every file written (or skipped), 1 some files refused, 2 nothing done (bad
//! arguments, charter, site, subject, key file, or OUT not empty), 3 the run stopped because an
//! output could not be written.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use clap::Args;
use corelab_dicom::deid::{DeidContext, DeidError, DeidReport, OriginalUid, StreamHead, TABLE_EDITION, UidMapper};
use corelab_domain::charter::{Charter, check_charter};
use corelab_domain::deid_profile::DateHandling;
use serde::Serialize;

/// Arguments of `corelab deid`.
#[derive(Debug, Clone, Args)]
pub struct DeidArgs {
    /// A DICOM file, or a folder searched recursively.
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// Output folder: created if missing; must be empty.
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
    /// The trial's imaging charter (TOML): its de-identification profile, sponsor, protocol and sites.
    #[arg(long, value_name = "FILE")]
    pub charter: PathBuf,
    /// The site the images come from (one of the charter's site IDs).
    #[arg(long, value_name = "SITE_ID")]
    pub site: String,
    /// Subject ID for every file. Without it each file's Clinical Trial Subject ID (0012,0040) is
    /// used when it follows the charter's subject ID pattern; other files are refused.
    #[arg(long, value_name = "ID")]
    pub subject: Option<String>,
    /// Visit (Clinical Trial Time Point ID) for every file: one of the charter's visit IDs. Without
    /// it a file's own Time Point ID (0012,0050) is kept when it is a charter visit ID.
    #[arg(long, value_name = "ID")]
    pub timepoint: Option<String>,
    /// The trial key (hex) that keys UID remapping and date shifts; created when missing. Keep it:
    /// the same key gives the same UIDs and shifts next time.
    #[arg(long, value_name = "FILE", default_value = "corelab-deid.key")]
    pub key_file: PathBuf,
    /// Files de-identified in parallel (default: the number of cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: Option<u16>,
}

/// Exit code when some files were refused.
pub const EXIT_REFUSED: u8 = 1;
/// Exit code when nothing was done: bad arguments, charter, key or output folder.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the run stopped because an output could not be written.
pub const EXIT_OUTPUT: u8 = 3;

/// Name of the per-run report in OUT.
pub const REPORT_NAME: &str = "deid-report.json";
/// Size of the generated trial key in bytes.
pub const KEY_BYTES: usize = 32;
/// Domain-separation prefix of the date shift HMAC message (see [`date_shift_days`]).
pub use corelab_dicom::deid::DATE_SHIFT_LABEL;

/// Runs `corelab deid`; prints progress on stderr and the summary on stdout.
pub fn run(args: &DeidArgs) -> ExitCode {
    let plan = match Plan::new(args) {
        Ok(p) => p,
        Err(lines) => {
            for l in lines {
                eprintln!("{l}");
            }
            return ExitCode::from(EXIT_USAGE);
        }
    };
    execute(&plan)
}

// ---------------------------------------------------------------------------------------------
// Preparation: charter, site, subject, key, folders. Every problem here exits 2 before any output.

/// Everything a worker needs, decided once before the first file.
struct Plan {
    input: PathBuf,
    input_is_dir: bool,
    out: PathBuf,
    charter: Charter,
    site_id: String,
    site_name: String,
    protocol_name: Option<String>,
    subject: Option<String>,
    timepoint: Option<String>,
    visit_ids: HashSet<String>,
    key: Vec<u8>,
    mapper: UidMapper,
    jobs: usize,
    files: u64,
    bytes: u64,
}

fn usage(line: impl Into<String>) -> Vec<String> {
    vec![format!("corelab deid: {}", line.into())]
}

impl Plan {
    fn new(args: &DeidArgs) -> Result<Plan, Vec<String>> {
        let charter = load_charter(&args.charter)?;
        let site = charter.site(&args.site).ok_or_else(|| {
            let ids: Vec<&str> = charter.sites.iter().map(|s| s.id.as_str()).collect();
            usage(format!("site {:?} is not in the charter; its sites are: {}", args.site, ids.join(", ")))
        })?;
        let pattern = &charter.subjects.id_pattern;
        if let Some(subject) = &args.subject
            && !pattern.matches(&site.id, subject)
        {
            let example = pattern.format(&site.id, 1).map(|e| format!(", e.g. {e}")).unwrap_or_default();
            return Err(usage(format!(
                "subject ID {subject:?} does not follow the charter's subject ID pattern {pattern} for site {}{example}",
                site.id
            )));
        }
        let visit_ids: HashSet<String> = charter.scheduled_visits().into_iter().map(|v| v.id).collect();
        if let Some(tp) = &args.timepoint
            && !visit_ids.contains(tp)
        {
            let mut ids: Vec<(i32, String)> = charter.scheduled_visits().into_iter().map(|v| (v.day, v.id)).collect();
            ids.sort();
            let mut shown: Vec<String> = ids.iter().take(12).map(|(_, id)| id.clone()).collect();
            if ids.len() > shown.len() {
                shown.push(format!("... ({} in all)", ids.len()));
            }
            return Err(usage(format!(
                "time point {tp:?} is not a visit of the charter; its visit IDs are: {}",
                shown.join(", ")
            )));
        }
        let mut warnings = Vec::new();
        let protocol_name = Some(charter.trial.protocol_name.clone()).filter(|n| {
            let ok = n.len() <= 64 && n.chars().all(|c| c.is_ascii_graphic() || c == ' ') && !n.contains('\\');
            if !ok {
                warnings.push(
                    "corelab deid: warning: the charter's protocol name is not a valid DICOM LO value (at most 64 \
                     printable ASCII characters); Clinical Trial Protocol Name (0012,0021) is left out"
                        .to_string(),
                );
            }
            ok
        });

        let (site_id, site_name) = (site.id.clone(), site.name.clone());
        let meta = std::fs::metadata(&args.input)
            .map_err(|e| usage(format!("cannot read {}: {}", args.input.display(), io_reason(&e))))?;
        let input_is_dir = meta.is_dir();
        let mut plan = Plan {
            input: args.input.clone(),
            input_is_dir,
            out: args.output.clone(),
            site_id,
            site_name,
            protocol_name,
            subject: args.subject.clone(),
            timepoint: args.timepoint.clone(),
            visit_ids,
            // Replaced by the trial key below, once everything else has been checked.
            key: vec![0u8; KEY_BYTES],
            mapper: UidMapper::new(&[0u8; KEY_BYTES]),
            jobs: args.jobs.map(usize::from).unwrap_or_else(default_jobs).max(1),
            files: 1,
            bytes: meta.len(),
            charter,
        };
        // Check the trial values once (sponsor, protocol, site) with an example subject, so a
        // charter the engine cannot use stops here instead of refusing every file.
        let probe = plan
            .subject
            .clone()
            .or_else(|| plan.charter.subjects.id_pattern.format(&plan.site_id, 1))
            .unwrap_or_default();
        plan.context(&probe, None).validate().map_err(|e| usage(e.to_string()))?;

        if input_is_dir {
            (plan.files, plan.bytes) =
                Walk::new(&args.input).filter_map(Result::ok).fold((0u64, 0u64), |(n, b), f| (n + 1, b + f.size));
        }
        if plan.files == 0 {
            return Err(usage(format!("no files under {}", args.input.display())));
        }
        let (key, created) = load_or_create_key(&args.key_file).map_err(usage)?;
        if created {
            warnings.push(format!(
                "corelab deid: created a new trial key in {} (mode 0600). Keep it, and keep it secret: runs with \
                 the same key give the same UIDs and date shifts; a new key gives different ones.",
                args.key_file.display()
            ));
        }
        plan.mapper = UidMapper::new(&key);
        plan.key = key;
        prepare_output(&args.output, &args.input)?;
        for w in warnings {
            eprintln!("{w}");
        }
        Ok(plan)
    }

    /// The engine's context for one subject and time point.
    fn context(&self, subject: &str, time_point: Option<String>) -> DeidContext {
        let profile = self.charter.deidentification.clone();
        let date_shift_days = match profile.dates {
            DateHandling::Shift => date_shift_days(&self.key, subject, profile.max_shift_days),
            DateHandling::Keep | DateHandling::Remove => None,
        };
        DeidContext {
            trial_secret: self.key.clone(),
            sponsor_name: self.charter.trial.sponsor.clone(),
            protocol_id: self.charter.trial.protocol_id.clone(),
            protocol_name: self.protocol_name.clone(),
            site_id: self.site_id.clone(),
            site_name: Some(self.site_name.clone()),
            subject_id: subject.to_string(),
            time_point_id: time_point,
            time_point_description: None,
            date_shift_days,
            profile,
        }
    }

    /// The subject of a file: `--subject`, else its own Clinical Trial Subject ID when it follows
    /// the charter's pattern for the site. The refusal reason never contains the value.
    fn subject_for(&self, file_subject: Option<&str>) -> Result<String, String> {
        if let Some(s) = &self.subject {
            return Ok(s.clone());
        }
        let pattern = &self.charter.subjects.id_pattern;
        match file_subject {
            Some(s) if pattern.matches(&self.site_id, s) => Ok(s.to_string()),
            Some(_) => Err(format!(
                "its Clinical Trial Subject ID (0012,0040) does not follow the charter's subject ID pattern {pattern} \
                 for site {}; give the subject with --subject",
                self.site_id
            )),
            None => Err("it has no Clinical Trial Subject ID (0012,0040); give the subject with --subject".into()),
        }
    }

    /// The time point: `--timepoint`, else the file's own when it is a charter visit ID.
    fn timepoint_for(&self, file_tp: Option<&str>) -> Option<String> {
        self.timepoint.clone().or_else(|| file_tp.filter(|t| self.visit_ids.contains(*t)).map(str::to_string))
    }

    /// The de-identified value of a UID used in the output path (kept under Retain UIDs and for
    /// standard UIDs, exactly as the engine does).
    fn new_uid(&self, uid: &OriginalUid) -> String {
        if self.charter.deidentification.retain_uids || uid.is_standard() {
            uid.as_str().to_string()
        } else {
            self.mapper.map(uid).as_str().to_string()
        }
    }
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(1)
}

/// Reads and checks the charter; problems come back as `FILE:LINE:COL: key: message (hint: ...)`.
fn load_charter(path: &Path) -> Result<Charter, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("cannot read the charter {}: {}", path.display(), io_reason(&e))))?;
    let mut check = check_charter(&text);
    match check.charter.take() {
        Some(c) => {
            for w in check.warnings() {
                eprintln!("{}:{w}", path.display());
            }
            Ok(c)
        }
        None => {
            let mut lines: Vec<String> = check.problems.iter().map(|p| format!("{}:{p}", path.display())).collect();
            let errors = check.errors().count();
            lines.push(format!(
                "corelab deid: the charter {} has {errors} error{}; nothing was de-identified",
                path.display(),
                if errors == 1 { "" } else { "s" }
            ));
            Err(lines)
        }
    }
}

/// Creates OUT (or accepts it empty) and refuses an OUT inside IN, which the walk would read back.
fn prepare_output(out: &Path, input: &Path) -> Result<(), Vec<String>> {
    let created = match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(usage(format!(
                    "the output folder {} is not empty; choose a new or empty folder",
                    out.display()
                )));
            }
            false
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(out)
                .map_err(|e| usage(format!("cannot create the output folder {}: {}", out.display(), io_reason(&e))))?;
            true
        }
        Err(e) => {
            return Err(usage(format!("cannot use the output folder {}: {}", out.display(), io_reason(&e))));
        }
    };
    let inside = match (out.canonicalize(), input.canonicalize()) {
        (Ok(o), Ok(i)) => o.starts_with(&i),
        _ => true,
    };
    if inside {
        if created {
            // Leave the input as it was.
            let _ = std::fs::remove_dir(out);
        }
        return Err(usage(format!(
            "the output folder {} is inside the input {} (or cannot be resolved); choose a folder outside it",
            out.display(),
            input.display()
        )));
    }
    Ok(())
}

/// Reads the trial key (hex, 16 to 64 bytes), or creates a random 32-byte one with mode 0600.
/// Returns the key and whether it was created.
pub fn load_or_create_key(path: &Path) -> Result<(Vec<u8>, bool), String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let key = hex::decode(text.trim()).map_err(|_| {
                format!("the key file {} does not hold a hex key (as corelab deid writes it)", path.display())
            })?;
            if !(16..=64).contains(&key.len()) {
                return Err(format!(
                    "the key in {} has {} bytes; a trial key has 16 to 64 bytes (corelab creates 32)",
                    path.display(),
                    key.len()
                ));
            }
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(m) = std::fs::metadata(path)
                    && m.permissions().mode() & 0o077 != 0
                {
                    eprintln!(
                        "corelab deid: warning: the key file {} can be read by other users; chmod 600 it",
                        path.display()
                    );
                }
            }
            Ok((key, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; KEY_BYTES] = rand::random();
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts
                .open(path)
                .map_err(|e| format!("cannot create the key file {}: {}", path.display(), io_reason(&e)))?;
            f.write_all(format!("{}\n", hex::encode(key)).as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| format!("cannot write the key file {}: {}", path.display(), io_reason(&e)))?;
            Ok((key.to_vec(), true))
        }
        Err(e) => Err(format!("cannot read the key file {}: {}", path.display(), io_reason(&e))),
    }
}

/// The per-subject date shift of an offline run, in days: HMAC-SHA-256 keyed with the trial key
/// over [`DATE_SHIFT_LABEL`] followed by the subject ID; the first 8 bytes as a big-endian u64 `h`;
/// `k = h mod 2n` with `n = max_shift_days`; the shift is `-(k + 1)` when `k < n`, else `k - n + 1`.
/// That lands in [-n, -1] or [1, n] (never 0, which would keep real dates), the same for a
/// subject on every run with the same key. None when `max_shift_days` is 0.
pub fn date_shift_days(key: &[u8], subject_id: &str, max_shift_days: u32) -> Option<i32> {
    corelab_dicom::deid::keyed_date_shift(key, subject_id, max_shift_days)
}

fn io_reason(e: &std::io::Error) -> String {
    // The kind and the OS message; std adds no path, so nothing from the file system leaks here.
    e.to_string()
}

/// Output path components must be plain UIDs: digits and dots, 1 to 64 characters, no empty
/// component. A broken file could hold anything in a retained UID.
fn is_plain_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 64
        && uid.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && uid.split('.').all(|c| !c.is_empty())
}

// ---------------------------------------------------------------------------------------------
// The walk: sorted, depth first, one directory listing in memory at a time per level.

struct Found {
    /// Relative to IN (for a file IN: its file name).
    rel: PathBuf,
    path: PathBuf,
    size: u64,
}

/// Regular files under a folder, sorted by name at every level; directory symlinks are not
/// followed (no loops), file symlinks are. Errors name the folder relative to the root.
struct Walk {
    root: PathBuf,
    stack: Vec<std::vec::IntoIter<PathBuf>>,
    pending_error: Option<(PathBuf, String)>,
}

impl Walk {
    fn new(root: &Path) -> Walk {
        let mut w = Walk { root: root.to_path_buf(), stack: Vec::new(), pending_error: None };
        w.push_dir(root);
        w
    }

    fn push_dir(&mut self, dir: &Path) {
        match std::fs::read_dir(dir) {
            Ok(rd) => {
                let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
                v.sort();
                self.stack.push(v.into_iter());
            }
            Err(e) => self.pending_error = Some((self.rel(dir), format!("cannot list this folder: {}", io_reason(&e)))),
        }
    }

    fn rel(&self, p: &Path) -> PathBuf {
        p.strip_prefix(&self.root).map(Path::to_path_buf).unwrap_or_else(|_| p.to_path_buf())
    }
}

impl Iterator for Walk {
    type Item = Result<Found, (PathBuf, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.pending_error.take() {
                return Some(Err(e));
            }
            let top = self.stack.last_mut()?;
            let Some(path) = top.next() else {
                self.stack.pop();
                continue;
            };
            let Ok(lmeta) = std::fs::symlink_metadata(&path) else { continue };
            if lmeta.is_dir() {
                self.push_dir(&path);
                continue;
            }
            let meta = if lmeta.file_type().is_symlink() {
                match std::fs::metadata(&path) {
                    Ok(m) if m.is_file() => m,
                    _ => continue,
                }
            } else {
                lmeta
            };
            if meta.is_file() {
                return Some(Ok(Found { rel: self.rel(&path), path, size: meta.len() }));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One file.

struct Job {
    index: u64,
    found: Found,
}

/// A de-identified output in its (closed) temporary file, waiting for [`commit_batch`].
struct Pending {
    tmp: tempfile::TempPath,
    bytes_out: u64,
    rel_out: String,
    subject: String,
    time_point: Option<String>,
    report: DeidReport,
}

/// What a worker hands to the committer.
enum Step {
    /// De-identified into a temporary file: to be made durable and named.
    Commit(Box<Pending>),
    /// Nothing to commit (refused, skipped, or a fatal output error).
    Finished(FileResult),
}

enum FileResult {
    Written {
        output: String,
        subject: String,
        time_point: Option<String>,
        bytes_out: u64,
        report: Box<DeidReport>,
    },
    Refused(String),
    Skipped(String),
    /// The output could not be written: the run stops.
    Fatal(String),
}

struct Done {
    index: u64,
    rel: PathBuf,
    bytes_in: u64,
    result: FileResult,
}

fn process(plan: &Plan, found: &Found) -> Step {
    match stage(plan, found) {
        Ok(p) => Step::Commit(Box::new(p)),
        Err(r) => Step::Finished(r),
    }
}

/// Reads, checks and de-identifies one file into a temporary file in OUT.
fn stage(plan: &Plan, found: &Found) -> Result<Pending, FileResult> {
    use FileResult::{Fatal, Refused, Skipped};
    if found.path.file_name().is_some_and(|n| n.eq_ignore_ascii_case("DICOMDIR")) {
        return Err(Skipped(
            "a DICOMDIR (media directory, not an image); it refers to original file names and is not copied".into(),
        ));
    }
    let file = File::open(&found.path).map_err(|e| Refused(format!("cannot open: {}", io_reason(&e))))?;
    let head = StreamHead::read(file).map_err(|e| Refused(e.to_string()))?;
    let keys = head.match_keys();
    let subject = plan.subject_for(keys.clinical_trial_subject_id.as_deref()).map_err(Refused)?;
    let time_point = plan.timepoint_for(keys.clinical_trial_time_point_id.as_deref());
    let mut parts = Vec::with_capacity(3);
    for (uid, name) in [
        (&keys.study_instance_uid, "Study Instance UID (0020,000D)"),
        (&keys.series_instance_uid, "Series Instance UID (0020,000E)"),
        (&keys.sop_instance_uid, "SOP Instance UID (0008,0018)"),
    ] {
        let uid = uid.as_ref().ok_or_else(|| Refused(format!("it has no {name}, which names the output")))?;
        let new = plan.new_uid(uid);
        if !is_plain_uid(&new) {
            return Err(Refused(format!("its {name} is not a valid UID")));
        }
        parts.push(new);
    }
    let [study, series, sop] = [&parts[0], &parts[1], &parts[2]];
    let rel_out = format!("{subject}/{study}/{series}/{sop}.dcm");
    let dir = plan.out.join(&subject).join(study).join(series);
    std::fs::create_dir_all(&dir).map_err(|e| Fatal(format!("cannot create {}: {}", dir.display(), io_reason(&e))))?;
    // In the final folder: a rename within one folder does not take the file system's
    // cross-folder rename lock.
    let tmp = tempfile::Builder::new()
        .prefix(".deid-")
        .suffix(".part")
        .tempfile_in(&dir)
        .map_err(|e| Fatal(format!("cannot create a file in {}: {}", dir.display(), io_reason(&e))))?;
    let ctx = plan.context(&subject, time_point.clone());
    let report = head.deidentify(tmp.as_file(), &ctx).map_err(|e| match e {
        DeidError::Write(m) => Fatal(format!("cannot write into {}: {m}", plan.out.display())),
        e => Refused(e.to_string()),
    })?;
    let bytes_out = tmp
        .as_file()
        .metadata()
        .map_err(|e| Fatal(format!("cannot write into {}: {}", plan.out.display(), io_reason(&e))))?
        .len();
    // Closed here: a batch waiting for its flush holds paths, not file descriptors.
    Ok(Pending { tmp: tmp.into_temp_path(), bytes_out, rel_out, subject, time_point, report })
}

/// A batch is flushed once it holds this many outputs or bytes (or the input ends).
const BATCH_FILES: usize = 256;
const BATCH_BYTES: u64 = 64 * 1024 * 1024;
/// Files handed from the walker to a worker at a time.
const JOB_GROUP: usize = 16;

/// The batch the workers are filling.
#[derive(Default)]
struct Filling {
    files: Vec<(u64, Found, Pending)>,
    bytes: u64,
}

impl Filling {
    /// Adds an output; returns the batch when it is full.
    fn add(&mut self, index: u64, found: Found, p: Pending) -> Option<Vec<(u64, Found, Pending)>> {
        self.bytes += p.bytes_out;
        self.files.push((index, found, p));
        if self.files.len() >= BATCH_FILES || self.bytes >= BATCH_BYTES {
            self.bytes = 0;
            return Some(std::mem::take(&mut self.files));
        }
        None
    }
}

/// Makes a batch of finished outputs durable and gives them their names: one flush of the output
/// file system for the whole batch (Linux `syncfs`; elsewhere, or if that fails, one `fdatasync`
/// per file), then each renamed without replacing an existing file. A name therefore only ever
/// appears on complete, flushed data. The renames themselves are made durable by the next batch's
/// flush and by [`sync_output`] at the end of the run.
fn commit_batch(plan: &Plan, batch: Vec<(u64, Found, Pending)>) -> Vec<Done> {
    let flushed = sync_output(&plan.out)
        .or_else(|_| batch.iter().try_for_each(|(_, _, p)| File::options().write(true).open(&p.tmp)?.sync_data()));
    batch
        .into_iter()
        .map(|(index, found, p)| {
            let result = match &flushed {
                Ok(()) => name_output(plan, p),
                Err(e) => FileResult::Fatal(format!("cannot write into {}: {}", plan.out.display(), io_reason(e))),
            };
            Done { index, rel: found.rel, bytes_in: found.size, result }
        })
        .collect()
}

/// Renames a flushed output to its final name (never over an existing file).
fn name_output(plan: &Plan, p: Pending) -> FileResult {
    let Pending { tmp, bytes_out, rel_out, subject, time_point, report } = p;
    match tmp.persist_noclobber(plan.out.join(&rel_out)) {
        Ok(()) => FileResult::Written { output: rel_out, subject, time_point, bytes_out, report: Box::new(report) },
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => FileResult::Refused(
            "another input file has the same SOP Instance UID (a copy of the same instance?); only the first one \
             is written"
                .into(),
        ),
        Err(e) => {
            FileResult::Fatal(format!("cannot write {}: {}", plan.out.join(&rel_out).display(), io_reason(&e.error)))
        }
    }
}

/// Where `syncfs` is not available: flushes every folder of the output tree (the renames in it).
fn sync_dirs(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_dirs(&entry.path())?;
        }
    }
    File::open(dir)?.sync_all()
}

/// Flushes everything written to the output's file system (data, new files, renames) to disk.
fn sync_output(out: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let dir = File::open(out)?;
        rustix::fs::syncfs(&dir).map_err(std::io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = out;
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }
}

// ---------------------------------------------------------------------------------------------
// The run: walker -> workers -> flusher -> this thread (report, progress), bounded queues.

#[derive(Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum ReportFile<'a> {
    Written {
        index: u64,
        output: &'a str,
        subject_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        time_point_id: Option<&'a str>,
        bytes_in: u64,
        bytes_out: u64,
        /// Position of this file's engine report in `deid_reports`.
        deid_report: u32,
    },
    Refused {
        index: u64,
        reason: &'a str,
    },
    Skipped {
        index: u64,
        reason: &'a str,
    },
}

#[derive(Serialize, Default)]
struct Summary {
    files: u64,
    written: u64,
    refused: u64,
    skipped: u64,
    flagged_burned_in: u64,
    bytes_in: u64,
    bytes_out: u64,
    seconds: f64,
    stopped: Option<String>,
}

/// The report, written entry by entry to a temporary file and renamed when the run ends.
struct ReportWriter {
    file: tempfile::NamedTempFile,
    w: BufWriter<File>,
    first: bool,
    /// Each distinct engine report once, in order of first use, as the JSON array's items; copied
    /// into the report at the end. An unnamed temporary file: memory stays flat however many
    /// distinct reports a run meets.
    reports: BufWriter<File>,
    /// SHA-256 of each distinct report's JSON and its position.
    seen: HashMap<[u8; 32], u32>,
    /// The last report and its position: the files of a series mostly have the same report, and
    /// comparing is far cheaper than serializing (which was a twentieth of a small file's CPU).
    last: Option<(DeidReport, u32)>,
}

impl ReportWriter {
    fn create(plan: &Plan) -> std::io::Result<ReportWriter> {
        let file = tempfile::Builder::new().prefix(".deid-report-").suffix(".part").tempfile_in(&plan.out)?;
        let mut w = BufWriter::new(file.as_file().try_clone()?);
        #[derive(Serialize)]
        struct Head<'a> {
            format: u32,
            tool: &'a str,
            corelab_version: &'a str,
            table_edition: &'a str,
            started_at: String,
            charter_version: &'a str,
            sponsor: &'a str,
            protocol_id: &'a str,
            site_id: &'a str,
            profile: &'a corelab_domain::deid_profile::DeidProfile,
            date_shift: &'a str,
            jobs: usize,
        }
        let head = Head {
            format: 2,
            tool: "corelab deid",
            corelab_version: env!("CARGO_PKG_VERSION"),
            table_edition: TABLE_EDITION,
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            charter_version: &plan.charter.version,
            sponsor: &plan.charter.trial.sponsor,
            protocol_id: &plan.charter.trial.protocol_id,
            site_id: &plan.site_id,
            profile: &plan.charter.deidentification,
            date_shift: match plan.charter.deidentification.dates {
                DateHandling::Shift => "per subject, from the trial key (HMAC-SHA-256; see docs/deid.md)",
                DateHandling::Keep => "none: dates kept",
                DateHandling::Remove => "none: dates removed or emptied",
            },
            jobs: plan.jobs,
        };
        let mut text = serde_json::to_string_pretty(&head).map_err(std::io::Error::other)?;
        // Reopen the object to append the file list.
        text.truncate(text.trim_end().len().saturating_sub(1));
        w.write_all(text.trim_end().as_bytes())?;
        w.write_all(b",\n  \"files\": [")?;
        let reports = BufWriter::new(tempfile::tempfile_in(&plan.out)?);
        Ok(ReportWriter { file, w, first: true, reports, seen: HashMap::new(), last: None })
    }

    fn entry(&mut self, e: &ReportFile<'_>) -> std::io::Result<()> {
        self.w.write_all(if self.first { b"\n    " } else { b",\n    " })?;
        self.first = false;
        serde_json::to_writer(&mut self.w, e).map_err(std::io::Error::other)
    }

    /// The position of `deid` in `deid_reports`, adding it when it is new.
    fn report_id(&mut self, deid: &DeidReport) -> std::io::Result<u32> {
        use sha2::Digest;
        if let Some((last, id)) = &self.last
            && last == deid
        {
            return Ok(*id);
        }
        let json = serde_json::to_vec(deid).map_err(std::io::Error::other)?;
        let next = u32::try_from(self.seen.len()).map_err(std::io::Error::other)?;
        let id = *self.seen.entry(sha2::Sha256::digest(&json).into()).or_insert(next);
        if id == next {
            self.reports.write_all(if id == 0 { b"\n    " } else { b",\n    " })?;
            self.reports.write_all(&json)?;
        }
        self.last = Some((deid.clone(), id));
        Ok(id)
    }

    fn finish(mut self, summary: &Summary, out: &Path) -> std::io::Result<PathBuf> {
        self.w.write_all(b"\n  ],\n  \"deid_reports\": [")?;
        let mut reports = self.reports.into_inner().map_err(|e| e.into_error())?;
        reports.seek(std::io::SeekFrom::Start(0))?;
        std::io::copy(&mut reports, &mut self.w)?;
        self.w.write_all(b"\n  ],\n  \"summary\": ")?;
        serde_json::to_writer(&mut self.w, summary).map_err(std::io::Error::other)?;
        write!(
            self.w,
            ",\n  \"finished_at\": \"{}\"\n}}\n",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )?;
        self.w.flush()?;
        self.file.as_file().sync_data()?;
        let path = out.join(REPORT_NAME);
        self.file.persist(&path).map_err(|e| e.error)?;
        File::open(out)?.sync_all()?;
        Ok(path)
    }
}

/// Progress on stderr: a bar on a terminal, a plain line every few seconds otherwise.
enum Progress {
    Bar(indicatif::ProgressBar),
    Plain { start: Instant, last: Instant, every: Duration },
}

impl Progress {
    fn new(plan: &Plan) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(plan.bytes);
            let style = indicatif::ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{wide_bar}] {msg} files, {decimal_bytes}/{decimal_total_bytes}, ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(format!("0/{}", plan.files));
            bar.enable_steady_tick(Duration::from_millis(200));
            Progress::Bar(bar)
        } else {
            let now = Instant::now();
            Progress::Plain { start: now, last: now, every: Duration::from_secs(5) }
        }
    }

    fn update(&mut self, plan: &Plan, files: u64, bytes: u64) {
        match self {
            Progress::Bar(bar) => {
                bar.set_position(bytes);
                bar.set_message(format!("{files}/{}", plan.files));
            }
            Progress::Plain { start, last, every } => {
                if last.elapsed() < *every {
                    return;
                }
                *last = Instant::now();
                let elapsed = start.elapsed().as_secs_f64();
                let eta = if bytes > 0 {
                    format!("{:.0} s", elapsed * (plan.bytes.saturating_sub(bytes)) as f64 / bytes as f64)
                } else {
                    "unknown".into()
                };
                eprintln!(
                    "corelab deid: {files}/{} files, {:.1}/{:.1} MB, {elapsed:.0} s elapsed, ETA {eta}",
                    plan.files,
                    bytes as f64 / 1e6,
                    plan.bytes as f64 / 1e6
                );
            }
        }
    }

    fn println(&self, line: &str) {
        match self {
            Progress::Bar(bar) => bar.println(line),
            Progress::Plain { .. } => eprintln!("{line}"),
        }
    }

    fn finish(self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// How many refused and flagged files the final summary lists (all are printed as they happen
/// and recorded in the report by index).
const SUMMARY_LIST: usize = 50;

fn execute(plan: &Plan) -> ExitCode {
    let started = Instant::now();
    eprintln!(
        "corelab deid: {} file{} ({:.1} MB) with {} worker{}, site {}, charter {} version {}",
        plan.files,
        if plan.files == 1 { "" } else { "s" },
        plan.bytes as f64 / 1e6,
        plan.jobs,
        if plan.jobs == 1 { "" } else { "s" },
        plan.site_id,
        plan.charter.trial.protocol_id,
        plan.charter.version
    );
    let mut report = match ReportWriter::create(plan) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("corelab deid: cannot write the report in {}: {}", plan.out.display(), io_reason(&e));
            return ExitCode::from(EXIT_OUTPUT);
        }
    };
    let stop = AtomicBool::new(false);
    // Files travel between threads in groups, so a thread wakes once per group, not per file.
    let (job_tx, job_rx) = mpsc::sync_channel::<Vec<Job>>(plan.jobs * 2);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::sync_channel::<Vec<Done>>(plan.jobs * 4);
    let (batch_tx, batch_rx) = mpsc::sync_channel::<Vec<(u64, Found, Pending)>>(1);
    let filling = Mutex::new(Filling::default());
    let workers_left = std::sync::atomic::AtomicUsize::new(plan.jobs);
    let mut summary = Summary::default();
    let mut refused_list: Vec<String> = Vec::new();
    let mut flagged_list: Vec<String> = Vec::new();
    let mut report_error: Option<std::io::Error> = None;
    let mut progress = Progress::new(plan);

    std::thread::scope(|scope| {
        // The walker: sends files in sorted order; folders it cannot list become refusals.
        let walk_done = done_tx.clone();
        let stop_ref = &stop;
        scope.spawn(move || {
            let items: Box<dyn Iterator<Item = Result<Found, (PathBuf, String)>>> = if plan.input_is_dir {
                Box::new(Walk::new(&plan.input))
            } else {
                let rel = plan.input.file_name().map(PathBuf::from).unwrap_or_else(|| plan.input.clone());
                Box::new(std::iter::once(Ok(Found { rel, path: plan.input.clone(), size: plan.bytes })))
            };
            let mut group = Vec::with_capacity(JOB_GROUP);
            for (index, item) in (1u64..).zip(items) {
                if stop_ref.load(Ordering::Relaxed) {
                    return;
                }
                let sent = match item {
                    Ok(found) => {
                        group.push(Job { index, found });
                        group.len() < JOB_GROUP || job_tx.send(std::mem::take(&mut group)).is_ok()
                    }
                    Err((rel, reason)) => walk_done
                        .send(vec![Done { index, rel, bytes_in: 0, result: FileResult::Refused(reason) }])
                        .is_ok(),
                };
                if !sent {
                    return;
                }
            }
            if !group.is_empty() {
                let _ = job_tx.send(group);
            }
        });
        // The flusher: makes each full batch durable with one flush and names its files, while
        // the workers fill the next one.
        let flush_done = done_tx.clone();
        scope.spawn(move || {
            for batch in batch_rx {
                let done = commit_batch(plan, batch);
                if done.iter().any(|d| matches!(d.result, FileResult::Fatal(_))) {
                    stop_ref.store(true, Ordering::Relaxed);
                }
                if flush_done.send(done).is_err() {
                    return;
                }
            }
        });
        // Workers: read, check, de-identify into a temporary file (CPU), add it to the batch
        // being filled; whoever fills it hands it to the flusher, and the last worker to finish
        // hands over what is left.
        for _ in 0..plan.jobs {
            let (done, batches) = (done_tx.clone(), batch_tx.clone());
            let (rx, stop_ref, filling, left) = (&job_rx, &stop, &filling, &workers_left);
            scope.spawn(move || {
                loop {
                    let group = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => break,
                    };
                    let Ok(group) = group else { break };
                    let mut finished = Vec::new();
                    for Job { index, found } in group {
                        if stop_ref.load(Ordering::Relaxed) {
                            break;
                        }
                        match process(plan, &found) {
                            Step::Commit(p) => {
                                let full = match filling.lock() {
                                    Ok(mut f) => f.add(index, found, *p),
                                    Err(_) => break,
                                };
                                if let Some(batch) = full
                                    && batches.send(batch).is_err()
                                {
                                    break;
                                }
                            }
                            Step::Finished(result) => {
                                // A fatal error stops every thread now, not when the main thread
                                // gets to it: the others would otherwise keep reading inputs.
                                if matches!(result, FileResult::Fatal(_)) {
                                    stop_ref.store(true, Ordering::Relaxed);
                                }
                                finished.push(Done { index, rel: found.rel, bytes_in: found.size, result })
                            }
                        }
                    }
                    if !finished.is_empty() && done.send(finished).is_err() {
                        break;
                    }
                }
                if left.fetch_sub(1, Ordering::AcqRel) == 1
                    && !stop_ref.load(Ordering::Relaxed)
                    && let Ok(mut f) = filling.lock()
                    && !f.files.is_empty()
                {
                    let _ = batches.send(std::mem::take(&mut f.files));
                }
            });
        }
        drop(batch_tx);
        drop(done_tx);

        let mut done_files = 0u64;
        for d in done_rx.into_iter().flatten() {
            done_files += 1;
            summary.files += 1;
            summary.bytes_in += d.bytes_in;
            let rel = d.rel.display();
            let entry = match &d.result {
                FileResult::Written { output, subject, time_point, bytes_out, report: deid } => {
                    summary.written += 1;
                    summary.bytes_out += bytes_out;
                    if !deid.flags.is_empty() {
                        summary.flagged_burned_in += 1;
                        let line = format!("{rel} -> {output}: {}", flag_text(deid));
                        progress.println(&format!("corelab deid: flagged for burned-in PHI: {line}"));
                        if flagged_list.len() < SUMMARY_LIST {
                            flagged_list.push(line);
                        }
                    }
                    let deid_report = report.report_id(deid).unwrap_or_else(|err| {
                        stop.store(true, Ordering::Relaxed);
                        report_error.get_or_insert(err);
                        0
                    });
                    Some(ReportFile::Written {
                        index: d.index,
                        output,
                        subject_id: subject,
                        time_point_id: time_point.as_deref(),
                        bytes_in: d.bytes_in,
                        bytes_out: *bytes_out,
                        deid_report,
                    })
                }
                FileResult::Refused(reason) => {
                    summary.refused += 1;
                    let line = format!("{rel}: {reason}");
                    progress.println(&format!("corelab deid: refused {line}"));
                    if refused_list.len() < SUMMARY_LIST {
                        refused_list.push(line);
                    }
                    Some(ReportFile::Refused { index: d.index, reason })
                }
                FileResult::Skipped(reason) => {
                    summary.skipped += 1;
                    progress.println(&format!("corelab deid: skipped {rel}: {reason}"));
                    Some(ReportFile::Skipped { index: d.index, reason })
                }
                FileResult::Fatal(reason) => {
                    if summary.stopped.is_none() {
                        progress.println(&format!("corelab deid: stopping: {reason}"));
                        summary.stopped = Some(reason.clone());
                    }
                    stop.store(true, Ordering::Relaxed);
                    None
                }
            };
            if let (Some(e), None) = (entry, &report_error)
                && let Err(err) = report.entry(&e)
            {
                stop.store(true, Ordering::Relaxed);
                report_error = Some(err);
            }
            progress.update(plan, done_files, summary.bytes_in);
        }
    });
    progress.finish();
    // The last renames (and the folders they made) become durable here, before the report says
    // the files are written.
    let synced = sync_output(&plan.out).or_else(|_| sync_dirs(&plan.out));
    summary.seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;

    let report_path = match (report_error, synced) {
        (Some(e), _) | (None, Err(e)) => Err(e),
        (None, Ok(())) => report.finish(&summary, &plan.out),
    };
    print_summary(plan, &summary, &refused_list, &flagged_list, &report_path);
    if summary.stopped.is_some() || report_path.is_err() {
        ExitCode::from(EXIT_OUTPUT)
    } else if summary.refused > 0 {
        ExitCode::from(EXIT_REFUSED)
    } else {
        ExitCode::SUCCESS
    }
}

fn flag_text(report: &DeidReport) -> String {
    use corelab_dicom::deid::QcFlag;
    let texts: Vec<String> = report
        .flags
        .iter()
        .map(|f| match f {
            QcFlag::BurnedInAnnotationYes => "Burned In Annotation is YES".to_string(),
            QcFlag::BurnedInAnnotationUnknown { reason } => format!("Burned In Annotation absent ({reason})"),
            QcFlag::PixelMaskNotApplied { reason } => format!("charter pixel mask not applied ({reason})"),
        })
        .collect();
    texts.join("; ")
}

fn print_summary(
    plan: &Plan,
    s: &Summary,
    refused: &[String],
    flagged: &[String],
    report: &Result<PathBuf, std::io::Error>,
) {
    let rate = if s.seconds > 0.0 { s.files as f64 / s.seconds } else { 0.0 };
    let mut out = String::new();
    let mut line = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    line(format!(
        "corelab deid: {} of {} files processed in {:.2} s ({rate:.0} files/s, {:.1} MB/s)",
        s.files,
        plan.files,
        s.seconds,
        if s.seconds > 0.0 { s.bytes_in as f64 / 1e6 / s.seconds } else { 0.0 }
    ));
    line(format!("  written:  {} (into {})", s.written, plan.out.display()));
    line(format!("  refused:  {}", s.refused));
    for r in refused {
        line(format!("    {r}"));
    }
    if s.refused > refused.len() as u64 {
        line(format!("    ... and {} more (printed above; in the report by index)", s.refused - refused.len() as u64));
    }
    line(format!("  skipped:  {}", s.skipped));
    line(format!("  flagged for burned-in PHI (check the pixels before use): {}", s.flagged_burned_in));
    for f in flagged {
        line(format!("    {f}"));
    }
    if s.flagged_burned_in > flagged.len() as u64 {
        line(format!("    ... and {} more (in the report)", s.flagged_burned_in - flagged.len() as u64));
    }
    if let Some(reason) = &s.stopped {
        line(format!("  STOPPED before the end: {reason}"));
    }
    match report {
        Ok(p) => line(format!("  report:   {}", p.display())),
        Err(e) => line(format!("  report:   NOT written: {}", io_reason(e))),
    }
    print!("{out}");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn date_shift_is_deterministic_keyed_in_range_and_never_zero() {
        let key = [7u8; 32];
        let a = date_shift_days(&key, "101-001", 365).unwrap();
        assert_eq!(Some(a), date_shift_days(&key, "101-001", 365));
        assert!((1..=365).contains(&a.unsigned_abs()));
        // Different subjects and keys give different shifts (for these inputs).
        let subjects: Vec<i32> =
            (1..=50).map(|i| date_shift_days(&key, &format!("101-{i:03}"), 365).unwrap()).collect();
        let distinct: HashSet<i32> = subjects.iter().copied().collect();
        assert!(distinct.len() > 40, "shifts should spread: {subjects:?}");
        assert!(subjects.iter().any(|d| *d < 0) && subjects.iter().any(|d| *d > 0));
        let other: Vec<i32> =
            (1..=50).map(|i| date_shift_days(&[8u8; 32], &format!("101-{i:03}"), 365).unwrap()).collect();
        assert_ne!(subjects, other);
        // max 1: only -1 or +1; both occur.
        let ones: HashSet<i32> = (0..64).map(|i| date_shift_days(&key, &format!("S{i}"), 1).unwrap()).collect();
        assert_eq!(ones, HashSet::from([-1, 1]));
        assert_eq!(date_shift_days(&key, "101-001", 0), None);
    }

    #[test]
    fn date_shift_matches_an_independent_computation() {
        // HMAC-SHA-256(key = 32 x 0x07, "corelab deid date shift v1\0" + "101-001"), computed with
        // Python's hmac module: first 8 bytes 0xa06b3aa0e04a89d1; that mod 730 is 349 < 365, so
        // the shift is -(349 + 1).
        let key = [7u8; 32];
        assert_eq!(0xa06b_3aa0_e04a_89d1u64 % 730, 349);
        assert_eq!(date_shift_days(&key, "101-001", 365), Some(-350));
    }

    #[test]
    fn key_file_is_created_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let (k1, created) = load_or_create_key(&path).unwrap();
        assert!(created);
        assert_eq!(k1.len(), KEY_BYTES);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let (k2, created) = load_or_create_key(&path).unwrap();
        assert!(!created);
        assert_eq!(k1, k2);
        std::fs::write(&path, "not hex\n").unwrap();
        assert!(load_or_create_key(&path).unwrap_err().contains("does not hold a hex key"));
        std::fs::write(&path, "00112233\n").unwrap();
        assert!(load_or_create_key(&path).unwrap_err().contains("4 bytes"));
    }

    /// A minimal Explicit VR Little Endian Part 10 file; `None` values are left out.
    fn dicom(sop: Option<&str>, subject: Option<&str>) -> Vec<u8> {
        fn el(out: &mut Vec<u8>, g: u16, e: u16, vr: &[u8; 2], v: &str) {
            let mut v = v.as_bytes().to_vec();
            if v.len() % 2 == 1 {
                v.push(if vr == b"UI" { 0 } else { b' ' });
            }
            out.extend_from_slice(&g.to_le_bytes());
            out.extend_from_slice(&e.to_le_bytes());
            out.extend_from_slice(vr);
            out.extend_from_slice(&(v.len() as u16).to_le_bytes());
            out.extend_from_slice(&v);
        }
        let mut meta = Vec::new();
        meta.extend_from_slice(&[0x02, 0x00, 0x01, 0x00, b'O', b'B', 0, 0, 2, 0, 0, 0, 0, 1]);
        el(&mut meta, 0x0002, 0x0002, b"UI", "1.2.840.10008.5.1.4.1.1.2");
        el(&mut meta, 0x0002, 0x0003, b"UI", sop.unwrap_or("1.2.3.4.9"));
        el(&mut meta, 0x0002, 0x0010, b"UI", "1.2.840.10008.1.2.1");
        el(&mut meta, 0x0002, 0x0012, b"UI", "1.2.3.4.5");
        let mut out = vec![0u8; 128];
        out.extend_from_slice(b"DICM");
        out.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, b'U', b'L', 4, 0]);
        out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        out.extend_from_slice(&meta);
        el(&mut out, 0x0008, 0x0016, b"UI", "1.2.840.10008.5.1.4.1.1.2");
        if let Some(sop) = sop {
            el(&mut out, 0x0008, 0x0018, b"UI", sop);
        }
        el(&mut out, 0x0008, 0x0060, b"CS", "CT");
        el(&mut out, 0x0010, 0x0010, b"PN", "DOE^JANE");
        el(&mut out, 0x0010, 0x0020, b"LO", "MRN777");
        if let Some(subject) = subject {
            el(&mut out, 0x0012, 0x0040, b"LO", subject);
        }
        el(&mut out, 0x0020, 0x000D, b"UI", "1.2.3.4.1");
        el(&mut out, 0x0020, 0x000E, b"UI", "1.2.3.4.2");
        out
    }

    fn args(dir: &Path, subject: Option<&str>) -> DeidArgs {
        let charter = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charters/oncology-ct-recist.toml");
        DeidArgs {
            input: dir.join("in"),
            output: dir.join("out"),
            charter,
            site: "101".into(),
            subject: subject.map(str::to_string),
            timepoint: None,
            key_file: dir.join("k.key"),
            jobs: Some(2),
        }
    }

    #[test]
    fn files_are_refused_without_a_usable_subject_or_uid_and_named_by_new_uids() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("in")).unwrap();
        let f = |name: &str, bytes: Vec<u8>| std::fs::write(dir.path().join("in").join(name), bytes).unwrap();
        f("a.dcm", dicom(Some("1.2.3.4.10"), Some("101-007")));
        f("b.dcm", dicom(Some("1.2.3.4.11"), Some("MRN777")));
        f("c.dcm", dicom(Some("1.2.3.4.12"), None));
        f("d.dcm", dicom(None, Some("101-008")));
        let plan = Plan::new(&args(dir.path(), None)).unwrap();
        let found = |name: &str| Found { rel: name.into(), path: dir.path().join("in").join(name), size: 0 };
        let Step::Commit(p) = process(&plan, &found("a.dcm")) else { panic!("a.dcm is usable") };
        let sop = plan.mapper.map(&OriginalUid::new("1.2.3.4.10"));
        let study = plan.mapper.map(&OriginalUid::new("1.2.3.4.1"));
        let series = plan.mapper.map(&OriginalUid::new("1.2.3.4.2"));
        assert_eq!(p.rel_out, format!("101-007/{study}/{series}/{sop}.dcm"));
        let done = commit_batch(&plan, vec![(1, found("a.dcm"), *p)]);
        let [Done { result: FileResult::Written { output, .. }, .. }] = &done[..] else { panic!("written") };
        assert!(plan.out.join(output).is_file());
        let reason = |name: &str| match process(&plan, &found(name)) {
            Step::Finished(FileResult::Refused(r)) => r,
            _ => panic!("{name} should be refused"),
        };
        let b = reason("b.dcm");
        assert!(b.contains("does not follow the charter's subject ID pattern {site}-{nnn} for site 101"), "{b}");
        assert!(!b.contains("MRN777"));
        assert!(reason("c.dcm").contains("has no Clinical Trial Subject ID (0012,0040)"));
        assert!(reason("d.dcm").contains("has no SOP Instance UID (0008,0018)"));
    }

    #[test]
    fn an_output_that_cannot_be_written_stops_the_run_with_exit_code_3() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("in")).unwrap();
        // More files than the bounded queues hold, so stopping early is visible.
        for i in 0..200 {
            std::fs::write(
                dir.path().join(format!("in/{i:03}.dcm")),
                dicom(Some(&format!("1.2.3.4.{}", 1000 + i)), None),
            )
            .unwrap();
        }
        let plan = Plan::new(&args(dir.path(), Some("101-001"))).unwrap();
        // The subject folder cannot be created: a file holds its name.
        std::fs::write(plan.out.join("101-001"), b"in the way").unwrap();
        assert_eq!(execute(&plan), ExitCode::from(EXIT_OUTPUT));
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(plan.out.join(REPORT_NAME)).unwrap()).unwrap();
        let stopped = report["summary"]["stopped"].as_str().unwrap();
        assert!(stopped.starts_with("cannot create "), "{stopped}");
        // Every thread stops at the first fatal error: a worker finishes at most the file in hand.
        assert!(report["summary"]["files"].as_u64().unwrap() < 20, "the run stopped early");
        assert_eq!(report["summary"]["written"], 0);
    }

    #[test]
    fn output_uids_must_be_plain() {
        assert!(is_plain_uid("2.25.123456789"));
        assert!(!is_plain_uid(""));
        assert!(!is_plain_uid("1..2"));
        assert!(!is_plain_uid("1.2/../../etc"));
        assert!(!is_plain_uid(&"1".repeat(65)));
    }

    #[test]
    fn walk_is_sorted_recursive_and_skips_nothing_regular() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b/c")).unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        for (p, n) in [("b/c/z", 3), ("b/y", 2), ("a/x", 1), ("top", 4)] {
            std::fs::write(dir.path().join(p), vec![0u8; n]).unwrap();
        }
        let got: Vec<(String, u64)> =
            Walk::new(dir.path()).map(|f| f.unwrap()).map(|f| (f.rel.to_string_lossy().into_owned(), f.size)).collect();
        assert_eq!(got, vec![("a/x".into(), 1), ("b/c/z".into(), 3), ("b/y".into(), 2), ("top".into(), 4)]);
    }
}
