//! Static files, embedded in the binary: the stylesheet, htmx (2.0.11 from npm `htmx.org`,
//! 0BSD, vendored as its minified file and that file's gzip from the same package) and a few
//! lines of our own script. URLs carry a content hash, so they are cached for a year and a new
//! build is fetched at once.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    gzip: Option<&'static [u8]>,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "corelab.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../static/corelab.css"),
        gzip: None,
    },
    Asset {
        name: "corelab.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/corelab.js"),
        gzip: None,
    },
    Asset {
        name: "upload.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/upload.js"),
        gzip: None,
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../static/favicon.svg"),
        gzip: None,
    },
    Asset {
        name: "htmx-2.0.11.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/htmx-2.0.11.min.js"),
        gzip: Some(include_bytes!("../../static/htmx-2.0.11.min.js.gz")),
    },
];

fn hashes() -> &'static Vec<(&'static str, String)> {
    static H: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    H.get_or_init(|| ASSETS.iter().map(|a| (a.name, hex::encode(&Sha256::digest(a.body)[..6]))).collect())
}

/// The URL of an embedded file, with its content hash for cache busting.
pub fn url(name: &str) -> String {
    let v = hashes().iter().find(|(n, _)| *n == name).map(|(_, h)| h.as_str()).unwrap_or("0");
    format!("/static/{name}?v={v}")
}

pub async fn serve(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.name == file) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let accepts_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().split(';').next() == Some("gzip")));
    let mut resp = match (a.gzip, accepts_gzip) {
        (Some(gz), true) => {
            let mut r = gz.into_response();
            r.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r
        }
        _ => a.body.into_response(),
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    resp
}
