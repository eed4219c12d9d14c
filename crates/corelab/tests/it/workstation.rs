//! The reader workstation (Cornerstone3D in the browser, served by corelab): the page is its
//! task's reader's alone, the bundle is served with the right types and policy, and a reader
//! reads a 40-slice CT in headless chromium (web/e2e/workstation.mjs): scrolls, measures with
//! the bidirectional tool, attaches the measurement to a target, sees the engine's answer, signs;
//! the stored read then holds the diameter and where it was measured.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use serde_json::{Value, json};

use crate::qc_flow::{SeriesSpec, ct_series};
use crate::reads::{Seen, pass_qc_files, profile, second_qc};
use crate::support::{Backend, e2e_artifacts, e2e_ready, repo_root, run_e2e};
use crate::world::{PASSWORD, World, check, world};

/// Slices per CT; `WORKSTATION_SLICES` changes it for a timing run (docs/performance.md).
fn slices() -> usize {
    std::env::var("WORKSTATION_SLICES").ok().and_then(|v| v.parse().ok()).unwrap_or(40)
}

/// A CT series of `slices()` 512x512 slices with content: a body-sized ellipse of soft tissue
/// (40 HU) in air and a bright disc (200 HU, 42 mm across) whose position moves with the slice,
/// so a reader sees the stack scroll.
fn ct_with_content(dir: &Path, code: &str, visit: &str, date: &str, study_uid: &str) -> Vec<PathBuf> {
    let files = ct_series(
        dir,
        &SeriesSpec {
            subject: code,
            time_point: visit,
            study_date: date,
            study_uid,
            series_number: 2,
            slices: slices(),
            thickness_mm: 5.0,
            description: "CT CAP PORTAL VENOUS",
            contrast: true,
            skip: &[],
        },
    );
    for (i, f) in files.iter().enumerate() {
        let mut obj = dicom_object::open_file(f).unwrap();
        let k = (i % 40) as f64;
        let (cx, cy) = (170.0 + 4.0 * k, 230.0 + 2.0 * k);
        let mut px = Vec::with_capacity(512 * 512 * 2);
        for y in 0..512 {
            for x in 0..512 {
                let (fx, fy) = (x as f64, y as f64);
                let body = ((fx - 256.0) / 220.0).powi(2) + ((fy - 256.0) / 170.0).powi(2) <= 1.0;
                let disc = (fx - cx).powi(2) + (fy - cy).powi(2) <= 30.0 * 30.0;
                // Stored values; Rescale Intercept -1024 makes them Hounsfield units.
                let v: u16 = if disc {
                    1024 + 200
                } else if body {
                    1024 + 40
                } else {
                    0
                };
                px.extend_from_slice(&v.to_le_bytes());
            }
        }
        obj.put(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(px)));
        obj.put(DataElement::new(tags::RESCALE_INTERCEPT, VR::DS, PrimitiveValue::from("-1024")));
        obj.put(DataElement::new(tags::RESCALE_SLOPE, VR::DS, PrimitiveValue::from("1")));
        obj.put(DataElement::new(tags::WINDOW_CENTER, VR::DS, PrimitiveValue::from("40")));
        obj.put(DataElement::new(tags::WINDOW_WIDTH, VR::DS, PrimitiveValue::from("400")));
        obj.write_to_file(f).unwrap();
    }
    files
}

/// The workstation world: the oncology trial, readers qualified, subject 101-001's baseline and
/// week 8 through QC with 40-slice CTs (by default). Returns the reader's TP1 and TP2 task ids.
async fn workstation_world() -> (World, String, String) {
    let w = world(Backend::SqliteLocal).await;
    let qc2 = second_qc(&w, "qc_two").await;
    for who in ["reader", "reader2"] {
        profile(&w, w.user_ids[who], &["RECIST1.1"], Some("2030-12-31")).await;
    }
    for (visit, date, uid) in [("BL", "20260920", "81001"), ("W8", "20261126", "81002")] {
        let dir = tempfile::tempdir().unwrap();
        let files = ct_with_content(dir.path(), "101-001", visit, date, &format!("1.2.826.0.1.3680043.8.498.{uid}"));
        pass_qc_files(&w, &qc2, w.subject_a, "101", visit, files).await;
    }
    let mut seen = Seen::new(&w, w.c("reader"));
    let (tp1, tp2) = (seen.task("TP1").await, seen.task("TP2").await);
    (w, tp1, tp2)
}

/// The SOP Instance UIDs of the task's images, as the reader's QIDO-RS lists them.
async fn task_instances(w: &World, task: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for st in task["images"].as_array().unwrap() {
        let study = st["study_instance_uid"].as_str().unwrap();
        for se in st["series"].as_array().unwrap() {
            let series = se["series_instance_uid"].as_str().unwrap();
            let url = w.url(&format!("/dicomweb/studies/{study}/series/{series}/instances?trial={}", w.trial));
            let list = check(w.c("reader").get(url).send().await.unwrap(), 200).await;
            for i in list.as_array().unwrap() {
                out.push(i["00080018"]["Value"][0].as_str().unwrap().to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn workstation_page_is_the_readers_alone_and_the_bundle_is_served_with_its_types() {
    let (w, tp1, tp2) = workstation_world().await;
    let page = format!("/read-tasks/{tp1}/workstation");
    let r = w.c("reader").get(w.url(&page)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("script-src 'self' 'wasm-unsafe-eval'") && csp.contains("worker-src 'self' blob:"), "{csp}");
    assert!(!csp.contains("http") && !csp.contains("'unsafe-eval'"), "{csp}");
    // Inline style only as attributes (the tools' SVG labels); no inline script at all.
    assert!(csp.contains("style-src 'self';") && !csp.contains("script-src 'self' 'unsafe-inline'"), "{csp}");
    let html = r.text().await.unwrap();
    // Either the workstation or, without a bundle, how to build it.
    let bundle = html.contains("id=\"workstation\"");
    assert!(bundle || html.contains("bash scripts/build-viewer.sh"), "{html}");
    assert!(html.contains("TP1"), "the timepoint label");
    for leak in ["101-001", "20260920", "2026-09-20"] {
        assert!(!html.contains(leak), "blinded: {leak} on the page");
    }
    // The other reader of the case, everyone else in the trial, and nobody logged in.
    let reader2 = World::login(&w.t, "reader2").await;
    assert_eq!(reader2.get(w.url(&page)).send().await.unwrap().status(), 404);
    for role in ["tm", "qc", "monitor", "site_a", "adjudicator", "sponsor"] {
        let s = w.c(role).get(w.url(&page)).send().await.unwrap().status().as_u16();
        // As GET /api/v1/read-tasks/{task}: other roles of the trial are refused (and audited), not shown.
        assert!(s == 403 || s == 404, "{role}: {s}");
    }
    let anon = crate::support::client().get(w.url(&page)).send().await.unwrap();
    assert_eq!(anon.url().path(), "/login", "sent to the login page");
    // The follow-up opens once the baseline is submitted.
    let r = w.c("reader").get(w.url(&format!("/read-tasks/{tp2}/workstation"))).send().await.unwrap();
    assert_eq!(r.status(), 409);
    // The reader's trial page counts the tasks and links the reading list, which opens the
    // task in the workstation.
    let trial_page = w.c("reader").get(w.url(&format!("/trials/{}", w.trial))).send().await.unwrap();
    let text = trial_page.text().await.unwrap();
    assert!(
        text.contains("2 to read, 0 submitted") && text.contains(&format!("/trials/{}/reading", w.trial)),
        "{text}"
    );
    let list = w.c("reader").get(w.url(&format!("/trials/{}/reading", w.trial))).send().await.unwrap();
    assert!(list.text().await.unwrap().contains(&page));
    // The engine's answer before signing: nothing stored.
    let v = check(
        w.c("reader")
            .post(w.url(&format!("/api/v1/read-tasks/{tp1}/evaluate")))
            .json(&json!({"assessment": crate::reads::baseline(30.4, 20.6)}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(v["baseline_sum_mm"], json!(51.0), "{v}");
    let task = check(w.c("reader").get(w.url(&format!("/api/v1/read-tasks/{tp1}"))).send().await.unwrap(), 200).await;
    assert_eq!(task["state"], "open", "{task}");
    assert_eq!(task["trial_id"], json!(w.trial));
    // Bundle files: paths outside the bundle are never served.
    for bad in ["/viewer/../Cargo.toml", "/viewer/.vite/manifest.json", "/viewer/assets/..%2F..%2Fpackage.json"] {
        let s = w.c("reader").get(w.url(bad)).send().await.unwrap().status().as_u16();
        assert_eq!(s, 404, "{bad}");
    }
    if bundle {
        let js = html.split("src=\"/viewer/").nth(1).unwrap().split('"').next().unwrap();
        let r = crate::support::client().get(w.url(&format!("/viewer/{js}"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/javascript; charset=utf-8");
        assert!(r.headers()["cache-control"].to_str().unwrap().contains("immutable"));
        assert_eq!(r.headers()["content-security-policy"].to_str().unwrap(), corelab_web::pages::WORKSTATION_CSP);
        let dist = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web/viewer/dist/assets");
        let wasm = std::fs::read_dir(&dist)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .find(|n| n.ends_with(".wasm"))
            .unwrap();
        let r = crate::support::client().get(w.url(&format!("/viewer/assets/{wasm}"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/wasm");
    }
    w.t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workstation_browser_reads_a_ct_measures_attaches_and_signs() {
    if !e2e_ready(
        "the workstation browser test",
        &[(
            repo_root().join("web/viewer/dist/.vite/manifest.json").is_file(),
            "the workstation bundle (bash scripts/build-viewer.sh)",
        )],
    ) {
        return;
    }
    let (w, tp1, tp2) = workstation_world().await;
    let out = e2e_artifacts();
    let cfg = json!({
        "url": format!("http://{}", w.t.addr),
        "out": out,
        "trial": w.trial,
        "task": tp1,
        "follow_up": tp2,
        "slices": slices(),
        "username": "reader",
        "password": PASSWORD,
    });
    run_e2e("workstation.mjs", cfg, Duration::from_secs(300), &[]).await;
    // The stored read: signed and locked, the target with the measured diameter and where.
    let task = check(w.c("reader").get(w.url(&format!("/api/v1/read-tasks/{tp1}"))).send().await.unwrap(), 200).await;
    assert_eq!(task["state"], "submitted", "{task:#}");
    let version = &task["versions"][0];
    assert_eq!(version["signatures"][0]["meaning"], "read completed", "{version:#}");
    let t1 = &version["assessment"]["targets"][0];
    let diameter = t1["diameter_mm"].as_f64().unwrap();
    assert!(diameter > 0.0, "{t1}");
    let image = &t1["image"];
    let instances = task_instances(&w, &task).await;
    assert_eq!(instances.len(), slices());
    assert!(instances.iter().any(|i| i == image["sop_instance_uid"].as_str().unwrap()), "{image} not in {instances:?}");
    assert_eq!(image["frame"], 1);
    assert_eq!(image["points"].as_array().unwrap().len(), 4, "a bidirectional measurement's 4 end points: {image}");
    assert_eq!(version["result"]["baseline_sum_mm"].as_f64(), Some(diameter));
    for shot in ["ws-01-first-image.png", "ws-02-measured.png", "ws-03-sign-dialog.png", "ws-04-signed.png"] {
        assert!(out.join(shot).is_file(), "no screenshot {shot}");
    }
    w.t.stop().await;
}
