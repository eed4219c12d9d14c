//! Reports and the regulatory package end to end: two subjects at two sites through ingest, QC
//! (one visit failing first) and double reads (one adjudicated); every report page checked against
//! numbers computed here by hand, per role; each report rendered to PDF and PNG with headless
//! Chromium into target/report-artifacts/; the regulatory package unzipped by an independent
//! reader (Python's zipfile) and every file re-hashed against its manifest.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::reads::{Qc2, baseline, follow_up, pass_qc, reading_world, send_visit_until};
use crate::support::Backend;
use crate::world::{PASSWORD, World, check};

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/report-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn chromium() -> PathBuf {
    corelab_web::pages::chromium()
        .expect("the report tests need Chromium (scripts/test-deps.sh installs Debian's chromium)")
}

fn as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

/// Screenshots a standalone HTML file with headless Chromium.
fn screenshot(html: &Path, png: &Path) {
    let mut cmd = std::process::Command::new(chromium());
    cmd.args([
        "--headless",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=1100,2000",
    ]);
    let profile = tempfile::tempdir().unwrap();
    cmd.arg(format!("--user-data-dir={}", profile.path().display()));
    if as_root() {
        cmd.arg("--no-sandbox");
    }
    let out =
        cmd.arg(format!("--screenshot={}", png.display())).arg(format!("file://{}", html.display())).output().unwrap();
    assert!(out.status.success(), "chromium --screenshot: {}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
}

/// Sends a series with 7 mm slices (the charter allows at most 5 mm) and waits for QC to fail it.
async fn fail_qc(w: &World, subject: Uuid, code: &str, site: &str, visit: &str, date: &str, study_uid: &str) {
    send_visit_until(w, subject, code, site, visit, date, study_uid, 7.0, "qc_failed").await;
}

/// Submits a reader's read of the first not yet submitted task at `timepoint`.
async fn submit(w: &World, c: &reqwest::Client, timepoint: &str, assessment: Value, username: Option<&str>) -> Value {
    let tasks =
        check(c.get(w.url(&format!("/api/v1/trials/{}/reading/tasks", w.trial))).send().await.unwrap(), 200).await;
    let task = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["timepoint"] == timepoint && t["state"] != "submitted")
        .unwrap_or_else(|| panic!("no open {timepoint}: {tasks:#}"));
    let mut body = json!({"assessment": assessment, "password": PASSWORD});
    if let Some(u) = username {
        body["username"] = json!(u);
    }
    let id = task["task_id"].as_str().unwrap();
    check(c.post(w.url(&format!("/api/v1/read-tasks/{id}/submit"))).json(&body).send().await.unwrap(), 200).await
}

/// The reporting world: subject 101-001 (site 101) with BL, W8, W16 read by both readers, who
/// agree (PR); subject 102-001 (site 102) whose W8 first fails QC (7 mm slices), then passes; the
/// readers disagree at W8 (PD vs SD) and the adjudicator chooses reader 2 (SD).
async fn reporting_world() -> (World, Qc2) {
    let (w, qc2) = reading_world(Backend::SqliteLocal, 2).await;
    let (c1, c2) = (World::login(&w.t, "reader").await, World::login(&w.t, "reader2").await);
    // 101-001: baseline 30.4 + 20.6 = 51.0 mm; W8 35.0 mm (-31.4 %), W16 30.0 mm (-41.2 %).
    submit(&w, &c1, "TP1", baseline(30.4, 20.6), Some("reader")).await;
    submit(&w, &c2, "TP1", baseline(30.4, 20.6), Some("reader2")).await;
    submit(&w, &c1, "TP2", follow_up(20.0, 15.0), None).await;
    submit(&w, &c2, "TP2", follow_up(21.0, 14.0), None).await;
    submit(&w, &c1, "TP3", follow_up(18.0, 12.0), None).await;
    submit(&w, &c2, "TP3", follow_up(17.0, 13.0), None).await;
    // 102-001: BL passes; W8 fails first, then a compliant resubmission passes.
    pass_qc(&w, &qc2, w.subject_b, "102-001", "102", "BL", "20260922", "1.2.826.0.1.3680043.8.498.88001").await;
    fail_qc(&w, w.subject_b, "102-001", "102", "W8", "20261126", "1.2.826.0.1.3680043.8.498.88002").await;
    pass_qc(&w, &qc2, w.subject_b, "102-001", "102", "W8", "20261126", "1.2.826.0.1.3680043.8.498.88003").await;
    // Baseline 40.0 + 20.0 = 60.0 mm; reader 1: 75.0 mm (+25 %, PD); reader 2: 62.0 mm (+3.3 %, SD).
    submit(&w, &c1, "TP1", baseline(40.0, 20.0), None).await;
    submit(&w, &c2, "TP1", baseline(40.0, 20.0), None).await;
    submit(&w, &c1, "TP2", follow_up(45.0, 30.0), None).await;
    submit(&w, &c2, "TP2", follow_up(41.0, 21.0), None).await;
    let adj = w.c("adjudicator");
    let list =
        check(adj.get(w.url(&format!("/api/v1/trials/{}/adjudication/tasks", w.trial))).send().await.unwrap(), 200)
            .await;
    let open: Vec<&Value> = list.as_array().unwrap().iter().filter(|a| a["state"] == "open").collect();
    assert_eq!(open.len(), 1, "{list:#}");
    let id = open[0]["adjudication_id"].as_str().unwrap();
    let decided = check(
        adj.post(w.url(&format!("/api/v1/adjudications/{id}/decide")))
            .json(&json!({"chosen": "reader_2", "rationale": "growth within measurement variability",
                          "username": "adjudicator", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(decided["state"], "decided");
    (w, qc2)
}

async fn page(c: &reqwest::Client, w: &World, path: &str) -> (u16, String) {
    let r = c.get(w.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The cells of the table row whose first cell is `first`.
fn row(html: &str, first: &str) -> Vec<String> {
    let needle = format!("<tr><th scope=\"row\">{first}</th>");
    let start = html.find(&needle).unwrap_or_else(|| panic!("no row {first}"));
    let end = start + html[start..].find("</tr>").unwrap();
    html[start + needle.len()..end].split("<td>").skip(1).map(|c| c.trim_end_matches("</td>").to_string()).collect()
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        None
    } else if n % 2 == 1 {
        Some(v[n / 2])
    } else {
        Some((v[n / 2 - 1] + v[n / 2]) / 2.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_show_hand_computed_numbers_per_role_and_render_to_pdf_and_png() {
    let (w, _qc2) = reporting_world().await;
    let t = w.trial;
    let tm = w.c("tm");

    // --- Site performance, against a count made here.
    // Visits checked: 101-001 BL, W8, W16 (all pass first time); 102-001 BL (first time), W8 (failed first).
    let (s, html) = page(tm, &w, &format!("/trials/{t}/reports/site-performance")).await;
    assert_eq!(s, 200, "{html}");
    let queries = check(tm.get(w.url(&format!("/api/v1/trials/{t}/queries"))).send().await.unwrap(), 200).await;
    let mut by_site: BTreeMap<String, (u64, u64, Vec<f64>)> = BTreeMap::new();
    for q in queries.as_array().unwrap() {
        let e = by_site.entry(q["site_id"].as_str().unwrap().to_string()).or_default();
        e.0 += 1;
        if q["state"] == "closed" {
            let at = |k: &str| chrono::DateTime::parse_from_rfc3339(q[k].as_str().unwrap()).unwrap();
            e.2.push((at("closed_at") - at("created_at")).num_milliseconds() as f64 / 3_600_000.0);
        } else {
            e.1 += 1;
        }
    }
    // The failed W8 raised an automatic query that closed itself when the resubmission passed.
    assert!(!by_site["102"].2.is_empty(), "{queries:#}");
    let hours = |v: &Vec<f64>| median(v.clone()).map_or("none closed".to_string(), |h| format!("{h:.1} h"));
    let (q101, q102) = (&by_site["101"], &by_site["102"]);
    assert_eq!(
        row(&html, "101"),
        ["3", "3/3 (100.0 %)", &q101.0.to_string(), &q101.1.to_string(), &hours(&q101.2), "0"]
    );
    assert_eq!(
        row(&html, "102"),
        ["2", "1/2 (50.0 %)", &q102.0.to_string(), &q102.1.to_string(), &hours(&q102.2), "0"]
    );
    let all: Vec<f64> = by_site.values().flat_map(|v| v.2.clone()).collect();
    let total_q: u64 = by_site.values().map(|v| v.0).sum();
    let open_q: u64 = by_site.values().map(|v| v.1).sum();
    assert_eq!(
        row(&html, "All sites"),
        ["5", "4/5 (80.0 %)", &total_q.to_string(), &open_q.to_string(), &hours(&all), "0"]
    );
    // Deviations by rule: the 7 mm series broke slice_thickness once, at site 102 (the columns are
    // 101, 102, 103, All sites).
    assert_eq!(row(&html, "slice_thickness"), ["0", "1", "0", "1"]);

    // Site staff see only their own site's row, no total.
    let (s, own) = page(w.c("site_a"), &w, &format!("/trials/{t}/reports/site-performance")).await;
    assert_eq!(s, 200);
    assert!(own.contains("<th scope=\"row\">101</th>"));
    assert!(!own.contains("<th scope=\"row\">102</th>") && !own.contains("All sites"), "{own}");

    // --- Reader performance. Double-read subjects: 2; adjudicated: 102-001 → 1/2. Per reader: each
    // double-read both; the adjudicator chose reader2 in the one decided adjudication. Kappa on the
    // three common follow-ups (PR/PR, PR/PR, PD/SD): po = 2/3, pe = (2x2)/9 = 4/9, kappa = 0.4.
    let (s, html) = page(tm, &w, &format!("/trials/{t}/reports/reader-performance")).await;
    assert_eq!(s, 200, "{html}");
    assert_eq!(row(&html, "Double-read subjects"), ["2"]);
    assert_eq!(row(&html, "Adjudication rate"), ["1/2 (50.0 %)"]);
    let r1 = row(&html, "Rita Reader (reader)");
    assert_eq!(
        (r1[0].as_str(), r1[2].as_str(), r1[3].as_str(), r1[4].as_str()),
        ("5", "1/2 (50.0 %)", "0/1 (0.0 %)", "1/2 (50.0 %)")
    );
    let r2 = row(&html, "Rob Reader (reader2)");
    assert_eq!(
        (r2[0].as_str(), r2[2].as_str(), r2[3].as_str(), r2[4].as_str()),
        ("5", "1/2 (50.0 %)", "1/1 (100.0 %)", "0/2 (0.0 %)")
    );
    assert_eq!(row(&html, "reader and reader2"), ["3", "2", "0.667", "0.444", "0.400"]);
    // The sponsor sees the same numbers without reader identities.
    let (s, sp) = page(w.c("sponsor"), &w, &format!("/trials/{t}/reports/reader-performance")).await;
    assert_eq!(s, 200);
    assert_eq!(row(&sp, "Reader A and Reader B"), ["3", "2", "0.667", "0.444", "0.400"]);
    for leak in ["Rita Reader", "Rob Reader", "reader2", "101-001", "102-001"] {
        assert!(!sp.contains(leak), "sponsor sees {leak}");
    }

    // --- Response. 101-001: best of -31.4 % (35.0 vs 51.0) and -41.2 % (30.0 vs 51.0) = -41.2 %;
    // 102-001: reader 2's 62.0 vs 60.0 = +3.3 %. Bars sorted from the largest increase.
    let acc = check(tm.get(w.url(&format!("/api/v1/trials/{t}/accepted-results"))).send().await.unwrap(), 200).await;
    let bor: HashMap<String, String> = acc
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["subject_id"].as_str().unwrap().to_string(),
                a["result"]["best_overall_response"]["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(bor["101-001"], "PR");
    let (s, html) = page(tm, &w, &format!("/trials/{t}/reports/response")).await;
    assert_eq!(s, 200, "{html}");
    assert_eq!(row(&html, "101-001"), ["-41.2 %", "PR"]);
    assert_eq!(row(&html, "102-001"), ["+3.3 %", &bor["102-001"]]);
    let bars: Vec<usize> = ["102-001", "101-001"]
        .iter()
        .map(|s| html.find(&format!("data-subject=\"{s}\" data-change")).unwrap())
        .collect();
    assert!(bars[0] < bars[1], "waterfall sorted descending");
    assert!(html.contains("data-change=\"-41.2 %\"") && html.contains("data-change=\"+3.3 %\""));
    assert_eq!(html.matches("class=\"threshold\"").count(), 4, "+20 % and -30 % on both plots");
    assert!(html.contains("<title id=\"waterfall-title\">") && html.contains("<desc id=\"spider-desc\">"));
    let (s, sp) = page(w.c("sponsor"), &w, &format!("/trials/{t}/reports/response")).await;
    assert_eq!(s, 200);
    assert!(!sp.contains("101-001") && !sp.contains("102-001") && sp.contains("#1"), "{sp}");

    // --- Timeline: two enrolled; 101-001 has three visits read; 102-001 two.
    let (s, html) = page(tm, &w, &format!("/trials/{t}/reports/timeline")).await;
    assert_eq!(s, 200, "{html}");
    assert!(html.contains("Enrolment: 2 subjects"));
    assert_eq!(html.matches("class=\"visit\"").count(), 5);
    assert!(row(&html, "101-001")[1].matches(", read").count() == 3, "{html}");

    // --- Readers, adjudicators and site staff get no subject-level report.
    for role in ["reader", "adjudicator", "site_a"] {
        for name in ["response", "timeline", "reader-performance"] {
            let (s, _) = page(w.c(role), &w, &format!("/trials/{t}/reports/{name}")).await;
            assert_eq!(s, 403, "{role} {name}");
        }
    }
    for role in ["reader", "adjudicator"] {
        assert_eq!(page(w.c(role), &w, &format!("/trials/{t}/reports/site-performance")).await.0, 403);
        assert_eq!(page(w.c(role), &w, &format!("/trials/{t}/reports")).await.0, 403);
    }
    assert_eq!(page(tm, &w, &format!("/trials/{t}/reports/nonsense.pdf")).await.0, 404);

    // --- PDF (headless Chromium, run by corelab) and PNG (a screenshot of the standalone file).
    let dir = artifacts();
    for name in ["site-performance", "reader-performance", "response", "timeline"] {
        let r = tm.get(w.url(&format!("/trials/{t}/reports/{name}.pdf"))).send().await.unwrap();
        assert_eq!(r.status(), 200, "{name}.pdf");
        assert_eq!(r.headers()["content-type"], "application/pdf");
        let pdf = r.bytes().await.unwrap();
        assert!(pdf.starts_with(b"%PDF") && pdf.len() > 5000, "{name}.pdf");
        std::fs::write(dir.join(format!("{name}.pdf")), &pdf).unwrap();
        let html =
            tm.get(w.url(&format!("/trials/{t}/reports/{name}.html"))).send().await.unwrap().text().await.unwrap();
        assert!(html.contains("<style>") && !html.contains("/static/"), "standalone");
        let file = dir.join(format!("{name}.html"));
        std::fs::write(&file, &html).unwrap();
        screenshot(&file, &dir.join(format!("{name}.png")));
    }
    w.t.stop().await;
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Unzips with Python's zipfile (an independent reader) into `dest`.
fn unzip(zip: &Path, dest: &Path) {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; z.extractall(sys.argv[2])",
        ])
        .arg(zip)
        .arg(dest)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Every file of the unpacked package matches the manifest, and nothing is missing or extra.
fn verify_against_manifest(dir: &Path) -> Value {
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let mut listed: Vec<String> = Vec::new();
    for f in manifest["files"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(path)).unwrap_or_else(|_| panic!("{path} missing"));
        assert_eq!(sha256_hex(&bytes), f["sha256"].as_str().unwrap(), "{path}");
        assert_eq!(bytes.len() as u64, f["size"].as_u64().unwrap(), "{path}");
        listed.push(path.to_string());
    }
    let mut on_disk = Vec::new();
    for e in walkdir(dir) {
        let rel = e.strip_prefix(dir).unwrap().to_string_lossy().to_string();
        if rel != "manifest.json" {
            on_disk.push(rel);
        }
    }
    listed.sort();
    on_disk.sort();
    assert_eq!(listed, on_disk, "the manifest lists exactly the package's files");
    // SHA256SUMS agrees with the manifest.
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    for line in sums.lines() {
        let (h, p) = line.split_once("  ").unwrap();
        assert_eq!(sha256_hex(&std::fs::read(dir.join(p)).unwrap()), h, "{p}");
    }
    manifest
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_regulatory_package_verifies_against_its_manifest_and_holds_every_image() {
    let (w, _qc2) = reporting_world().await;
    let t = w.trial;
    let op = corelab_app::Actor::operator("inspector-test");
    let indexed = {
        let mut tx = w.t.app.db().read().await.unwrap();
        tx.trial_instances(t).await.unwrap()
    };
    // 101-001: 3 visits x 6 slices; 102-001: BL 6 + W8 6 (7 mm, superseded) + 6 (resubmission).
    assert_eq!(indexed.len(), 36);

    let (bytes, summary) = w.t.app.regulatory_package(&op, t, None, Vec::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("package.zip");
    std::fs::write(&zip, &bytes).unwrap();
    std::fs::copy(&zip, artifacts().join("regulatory-package.zip")).unwrap();
    let out = dir.path().join("unpacked");
    unzip(&zip, &out);
    let manifest = verify_against_manifest(&out);
    assert_eq!(sha256_hex(&std::fs::read(out.join("manifest.json")).unwrap()), summary.manifest_sha256);
    // Every indexed image is in the package, byte for byte as stored.
    let dcm: Vec<PathBuf> =
        walkdir(&out.join("images")).into_iter().filter(|p| p.extension().is_some_and(|e| e == "dcm")).collect();
    assert_eq!(dcm.len(), indexed.len());
    assert_eq!(manifest["counts"]["images"], json!(indexed.len()));
    let index: Value = serde_json::from_slice(&std::fs::read(out.join("images/index.json")).unwrap()).unwrap();
    for i in index["instances"].as_array().unwrap() {
        let stored = indexed.iter().find(|x| x.sop_instance_uid == i["sop_instance_uid"].as_str().unwrap()).unwrap();
        assert_eq!(sha256_hex(&std::fs::read(out.join(i["path"].as_str().unwrap())).unwrap()), stored.sha256);
    }
    // No PHI from the site's headers in any file (the images are the de-identified ones).
    for p in walkdir(&out) {
        let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).to_string();
        assert!(!text.contains("MRN-7731-PHI"), "{}", p.display());
    }
    // Reads, signatures and the audit trail are there to reconstruct the results.
    let reads: Value = serde_json::from_slice(&std::fs::read(out.join("reads/reads.json")).unwrap()).unwrap();
    assert_eq!(reads.as_array().unwrap().len(), 2);
    let b = reads.as_array().unwrap().iter().find(|r| r["subject_id"] == "102-001").unwrap();
    assert_eq!(b["adjudications"][0]["decision"], json!({"per_subject": {"reader": 2}}));
    assert_eq!(b["accepted_results"].as_array().unwrap().last().unwrap()["basis"], "adjudication");
    let signatures: Value = serde_json::from_slice(&std::fs::read(out.join("signatures.json")).unwrap()).unwrap();
    let meanings: Vec<&str> = signatures.as_array().unwrap().iter().map(|s| s["meaning"].as_str().unwrap()).collect();
    assert_eq!(meanings.iter().filter(|m| **m == "read completed").count(), 10);
    assert!(meanings.contains(&"adjudication decided"));
    let audit: Value = serde_json::from_slice(&std::fs::read(out.join("audit/audit_trail.json")).unwrap()).unwrap();
    assert!(audit.as_array().unwrap().iter().any(|r| r["action"] == "decide" && r["object_type"] == "adjudication"));
    // SDTM as the sponsor gets it (accepted reads) and with every reader's reads; the XPT reads back.
    let accepted = std::fs::read_to_string(out.join("sdtm/accepted/rs.csv")).unwrap();
    assert!(accepted.contains("-101-001") && accepted.contains("-102-001"), "{accepted}");
    assert!(accepted.contains("ADJUDICATOR"), "102-001 was adjudicated: {accepted}");
    let all = std::fs::read_to_string(out.join("sdtm/all-reads/rs.csv")).unwrap();
    assert!(all.contains("RADIOLOGIST 1") && all.contains("RADIOLOGIST 2"), "{all}");
    let rows = std::process::Command::new("python3")
        .args(["-c", "import pyreadstat,sys; df,_=pyreadstat.read_xport(sys.argv[1]); print(len(df))"])
        .arg(out.join("sdtm/accepted/rs.xpt"))
        .output()
        .unwrap();
    assert!(rows.status.success(), "{}", String::from_utf8_lossy(&rows.stderr));
    let csv_rows = accepted.lines().filter(|l| !l.trim().is_empty()).count() - 1;
    assert_eq!(String::from_utf8_lossy(&rows.stdout).trim(), csv_rows.to_string());
    // Making the package is itself audited, with the manifest's hash.
    let recs = {
        let mut tx = w.t.app.db().read().await.unwrap();
        tx.list_audit(&corelab_store::audit::AuditFilter {
            trial_id: Some(t),
            object_type: Some("regulatory_package".into()),
            object_id: None,
            actor_id: None,
            from: None,
            to: None,
            after_seq: None,
            limit: 100,
        })
        .await
        .unwrap()
    };
    let rec = recs.iter().rev().find(|r| r.object_type == "regulatory_package").expect("audited");
    assert!(rec.changes.contains(&summary.manifest_sha256));

    // One subject: only its images and reads.
    let (bytes, _) = w.t.app.regulatory_package(&op, t, Some("102-001"), Vec::new()).await.unwrap();
    let zip = dir.path().join("subject.zip");
    std::fs::write(&zip, &bytes).unwrap();
    let out = dir.path().join("subject");
    unzip(&zip, &out);
    verify_against_manifest(&out);
    assert_eq!(
        walkdir(&out.join("images")).into_iter().filter(|p| p.extension().is_some_and(|e| e == "dcm")).count(),
        18
    );
    assert!(!std::fs::read_to_string(out.join("reads/reads.json")).unwrap().contains("101-001"));
    let rs = std::fs::read_to_string(out.join("sdtm/accepted/rs.csv")).unwrap();
    assert!(rs.contains("-102-001") && !rs.contains("-101-001"), "only the subject's records: {rs}");
    // An unknown subject is refused with a clear message.
    let e = w.t.app.regulatory_package(&op, t, Some("999-999"), Vec::new()).await.unwrap_err();
    assert!(e.to_string().contains("no subject 999-999"), "{e}");

    // The command line: `corelab package` and `corelab report`, by the operator on the server.
    let run = |args: &[&str]| {
        let envs = w.t.env.process_env();
        tokio::task::block_in_place(|| {
            std::process::Command::new(crate::support::corelab_bin())
                .args(args)
                .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .output()
                .unwrap()
        })
    };
    let cli_zip = dir.path().join("cli.zip");
    let out = run(&["package", "--trial", "ACME-101", "--subject", "101-001", "--out", cli_zip.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("18 images"), "{stdout}");
    let unpacked = dir.path().join("cli");
    unzip(&cli_zip, &unpacked);
    verify_against_manifest(&unpacked);
    let out = run(&["package", "--trial", "ACME-101", "--out", cli_zip.to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("exists"));
    let html = dir.path().join("response.html");
    let out = run(&["report", "response", "--trial", "ACME-101", "--out", html.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(text.contains("data-change=\"-41.2 %\"") && text.contains("101-001"), "the operator sees identities");
    let pdf = dir.path().join("response.pdf");
    let out = run(&["report", "response", "--trial", "ACME-101", "--out", pdf.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF"));
    let out = run(&["report", "nonsense", "--trial", "ACME-101", "--out", pdf.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("choose one of site-performance"));
    w.t.stop().await;
}
