//! Issue 11's scenario through the pages: the upload page (every file stored, already stored,
//! skipped or refused by name, with and without JavaScript), the trial dashboard per role, and the
//! browser walk in web/e2e/scenario.mjs: upload a visit folder, automated check, QC rejects in the
//! signing dialog, the grid shows it, the site answers the query with a corrected series, QC1 and
//! QC2 accept, the grid shows QC passed. Afterwards the API's records are checked: no planted PHI
//! in any stored blob, and the audit trail holds the upload, rejection, answer and acceptance.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::qc_flow::{SeriesSpec, ct_series};
use crate::support::{ADMIN_PASSWORD, Backend, e2e_artifacts, e2e_ready, run_e2e};
use crate::ui::{csrf, ok_page, page, ui_login};
use crate::world::{PASSWORD, World, check, world};

/// Header values planted in every generated image that must never reach storage.
const PLANTED_PHI: &[&str] = &["DOE^JOHN^QCFLOW", "19580412", "Hopital Saint-Louis"];

/// A CT series of visit BL of subject 101-001 (in the baseline window of the world's trial).
fn visit_series(dir: &Path, series_number: u32, thickness_mm: f64, slices: usize) -> Vec<PathBuf> {
    ct_series(
        dir,
        &SeriesSpec {
            subject: "101-001",
            time_point: "BL",
            study_date: "20261001",
            study_uid: "1.2.826.0.1.3680043.8.498.11001",
            series_number,
            slices,
            thickness_mm,
            description: "CT CAP PORTAL VENOUS",
            contrast: true,
            skip: &[],
        },
    )
}

/// What a CD export has besides its images: a DICOMDIR (with the DICM marker, skipped by name) and
/// a text file.
fn extras(dir: &Path) {
    let mut dicomdir = vec![0u8; 128];
    dicomdir.extend_from_slice(b"DICM");
    dicomdir.extend_from_slice(&[0u8; 64]);
    std::fs::write(dir.join("DICOMDIR"), dicomdir).unwrap();
    std::fs::write(dir.join("notes.txt"), b"exported from PACS\n").unwrap();
}

fn file_part(name: &str, bytes: Vec<u8>) -> Part {
    Part::bytes(bytes).file_name(name.to_string()).mime_str("application/octet-stream").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_upload_page_reports_each_file_and_the_dashboard_shows_each_role_its_rows() {
    let w = world(Backend::SqliteLocal).await;
    let t = &w.t;
    let trial = w.trial;
    let url = format!("/trials/{trial}/sites/101/upload");
    let site = ui_login(t, "site_a", PASSWORD).await;
    // The site page and the trial page link to the upload page for site staff.
    assert!(ok_page(&site, t, &format!("/trials/{trial}/sites/101")).await.contains(&url));
    assert!(ok_page(&site, t, &format!("/trials/{trial}")).await.contains(&url));
    let form_page = ok_page(&site, t, &url).await;
    assert!(form_page.contains("webkitdirectory") && form_page.contains("/static/upload.js?v="), "{form_page}");
    let token = csrf(&form_page);

    let dir = tempfile::tempdir().unwrap();
    let files = visit_series(&dir.path().join("v"), 2, 2.5, 3);
    let read = |p: &PathBuf| std::fs::read(p).unwrap();
    let mut broken = vec![0u8; 128];
    broken.extend_from_slice(b"DICM");
    broken.extend_from_slice(b"\x02\x00\x10\x00UI\xff\x7fnot really");
    // Without JavaScript: one form post; the answer lists every file by name.
    let form = Form::new()
        .text("csrf", token.clone())
        .part("files", file_part("visit/2-1.dcm", read(&files[0])))
        .part("files", file_part("visit/2-2.dcm", read(&files[1])))
        .part("files", file_part("visit/again.dcm", read(&files[0])))
        .part("files", file_part("visit/DICOMDIR", read(&files[2])))
        .part("files", file_part("visit/notes.txt", b"exported from PACS".to_vec()))
        .part("files", file_part("visit/broken.dcm", broken));
    let r = site.post(t.url(&url)).multipart(form).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let row = |name: &str| {
        let i = html.find(&format!("<code>{name}</code>")).unwrap_or_else(|| panic!("{name} is not listed: {html}"));
        html[i..].split("</tr>").next().unwrap().to_string()
    };
    assert!(row("visit/2-1.dcm").contains("✓ Stored"));
    assert!(row("visit/2-2.dcm").contains("✓ Stored"));
    assert!(row("visit/again.dcm").contains("Already stored"), "{}", row("visit/again.dcm"));
    assert!(row("visit/DICOMDIR").contains("Skipped") && row("visit/DICOMDIR").contains("DICOMDIR index"));
    assert!(row("visit/notes.txt").contains("Skipped") && row("visit/notes.txt").contains("no DICM marker"));
    let bad = row("visit/broken.dcm");
    assert!(bad.contains("✗ Refused") && bad.contains("not a DICOM instance corelab can read"), "{bad}");
    assert!(html.contains("<strong>2</strong> stored, <strong>1</strong> already stored"), "{html}");
    // With JavaScript: the same route answers JSON per batch.
    let form = Form::new()
        .text("csrf", token.clone())
        .part("files", file_part("2-3.dcm", read(&files[2])))
        .part("files", file_part("2-1.dcm", read(&files[0])));
    let r = site.post(t.url(&url)).header("accept", "application/json").multipart(form).send().await.unwrap();
    let v: Value = check(r, 200).await;
    let outcomes: Vec<&str> = v["files"].as_array().unwrap().iter().map(|f| f["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["stored", "already_stored"], "{v:#}");
    assert_eq!((v["stored"].as_u64(), v["already_stored"].as_u64()), (Some(1), Some(1)));
    // The instances are filed under the subject's baseline visit, de-identified.
    let subject = w.subject_a;
    let visit: Value =
        check(w.c("site_a").get(w.url(&format!("/api/v1/subjects/{subject}/visits/BL"))).send().await.unwrap(), 200)
            .await;
    assert_eq!(visit["studies"].as_array().unwrap().len(), 1, "{visit:#}");
    assert_no_planted_phi(&w);

    // The same authorization as STOW-RS: QC may not send (403), site B staff do not see site 101.
    let qc = ui_login(t, "qc", PASSWORD).await;
    let qc_token = csrf(&ok_page(&qc, t, "/trials").await);
    let form = Form::new().text("csrf", qc_token).part("files", file_part("x.dcm", read(&files[0])));
    assert_eq!(qc.post(t.url(&url)).multipart(form).send().await.unwrap().status(), 403);
    let site_b = ui_login(t, "site_b", PASSWORD).await;
    let b_token = csrf(&ok_page(&site_b, t, "/trials").await);
    let form = Form::new().text("csrf", b_token).part("files", file_part("x.dcm", read(&files[0])));
    assert_eq!(site_b.post(t.url(&url)).multipart(form).send().await.unwrap().status(), 404);
    // A JSON request that is refused gets the API's error shape with what to do.
    let form = Form::new().text("csrf", csrf(&ok_page(&site_b, t, "/trials").await));
    let r = site_b.post(t.url(&url)).header("accept", "application/json").multipart(form).send().await.unwrap();
    let v: Value = check(r, 404).await;
    assert!(v["error"]["message"].as_str().unwrap().contains("no site 101"), "{v}");

    // The dashboard: site staff see their site's row and subjects only.
    let dash = format!("/trials/{trial}/dashboard");
    let mine = ok_page(&site, t, &dash).await;
    assert!(mine.contains("<th scope=\"row\">101</th>") && !mine.contains("<th scope=\"row\">102</th>"), "{mine}");
    assert!(mine.contains("101-001") && !mine.contains("102-001") && !mine.contains("All sites"));
    assert!(mine.contains("class=\"legend\"") && mine.contains("Rejected by QC"), "the legend lists every state");
    // The monitor sees every site with the total and both subjects.
    let (status, all) = page(w.c("monitor"), t, &dash).await;
    assert_eq!(status, 200);
    for s in ["<th scope=\"row\">101</th>", "<th scope=\"row\">102</th>", "All sites", "101-001", "102-001"] {
        assert!(all.contains(s), "monitor's dashboard lacks {s}");
    }
    // Site 101: one subject, BL received (the images came in a moment ago).
    let row101 = &all[all.find("<th scope=\"row\">101</th>").unwrap()..];
    let row101 = row101.split("</tr>").next().unwrap();
    let cells: Vec<&str> = row101.split("<td>").skip(1).map(|c| c.split("</td>").next().unwrap()).collect::<Vec<_>>();
    // Subjects, expected, received, QC passed, read, open queries, the two turnarounds. How many
    // visits are expected depends on today's date (the visit windows), so only at least BL.
    assert_eq!((cells[0], cells[2], cells[3], cells[4]), ("1", "1", "0", "0"), "{row101}");
    assert!(cells[1].parse::<u32>().unwrap() >= 1 && cells[5].parse::<u32>().unwrap() >= 1, "{row101}");
    // Sponsors get the per-site numbers without any subject.
    let (status, sponsor) = page(w.c("sponsor"), t, &dash).await;
    assert_eq!(status, 200);
    assert!(sponsor.contains("All sites") && !sponsor.contains("101-001") && !sponsor.contains("visit-grid"));
    w.t.stop().await;
}

/// No stored blob (every file of the local blob store) carries a planted PHI value.
fn assert_no_planted_phi(w: &World) {
    let root = w.t.env.dir.path().join("blobs");
    let mut stack = vec![root];
    let mut scanned = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let bytes = std::fs::read(&p).unwrap();
            scanned += 1;
            for phi in PLANTED_PHI {
                assert!(
                    !bytes.windows(phi.len()).any(|win| win == phi.as_bytes()),
                    "{} holds the planted value {phi}",
                    p.display()
                );
            }
        }
    }
    assert!(scanned > 0, "no blob was stored");
}

/// Runs web/e2e/scenario.mjs against a server with a 1-second ingest quiet period (the test
/// environment's setting) and checks the records it leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_scenario_upload_reject_resubmit_pass_in_the_browser() {
    if !e2e_ready("the browser scenario", &[]) {
        return;
    }
    let w = world(Backend::SqliteLocal).await;
    let t = &w.t;
    let trial = w.trial;
    // QC2 must be someone other than QC1: a second QC reviewer.
    let v = check(
        w.c("admin")
            .post(w.url("/api/v1/users"))
            .json(&json!({"username": "qc2", "display_name": "Quinn Second", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    check(
        w.c("admin")
            .post(w.url(&format!("/api/v1/trials/{trial}/grants")))
            .json(&json!({"user_id": v["user"]["id"], "role": "qc_reviewer"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    // The visit folder as the site exports it: 5 mm slices (at the charter's limit, which the QC
    // reviewer finds too thick), a DICOMDIR and a note; then the corrected 2.5 mm series.
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("BL-export");
    let first_files = visit_series(&first, 2, 5.0, 6);
    extras(&first);
    let second = dir.path().join("BL-2.5mm");
    let second_files = visit_series(&second, 3, 2.5, 6);
    let out = e2e_artifacts();
    let mut all_first: Vec<PathBuf> = first_files.clone();
    all_first.extend([first.join("DICOMDIR"), first.join("notes.txt")]);
    let cfg = json!({
        "url": format!("http://{}", t.addr),
        "out": out,
        "trial": trial,
        "subject": w.subject_a,
        "password": PASSWORD,
        "admin_password": ADMIN_PASSWORD,
        "first_folder": first,
        "first_files": all_first,
        "first_count": first_files.len(),
        "second_folder": second,
        "second_files": second_files,
        "second_count": second_files.len(),
    });
    run_e2e(
        "scenario.mjs",
        cfg,
        Duration::from_secs(400),
        &[
            "s01-upload-page.png",
            "s02-upload-summary.png",
            "s05-dashboard-rejected.png",
            "s07-query-answered.png",
            "s08-dashboard-qc-passed.png",
        ],
    )
    .await;

    // Through the API: the visit passed QC after a rejection, with both series stored.
    let subject = w.subject_a;
    let visit: Value =
        check(w.c("qc").get(w.url(&format!("/api/v1/subjects/{subject}/visits/BL"))).send().await.unwrap(), 200).await;
    assert_eq!(visit["state"], "qc_passed", "{visit:#}");
    assert_no_planted_phi(&w);
    // The audit trail: the upload (instances created by the site user), the signed rejection with
    // its reason, the site's answer in the query, and both acceptances.
    let records: Value = check(
        w.c("admin").get(w.url(&format!("/api/v1/audit?trial_id={trial}&limit=1000"))).send().await.unwrap(),
        200,
    )
    .await;
    let records = records.as_array().unwrap();
    let has = |action: &str, object: &str, who: &str, pred: &dyn Fn(&Value) -> bool| {
        records.iter().any(|r| r["action"] == action && r["object_type"] == object && r["actor_name"] == who && pred(r))
    };
    let uploads = records
        .iter()
        .filter(|r| r["action"] == "create" && r["object_type"] == "instance" && r["actor_name"] == "site_a")
        .count();
    assert_eq!(uploads, first_files.len() + second_files.len(), "one audit record per uploaded image");
    assert!(has("review", "visit_qc", "qc", &|r| r["reason"].as_str().is_some_and(|s| s.contains("2.5 mm"))));
    assert!(has("create", "query", "site_a", &|_| true), "the site's answer is audited");
    assert!(has("review", "visit_qc", "qc2", &|_| true), "QC2's acceptance is audited");
    let qc_reviews = records.iter().filter(|r| r["action"] == "review" && r["actor_name"] == "qc").count();
    assert_eq!(qc_reviews, 2, "QC1's rejection and acceptance");
    w.t.stop().await;
}
