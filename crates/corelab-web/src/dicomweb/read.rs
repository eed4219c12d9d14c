//! The read side of DICOMweb (PS3.18): QIDO-RS searches over the image index and WADO-RS
//! retrieval of the stored (de-identified) instances and their metadata.
//!
//! Which studies the caller sees, and whether blinded, is decided by
//! `App::image_scope` (corelab-app); these handlers only speak the protocol. The trial is the API
//! token's, or `?trial=<id>` for a session.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use corelab_app::images::{ImageScope, VisibleStudy};
use corelab_app::{Actor, AppError};
use corelab_store::ingest::{InstanceRow, SeriesRow};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::response::DICOM_JSON;
use crate::WebState;
use crate::error::ApiError;
use crate::extract::Ready;

/// Results per QIDO-RS response when the client sets no `limit`, and the most it may ask for.
const MAX_LIMIT: usize = 1000;

/// The query string as pairs, in order.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: Option<String>) -> Result<Params, AppError> {
        let raw = raw.unwrap_or_default();
        serde_urlencoded::from_str::<Vec<(String, String)>>(&raw)
            .map(Params)
            .map_err(|_| AppError::invalid("query", "the query string is not valid URL encoding"))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn trial(&self) -> Result<Option<Uuid>, AppError> {
        match self.get("trial").map(str::trim).filter(|t| !t.is_empty()) {
            None => Ok(None),
            Some(t) => t.parse().map(Some).map_err(|_| AppError::invalid("trial", "trial must be a trial id (a UUID)")),
        }
    }

    fn number(&self, key: &str) -> Result<Option<usize>, AppError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| AppError::invalid(key, format!("{key} must be a whole number (0 or more)"))),
        }
    }
}

/// An attribute of a QIDO-RS level: its keyword, tag and how it matches.
#[derive(Clone, Copy, PartialEq)]
enum Matching {
    /// A list of UIDs (PS3.4 C.2.2.2.2).
    Uid,
    /// Single value, with `*` and `?` wildcards (C.2.2.2.4).
    Wild,
    /// A date or a date range `a-b`, `a-`, `-b` (C.2.2.2.5).
    Date,
    /// Exact match only.
    Exact,
}

const ATTRIBUTES: [(&str, &str, Matching); 15] = [
    ("StudyInstanceUID", "0020000D", Matching::Uid),
    ("PatientID", "00100020", Matching::Wild),
    ("PatientName", "00100010", Matching::Wild),
    ("StudyDate", "00080020", Matching::Date),
    ("ModalitiesInStudy", "00080061", Matching::Wild),
    ("NumberOfStudyRelatedSeries", "00201206", Matching::Exact),
    ("NumberOfStudyRelatedInstances", "00201208", Matching::Exact),
    ("SeriesInstanceUID", "0020000E", Matching::Uid),
    ("Modality", "00080060", Matching::Wild),
    ("SeriesNumber", "00200011", Matching::Exact),
    ("SeriesDescription", "0008103E", Matching::Wild),
    ("NumberOfSeriesRelatedInstances", "00201209", Matching::Exact),
    ("SOPInstanceUID", "00080018", Matching::Uid),
    ("SOPClassUID", "00080016", Matching::Uid),
    ("InstanceNumber", "00200013", Matching::Exact),
];

/// Query keys that are not attribute matches.
const CONTROL: [&str; 6] = ["trial", "limit", "offset", "includefield", "fuzzymatching", "orderby"];

/// The attribute matches of a query, as (tag, matching, value).
fn matches(p: &Params) -> Result<Vec<(&'static str, Matching, String)>, AppError> {
    let mut out = Vec::new();
    for (k, v) in &p.0 {
        if CONTROL.contains(&k.as_str()) {
            continue;
        }
        let attr = ATTRIBUTES.iter().find(|(name, tag, _)| name == k || tag.eq_ignore_ascii_case(k));
        let Some((_, tag, m)) = attr else {
            return Err(AppError::invalid(
                "query",
                format!("corelab cannot match on {k}; see docs/dicomweb.md for the supported attributes"),
            ));
        };
        out.push((*tag, *m, v.clone()));
    }
    Ok(out)
}

/// `*` any run of characters, `?` one character.
fn wildcard(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    let (mut pi, mut vi, mut star, mut mark) = (0, 0, None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn date_match(query: &str, value: &str) -> bool {
    let q = query.replace('.', "");
    match q.split_once('-') {
        Some((from, to)) => (from.is_empty() || value >= from) && (to.is_empty() || value <= to),
        None => value == q,
    }
}

/// Whether a result's attribute values satisfy one match (an empty query value matches all).
fn satisfies(result: &Map<String, Value>, tag: &str, m: Matching, query: &str) -> bool {
    if query.is_empty() {
        return true;
    }
    let values: Vec<String> = result
        .get(tag)
        .and_then(|a| a.get("Value"))
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    Value::Object(o) => o.get("Alphabetic").and_then(Value::as_str).unwrap_or_default().to_string(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    match m {
        Matching::Uid => {
            let wanted: BTreeSet<&str> = query.split([',', '\\']).map(str::trim).collect();
            values.iter().any(|v| wanted.contains(v.as_str()))
        }
        Matching::Wild => values.iter().any(|v| wildcard(query, v)),
        Matching::Date => values.iter().any(|v| date_match(query, v)),
        Matching::Exact => values.iter().any(|v| v == query),
    }
}

fn attr(vr: &str, values: Vec<Value>) -> Value {
    if values.is_empty() { json!({"vr": vr}) } else { json!({"vr": vr, "Value": values}) }
}

fn text(vr: &str, v: Option<&str>) -> Value {
    attr(vr, v.into_iter().map(|s| json!(s)).collect())
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let proto = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or("http");
    format!("{proto}://{host}{}", super::PREFIX)
}

/// The study-level attributes of a visible study.
async fn study_attributes(s: &WebState, v: &VisibleStudy, base: &str) -> Result<Map<String, Value>, AppError> {
    let series = s.app.image_series(v).await?;
    let modalities: BTreeSet<&str> = series.iter().map(|x| x.modality.as_str()).collect();
    let instances: i64 = series.iter().map(|x| x.instance_count).sum();
    let uid = v.study.study_instance_uid.as_str();
    let (patient, date) = match &v.blinding {
        Some(b) => (Some(b.case_code.clone()), None),
        None => (v.subject_code.clone(), v.study.study_date.map(|d| d.format("%Y%m%d").to_string())),
    };
    let mut m = Map::new();
    m.insert("00080020".into(), text("DA", date.as_deref()));
    m.insert("00080061".into(), attr("CS", modalities.iter().map(|x| json!(x)).collect()));
    m.insert("00081190".into(), text("UR", Some(&format!("{base}/studies/{uid}"))));
    m.insert("00100010".into(), attr("PN", patient.iter().map(|p| json!({"Alphabetic": p})).collect()));
    m.insert("00100020".into(), text("LO", patient.as_deref()));
    m.insert("0020000D".into(), text("UI", Some(uid)));
    m.insert("00201206".into(), attr("IS", vec![json!(series.len())]));
    m.insert("00201208".into(), attr("IS", vec![json!(instances)]));
    Ok(m)
}

fn series_attributes(study_uid: &str, x: &SeriesRow, base: &str) -> Map<String, Value> {
    let uid = x.series_instance_uid.as_str();
    let mut m = Map::new();
    m.insert("00080060".into(), text("CS", Some(&x.modality)));
    m.insert("0008103E".into(), text("LO", x.series_description.as_deref()));
    m.insert("00081190".into(), text("UR", Some(&format!("{base}/studies/{study_uid}/series/{uid}"))));
    m.insert("0020000D".into(), text("UI", Some(study_uid)));
    m.insert("0020000E".into(), text("UI", Some(uid)));
    m.insert("00200011".into(), attr("IS", x.series_number.iter().map(|n| json!(n)).collect()));
    m.insert("00201209".into(), attr("IS", vec![json!(x.instance_count)]));
    m
}

fn instance_attributes(study_uid: &str, series_uid: &str, i: &InstanceRow, base: &str) -> Map<String, Value> {
    let uid = i.sop_instance_uid.as_str();
    let mut m = Map::new();
    m.insert("00080016".into(), text("UI", Some(&i.sop_class_uid)));
    m.insert("00080018".into(), text("UI", Some(uid)));
    m.insert("00083002".into(), text("UI", Some(&i.transfer_syntax)));
    m.insert(
        "00081190".into(),
        text("UR", Some(&format!("{base}/studies/{study_uid}/series/{series_uid}/instances/{uid}"))),
    );
    m.insert("0020000D".into(), text("UI", Some(study_uid)));
    m.insert("0020000E".into(), text("UI", Some(series_uid)));
    m.insert("00200013".into(), attr("IS", i.instance_number.iter().map(|n| json!(n)).collect()));
    m
}

/// Filters, pages and answers QIDO-RS results (204 when there are none, as PS3.18 allows).
fn qido_answer(p: &Params, results: Vec<Map<String, Value>>) -> Result<Response, AppError> {
    let wanted = matches(p)?;
    let offset = p.number("offset")?.unwrap_or(0);
    let limit = p.number("limit")?.unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
    let page: Vec<Value> = results
        .into_iter()
        .filter(|r| wanted.iter().all(|(tag, m, q)| satisfies(r, tag, *m, q)))
        .skip(offset)
        .take(limit)
        .map(Value::Object)
        .collect();
    if page.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(([(header::CONTENT_TYPE, DICOM_JSON)], Value::Array(page).to_string()).into_response())
}

async fn scope(s: &WebState, actor: &Actor, p: &Params) -> Result<ImageScope, AppError> {
    s.app.image_scope(actor, p.trial()?).await
}

/// Why a request is not answered: a use-case error, or a 406 for an `Accept` corelab cannot meet.
enum Fail {
    App(AppError),
    NotAcceptable(String),
}

impl From<AppError> for Fail {
    fn from(e: AppError) -> Fail {
        Fail::App(e)
    }
}

fn answer<E: Into<Fail>>(r: Result<Response, E>) -> Response {
    match r.map_err(Into::into) {
        Ok(r) => r,
        Err(Fail::App(e)) => ApiError(e).into_response(),
        Err(Fail::NotAcceptable(m)) => {
            (StatusCode::NOT_ACCEPTABLE, axum::Json(json!({"error": {"code": "not_acceptable", "message": m}})))
                .into_response()
        }
    }
}

/// QIDO-RS `GET /studies`.
pub async fn search_studies(
    State(s): State<WebState>,
    Ready(actor): Ready,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let p = Params::parse(q)?;
            let scope = scope(&s, &actor, &p).await?;
            let base = base_url(&headers);
            let mut out = Vec::new();
            for v in &scope.studies {
                out.push(study_attributes(&s, v, &base).await?);
            }
            qido_answer(&p, out)
        }
        .await,
    )
}

/// QIDO-RS `GET /studies/{study}/series`.
pub async fn search_series(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(study): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let p = Params::parse(q)?;
            let scope = scope(&s, &actor, &p).await?;
            let v = scope.study(&study)?;
            let base = base_url(&headers);
            let series = s.app.image_series(v).await?;
            qido_answer(&p, series.iter().map(|x| series_attributes(&study, x, &base)).collect())
        }
        .await,
    )
}

/// QIDO-RS `GET /studies/{study}/series/{series}/instances`.
pub async fn search_instances(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path((study, series)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let p = Params::parse(q)?;
            let scope = scope(&s, &actor, &p).await?;
            let v = scope.study(&study)?;
            let x = find_series(&s, v, &series).await?;
            let base = base_url(&headers);
            let instances = s.app.image_instances(&x).await?;
            qido_answer(&p, instances.iter().map(|i| instance_attributes(&study, &series, i, &base)).collect())
        }
        .await,
    )
}

async fn find_series(s: &WebState, v: &VisibleStudy, uid: &str) -> Result<SeriesRow, AppError> {
    s.app
        .image_series(v)
        .await?
        .into_iter()
        .find(|x| x.series_instance_uid == uid)
        .ok_or_else(|| AppError::NotFound("no such series".into()))
}

/// The instances a WADO-RS request names: a study, a series, or one instance.
async fn selected(
    s: &WebState,
    v: &VisibleStudy,
    series: Option<&str>,
    instance: Option<&str>,
) -> Result<Vec<(String, InstanceRow)>, AppError> {
    let all = s.app.image_series(v).await?;
    let mut out = Vec::new();
    for x in all.iter().filter(|x| series.is_none_or(|u| u == x.series_instance_uid)) {
        for i in s.app.image_instances(x).await? {
            if instance.is_none_or(|u| u == i.sop_instance_uid) {
                out.push((x.series_instance_uid.clone(), i));
            }
        }
    }
    if out.is_empty() {
        return Err(AppError::NotFound(if instance.is_some() { "no such instance" } else { "no such series" }.into()));
    }
    Ok(out)
}

/// The transfer syntax the client asks for in `Accept` (`*` or none: as stored).
fn accepted_syntax(headers: &HeaderMap) -> Result<Option<String>, Fail> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|a| a.to_str().ok()) else { return Ok(None) };
    let mut asked = Vec::new();
    for range in accept.split(',') {
        let media = range.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if media == "*/*" || media == "multipart/*" {
            return Ok(None);
        }
        if media != "multipart/related" && media != "application/dicom" {
            continue;
        }
        let ts = range
            .split(';')
            .skip(1)
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("transfer-syntax"))
            .map(|(_, v)| v.trim().trim_matches('"').to_string());
        match ts.as_deref() {
            None | Some("*") => return Ok(None),
            Some(t) => asked.push(t.to_string()),
        }
    }
    match asked.first() {
        Some(t) => Ok(Some(t.clone())),
        None => Err(Fail::NotAcceptable("WADO-RS answers multipart/related; type=\"application/dicom\"".into())),
    }
}

const BOUNDARY: &str = "corelab-wado-boundary-7e1d0c2b";

/// WADO-RS retrieve: the selected instances as `multipart/related; type="application/dicom"`,
/// one stored instance per part, sent one after the other.
async fn retrieve(
    s: WebState,
    actor: Actor,
    q: Option<String>,
    headers: HeaderMap,
    study: String,
    series: Option<String>,
    instance: Option<String>,
) -> Result<Response, Fail> {
    let p = Params::parse(q)?;
    let scope = scope(&s, &actor, &p).await?;
    let v = scope.study(&study)?.clone();
    let asked = accepted_syntax(&headers)?;
    let list = selected(&s, &v, series.as_deref(), instance.as_deref()).await?;
    if let Some(ts) = &asked
        && list.iter().any(|(_, i)| &i.transfer_syntax != ts)
    {
        return Err(Fail::NotAcceptable(format!(
            "corelab sends instances in the transfer syntax they are stored in; ask for transfer-syntax=* \
             (stored: {})",
            list.iter()
                .map(|(_, i)| i.transfer_syntax.as_str())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let app = s.app.clone();
    let stream = futures_util::stream::unfold(list.into_iter(), move |mut it| {
        let (app, v) = (app.clone(), v.clone());
        async move {
            let (_, i) = it.next()?;
            let part = match app.instance_bytes(&v, &i).await {
                Ok(bytes) => {
                    let mut part = format!(
                        "--{BOUNDARY}\r\nContent-Type: application/dicom; transfer-syntax={}\r\nContent-Length: {}\r\n\r\n",
                        i.transfer_syntax,
                        bytes.len()
                    )
                    .into_bytes();
                    part.extend_from_slice(&bytes);
                    part.extend_from_slice(b"\r\n");
                    if it.len() == 0 {
                        part.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
                    }
                    Ok::<_, std::io::Error>(bytes::Bytes::from(part))
                }
                Err(e) => {
                    tracing::error!(error = %e, "WADO-RS could not read a stored instance");
                    Err(std::io::Error::other("a stored instance could not be read"))
                }
            };
            Some((part, it))
        }
    });
    let content_type = format!("multipart/related; type=\"application/dicom\"; boundary={BOUNDARY}");
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type).map_err(|e| Fail::App(AppError::internal(e)))?,
    );
    Ok(r)
}

pub async fn retrieve_study(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(study): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    answer(retrieve(s, actor, q, headers, study, None, None).await)
}

pub async fn retrieve_series(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path((study, series)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    answer(retrieve(s, actor, q, headers, study, Some(series), None).await)
}

pub async fn retrieve_instance(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path((study, series, instance)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    answer(retrieve(s, actor, q, headers, study, Some(series), Some(instance)).await)
}

/// WADO-RS metadata: each selected instance's header in DICOM JSON.
async fn metadata(
    s: WebState,
    actor: Actor,
    q: Option<String>,
    headers: HeaderMap,
    study: String,
    series: Option<String>,
    instance: Option<String>,
) -> Result<Response, AppError> {
    let p = Params::parse(q)?;
    let scope = scope(&s, &actor, &p).await?;
    let v = scope.study(&study)?;
    let base = base_url(&headers);
    let mut out = Vec::new();
    for (series_uid, i) in selected(&s, v, series.as_deref(), instance.as_deref()).await? {
        let uri = format!("{base}/studies/{study}/series/{series_uid}/instances/{}", i.sop_instance_uid);
        out.push(s.app.instance_metadata(v, &i, Some(&uri)).await?);
    }
    Ok(([(header::CONTENT_TYPE, DICOM_JSON)], Value::Array(out).to_string()).into_response())
}

pub async fn study_metadata(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(study): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    answer(metadata(s, actor, q, headers, study, None, None).await)
}

pub async fn series_metadata(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path((study, series)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    answer(metadata(s, actor, q, headers, study, Some(series), None).await)
}

pub async fn instance_metadata(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path((study, series, instance)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    answer(metadata(s, actor, q, headers, study, Some(series), Some(instance)).await)
}

/// The media type of frames stored in `ts` (PS3.18 Table 8.7.3-2); native data is octet-stream.
/// Frames (or bulk data) as a multipart/related answer, one part each, typed by the stored syntax.
fn frames_response(frames: &corelab_app::images::Frames) -> Response {
    let media = frame_media_type(&frames.transfer_syntax, frames.encapsulated);
    let mut body = Vec::new();
    for f in &frames.frames {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Type: {media}; transfer-syntax={}\r\nContent-Length: {}\r\n\r\n",
                frames.transfer_syntax,
                f.len()
            )
            .as_bytes(),
        );
        body.extend_from_slice(f);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    let content_type =
        format!("multipart/related; type=\"{media}\"; transfer-syntax={}; boundary={BOUNDARY}", frames.transfer_syntax);
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn frame_media_type(ts: &str, encapsulated: bool) -> &'static str {
    if !encapsulated {
        return "application/octet-stream";
    }
    match ts {
        "1.2.840.10008.1.2.4.50" | "1.2.840.10008.1.2.4.51" | "1.2.840.10008.1.2.4.57" | "1.2.840.10008.1.2.4.70" => {
            "image/jpeg"
        }
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => "image/jls",
        "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" => "image/jp2",
        "1.2.840.10008.1.2.5" => "image/dicom-rle",
        _ => "application/octet-stream",
    }
}

/// The frame numbers of a `frames/{list}` path: comma-separated, each 1 or more.
fn frame_list(list: &str) -> Result<Vec<u32>, AppError> {
    let bad = || AppError::invalid("frames", "frames are a comma-separated list of frame numbers, from 1");
    let numbers: Vec<u32> = list
        .split(',')
        .map(|n| n.trim().parse::<u32>().ok().filter(|n| *n > 0))
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    if numbers.is_empty() { Err(bad()) } else { Ok(numbers) }
}

/// WADO-RS `.../instances/{instance}/frames/{list}`: `multipart/related`, one part per frame,
/// native frames as `application/octet-stream` and compressed ones as their stored fragments
/// with the media type and transfer syntax of how they are stored.
pub async fn retrieve_frames(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path((study, series, instance, list)): Path<(String, String, String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    answer(
        async {
            let numbers = frame_list(&list)?;
            let p = Params::parse(q)?;
            let scope = scope(&s, &actor, &p).await?;
            let v = scope.study(&study)?;
            let (_, i) = selected(&s, v, Some(&series), Some(&instance)).await?.remove(0);
            let frames = s.app.instance_frames(&i, &numbers).await?;
            Ok::<_, AppError>(frames_response(&frames))
        }
        .await,
    )
}

/// WADO-RS `.../instances/{instance}/bulkdata/{tag}`: what a metadata `BulkDataURI` names, as
/// multipart/related (Pixel Data as its frames in the stored syntax, other bulk elements as
/// application/octet-stream).
pub async fn retrieve_bulk(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path((study, series, instance, tag)): Path<(String, String, String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    answer(
        async {
            let tag = bulk_tag(&tag)?;
            let p = Params::parse(q)?;
            let scope = scope(&s, &actor, &p).await?;
            let v = scope.study(&study)?;
            let (_, i) = selected(&s, v, Some(&series), Some(&instance)).await?.remove(0);
            let frames = s.app.instance_bulk(&i, tag).await?;
            Ok::<_, AppError>(frames_response(&frames))
        }
        .await,
    )
}

/// The tag of a bulk-data URI: eight hex digits, as the metadata writes it (e.g. `7FE00010`).
fn bulk_tag(text: &str) -> Result<u32, AppError> {
    let bad =
        || AppError::invalid("tag", "a bulk data URI ends in the element's tag as eight hex digits, e.g. 7FE00010");
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    u32::from_str_radix(text, 16).map_err(|_| bad())
}

/// WADO-RS `.../instances/{instance}/rendered`: the first frame (or `?frame=n`) as a PNG,
/// windowed with the header's window.
pub async fn retrieve_rendered(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path((study, series, instance)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    answer(
        async {
            let p = Params::parse(q)?;
            let frame = match p.get("frame") {
                None => 1,
                Some(f) => frame_list(f)?[0],
            };
            let scope = scope(&s, &actor, &p).await?;
            let v = scope.study(&study)?;
            let (_, i) = selected(&s, v, Some(&series), Some(&instance)).await?.remove(0);
            let png = s.app.instance_rendered(&i, frame).await?;
            Ok::<_, AppError>(([(header::CONTENT_TYPE, "image/png")], png).into_response())
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_dates() {
        assert!(wildcard("S01*", "S01-004"));
        assert!(wildcard("S0?-004", "S01-004"));
        assert!(!wildcard("S02*", "S01-004"));
        assert!(wildcard("*", ""));
        assert!(date_match("20240101-20241231", "20240315"));
        assert!(date_match("20240401-", "20240415"));
        assert!(!date_match("-20240101", "20240415"));
        assert!(date_match("20240415", "20240415"));
    }
}
