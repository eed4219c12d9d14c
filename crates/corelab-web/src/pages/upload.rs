//! The site's upload page: a browser folder (or a few files) sent as `multipart/form-data` to a
//! page route that streams each file into the same ingest pipeline, with the same authorization,
//! as STOW-RS (`App::stow_target`): de-identified on the server on the way to disk, one file at a
//! time, never the whole request in memory. A bad file is reported by name with the reason and
//! the rest go on; files that are not DICOM images (DICOMDIR, text) are skipped and listed.
//!
//! Without JavaScript the form posts once and the answer page lists every file. `upload.js` sends
//! the files in batches (the same route, `Accept: application/json`) and shows progress.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use askama::Template;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, post};
use corelab_app::AppError;
use corelab_app::ingest::{ChannelReader, IngestError, IngestOutcome, Source};
use corelab_app::stow::StowTarget;
use serde::Serialize;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::error::{PageError, PageResult};
use super::session::{CSRF_FIELD, PageUser};
use super::trials::TrialHead;
use super::view::{Chrome, render};
use crate::WebState;
use crate::dicomweb::body::{Guarded, PartReader, Progress, feed_part};
use crate::error::ApiError;

/// Largest piece of file data queued for the ingest pipeline at once.
/// Pieces queued per file (so at most `PIECE * QUEUED` bytes of a file wait in memory).
const QUEUED: usize = 8;
/// Bytes of a refused upload read (and dropped) before answering.
const DISCARD_AT_MOST: usize = 64 * 1024 * 1024;
/// Bytes read to tell a DICOM file (preamble + `DICM`) from anything else.
const SNIFF: usize = 132;

/// What happened to one file of an upload.
#[derive(Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    Stored,
    AlreadyStored,
    Inbox,
    Refused,
    Skipped,
}

impl Fate {
    pub fn label(self) -> &'static str {
        match self {
            Fate::Stored => "✓ Stored",
            Fate::AlreadyStored => "✓ Already stored",
            Fate::Inbox => "Kept in the inbox",
            Fate::Refused => "✗ Refused",
            Fate::Skipped => "Skipped: not a DICOM image",
        }
    }
    pub fn class(self) -> &'static str {
        match self {
            Fate::Stored | Fate::AlreadyStored => "ok",
            Fate::Inbox | Fate::Skipped => "warn",
            Fate::Refused => "bad",
        }
    }
}

#[derive(Serialize)]
pub struct FileResult {
    pub name: String,
    pub outcome: Fate,
    pub reason: String,
}

#[derive(Serialize, Default)]
pub struct Summary {
    pub files: Vec<FileResult>,
    pub stored: usize,
    pub already_stored: usize,
    pub inbox: usize,
    pub refused: usize,
    pub skipped: usize,
    /// Why the request stopped before its end, if it did (the files after it were not read).
    pub stopped: Option<String>,
}

impl Summary {
    fn push(&mut self, name: String, outcome: Fate, reason: String) {
        match outcome {
            Fate::Stored => self.stored += 1,
            Fate::AlreadyStored => self.already_stored += 1,
            Fate::Inbox => self.inbox += 1,
            Fate::Refused => self.refused += 1,
            Fate::Skipped => self.skipped += 1,
        }
        self.files.push(FileResult { name, outcome, reason });
    }
}

#[derive(Template)]
#[template(path = "upload.html")]
struct UploadPage {
    chrome: Chrome,
    trial: TrialHead,
    site: String,
    site_name: String,
    /// Why this site cannot send images now (e.g. not qualified yet); no form then.
    blocked: Option<String>,
    max_file_mb: u64,
    result: Option<Summary>,
}

fn page_of(user: &PageUser, head: TrialHead, site: &str, site_name: String, s: &WebState) -> UploadPage {
    UploadPage {
        chrome: Chrome::new(user, format!("{} site {} upload", head.protocol_id, site), "trials").script("upload.js"),
        trial: head,
        site: site.to_string(),
        site_name,
        blocked: None,
        max_file_mb: s.settings.stow.max_part_bytes / (1024 * 1024),
        result: None,
    }
}

/// `GET /trials/{trial}/sites/{site}/upload`: the form, for those `stow_target` lets send images
/// for the site (site staff of the site, trial managers); 403 or 404 for everyone else.
pub async fn page(State(s): State<WebState>, user: PageUser, Path((trial, site)): Path<(Uuid, String)>) -> PageResult {
    let a = &user.actor;
    let head = TrialHead::of(s.app.trial(a, trial).await?);
    let blocked = match s.app.stow_target(a, Some(trial), Some(&site)).await {
        Ok(_) => None,
        // Allowed, but the site cannot send yet: say why instead of offering a form that fails.
        Err(AppError::Conflict(m)) => Some(m),
        Err(e) => return Err(e.into()),
    };
    let row = s.app.site(a, trial, &site).await?;
    let mut p = page_of(&user, head, &site, row.name, &s);
    p.blocked = blocked;
    render(&p)
}

/// The POST route: no body limit of axum's (the body is streamed; `dicomweb.max_*` bound it).
pub fn upload_route() -> MethodRouter<WebState> {
    post(upload).layer(DefaultBodyLimit::disable())
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|m| m.trim().starts_with("application/json")))
}

/// The last path component of a file name as the browser sent it (folder uploads send
/// `folder/sub/file`).
fn base_name(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

/// Whether the first bytes of a file are those of a DICOM Part 10 file.
fn is_part10(head: &[u8]) -> bool {
    head.len() >= SNIFF && &head[128..SNIFF] == b"DICM"
}

/// `POST /trials/{trial}/sites/{site}/upload`: `multipart/form-data` with the anti-CSRF field
/// first, then any number of `files` parts.
async fn upload(
    State(s): State<WebState>,
    Path((trial, site)): Path<(Uuid, String)>,
    user: PageUser,
    headers: HeaderMap,
    req: Request,
) -> PageResult {
    let json = wants_json(&headers);
    let back = format!("/trials/{trial}/sites/{site}/upload");
    // Without a multipart body there is no token either.
    let boundary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or(PageError::Csrf)?;
    let limits = &s.settings.stow;
    let progress = Progress::default();
    let body = Guarded::new(req.into_body().into_data_stream(), progress.clone());
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(limits.max_request_bytes).per_field(limits.max_part_bytes));
    let mut mp = multer::Multipart::with_constraints(body, boundary, constraints);
    match mp.next_field().await {
        Ok(Some(f)) if f.name() == Some(CSRF_FIELD) => {
            let sent = f.text().await.map_err(|_| PageError::Csrf)?;
            user.check_csrf(Some(&sent))?;
        }
        _ => return Err(PageError::Csrf),
    }
    // The same decision as STOW-RS: who may send images for this site, and is it qualified.
    let StowTarget { mut target, setup } = match s.app.stow_target(&user.actor, Some(trial), Some(&site)).await {
        Ok(t) => t,
        Err(error) => {
            // Read (a bounded part of) what was sent, so the browser sees the answer rather than
            // a connection closed under its upload.
            discard_rest(&mut mp, &progress).await;
            if json {
                return Ok(ApiError(error).into_response());
            }
            return Err(PageError::App { error, back: Some(back) });
        }
    };
    target.source = Source::Upload;

    let mut summary = Summary::default();
    loop {
        let mut field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                summary.stopped = Some(body_problem(&e));
                break;
            }
        };
        progress.made();
        let name = field.file_name().unwrap_or_default().to_string();
        // Read the first bytes to tell DICOM from anything else.
        let mut head: Vec<u8> = Vec::new();
        let mut broken = None;
        while head.len() < SNIFF {
            match field.chunk().await {
                Ok(Some(b)) => {
                    progress.made();
                    head.extend_from_slice(&b);
                }
                Ok(None) => break,
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = broken {
            summary.push(name, Fate::Refused, "the upload broke off inside this file; send it again".into());
            summary.stopped = Some(body_problem(&e));
            break;
        }
        if field.name() != Some("files") || (name.is_empty() && head.is_empty()) {
            // An empty file input, or a field this form does not have: nothing to report.
            if let Err(e) = drain(&mut field, &progress).await {
                summary.stopped = Some(body_problem(&e));
                break;
            }
            continue;
        }
        let skip = if base_name(&name).eq_ignore_ascii_case("DICOMDIR") {
            Some("a DICOMDIR index, not an image; the images it lists are sent as their own files")
        } else if !is_part10(&head) {
            Some("not a DICOM file (no DICM marker after the 128-byte preamble)")
        } else {
            None
        };
        if let Some(why) = skip {
            if let Err(e) = drain(&mut field, &progress).await {
                summary.stopped = Some(body_problem(&e));
                break;
            }
            summary.push(name, Fate::Skipped, why.into());
            continue;
        }
        // Stream the file into the ingest pipeline.
        let (tx, rx) = mpsc::channel::<bytes::Bytes>(QUEUED);
        let cut = Arc::new(AtomicBool::new(false));
        let reader = PartReader::new(ChannelReader::new(head, rx), cut.clone());
        let task = {
            let (app, setup, target) = (s.app.clone(), setup.clone(), target.clone());
            tokio::spawn(async move { app.ingest(&setup, target, reader).await })
        };
        let mut tx = Some(tx);
        let ended = feed_part(&mut field, &progress, &mut tx).await;
        if ended.is_err() {
            // The file did not arrive whole: its reader fails instead of ending (marked before
            // the sender goes, so the reader never sees a clean end first).
            cut.store(true, Ordering::SeqCst);
        }
        drop(tx);
        let result = task.await.unwrap_or_else(|e| Err(IngestError::Internal(format!("the ingest task failed: {e}"))));
        if let Err(e) = ended {
            summary.push(name, Fate::Refused, "the upload broke off inside this file; nothing of it was stored".into());
            summary.stopped = Some(body_problem(&e));
            break;
        }
        let (fate, reason) = fate_of(result);
        summary.push(name, fate, reason);
    }
    drop(mp);
    tracing::info!(
        trial = %target.trial_id,
        site = %target.site_id,
        stored = summary.stored,
        already = summary.already_stored,
        inbox = summary.inbox,
        refused = summary.refused,
        skipped = summary.skipped,
        "browser upload"
    );
    if json {
        let status = if summary.stopped.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
        return Ok((status, axum::Json(summary)).into_response());
    }
    let head = TrialHead::of(s.app.trial(&user.actor, trial).await?);
    let row = s.app.site(&user.actor, trial, &site).await?;
    let mut p = page_of(&user, head, &site, row.name, &s);
    p.result = Some(summary);
    render(&p)
}

/// Reads and drops the rest of a refused request, up to [`DISCARD_AT_MOST`] bytes (beyond that
/// the connection is closed under the sender).
async fn discard_rest(mp: &mut multer::Multipart<'_>, progress: &Progress) {
    let mut read = 0usize;
    while let Ok(Some(mut f)) = mp.next_field().await {
        while let Ok(Some(b)) = f.chunk().await {
            progress.made();
            read += b.len();
            if read > DISCARD_AT_MOST {
                return;
            }
        }
    }
}

async fn drain(field: &mut multer::Field<'_>, progress: &Progress) -> Result<(), multer::Error> {
    while field.chunk().await?.is_some() {
        progress.made();
    }
    Ok(())
}

fn fate_of(result: Result<IngestOutcome, IngestError>) -> (Fate, String) {
    match result {
        Ok(IngestOutcome::Stored { duplicate: false, .. }) => (Fate::Stored, String::new()),
        Ok(IngestOutcome::Stored { duplicate: true, .. }) => {
            (Fate::AlreadyStored, "the same image was stored before; nothing changed".into())
        }
        Ok(IngestOutcome::Inbox { reason, .. }) => {
            (Fate::Inbox, format!("stored de-identified in the trial's inbox for a coordinator: {reason}"))
        }
        Err(IngestError::Internal(cause)) => {
            let incident = Uuid::new_v4();
            tracing::error!(%incident, error = %cause, "browser upload: a file could not be stored");
            (Fate::Refused, format!("the server could not store it (incident {incident}); send it again later"))
        }
        Err(e) => (Fate::Refused, e.to_string()),
    }
}

/// Why the multipart body could not be read on, in words for the user.
fn body_problem(e: &multer::Error) -> String {
    match e {
        multer::Error::FieldSizeExceeded { limit, .. } => {
            format!("a file is larger than {limit} bytes, the largest one file may be; it and the files after it were not read")
        }
        multer::Error::StreamSizeExceeded { limit } => format!(
            "the upload is larger than {limit} bytes, the most one request may carry; send the remaining files again in smaller batches"
        ),
        _ => "the upload broke off (the connection closed or the form data is malformed); the files after this point were not read, send them again".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_markers() {
        assert_eq!(base_name("visit/CT/DICOMDIR"), "DICOMDIR");
        assert_eq!(base_name("a\\b.dcm"), "b.dcm");
        assert_eq!(base_name("x.dcm"), "x.dcm");
        let mut head = vec![0u8; 128];
        head.extend_from_slice(b"DICM");
        assert!(is_part10(&head));
        assert!(!is_part10(b"hello"));
        head[129] = b'X';
        assert!(!is_part10(&head));
    }
}
