//! The reader workstation: `GET /read-tasks/{task}/workstation` renders the shell of a read task
//! (after the same use case as `GET /api/v1/read-tasks/{task}` allowed it) and loads the
//! Cornerstone3D bundle, which `GET /viewer/{*path}` serves from `web/viewer/dist` (built by
//! `scripts/build-viewer.sh`; docs/viewer.md, docs/adr/0004-reader-workstation-bundle.md).
//!
//! The bundle is read from a directory, not compiled in, so corelab builds and runs without
//! Node.js; without a bundle the page says how to build one.

use std::path::{Path as FsPath, PathBuf};

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::error::PageResult;
use super::session::PageUser;
use super::view::{Chrome, render};
use crate::WebState;

/// The workstation's Content-Security-Policy: like every page, nothing from other sites, plus
/// what Cornerstone3D needs: WebAssembly decoders (`'wasm-unsafe-eval'`, not `'unsafe-eval'`),
/// web workers from corelab (and `blob:`, which its worker manager may use), and images drawn
/// from canvases (`data:`/`blob:`). The measurement tools position their SVG labels with
/// `style` attributes, so those are allowed (`style-src-attr`), never `<style>` elements or
/// stylesheets from elsewhere. Served with the page and with every bundle file, since a worker
/// runs under the policy of its own script's response.
pub const WORKSTATION_CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
     worker-src 'self' blob:; connect-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; \
     img-src 'self' data: blob:; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Where the bundle is: `http.viewer_dir` when set, else `web/viewer/dist` of the source tree
/// this corelab was built from (what `cargo run` on a clone needs).
pub fn viewer_dir(s: &WebState) -> PathBuf {
    s.settings.viewer_dir.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("..").join("web").join("viewer").join("dist")
    })
}

/// The bundle's entry script and stylesheets, from vite's manifest.
struct Bundle {
    js: String,
    css: Vec<String>,
}

fn bundle(dir: &FsPath) -> Option<Bundle> {
    let text = std::fs::read_to_string(dir.join(".vite").join("manifest.json")).ok()?;
    let manifest: serde_json::Value = serde_json::from_str(&text).ok()?;
    let entry = manifest.as_object()?.values().find(|e| e.get("isEntry").and_then(|v| v.as_bool()) == Some(true))?;
    let file = entry.get("file")?.as_str()?;
    let css = entry
        .get("css")
        .and_then(|c| c.as_array())
        .map(|a| a.iter().filter_map(|c| c.as_str()).map(|c| format!("/viewer/{c}")).collect())
        .unwrap_or_default();
    Some(Bundle { js: format!("/viewer/{file}"), css })
}

#[derive(Template)]
#[template(path = "workstation.html")]
struct WorkstationPage {
    chrome: Chrome,
    task: Uuid,
    trial: Uuid,
    case_code: String,
    timepoint: String,
    baseline: bool,
    criteria: String,
    submitted: bool,
    username: String,
    display_name: String,
    needs_username: bool,
    bundle: Option<Bundle>,
    dir: String,
}

pub async fn page(State(s): State<WebState>, user: PageUser, Path(task): Path<Uuid>) -> PageResult {
    let a = &user.actor;
    let case = s.app.open_read_task(a, task).await?;
    let needs_username = s.app.signing_needs_username(a).await?;
    let dir = viewer_dir(&s);
    let mut resp = render(&WorkstationPage {
        chrome: Chrome::new(&user, format!("Read {} {}", case.case_code, case.timepoint), "trials"),
        task: case.task_id,
        trial: case.trial_id,
        baseline: case.kind == "baseline",
        submitted: case.state == "submitted",
        criteria: case.criteria.clone(),
        case_code: case.case_code,
        timepoint: case.timepoint,
        username: a.username.clone(),
        display_name: a.display_name.clone(),
        needs_username,
        bundle: bundle(&dir),
        dir: dir.display().to_string(),
    })?;
    resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(WORKSTATION_CSP));
    Ok(resp)
}

/// A file of the bundle. Every path segment must be a plain name (no `..`, nothing hidden such
/// as vite's `.vite/` manifest), so nothing outside the bundle directory can be read.
pub async fn asset(State(s): State<WebState>, Path(path): Path<String>) -> Response {
    let ok = !path.is_empty()
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && !seg.starts_with('.')
                && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
        });
    if !ok {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    }
    let file = viewer_dir(&s).join(&path);
    let body = match tokio::fs::read(&file).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::NOT_FOUND, "no such file").into_response(),
    };
    let ext = path.rsplit('.').next().unwrap_or_default();
    let content_type = match ext {
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    };
    // vite puts a content hash in every name under assets/, so those never change.
    let cache = if path.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(WORKSTATION_CSP));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_script_and_styles_come_from_vites_manifest() {
        let dir = tempfile::tempdir().unwrap();
        assert!(bundle(dir.path()).is_none(), "no manifest: no bundle, the page says how to build it");
        std::fs::create_dir_all(dir.path().join(".vite")).unwrap();
        let manifest = r#"{
            "node_modules/x/codec.wasm": {"file": "assets/codec-1.wasm", "src": "node_modules/x/codec.wasm"},
            "src/main.js": {"file": "assets/main-abc.js", "name": "main", "src": "src/main.js", "isEntry": true,
                            "css": ["assets/main-def.css"]}
        }"#;
        std::fs::write(dir.path().join(".vite/manifest.json"), manifest).unwrap();
        let b = bundle(dir.path()).unwrap();
        assert_eq!(b.js, "/viewer/assets/main-abc.js");
        assert_eq!(b.css, vec!["/viewer/assets/main-def.css".to_string()]);
    }
}
