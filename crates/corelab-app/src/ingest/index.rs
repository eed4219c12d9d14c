//! Indexing with group commit: one task takes every prepared instance of this process and writes
//! whatever is waiting in one transaction, so concurrent associations share one commit (one fsync)
//! instead of trading durability for speed. The batch's blobs, already under their keys, are
//! flushed while its rows are written (by ingest's blocking threads, or here for blobs placed by
//! `submit_indexed`). Each sender hears back only once its rows committed and its blob is durable.
//!
//! A blob its ingest thread is still flushing when the rows are ready does not hold the commit
//! back: the transaction records its key in `unflushed_blobs` and commits, the two flushes (blob
//! and index) run side by side, and the sender is answered once both are done. The mark is cleared
//! with a later batch. If the process stops in between, start-up ([`App::settle_unflushed_blobs`])
//! flushes each marked blob that is intact and withdraws, audited, the never-acknowledged rows of
//! one that is not (docs/adr/0005-rows-commit-beside-the-blob-flush.md).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::OnceLock;

use chrono::Duration;
use corelab_store::ingest::{InboxRow, InstanceRow, SeriesRow, StudyRow, UnflushedBlob};
use corelab_store::jobs::NewJob;
use corelab_store::locks::DataLockRow;
use corelab_store::trials::SubjectRow;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use serde_json::{Value, json};
use tokio::sync::oneshot::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::plan::Placement;
use super::{IngestError, IngestOutcome, IngestTarget, Prepared};
use crate::App;
use crate::audit::{change, trial_record};

type Reply = Result<IngestOutcome, IngestError>;

fn writer_stopped() -> IngestError {
    IngestError::Internal("the index writer stopped".into())
}

/// How long a study must stay quiet before its completeness is judged.
pub const DEFAULT_QUIET_PERIOD_SECONDS: i64 = 60;
const MAX_BATCH: usize = 128;

/// The header facts the index and QC need, read back from the de-identified file.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub transfer_syntax: String,
    pub modality: String,
    pub series_number: Option<i64>,
    pub series_description: Option<String>,
    pub instance_number: Option<i64>,
    pub study_date: Option<chrono::NaiveDate>,
    pub facts: Value,
}

fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<String> {
    obj.element(tag).ok().and_then(|e| e.to_str().ok()).map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
}

fn int(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<i64> {
    text(obj, tag).and_then(|s| s.split('\\').next()?.trim().parse().ok())
}

/// The index fields of a de-identified header as the engine wrote it, with the QC facts: those
/// of the stored header, the de-identification report's burned-in flags, and whether the original
/// named a contrast agent. The real acquisition date is not stored here: QC takes it from the
/// study's day offset from the subject's anchor date.
pub(crate) fn deidentified_header(
    obj: &InMemDicomObject,
    report: &corelab_dicom::deid::DeidReport,
    original: &corelab_dicom::facts::OriginalFacts,
) -> Result<Header, IngestError> {
    header_of(obj, report.transfer_syntax.clone(), |obj| {
        let mut f = corelab_dicom::facts::instance_facts_with_report(obj, report);
        original.apply(&mut f);
        f.acquisition_date = None;
        serde_json::to_value(&f).map_err(|e| IngestError::Internal(e.to_string()))
    })
}

/// Reads the index fields of a staged file's header; `facts` gives the QC facts JSON.
pub(crate) fn read_header_with(
    path: &Path,
    facts: impl FnOnce(&InMemDicomObject) -> Result<Value, IngestError>,
) -> Result<Header, IngestError> {
    let file = dicom_object::OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| IngestError::Unreadable(e.to_string()))?;
    let ts = file.meta().transfer_syntax().trim_end_matches('\0').to_string();
    header_of(&file.into_inner(), ts, facts)
}

fn header_of(
    obj: &InMemDicomObject,
    ts: String,
    facts: impl FnOnce(&InMemDicomObject) -> Result<Value, IngestError>,
) -> Result<Header, IngestError> {
    let req = |tag, name: &str| {
        text(obj, tag).filter(|s| !s.is_empty()).ok_or_else(|| IngestError::Unreadable(format!("{name} is missing")))
    };
    let facts = facts(obj)?;
    Ok(Header {
        sop_class_uid: req(tags::SOP_CLASS_UID, "SOP Class UID")?,
        sop_instance_uid: req(tags::SOP_INSTANCE_UID, "SOP Instance UID")?,
        study_instance_uid: req(tags::STUDY_INSTANCE_UID, "Study Instance UID")?,
        series_instance_uid: req(tags::SERIES_INSTANCE_UID, "Series Instance UID")?,
        transfer_syntax: ts,
        modality: text(obj, tags::MODALITY).unwrap_or_default(),
        series_number: int(obj, tags::SERIES_NUMBER),
        series_description: text(obj, tags::SERIES_DESCRIPTION).filter(|s| !s.is_empty()),
        instance_number: int(obj, tags::INSTANCE_NUMBER),
        study_date: text(obj, tags::STUDY_DATE)
            .and_then(|s| chrono::NaiveDate::parse_from_str(s.get(..8)?, "%Y%m%d").ok()),
        facts,
    })
}

struct Job {
    placement: Placement,
    charter_version: i64,
    report: StoredReport,
    sha256: String,
    size: u64,
    header: Header,
    blob_key: String,
    target: IngestTarget,
    flush: Flush,
    reply: oneshot::Sender<Reply>,
}

/// Who makes a job's blob durable before its rows commit.
enum Flush {
    /// Nothing to flush: on S3 an object is durable once committed.
    Nothing,
    /// The writer flushes the blob under the job's key with the batch.
    Writer,
    /// The caller flushes it (ingest's blocking thread, right after placing it) and reports here,
    /// so the flush runs while the writer is already writing the rows.
    Caller(oneshot::Receiver<Result<(), corelab_store::StoreError>>),
}

/// The caller's side of [`Flush::Caller`]: report how the flush went.
pub(crate) struct FlushDone(oneshot::Sender<Result<(), corelab_store::StoreError>>);

impl FlushDone {
    pub(crate) fn report(self, result: Result<(), corelab_store::StoreError>) {
        // A writer that is gone has already failed the job.
        let _ = self.0.send(result);
    }
}

/// The answer to a queued job: the outcome, once its batch committed (or failed).
pub(crate) struct Pending(oneshot::Receiver<Reply>);

impl Pending {
    pub(crate) async fn outcome(self) -> Reply {
        self.0.await.map_err(|_| writer_stopped())?
    }
}

/// A de-identification report as stored: its JSON, the JSON's SHA-256 (its key in
/// `deid_reports`), and whether it flags burned-in text.
#[derive(Debug, Clone)]
pub(crate) struct StoredReport {
    pub json: String,
    pub sha256: String,
    pub burned_in: bool,
}

impl StoredReport {
    pub(crate) fn new(json: String, burned_in: bool) -> StoredReport {
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(json.as_bytes()));
        StoredReport { json, sha256, burned_in }
    }

    pub(crate) fn of(report: &corelab_dicom::deid::DeidReport) -> StoredReport {
        let json = serde_json::to_string(report).unwrap_or_else(|_| "{}".into());
        StoredReport::new(json, !report.flags.is_empty())
    }
}

/// The content-addressed key of a de-identified instance.
pub(crate) fn instance_blob_key(trial_id: Uuid, sha256: &str) -> String {
    format!("instances/{trial_id}/{}/{sha256}.dcm", sha256.get(..2).unwrap_or("00"))
}

/// The process's group-commit writer (started on first use).
#[derive(Clone)]
pub struct IndexWriter {
    tx: mpsc::Sender<Job>,
}

impl App {
    pub(crate) fn index_writer(&self) -> IndexWriter {
        self.index_cell()
            .get_or_init(|| {
                let (tx, rx) = mpsc::channel(1024);
                tokio::spawn(run(self.clone(), rx));
                IndexWriter { tx }
            })
            .clone()
    }
}

/// Where a writer lives inside `App` (see `lib.rs`).
pub(crate) type IndexCell = OnceLock<IndexWriter>;

impl IndexWriter {
    /// Queues an instance whose blob is staged (on S3, or an inbox item being assigned) for the
    /// next group commit, after putting it under its key, and waits for it.
    pub(crate) async fn submit(
        &self,
        app: &App,
        prepared: Prepared<corelab_store::StagedBlob>,
        target: IngestTarget,
    ) -> Result<IngestOutcome, IngestError> {
        let Prepared { plan, blob, report, header } = prepared;
        self.submit_indexed(app, plan.placement, plan.charter_version, blob, report, header, target).await
    }

    /// Queues a staged instance whose header was read (ingest, or an inbox item being assigned).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn submit_indexed(
        &self,
        app: &App,
        placement: Placement,
        charter_version: i64,
        staged: corelab_store::StagedBlob,
        report: StoredReport,
        header: Header,
        target: IngestTarget,
    ) -> Result<IngestOutcome, IngestError> {
        let (sha256, size) = (staged.sha256.clone(), staged.size);
        let blob_key = instance_blob_key(target.trial_id, &sha256);
        let flush = match app.blobs() {
            corelab_store::BlobStore::Local(_) => {
                // Under its key now; flushed with the batch.
                let (store, key) = (app.blobs().clone(), blob_key.clone());
                tokio::task::spawn_blocking(move || store.place_blocking(staged, &key))
                    .await
                    .map_err(|e| IngestError::Internal(e.to_string()))??;
                Flush::Writer
            }
            _ => {
                // S3: content-addressed, so the same bytes may already be stored under this key.
                if app.blobs().size(&blob_key).await? == Some(size) {
                    staged.discard().await;
                } else {
                    app.blobs().commit(staged, &blob_key).await?;
                }
                Flush::Nothing
            }
        };
        let (reply, rx) = oneshot::channel();
        let job = Job { placement, charter_version, report, sha256, size, header, blob_key, target, flush, reply };
        self.tx.send(job).await.map_err(|_| writer_stopped())?;
        Pending(rx).outcome().await
    }

    /// From a blocking thread: queues an instance whose blob is already under its key on local
    /// storage but not yet flushed. The caller flushes it and reports through [`FlushDone`]; the
    /// writer writes the rows meanwhile and commits them only after a successful report.
    pub(crate) fn queue_placed_blocking(
        &self,
        prepared: Prepared<(String, u64)>,
        target: IngestTarget,
    ) -> Result<(FlushDone, Pending), IngestError> {
        let Prepared { plan, blob: (sha256, size), report, header } = prepared;
        let blob_key = instance_blob_key(target.trial_id, &sha256);
        let (flushed, flush) = oneshot::channel();
        let (reply, rx) = oneshot::channel();
        let job = Job {
            placement: plan.placement,
            charter_version: plan.charter_version,
            report,
            sha256,
            size,
            header,
            blob_key,
            target,
            flush: Flush::Caller(flush),
            reply,
        };
        self.tx.blocking_send(job).map_err(|_| writer_stopped())?;
        Ok((FlushDone(flushed), Pending(rx)))
    }
}

/// How long after moving a study's arrival time and completeness job the writer lets them be: a
/// quarter of the quiet period, at most a second. The job is set that much later than the quiet
/// period asks, so it still runs only after a full quiet period since the last instance; the
/// study's `last_received_at` may lag by as much. Saves two statements on most instances.
fn touch_window(quiet_period_seconds: i64) -> Duration {
    Duration::milliseconds((quiet_period_seconds.max(0) * 250).min(1000))
}

/// How many marks of finished flushes wait before a batch clears them (one statement).
const CLEAR_MARKS_AT: usize = 64;

/// How many rows of each kind the writer remembers as committed.
const KNOWN_MAX: usize = 4096;

/// Rows the writer has seen committed that never change once written (a report, a study's subject
/// and visit, a series' id), so later batches need not read or write them again.
#[derive(Default)]
struct Known {
    reports: HashSet<String>,
    /// (trial, Study Instance UID as stored) → (study id, subject id, visit id).
    studies: HashMap<(Uuid, String), (Uuid, Uuid, String)>,
    /// (study id, Series Instance UID as stored) → series id.
    series: HashMap<(Uuid, String), Uuid>,
    /// Study id → when its arrival time and completeness job were last moved (see [`touch_window`]).
    touched: HashMap<Uuid, chrono::DateTime<chrono::Utc>>,
}

impl Known {
    /// Takes in what a batch wrote or read, once it committed; starts afresh when one kind is full.
    fn absorb(&mut self, batch: Known) {
        if self.reports.len() > KNOWN_MAX
            || self.studies.len() > KNOWN_MAX
            || self.series.len() > KNOWN_MAX
            || self.touched.len() > KNOWN_MAX
        {
            *self = Known::default();
        }
        self.reports.extend(batch.reports);
        self.studies.extend(batch.studies);
        self.series.extend(batch.series);
        self.touched.extend(batch.touched);
    }
}

/// A blob flush that finished after its rows committed, reported back to the writer.
enum Settled {
    /// Durable: its mark in `unflushed_blobs` goes with a later batch.
    Flushed(String),
    /// The flush failed: the rows that refer to the blob are withdrawn.
    Failed(String),
}

fn flush_abandoned() -> corelab_store::StoreError {
    corelab_store::StoreError::Read(std::io::Error::other("an instance's flush was abandoned"))
}

/// Takes in a late flush's outcome: a mark to clear with the next batch, or rows to withdraw now.
async fn take_settled(app: &App, settled: Settled, known: &mut Known, flushed: &mut Vec<String>) {
    match settled {
        Settled::Flushed(key) => flushed.push(key),
        Settled::Failed(key) => {
            // The withdrawn rows may include a series or study this writer remembers.
            *known = Known::default();
            if let Err(e) = app.withdraw_unflushed(&key, "its image file could not be flushed to disk").await {
                tracing::error!(error = %e, key, "could not withdraw the rows of a blob whose flush failed");
            }
        }
    }
}

async fn run(app: App, mut rx: mpsc::Receiver<Job>) {
    let mut known = Known::default();
    let (settled_tx, mut settled_rx) = mpsc::unbounded_channel::<Settled>();
    // Keys whose late flush finished: their marks are cleared with a later batch.
    let mut flushed: Vec<String> = Vec::new();
    loop {
        let first = tokio::select! {
            biased;
            Some(settled) = settled_rx.recv() => {
                take_settled(&app, settled, &mut known, &mut flushed).await;
                continue;
            }
            job = rx.recv() => match job {
                Some(job) => job,
                None => break,
            },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        metrics::histogram!("corelab_ingest_commit_batch_size").record(batch.len() as f64);
        let mut results = Vec::with_capacity(batch.len());
        // What this batch writes or reads, remembered once it commits.
        let mut seen = Known::default();
        // Marks are cleared a statement's worth at a time; start-up checks the few left over.
        let clearing = if flushed.len() >= CLEAR_MARKS_AT { std::mem::take(&mut flushed) } else { Vec::new() };
        // The blobs are flushed (in parallel, so the file system can share its journal commits)
        // while their rows are written, by their callers or here.
        let keys: std::collections::BTreeSet<&str> =
            batch.iter().filter(|j| matches!(j.flush, Flush::Writer)).map(|j| j.blob_key.as_str()).collect();
        let syncs: Vec<_> = keys
            .into_iter()
            .map(|key| {
                let (store, key) = (app.blobs().clone(), key.to_string());
                tokio::task::spawn_blocking(move || store.sync_placed(&key))
            })
            .collect();
        let outcome = async {
            let mut tx = app.db().begin().await?;
            tx.clear_unflushed(&clearing).await?;
            let now = Current::read(&mut tx, &batch).await?;
            let mut audits = Vec::with_capacity(batch.len());
            for job in &batch {
                results.push(index_one(&app, &mut tx, job, &now, &known, &mut seen, &mut audits).await?);
            }
            tx.append_audits(audits).await?;
            for sync in syncs {
                sync.await.map_err(|e| corelab_store::StoreError::Read(std::io::Error::other(e)))??;
            }
            // A caller's flush that already failed fails the batch. One still running does not
            // hold the commit back: the new rows that refer to its blob are marked, and its sender
            // is answered once it is done.
            let now = app.clock().now();
            let mut late = Vec::new();
            for (i, job) in batch.iter_mut().enumerate() {
                let Flush::Caller(flushed) = &mut job.flush else { continue };
                match flushed.try_recv() {
                    Ok(result) => result?,
                    Err(TryRecvError::Empty) => {
                        if results[i].new_rows {
                            tx.mark_unflushed(&UnflushedBlob {
                                blob_key: job.blob_key.clone(),
                                sha256: job.sha256.clone(),
                                size_bytes: i64::try_from(job.size).unwrap_or(i64::MAX),
                                marked_at: now,
                            })
                            .await?;
                        }
                        late.push(i);
                        metrics::counter!("corelab_ingest_flushes_after_commit_total").increment(1);
                    }
                    Err(TryRecvError::Closed) => return Err(flush_abandoned()),
                }
            }
            tx.commit().await?;
            Ok::<_, corelab_store::StoreError>(late)
        }
        .await;
        match outcome {
            Ok(late) => {
                seen.reports.extend(batch.iter().map(|j| j.report.sha256.clone()));
                known.absorb(seen);
                let mut waiting = Vec::with_capacity(late.len());
                for (i, (job, r)) in batch.into_iter().zip(results).enumerate() {
                    if late.contains(&i) {
                        waiting.push((job, r));
                    } else {
                        let _ = job.reply.send(r.reply);
                    }
                }
                if !waiting.is_empty() {
                    tokio::spawn(answer_after_flush(waiting, settled_tx.clone()));
                }
            }
            Err(e) => {
                flushed.extend(clearing);
                tracing::error!(error = %e, "ingest batch failed; nothing of it was acknowledged");
                for job in batch {
                    let _ = job.reply.send(Err(IngestError::Internal(e.to_string())));
                }
            }
        }
    }
}

/// Answers the senders of committed rows whose blobs were still being flushed, as each flush
/// finishes, and tells the writer how it went.
async fn answer_after_flush(waiting: Vec<(Job, Indexed)>, settled: mpsc::UnboundedSender<Settled>) {
    for (job, indexed) in waiting {
        let Flush::Caller(flushed) = job.flush else { continue };
        let result = flushed.await.map_err(|_| flush_abandoned()).and_then(|r| r);
        match result {
            Ok(()) => {
                let _ = job.reply.send(indexed.reply);
                if indexed.new_rows {
                    let _ = settled.send(Settled::Flushed(job.blob_key));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "an instance's blob could not be flushed; it was not acknowledged");
                let _ = job.reply.send(Err(IngestError::Internal(e.to_string())));
                if indexed.new_rows {
                    let _ = settled.send(Settled::Failed(job.blob_key));
                }
            }
        }
    }
}

/// What the batch's instances were matched against, read again inside the transaction that files
/// them: a lock taken, or a subject's record changed, while they were on their way is not missed.
struct Current {
    /// Each trial's active data locks (read after the audit lock, see `active_data_locks_held`).
    locks: HashMap<Uuid, Vec<DataLockRow>>,
    subjects: HashMap<Uuid, SubjectRow>,
}

impl Current {
    async fn read(tx: &mut corelab_store::Tx, batch: &[Job]) -> Result<Current, corelab_store::StoreError> {
        let mut locks = HashMap::new();
        let mut ids = Vec::new();
        for job in batch {
            let Placement::Visit { subject, .. } = &job.placement else { continue };
            if let std::collections::hash_map::Entry::Vacant(e) = locks.entry(job.target.trial_id) {
                e.insert(tx.active_data_locks_held(job.target.trial_id).await?);
            }
            if !ids.contains(&subject.id) {
                ids.push(subject.id);
            }
        }
        let subjects = tx.subjects_by_id(&ids).await?.into_iter().map(|s| (s.id, s)).collect();
        Ok(Current { locks, subjects })
    }

    /// Why an instance matched to this subject's visit must wait in the inbox instead, if it must.
    fn hold_reason(&self, trial_id: Uuid, subject: &SubjectRow, visit_id: &str) -> Option<String> {
        if !self.subjects.get(&subject.id).is_some_and(|now| super::plan::matches_alike(subject, now)) {
            return Some(format!(
                "the record of subject {} changed while these images were on their way; check the subject, then \
                 assign them",
                subject.subject_id
            ));
        }
        // A locked visit takes no new images: they wait in the inbox, the lock named as the reason.
        let lock = self.locks.get(&trial_id)?.iter().find(|l| l.covers(Some(subject.id), Some(visit_id)))?;
        Some(format!(
            "visit {visit_id} of subject {} is locked by {}; the images wait here until a trial manager unlocks it",
            subject.subject_id,
            crate::locks::describe(lock, Some(&subject.subject_id))
        ))
    }
}

/// What indexing one instance gave: the sender's answer, and whether rows that refer to its blob
/// were written (not so for a re-send of something stored or waiting).
struct Indexed {
    reply: Reply,
    new_rows: bool,
}

/// Indexes one instance inside the batch transaction; its audit records go to `audits`, appended
/// with the batch's. Store errors abort the whole batch; an instance-level problem (conflict) is a
/// result, not an error.
async fn index_one(
    app: &App,
    tx: &mut corelab_store::Tx,
    job: &Job,
    current: &Current,
    known: &Known,
    seen: &mut Known,
    audits: &mut Vec<corelab_store::audit::NewAuditRecord>,
) -> Result<Indexed, corelab_store::StoreError> {
    let h = &job.header;
    let t = &job.target;
    let now = app.clock().now();
    let inbox = |reason: &str,
                 state: &str,
                 patient_key: String,
                 claimed_subject: Option<String>,
                 claimed_visit: Option<String>,
                 shift: i32,
                 hint| InboxRow {
        id: Uuid::now_v7(),
        trial_id: t.trial_id,
        site_id: t.site_id.clone(),
        reason: reason.to_string(),
        state: state.to_string(),
        patient_key,
        claimed_subject,
        claimed_visit,
        provisional_shift: i64::from(shift),
        anchor_date_hint: hint,
        sop_instance_uid: h.sop_instance_uid.clone(),
        study_instance_uid: h.study_instance_uid.clone(),
        modality: h.modality.clone(),
        blob_key: job.blob_key.clone(),
        sha256: job.sha256.clone(),
        size_bytes: i64::try_from(job.size).unwrap_or(i64::MAX),
        source: t.source.as_str().to_string(),
        received_at: now,
        resolved_at: None,
        resolved_by: None,
        deid_report: job.report.json.clone(),
        facts: h.facts.to_string(),
    };
    let audit = |action: &str, object_type: &str, object_id: String, changes: Vec<Value>, reason: Option<String>| {
        let mut rec = trial_record(
            &crate::Actor::system(),
            &t.sender_role,
            t.trial_id,
            Some(&t.site_id),
            now,
            action,
            object_type,
            object_id,
            changes,
        );
        rec.actor_id = t.sender_id;
        rec.actor_name = t.sender.clone();
        rec.reason = reason;
        rec
    };
    let held = match &job.placement {
        Placement::Visit { subject, visit_id, if_held, .. } => {
            current.hold_reason(t.trial_id, subject, visit_id).map(|reason| Placement::Inbox {
                reason,
                patient_key: if_held.patient_key.clone(),
                claimed_subject: Some(subject.subject_id.clone()),
                claimed_visit: Some(visit_id.clone()),
                provisional_shift: if_held.provisional_shift,
                study_date_hint: if_held.study_date_hint,
            })
        }
        Placement::Inbox { .. } => None,
    };
    match held.as_ref().unwrap_or(&job.placement) {
        Placement::Inbox {
            reason,
            patient_key,
            claimed_subject,
            claimed_visit,
            provisional_shift,
            study_date_hint,
        } => {
            if tx.open_inbox_by_sha(t.trial_id, &job.sha256).await?.is_some() {
                return Ok(Indexed {
                    reply: Ok(IngestOutcome::Inbox {
                        sop_class_uid: h.sop_class_uid.clone(),
                        sop_instance_uid: h.sop_instance_uid.clone(),
                        reason: reason.clone(),
                    }),
                    new_rows: false,
                });
            }
            let row = inbox(
                reason,
                "unassigned",
                patient_key.clone(),
                claimed_subject.clone(),
                claimed_visit.clone(),
                *provisional_shift,
                *study_date_hint,
            );
            tx.insert_inbox(&row).await?;
            audits.push(audit(
                "create",
                "inbox_item",
                row.id.to_string(),
                vec![change("sha256", Value::Null, row.sha256.clone())],
                Some(reason.clone()),
            ));
            Ok(Indexed {
                reply: Ok(IngestOutcome::Inbox {
                    sop_class_uid: h.sop_class_uid.clone(),
                    sop_instance_uid: h.sop_instance_uid.clone(),
                    reason: reason.clone(),
                }),
                new_rows: true,
            })
        }
        Placement::Visit { subject, visit_id, anchor_day, .. } => {
            let study_row = StudyRow {
                id: Uuid::now_v7(),
                trial_id: t.trial_id,
                site_id: t.site_id.clone(),
                subject_id: subject.id,
                visit_id: visit_id.clone(),
                study_instance_uid: h.study_instance_uid.clone(),
                study_date: h.study_date,
                anchor_day: *anchor_day,
                state: "receiving".into(),
                charter_version: job.charter_version,
                first_received_at: now,
                last_received_at: now,
                completed_at: None,
            };
            // Usually the study is there already (its earlier instances): remembered, or one look-up.
            let study_key = (t.trial_id, h.study_instance_uid.clone());
            let (study_id, study_subject, study_visit) =
                match known.studies.get(&study_key).or(seen.studies.get(&study_key)) {
                    Some(s) => s.clone(),
                    None => {
                        let study = match tx.study_by_uid(t.trial_id, &h.study_instance_uid).await? {
                            Some(study) => study,
                            None => {
                                tx.insert_study(&study_row).await?;
                                tx.study_by_uid(t.trial_id, &h.study_instance_uid).await?.ok_or_else(|| {
                                    corelab_store::StoreError::Corrupt("study vanished after insert".into())
                                })?
                            }
                        };
                        let s = (study.id, study.subject_id, study.visit_id);
                        seen.studies.insert(study_key, s.clone());
                        s
                    }
                };
            let new_study = study_id == study_row.id;
            if study_subject != subject.id || study_visit != *visit_id {
                let row = inbox(
                    "this study is already stored under another subject or visit",
                    "conflict",
                    String::new(),
                    Some(subject.subject_id.clone()),
                    Some(visit_id.clone()),
                    0,
                    None,
                );
                tx.insert_inbox(&row).await?;
                audits.push(audit("create", "inbox_item", row.id.to_string(), vec![], Some(row.reason.clone())));
                return Ok(Indexed {
                    reply: Ok(IngestOutcome::Inbox {
                        sop_class_uid: h.sop_class_uid.clone(),
                        sop_instance_uid: h.sop_instance_uid.clone(),
                        reason: row.reason,
                    }),
                    new_rows: true,
                });
            }
            let series_row = SeriesRow {
                id: Uuid::now_v7(),
                study_id,
                series_instance_uid: h.series_instance_uid.clone(),
                modality: h.modality.clone(),
                series_number: h.series_number,
                series_description: h.series_description.clone(),
                instance_count: 0,
            };
            let series_key = (study_id, h.series_instance_uid.clone());
            let series_id = match known.series.get(&series_key).or(seen.series.get(&series_key)) {
                Some(id) => *id,
                None => {
                    let series = match tx.series_by_uid(study_id, &h.series_instance_uid).await? {
                        Some(series) => series,
                        None => {
                            tx.insert_series(&series_row).await?;
                            tx.series_by_uid(study_id, &h.series_instance_uid).await?.ok_or_else(|| {
                                corelab_store::StoreError::Corrupt("series vanished after insert".into())
                            })?
                        }
                    };
                    seen.series.insert(series_key, series.id);
                    series.id
                }
            };
            let burned_in = job.report.burned_in;
            let inst = InstanceRow {
                id: Uuid::now_v7(),
                trial_id: t.trial_id,
                study_id,
                series_id,
                sop_instance_uid: h.sop_instance_uid.clone(),
                sop_class_uid: h.sop_class_uid.clone(),
                transfer_syntax: h.transfer_syntax.clone(),
                instance_number: h.instance_number,
                blob_key: job.blob_key.clone(),
                sha256: job.sha256.clone(),
                size_bytes: i64::try_from(job.size).unwrap_or(i64::MAX),
                facts: h.facts.to_string(),
                deid_report: job.report.json.clone(),
                burned_in_flag: burned_in,
                source: t.source.as_str().to_string(),
                received_at: now,
            };
            let report_stored = known.reports.contains(&job.report.sha256);
            if let Some(existing) = tx.insert_instance(&inst, &job.report.sha256, report_stored).await? {
                if existing.sha256 == inst.sha256 {
                    return Ok(Indexed {
                        reply: Ok(IngestOutcome::Stored {
                            sop_class_uid: h.sop_class_uid.clone(),
                            sop_instance_uid: h.sop_instance_uid.clone(),
                            study_instance_uid: h.study_instance_uid.clone(),
                            duplicate: true,
                        }),
                        new_rows: false,
                    });
                }
                let row = inbox(
                    "a different object with this SOP Instance UID is already stored",
                    "conflict",
                    String::new(),
                    Some(subject.subject_id.clone()),
                    Some(visit_id.clone()),
                    0,
                    None,
                );
                tx.insert_inbox(&row).await?;
                audits.push(audit(
                    "create",
                    "inbox_item",
                    row.id.to_string(),
                    vec![change("sha256", Value::Null, row.sha256.clone())],
                    Some(row.reason.clone()),
                ));
                return Ok(Indexed {
                    reply: Err(IngestError::Conflict {
                        sop_class_uid: h.sop_class_uid.clone(),
                        sop_instance_uid: h.sop_instance_uid.clone(),
                    }),
                    new_rows: true,
                });
            }
            tx.bump_series(series_id).await?;
            let mut changes = vec![
                change("study", Value::Null, h.study_instance_uid.clone()),
                change("series", Value::Null, h.series_instance_uid.clone()),
                change("subject", Value::Null, subject.subject_id.clone()),
                change("visit", Value::Null, visit_id.clone()),
                change("sha256", Value::Null, inst.sha256.clone()),
            ];
            if burned_in {
                changes.push(change("burned_in_phi_risk", Value::Null, true));
            }
            audits.push(audit("create", "instance", h.sop_instance_uid.clone(), changes, None));
            // The study is receiving; judge its completeness once it has been quiet for a while.
            let quiet = app.settings().ingest_quiet_period_seconds;
            let window = touch_window(quiet);
            let moved = known.touched.get(&study_id).or(seen.touched.get(&study_id));
            if new_study || moved.is_none_or(|at| now - *at >= window) {
                if !new_study {
                    tx.touch_study(study_id, now).await?;
                }
                let key = format!("study-complete:{study_id}");
                let run_at = now + Duration::seconds(quiet) + window;
                if !tx.reschedule_job_by_key(&key, run_at).await? {
                    tx.enqueue_job(
                        NewJob {
                            kind: "study_complete".into(),
                            payload: json!({"study_id": study_id}),
                            run_at,
                            max_attempts: 5,
                            dedup_key: Some(key),
                        },
                        now,
                    )
                    .await?;
                }
                seen.touched.insert(study_id, now);
            }
            Ok(Indexed {
                reply: Ok(IngestOutcome::Stored {
                    sop_class_uid: h.sop_class_uid.clone(),
                    sop_instance_uid: h.sop_instance_uid.clone(),
                    study_instance_uid: h.study_instance_uid.clone(),
                    duplicate: false,
                }),
                new_rows: true,
            })
        }
    }
}
