//! Exports: the SDTM datasets (TU, TR, RS as CSV or SAS XPORT) and their define-style listing.
//! The use case authorizes and audits each export.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use corelab_app::AppError;
use corelab_app::sdtm::{SdtmFormat, SdtmRequest, parse_dataset_file};
use serde::Deserialize;
use uuid::Uuid;

use crate::WebState;
use crate::error::ApiResult;
use crate::extract::Ready;

pub fn routes() -> Vec<super::Route> {
    vec![
        ("GET", "/trials/{trial}/exports/sdtm/define", get(define)),
        ("GET", "/trials/{trial}/exports/sdtm/{file}", get(dataset)),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Q {
    #[serde(default)]
    all_reads: bool,
    format: Option<String>,
}

fn attachment(body: impl IntoResponse, ctype: &'static str, filename: &str) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

async fn dataset(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path((trial, file)): Path<(Uuid, String)>,
    Query(q): Query<Q>,
) -> ApiResult<Response> {
    if q.format.is_some() {
        return Err(AppError::invalid("format", "the file name gives the format: TU.csv or TU.xpt").into());
    }
    let (name, format) = parse_dataset_file(&file)?;
    let export =
        s.app.export_sdtm(&actor, trial, q.all_reads, &SdtmRequest::Dataset { name: name.clone(), format }).await?;
    let lower = name.to_ascii_lowercase();
    Ok(match format {
        SdtmFormat::Csv => attachment(export.csv(&name)?, "text/csv; charset=utf-8", &format!("{lower}.csv")),
        SdtmFormat::Xpt => attachment(export.xpt(&name)?, "application/octet-stream", &format!("{lower}.xpt")),
    })
}

async fn define(
    State(s): State<WebState>,
    Ready(actor): Ready,
    Path(trial): Path<Uuid>,
    Query(q): Query<Q>,
) -> ApiResult<Response> {
    let csv = match q.format.as_deref().unwrap_or("xml") {
        "xml" => false,
        "csv" => true,
        other => return Err(AppError::invalid("format", format!("unknown format {other:?}; use xml or csv")).into()),
    };
    let export = s.app.export_sdtm(&actor, trial, q.all_reads, &SdtmRequest::Define).await?;
    Ok(if csv {
        attachment(export.define_csv(), "text/csv; charset=utf-8", "define.csv")
    } else {
        attachment(export.define_xml(), "application/xml; charset=utf-8", "define.xml")
    })
}
