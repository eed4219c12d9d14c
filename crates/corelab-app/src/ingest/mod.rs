//! Ingest: the door every image comes in by (DIMSE C-STORE, STOW-RS, uploads).
//!
//! Per instance: read the header, match trial/site/subject/visit from what the site sent (before
//! de-identification), de-identify with the charter's profile while streaming into a staged file
//! (hashing as it goes), put it under its content-hash key, queue it for the group-committed
//! transaction that indexes it with its audit record and flush it while that transaction is
//! written (it commits only after the flush), and only then answer success. Nothing with PHI is
//! ever written to disk: the original bytes flow from the socket through the engine into the
//! de-identified staging file.
//!
//! What cannot be matched goes to the inbox (de-identified under a provisional pseudonym) for a
//! coordinator to assign; it is never dropped and never guessed.

mod inbox;
mod index;
mod plan;
mod settle;

use std::io::{BufRead, Read};
use std::sync::Arc;

use bytes::{Buf, Bytes};

use corelab_dicom::deid::{DeidError, DeidReport, MatchKeys, OriginalUid, StreamHead, UidMapper};
use corelab_domain::charter::{Date, VisitCalendar};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub(crate) use index::IndexCell;
pub use index::{DEFAULT_QUIET_PERIOD_SECONDS, IndexWriter};
pub use plan::{IngestPlan, Placement};
pub use settle::Settled;

use crate::{App, AppError};

/// Where an instance came from (recorded on the instance and in the audit trail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Dimse,
    Stow,
    Upload,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Dimse => "dimse",
            Source::Stow => "stow",
            Source::Upload => "upload",
        }
    }
}

/// The trial and site an instance is sent for, and who sent it.
#[derive(Debug, Clone)]
pub struct IngestTarget {
    pub trial_id: Uuid,
    pub site_id: String,
    pub source: Source,
    /// For the audit trail: `dicom:<calling AE>` or the user's name.
    pub sender: String,
    pub sender_role: String,
    pub sender_id: Option<Uuid>,
}

/// What happened to one instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum IngestOutcome {
    /// Stored and indexed under its subject and visit.
    Stored { sop_class_uid: String, sop_instance_uid: String, study_instance_uid: String, duplicate: bool },
    /// Kept in the inbox for a coordinator: `reason` says why it could not be placed.
    Inbox { sop_class_uid: String, sop_instance_uid: String, reason: String },
}

/// Why an instance was refused. The message names the problem, never PHI.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("not a DICOM instance corelab can read: {0}")]
    Unreadable(String),
    #[error(
        "a different object with SOP Instance UID {sop_instance_uid} is already stored; the new one is kept in the inbox for review"
    )]
    Conflict { sop_class_uid: String, sop_instance_uid: String },
    #[error("{0}")]
    Refused(String),
    /// The request named a study (STOW-RS `/studies/{study}`) and the instance belongs to another.
    /// The UIDs are the ones corelab would have stored it under.
    #[error("the instance belongs to another study than the one the request names")]
    WrongStudy { sop_class_uid: String, sop_instance_uid: String },
    #[error("the server could not store the instance: {0}")]
    Internal(String),
}

impl From<AppError> for IngestError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Internal(inner) => IngestError::Internal(inner.to_string()),
            AppError::Unavailable(m) => IngestError::Internal(m),
            other => IngestError::Refused(other.to_string()),
        }
    }
}

impl From<corelab_store::StoreError> for IngestError {
    fn from(e: corelab_store::StoreError) -> Self {
        IngestError::Internal(e.to_string())
    }
}

/// Reads chunks arriving on a channel (network PDVs, HTTP body parts) as one byte stream, after an
/// optional prefix, on the blocking side of the pipeline. The channel closing is the end of input.
/// The chunks are [`Bytes`]: a sender hands over the buffer it received into, not a copy of it.
pub struct ChannelReader {
    prefix: std::io::Cursor<Vec<u8>>,
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    chunk: Bytes,
}

impl ChannelReader {
    pub fn new(prefix: Vec<u8>, rx: tokio::sync::mpsc::Receiver<Bytes>) -> ChannelReader {
        ChannelReader { prefix: std::io::Cursor::new(prefix), rx, chunk: Bytes::new() }
    }

    fn prefix_left(&self) -> bool {
        self.prefix.position() < self.prefix.get_ref().len() as u64
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = buf.len().min(avail.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// The buffer is the prefix, then each chunk as it arrived: the de-identifier writes pixel data
/// out of it.
impl BufRead for ChannelReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.prefix_left() {
            return self.prefix.fill_buf();
        }
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(c) => self.chunk = c,
                None => break,
            }
        }
        Ok(&self.chunk)
    }

    fn consume(&mut self, n: usize) {
        if self.prefix_left() {
            self.prefix.consume(n);
        } else {
            self.chunk.advance(n);
        }
    }
}

/// A writer that hashes and counts what passes through.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: std::io::Write> std::io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A de-identified instance on disk, with everything needed to index it; `B` says where its
/// bytes are (staged, or under their key as SHA-256 and size).
pub(crate) struct Prepared<B> {
    pub plan: IngestPlan,
    pub blob: B,
    pub report: index::StoredReport,
    /// The index fields and QC facts of the de-identified header.
    pub header: index::Header,
}

impl App {
    /// Ingests one instance read from `input` (a DICOM Part 10 stream). Returns only after the
    /// instance is durable and indexed (or durably in the inbox).
    ///
    /// `setup` comes from [`App::ingest_setup`], once per association or request.
    pub async fn ingest<R: BufRead + Send + 'static>(
        &self,
        setup: &IngestSetup,
        target: IngestTarget,
        input: R,
    ) -> Result<IngestOutcome, IngestError> {
        let started = std::time::Instant::now();
        let source = target.source.as_str();
        let result = self.ingest_inner(setup.clone(), target, input).await;
        if matches!(result, Ok(IngestOutcome::Inbox { .. })) {
            // Perhaps held back because the subject's record changed: the next instance reads it.
            setup.forget_enrolled();
        }
        let outcome = match &result {
            Ok(IngestOutcome::Stored { duplicate: true, .. }) => "duplicate",
            Ok(IngestOutcome::Stored { .. }) => "stored",
            Ok(IngestOutcome::Inbox { .. }) => "inbox",
            Err(IngestError::Unreadable(_)) => "rejected_unreadable",
            Err(IngestError::Conflict { .. }) => "rejected_conflict",
            Err(IngestError::Refused(_)) => "rejected_refused",
            Err(IngestError::WrongStudy { .. }) => "rejected_wrong_study",
            Err(IngestError::Internal(_)) => "failed_internal",
        };
        metrics::counter!("corelab_ingest_instances_total", "source" => source, "outcome" => outcome).increment(1);
        metrics::histogram!("corelab_ingest_latency_seconds", "source" => source)
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn ingest_inner<R: BufRead + Send + 'static>(
        &self,
        setup: IngestSetup,
        target: IngestTarget,
        input: R,
    ) -> Result<IngestOutcome, IngestError> {
        let app = self.clone();
        let writer = self.index_writer();
        let handle = tokio::runtime::Handle::current();
        let staging_path = self.blobs().new_staging_path();
        let path = staging_path.clone();
        let target2 = target.clone();
        let written = tokio::task::spawn_blocking(move || -> Result<_, IngestError> {
            let mut clock = StageClock::start(target2.source);
            let head = StreamHead::read_buffered(input).map_err(unreadable)?;
            clock.lap("header");
            let keys = head.match_keys();
            let original = head.original_facts();
            setup.check_study(&keys)?;
            let plan = handle.block_on(app.plan_instance(&target2, &setup, &keys))?;
            clock.lap("match");
            let file = std::fs::File::create(&path).map_err(|e| IngestError::Internal(e.to_string()))?;
            // No buffer of its own: the de-identifier buffers the header and writes the pixel
            // data in 64 KiB pieces, so another layer would only copy every byte once more.
            let mut w = HashingWriter { inner: file, hasher: Sha256::new(), size: 0 };
            let (report, out_header) = head.deidentify_with_header(&mut w, &plan.ctx).map_err(unreadable)?;
            let header = index::deidentified_header(&out_header, &report, &original)?;
            let report = setup.stored_report(report);
            // Written, not yet flushed: on local storage this thread flushes it once it is queued.
            drop(w.inner);
            let (size, sha) = (w.size, hex::encode(w.hasher.finalize()));
            // On local storage the blob goes under its key here, in this thread; S3 commits later.
            let staged = app.blobs().adopt_staged(path, size, sha.clone());
            let key = index::instance_blob_key(target2.trial_id, &sha);
            let placed = app.blobs().place_blocking(staged, &key)?;
            clock.lap("deidentify");
            match placed {
                corelab_store::Placed::Staged(staged) => {
                    Ok(Written::Staged(Box::new(Prepared { plan, blob: staged, report, header })))
                }
                corelab_store::Placed::Local => {
                    // The writer starts on the rows now, and this thread flushes the blob (its
                    // bytes and its name, one journal commit) meanwhile: the rows commit only
                    // after it reports success.
                    let prepared = Prepared { plan, blob: (sha, size), report, header };
                    let (flushed, pending) = writer.queue_placed_blocking(prepared, target2)?;
                    let queued = std::time::Instant::now();
                    flushed.report(app.blobs().sync_placed(&key));
                    clock.lap("blob_flush");
                    Ok(Written::Queued(size, pending, queued))
                }
            }
        })
        .await
        .map_err(|e| IngestError::Internal(e.to_string()))
        .and_then(|r| r);
        let written = match written {
            Ok(w) => w,
            Err(e) => {
                let _ = tokio::fs::remove_file(&staging_path).await;
                return Err(e);
            }
        };
        let bytes =
            |size| metrics::counter!("corelab_ingest_bytes_total", "source" => target.source.as_str()).increment(size);
        match written {
            Written::Queued(size, pending, queued) => {
                bytes(size);
                let outcome = pending.outcome().await;
                StageClock { source: target.source, at: queued }.lap("index");
                outcome
            }
            Written::Staged(prepared) => {
                bytes(prepared.blob.size);
                let mut clock = StageClock::start(target.source);
                let outcome = self.index_writer().submit(self, *prepared, target).await;
                clock.lap("store_and_index");
                outcome
            }
        }
    }
}

/// Times the steps of one instance into `corelab_ingest_stage_seconds{source, stage}`, so that
/// an operator sees what ingest waits on: the sender, matching, de-identifying, the blob flush or
/// the index commit (docs/ingest.md lists the stages).
struct StageClock {
    source: Source,
    at: std::time::Instant,
}

impl StageClock {
    fn start(source: Source) -> StageClock {
        StageClock { source, at: std::time::Instant::now() }
    }

    /// Records the time since the previous lap under `stage`.
    fn lap(&mut self, stage: &'static str) {
        let now = std::time::Instant::now();
        metrics::histogram!("corelab_ingest_stage_seconds", "source" => self.source.as_str(), "stage" => stage)
            .record(now.duration_since(self.at).as_secs_f64());
        self.at = now;
    }
}

/// Where ingest's blocking step left an instance.
enum Written {
    /// Queued for indexing (local storage): its size, the answer to wait for, and when it was
    /// queued.
    Queued(u64, index::Pending, std::time::Instant),
    /// Staged, to be committed to S3 and then queued.
    Staged(Box<Prepared<corelab_store::StagedBlob>>),
}

fn unreadable(e: DeidError) -> IngestError {
    match e {
        DeidError::Context(m) => IngestError::Internal(m),
        other => IngestError::Unreadable(other.to_string()),
    }
}

/// What every instance of a target shares: looked up once per association or request.
#[derive(Clone)]
pub struct IngestSetup {
    pub(crate) trial: Arc<corelab_store::trials::TrialRow>,
    pub(crate) charter_version: i64,
    pub(crate) charter: Arc<corelab_domain::charter::Charter>,
    /// Only instances of this study are accepted (STOW-RS `/studies/{study}`).
    pub(crate) expected_study: Option<String>,
    /// The instances come from a corelab gateway of the site: their dates are already shifted by
    /// the site's gateway shift, which matching undoes to place the study on the subject's calendar.
    pub(crate) from_gateway: bool,
    /// The last report this association's instances got, as stored: a series' instances usually
    /// share one, so it is serialized and hashed once.
    last_report: Arc<std::sync::Mutex<Option<(DeidReport, index::StoredReport)>>>,
    /// The visit calendar the last instance was matched on: an association's instances are
    /// usually one subject's, so it is built once.
    last_calendar: Arc<std::sync::Mutex<Option<Arc<VisitCalendar>>>>,
    last_enrolled: Arc<std::sync::Mutex<Option<Enrolled>>>,
}

/// The enrolled subjects read for one instance's claimed codes, kept for the next instance of the
/// same association or request.
struct Enrolled {
    claimed: Vec<String>,
    rows: Vec<corelab_store::trials::SubjectRow>,
}

impl IngestSetup {
    /// Accepts only instances of `study_instance_uid`, given either as the sender knows it (the
    /// UID in the instances) or as corelab stores it (the de-identified UID); others fail with
    /// [`IngestError::WrongStudy`] before anything is written.
    pub fn for_study(mut self, study_instance_uid: &str) -> IngestSetup {
        self.expected_study = Some(study_instance_uid.trim().to_string());
        self
    }

    /// Marks the instances as de-identified by a corelab gateway of the sending site (see
    /// `crate::gateway` and docs/adr/0003-gateway-trust.md).
    pub fn from_site_gateway(mut self) -> IngestSetup {
        self.from_gateway = true;
        self
    }

    /// `report` as stored, reusing the previous instance's when they are equal.
    fn stored_report(&self, report: DeidReport) -> index::StoredReport {
        let mut last = self.last_report.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((prev, stored)) = last.as_ref()
            && *prev == report
        {
            return stored.clone();
        }
        let stored = index::StoredReport::of(&report);
        *last = Some((report, stored.clone()));
        stored
    }

    /// The charter's visit calendar for a subject anchored on `anchor_date`.
    pub(crate) fn calendar(&self, anchor_date: Date) -> Arc<VisitCalendar> {
        let mut last = self.last_calendar.lock().unwrap_or_else(|p| p.into_inner());
        match last.as_ref() {
            Some(c) if c.anchor_date == anchor_date => c.clone(),
            _ => {
                let c = Arc::new(VisitCalendar::new(&self.charter, anchor_date));
                *last = Some(c.clone());
                c
            }
        }
    }

    /// The enrolled subjects last read for these claimed codes, if any. An association usually
    /// carries one patient: this saves a database read per instance on ingest's critical path.
    /// Reusing them is safe because the index writer files an instance only if its subject's record
    /// still matches alike ([`plan::matches_alike`]), inside the transaction that files it.
    pub(crate) fn enrolled(&self, claimed: &[String]) -> Option<Vec<corelab_store::trials::SubjectRow>> {
        let last = self.last_enrolled.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref().filter(|e| e.claimed == claimed).map(|e| e.rows.clone())
    }

    fn forget_enrolled(&self) {
        *self.last_enrolled.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Keeps a read of enrolled subjects for the next instance when the first claimed code is
    /// enrolled: then it decides, and a code enrolled meanwhile could not change the match.
    pub(crate) fn remember_enrolled(&self, claimed: &[String], rows: &[corelab_store::trials::SubjectRow]) {
        let decided_by_first = claimed.first().is_some_and(|c| rows.iter().any(|r| r.subject_id == *c));
        if decided_by_first {
            let mut last = self.last_enrolled.lock().unwrap_or_else(|p| p.into_inner());
            *last = Some(Enrolled { claimed: claimed.to_vec(), rows: rows.to_vec() });
        }
    }

    /// The UID corelab stores for an original UID under this trial's charter.
    fn stored_uid(&self, uid: &OriginalUid) -> String {
        if self.charter.deidentification.retain_uids || uid.is_standard() {
            uid.as_str().to_string()
        } else {
            UidMapper::new(&self.trial.deid_secret).map(uid).as_str().to_string()
        }
    }

    fn check_study(&self, keys: &MatchKeys) -> Result<(), IngestError> {
        let Some(expected) = &self.expected_study else { return Ok(()) };
        if let Some(study) = &keys.study_instance_uid
            && (study.as_str() == expected || self.stored_uid(study) == *expected)
        {
            return Ok(());
        }
        Err(IngestError::WrongStudy {
            sop_class_uid: keys.sop_class_uid.clone().unwrap_or_default(),
            sop_instance_uid: keys.sop_instance_uid.as_ref().map(|u| self.stored_uid(u)).unwrap_or_default(),
        })
    }
}

impl App {
    /// Checks that the site may send (qualified) and loads the charter in force.
    pub async fn ingest_setup(&self, target: &IngestTarget) -> Result<IngestSetup, IngestError> {
        let mut tx = self.db().read().await?;
        let trial = tx
            .trial(target.trial_id)
            .await?
            .ok_or_else(|| IngestError::Refused(format!("no trial {}", target.trial_id)))?;
        let site = tx
            .site(target.trial_id, &target.site_id)
            .await?
            .ok_or_else(|| IngestError::Refused(format!("site {} is not part of this trial", target.site_id)))?;
        if site.status != "qualified" {
            return Err(IngestError::Refused(format!(
                "site {} is not qualified (status {}); complete site qualification before sending subject data",
                site.site_id, site.status
            )));
        }
        drop(tx);
        let (version, charter) = self.current_charter(target.trial_id).await.map_err(IngestError::from)?;
        Ok(IngestSetup {
            trial: Arc::new(trial),
            charter_version: version,
            charter: Arc::new(charter),
            expected_study: None,
            from_gateway: false,
            last_report: Arc::default(),
            last_calendar: Arc::default(),
            last_enrolled: Arc::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_reader_concatenates_prefix_and_chunks() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.try_send(Bytes::from_static(b"def")).unwrap();
        tx.try_send(Bytes::from_static(b"gh")).unwrap();
        drop(tx);
        let mut r = ChannelReader::new(b"abc".to_vec(), rx);
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "abcdefgh");

        // Read as a buffer: the prefix, then each chunk as it came.
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.try_send(Bytes::from_static(b"defg")).unwrap();
        tx.try_send(Bytes::from_static(b"h")).unwrap();
        drop(tx);
        let mut r = ChannelReader::new(b"abc".to_vec(), rx);
        let mut pieces = Vec::new();
        loop {
            let piece = r.fill_buf().unwrap().to_vec();
            if piece.is_empty() {
                break;
            }
            // Half of each piece at a time: what is not consumed comes back.
            let n = piece.len().div_ceil(2);
            pieces.push(String::from_utf8(piece[..n].to_vec()).unwrap());
            r.consume(n);
        }
        assert_eq!(pieces, ["ab", "c", "de", "f", "g", "h"]);
    }
}
