//! Documents: upload (streamed to the blob store), list, metadata, download.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use corelab_app::documents::NewDocument;
use futures_util::TryStreamExt;
use serde::Deserialize;
use tokio_util::io::StreamReader;
use uuid::Uuid;

use crate::WebState;
use crate::error::ApiResult;
use crate::extract::Ready;

pub fn routes() -> Vec<super::Route> {
    vec![
        ("GET", "/documents", get(list)),
        ("POST", "/documents", post(upload)),
        ("GET", "/documents/{id}", get(metadata)),
        ("GET", "/documents/{id}/content", get(content)),
    ]
}

#[derive(Deserialize)]
struct UploadQuery {
    name: String,
}

/// `POST /api/v1/documents?name=FILE` with the raw bytes as the body.
async fn upload(
    State(state): State<WebState>,
    Ready(actor): Ready,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    req: Request,
) -> ApiResult<Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let stream = req.into_body().into_data_stream().map_err(std::io::Error::other);
    let reader = StreamReader::new(stream);
    let row = state.app.upload_document(&actor, NewDocument { name: q.name, content_type }, reader).await?;
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

async fn list(State(state): State<WebState>, Ready(actor): Ready) -> ApiResult<Response> {
    Ok(Json(state.app.list_documents(&actor).await?).into_response())
}

async fn metadata(State(state): State<WebState>, Ready(actor): Ready, Path(id): Path<Uuid>) -> ApiResult<Response> {
    Ok(Json(state.app.document(&actor, id).await?).into_response())
}

async fn content(State(state): State<WebState>, Ready(actor): Ready, Path(id): Path<Uuid>) -> ApiResult<Response> {
    let (row, stream) = state.app.document_content(&actor, id).await?;
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&row.content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(row.size_bytes));
    if let Ok(v) = HeaderValue::from_str(&format!("\"sha256:{}\"", row.sha256)) {
        h.insert(header::ETAG, v);
    }
    Ok(resp)
}
