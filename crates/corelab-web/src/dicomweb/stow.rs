//! STOW-RS (PS3.18 10.5): `POST /dicomweb/studies[/{study}]` with a `multipart/related;
//! type="application/dicom"` body, one instance per part.
//!
//! The body is never held whole: each part's bytes go through a small bounded channel into the
//! ingest pipeline (the same one DIMSE feeds), which de-identifies them on the way to disk. A few
//! parts are in flight at once so indexing one overlaps receiving the next. Only parts that
//! arrived whole can be stored; a body that breaks off leaves the part it was in unstored, and the
//! response (400 or 413) still lists the parts stored before the break.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use corelab_app::ingest::{ChannelReader, IngestError, IngestOutcome};
use corelab_app::stow::StowTarget;
use corelab_app::{Actor, AppError};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::body::{BodyError, Guarded, PartReader, Progress, feed_part};
use super::response::{Report, failure};
use crate::WebState;
use crate::error::ApiError;
use crate::extract::Ready;

/// Largest piece of part data queued for the ingest pipeline at once.
/// Pieces queued per part (so at most `PIECE * QUEUED` bytes wait in memory).
const QUEUED: usize = 8;
/// Parts being ingested at once per request.
const IN_FLIGHT: usize = 4;

#[derive(Deserialize)]
pub struct StowQuery {
    trial: Option<String>,
    site: Option<String>,
    /// `gateway`: the instances were de-identified by a corelab gateway of this site (its dates
    /// shifted by the site's gateway shift, see docs/adr/0003-gateway-trust.md).
    deidentified_by: Option<String>,
}

pub async fn store(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Query(q): Query<StowQuery>,
    headers: HeaderMap,
    req: Request,
) -> Response {
    run(s, actor, q, None, headers, req).await
}

pub async fn store_in_study(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(study): Path<String>,
    Query(q): Query<StowQuery>,
    headers: HeaderMap,
    req: Request,
) -> Response {
    run(s, actor, q, Some(study), headers, req).await
}

/// A request-level refusal before any part is read, in corelab's usual JSON error shape.
fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!({"error": {"code": code, "message": message}}))).into_response()
}

async fn run(
    s: WebState,
    actor: Actor,
    q: StowQuery,
    study: Option<String>,
    headers: HeaderMap,
    req: Request,
) -> Response {
    let trial = match q.trial.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::parse) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => {
            return ApiError(AppError::invalid("trial", "trial must be a trial id (a UUID)")).into_response();
        }
    };
    let stow = match s.app.stow_target(&actor, trial, q.site.as_deref()).await {
        Ok(t) => t,
        Err(e) => return ApiError(e).into_response(),
    };
    if !accepts_dicom_json(&headers) {
        return refuse(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            "the STOW-RS response is application/dicom+json; accept it (Accept: application/dicom+json)",
        );
    }
    let boundary = match boundary(&headers) {
        Ok(b) => b,
        Err((status, message)) => return refuse(status, "unsupported_media_type", &message),
    };
    let StowTarget { target, mut setup } = stow;
    if let Some(study) = &study {
        setup = setup.for_study(study);
    }
    match q.deidentified_by.as_deref().map(str::trim) {
        None | Some("") => {}
        Some("gateway") => setup = setup.from_site_gateway(),
        Some(_) => {
            return ApiError(AppError::invalid("deidentified_by", "the only accepted value is \"gateway\""))
                .into_response();
        }
    }
    let limits = &s.settings.stow;
    let progress = Progress::default();
    let body = Guarded::new(req.into_body().into_data_stream(), progress.clone());
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(limits.max_request_bytes).per_field(limits.max_part_bytes));
    let mut multipart = multer::Multipart::with_constraints(body, boundary, constraints);

    let mut report = Report::default();
    // Parts in the order they came, so the response lists them in that order.
    let mut pending: VecDeque<(usize, Part)> = VecDeque::new();
    let mut broken: Option<(usize, multer::Error)> = None;
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                broken = Some((0, e));
                break;
            }
        };
        progress.made();
        report.parts += 1;
        let part = report.parts;
        let media = field.content_type().map(|m| m.essence_str().to_ascii_lowercase());
        if media.as_deref().is_some_and(|m| m != "application/dicom") {
            // Read past it; it is reported, not stored.
            let drained = loop {
                match field.chunk().await {
                    Ok(Some(_)) => progress.made(),
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
            pending.push_back((part, Part::NotDicom(media.unwrap_or_default())));
            if let Err(e) = drained {
                broken = Some((0, e));
                break;
            }
            continue;
        }
        let (tx, rx) = mpsc::channel::<bytes::Bytes>(QUEUED);
        let cut = Arc::new(AtomicBool::new(false));
        let reader = PartReader::new(ChannelReader::new(Vec::new(), rx), cut.clone());
        let task = {
            let (app, setup, target) = (s.app.clone(), setup.clone(), target.clone());
            tokio::spawn(async move { app.ingest(&setup, target, reader).await })
        };
        let mut tx = Some(tx);
        let ended = feed_part(&mut field, &progress, &mut tx).await;
        if let Err(e) = ended {
            // The part did not arrive whole: its reader fails instead of ending.
            cut.store(true, Ordering::SeqCst);
            drop(tx);
            pending.push_back((part, Part::Ingest(task)));
            broken = Some((part, e));
            break;
        }
        drop(tx);
        pending.push_back((part, Part::Ingest(task)));
        while pending.len() > IN_FLIGHT {
            if let Some((n, p)) = pending.pop_front() {
                p.report(n, &mut report, None).await;
            }
        }
    }
    drop(multipart);
    let cut_part = broken.as_ref().map(|(n, _)| *n).filter(|n| *n > 0);
    for (n, p) in pending {
        p.report(n, &mut report, cut_part).await;
    }

    let status = match &broken {
        Some((_, e)) => {
            let (status, text) = body_problem(e, report.parts);
            report.note(&text);
            status
        }
        None if report.parts == 0 => {
            report.note("the request has no parts; send one DICOM instance per part");
            StatusCode::BAD_REQUEST
        }
        None => report.status(),
    };
    tracing::info!(
        trial = %target.trial_id,
        site = %target.site_id,
        parts = report.parts,
        stored = report.stored,
        inbox = report.inboxed,
        failed = report.failed(),
        status = status.as_u16(),
        "STOW-RS request"
    );
    report.into_response(status)
}

/// A part on its way into the response.
enum Part {
    /// Being ingested.
    Ingest(JoinHandle<Result<IngestOutcome, IngestError>>),
    /// Not `application/dicom` (its media type): read past, not stored.
    NotDicom(String),
}

impl Part {
    /// Waits for the part's outcome and adds it to `report`. `cut_part` is the part the body broke
    /// off inside, if any: it cannot have been stored, and its failure says so.
    async fn report(self, n: usize, report: &mut Report, cut_part: Option<usize>) {
        match self {
            Part::NotDicom(media) => report.fail(
                n,
                "",
                "",
                failure::CANNOT_UNDERSTAND,
                &format!("Content-Type {media} is not application/dicom; send one DICOM instance per part"),
            ),
            Part::Ingest(task) => {
                let result =
                    task.await.unwrap_or_else(|e| Err(IngestError::Internal(format!("the ingest task failed: {e}"))));
                match result {
                    Err(_) if cut_part == Some(n) => report.fail(
                        n,
                        "",
                        "",
                        failure::CANNOT_UNDERSTAND,
                        "the request body broke off inside this part (see the last warning); nothing of it was stored",
                    ),
                    result => report.add(n, result),
                }
            }
        }
    }
}

/// The status and words for a body that could not be read as multipart/related to its end.
fn body_problem(e: &multer::Error, parts: usize) -> (StatusCode, String) {
    let source = std::error::Error::source(e).and_then(|s| s.downcast_ref::<BodyError>());
    match (e, source) {
        (multer::Error::FieldSizeExceeded { limit, .. }, _) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("part {parts} is larger than {limit} bytes (dicomweb.max_part_bytes); it was not stored"),
        ),
        (multer::Error::StreamSizeExceeded { limit }, _) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request is larger than {limit} bytes (dicomweb.max_request_bytes); parts after the limit were not read, send them in another request"
            ),
        ),
        (_, Some(b)) => (StatusCode::BAD_REQUEST, b.to_string()),
        (multer::Error::IncompleteStream, _) if parts == 0 => (
            StatusCode::BAD_REQUEST,
            "no part delimiter matching the boundary in Content-Type was found, or the body ends before its first part"
                .to_string(),
        ),
        (other, _) => (
            StatusCode::BAD_REQUEST,
            format!(
                "the multipart/related body is malformed or truncated ({other}); parts after the break were not read"
            ),
        ),
    }
}

/// True unless an Accept header rules out DICOM JSON.
fn accepts_dicom_json(headers: &HeaderMap) -> bool {
    let values: Vec<&str> = headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).collect();
    if values.is_empty() {
        return true;
    }
    values.iter().flat_map(|v| v.split(',')).any(|range| {
        let media = range.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        matches!(media.as_str(), "application/dicom+json" | "application/json" | "application/*" | "*/*")
    })
}

/// A Content-Type as (essence, parameters), parsed with `mime`; when `mime` refuses it, a
/// lenient reading that accepts unquoted `/` in values (`type=application/dicom`, which many
/// clients send although RFC 9110 wants it quoted).
fn media_type(ct: &str) -> Option<(String, Vec<(String, String)>)> {
    if let Ok(m) = ct.parse::<mime::Mime>() {
        let params = m.params().map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.as_str().to_string())).collect();
        return Some((m.essence_str().to_ascii_lowercase(), params));
    }
    let mut pieces = ct.split(';');
    let essence = pieces.next()?.trim().to_ascii_lowercase();
    if essence.split('/').count() != 2 || essence.contains(char::is_whitespace) {
        return None;
    }
    let mut params = Vec::new();
    for p in pieces.map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = p.split_once('=')?;
        let v = v.trim();
        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
        params.push((k.trim().to_ascii_lowercase(), v.to_string()));
    }
    Some((essence, params))
}

/// The boundary of a `multipart/related; type="application/dicom"` body, or why the request's
/// Content-Type is refused (415 for another media type, 400 for a missing boundary).
fn boundary(headers: &HeaderMap) -> Result<String, (StatusCode, String)> {
    let expected = "send Content-Type: multipart/related; type=\"application/dicom\"; boundary=...";
    let unsupported = |what: String| Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("{what}; {expected}")));
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return unsupported("the request has no Content-Type".into());
    };
    let Some((essence, params)) = media_type(ct) else {
        return unsupported("the Content-Type cannot be parsed".into());
    };
    if essence != "multipart/related" {
        return unsupported(format!("Content-Type {essence} is not supported"));
    }
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if let Some(t) = param("type")
        && !t.eq_ignore_ascii_case("application/dicom")
    {
        return unsupported(format!(
            "multipart/related of type {t} is not supported (only application/dicom instances, no metadata with bulk data)"
        ));
    }
    match param("boundary") {
        Some(b) if !b.is_empty() => Ok(b.to_string()),
        _ => Err((StatusCode::BAD_REQUEST, format!("the Content-Type has no boundary; {expected}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ct(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn content_types() {
        assert_eq!(boundary(&ct("multipart/related; type=\"application/dicom\"; boundary=\"ab-c\"")).unwrap(), "ab-c");
        assert_eq!(boundary(&ct("Multipart/Related; boundary=xyz; type=application/dicom")).unwrap(), "xyz");
        assert_eq!(boundary(&ct("multipart/related; boundary=xyz")).unwrap(), "xyz");
        let code = |v: &str| boundary(&ct(v)).unwrap_err().0;
        assert_eq!(code("application/dicom"), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(code("multipart/form-data; boundary=x"), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(
            code("multipart/related; type=\"application/dicom+json\"; boundary=x"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(code("multipart/related; type=\"application/dicom\""), StatusCode::BAD_REQUEST);
        assert_eq!(
            code("multipart/related; type=application/dicom+json; boundary=x"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(code("multipart related"), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(boundary(&HeaderMap::new()).unwrap_err().0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn accept_headers() {
        let acc = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
            accepts_dicom_json(&h)
        };
        assert!(accepts_dicom_json(&HeaderMap::new()));
        assert!(acc("application/dicom+json"));
        assert!(acc("application/dicom+xml;q=0.9, */*;q=0.1"));
        assert!(!acc("application/dicom+xml"));
    }
}
