//! DICOMweb STOW-RS: a real client (dicomweb-client) storing a synthetic corpus with planted PHI,
//! pydicom's test files (every one stored or refused with a reason), malformed bodies (nothing
//! partial stored), size limits, token and session scopes, and bounded memory for a large part.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::ingest::{blobs_match, corpus, corpus_trial, corpus_trial_at, files, scan_phi};
use crate::support::{
    ADMIN_PASSWORD, Backend, Env, ServeProcess, TestApp, backends, client, spawn_app, spawn_app_configured, wait_ready,
};
use crate::world::check;

pub const BOUNDARY: &str = "corelab-test-7f3a9c";
pub const MULTIPART: &str = "multipart/related; type=\"application/dicom\"; boundary=corelab-test-7f3a9c";
const PASSWORD: &str = "Stow-Site-Pass-31";

/// A CT instance with PHI in its header, of subject `patient_id` (the Patient ID a site sends).
pub fn instance(patient_id: &str, study_date: &str, study_uid: &str, rows: u16, cols: u16) -> Vec<u8> {
    let sop = format!("1.2.826.0.1.3680043.8.498.{}", Uuid::new_v4().as_u128());
    let e = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
    let pixels = vec![7u8; rows as usize * cols as usize * 2];
    let obj = InMemDicomObject::from_element_iter(vec![
        e(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.2"),
        e(tags::SOP_INSTANCE_UID, VR::UI, &sop[..sop.len().min(64)]),
        e(tags::STUDY_DATE, VR::DA, study_date),
        e(tags::MODALITY, VR::CS, "CT"),
        e(tags::INSTITUTION_NAME, VR::LO, "Klinikum Stowhausen"),
        e(tags::SERIES_DESCRIPTION, VR::LO, "CAP PORTAL VENOUS"),
        e(tags::PATIENT_NAME, VR::PN, "STOWPHI^GERTRUDE"),
        e(tags::PATIENT_ID, VR::LO, patient_id),
        e(tags::PATIENT_BIRTH_DATE, VR::DA, "19570412"),
        e(tags::SLICE_THICKNESS, VR::DS, "2.5"),
        e(tags::STUDY_INSTANCE_UID, VR::UI, study_uid),
        e(tags::SERIES_INSTANCE_UID, VR::UI, &format!("{study_uid}.1")),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1_u16)),
        e(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(rows)),
        DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(cols)),
        e(tags::PIXEL_SPACING, VR::DS, "0.7\\0.7"),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16_u16)),
        DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(12_u16)),
        DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(11_u16)),
        DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(0_u16)),
        DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(pixels)),
    ]);
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1").implementation_class_uid("1.2.3.4"),
        )
        .unwrap();
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).unwrap();
    bytes
}

/// A fresh study UID.
pub fn study_uid() -> String {
    format!("2.25.{}", Uuid::new_v4().as_u128())
}

/// An instance of subject SITE01-0001 at its baseline visit (anchor 2023-03-03 in the corpus trial).
pub fn baseline_instance(study: &str) -> Vec<u8> {
    instance("SITE01-0001", "20230301", study, 32, 32)
}

/// A multipart/related body with [`BOUNDARY`]; each part with its Content-Type, or (for `None`)
/// only a Content-ID header. (A part with no header line at all is not accepted: see
/// docs/dicomweb.md.)
pub fn multipart(parts: &[(Option<&str>, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (ct, bytes) in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match ct {
            Some(ct) => out.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes()),
            None => out.extend_from_slice(b"Content-ID: <part@corelab.test>\r\n"),
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

/// Parts that are all `application/dicom`.
pub fn dicom_parts(instances: &[&[u8]]) -> Vec<u8> {
    let parts: Vec<(Option<&str>, &[u8])> = instances.iter().map(|b| (Some("application/dicom"), *b)).collect();
    multipart(&parts)
}

/// A STOW-RS answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub warnings: Vec<String>,
    pub body: Value,
}

impl Answer {
    /// SOP Instance UIDs of the Referenced SOP Sequence (stored, with or without warning).
    pub fn referenced(&self) -> Vec<String> {
        seq(&self.body, "00081199")
            .iter()
            .filter_map(|i| i["00081155"]["Value"][0].as_str().map(String::from))
            .collect()
    }
    /// Warning Reasons of the Referenced SOP Sequence, in order (0 for none).
    pub fn warning_reasons(&self) -> Vec<u64> {
        seq(&self.body, "00081199").iter().map(|i| i["00081196"]["Value"][0].as_u64().unwrap_or(0)).collect()
    }
    /// Failure Reasons of the Failed SOP Sequence, in order.
    pub fn failures(&self) -> Vec<u64> {
        seq(&self.body, "00081198").iter().map(|i| i["00081197"]["Value"][0].as_u64().unwrap()).collect()
    }
    pub fn warned(&self, needle: &str) -> bool {
        self.warnings.iter().any(|w| w.contains(needle))
    }
}

fn seq(body: &Value, tag: &str) -> Vec<Value> {
    body[tag]["Value"].as_array().cloned().unwrap_or_default()
}

/// POSTs `body` to `url` with an optional bearer token.
pub async fn post(c: &reqwest::Client, url: &str, token: Option<&str>, content_type: &str, body: Vec<u8>) -> Answer {
    let mut req = c.post(url).header("content-type", content_type).header("accept", "application/dicom+json");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.body(body).send().await.unwrap();
    let status = r.status().as_u16();
    let content_type = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let warnings = r.headers().get_all("warning").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, content_type, warnings, body }
}

/// Creates `username` with `role` (at `site`) in `trial`, logs them in and makes them an API token.
/// Returns their logged-in client and the token's secret.
pub async fn user_with_token(
    base: &str,
    admin: &reqwest::Client,
    trial: Uuid,
    username: &str,
    role: &str,
    site: Option<&str>,
) -> (reqwest::Client, String) {
    let url = |p: &str| format!("{base}{p}");
    let body = json!({"username": username, "display_name": username, "password": PASSWORD});
    let user = check(admin.post(url("/api/v1/users")).json(&body).send().await.unwrap(), 201).await;
    let body = json!({"user_id": user["user"]["id"], "role": role, "site_id": site});
    check(admin.post(url(&format!("/api/v1/trials/{trial}/grants"))).json(&body).send().await.unwrap(), 201).await;
    let c = client();
    let body = json!({"username": username, "password": PASSWORD});
    check(c.post(url("/api/v1/auth/login")).json(&body).send().await.unwrap(), 200).await;
    let body = json!({"name": "stow", "trial_id": trial, "role": role, "site_id": site, "expires_in_days": 30});
    let token = check(c.post(url("/api/v1/tokens")).json(&body).send().await.unwrap(), 201).await;
    (c, token["secret"].as_str().unwrap().to_string())
}

async fn instances(t: &TestApp, trial: Uuid) -> Vec<corelab_store::ingest::InstanceRow> {
    let mut tx = t.app.db().read().await.unwrap();
    tx.trial_instances(trial).await.unwrap()
}

async fn inbox(t: &TestApp, trial: Uuid) -> Vec<corelab_store::ingest::InboxRow> {
    let mut tx = t.app.db().read().await.unwrap();
    tx.inbox(trial).await.unwrap()
}

/// Staged files left behind (a part that was not stored must leave none).
fn staged(t: &TestApp) -> usize {
    let d = t.env.dir.path();
    [d.join("blobs/.staging"), d.join("staging")]
        .iter()
        .map(|p| std::fs::read_dir(p).map(|d| d.count()).unwrap_or(0))
        .sum()
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// True when python3 can import dicomweb_client (scripts/test-deps.sh installs it); with CI=true
/// its absence fails the test.
fn dicomweb_client_available() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import dicomweb_client, pydicom"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok || !ci(), "CI=true but python3 cannot import dicomweb_client (run scripts/test-deps.sh)");
    if !ok {
        eprintln!("note: dicomweb-client is not installed; skipping");
    }
    ok
}

/// Runs the dicomweb-client script; returns its JSON answer.
async fn dicomweb_client(base: &str, token: &str, study: Option<&str>, files: &[PathBuf]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/stow_client.py");
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(script).arg(format!("{base}/dicomweb")).arg(token);
    if let Some(s) = study {
        cmd.args(["--study", s]);
    }
    let out = cmd.args(files).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() || out.status.code() == Some(3),
        "stow_client.py failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn uids_of(answer: &Value, tag: &str) -> Vec<String> {
    seq(answer, tag).iter().filter_map(|i| i["00081155"]["Value"][0].as_str().map(String::from)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dicomweb_client_stores_a_corpus_deidentified_indexed_and_without_phi() {
    if !dicomweb_client_available() {
        return;
    }
    let Some((corpus_dir, bench)) = corpus(&[
        "--subjects",
        "2",
        "--visits",
        "2",
        "--slices",
        "4",
        "--rows",
        "64",
        "--cols",
        "64",
        "--mr",
        "--mr-slices",
        "2",
        "--mr-rows",
        "64",
        "--seed",
        "11",
    ]) else {
        return;
    };
    let all = files(corpus_dir.path(), "");
    let (s1, s2): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|p| std::fs::read(p).unwrap().windows(11).any(|w| w == b"SITE01-0001"));
    assert!(!s1.is_empty() && !s2.is_empty());
    for backend in backends() {
        let t = spawn_app(backend).await;
        let trial = corpus_trial(&t).await;
        let base = t.url("");
        let (_, token) = user_with_token(&base, &t.client, trial, "site1", "site_user", Some("SITE01")).await;

        // Site 1 stores its subject's CT and MR studies (two visits) in one request.
        let answer = dicomweb_client(&base, &token, None, &s1).await;
        assert!(answer.get("http_error").is_none(), "{answer}");
        assert!(answer.get("00081198").is_none(), "{backend:?}: nothing may fail: {answer}");
        let referenced = uids_of(&answer, "00081199");
        assert_eq!(referenced.len(), s1.len(), "{answer}");
        assert!(seq(&answer, "00081199").iter().all(|i| i.get("00081196").is_none()), "{answer}");

        // The index holds exactly the instances sent, under the UIDs the response named.
        let stored = blobs_match(&t, trial).await;
        assert_eq!(stored, s1.len(), "{backend:?}");
        let mut indexed: Vec<String> = instances(&t, trial).await.into_iter().map(|i| i.sop_instance_uid).collect();
        let mut named = referenced.clone();
        indexed.sort();
        named.sort();
        assert_eq!(indexed, named, "{backend:?}: the response names the stored (de-identified) UIDs");
        // None of them is an original UID.
        for f in &s1 {
            let bytes = std::fs::read(f).unwrap();
            for uid in &named {
                assert!(!bytes.windows(uid.len()).any(|w| w == uid.as_bytes()), "original UID {uid} returned");
            }
        }
        let studies = {
            let mut tx = t.app.db().read().await.unwrap();
            tx.trial_studies(trial).await.unwrap()
        };
        let visits: Vec<&str> = studies.iter().map(|s| s.visit_id.as_str()).collect();
        assert!(visits.contains(&"V1") && visits.contains(&"V2"), "{visits:?}");

        // Site 1 sends site 2's subject by mistake: stored in the inbox, answered with a warning.
        let answer = dicomweb_client(&base, &token, None, &s2).await;
        assert_eq!(uids_of(&answer, "00081199").len(), s2.len(), "{answer}");
        assert!(seq(&answer, "00081199").iter().all(|i| i["00081196"]["Value"][0] == 0xB000), "{answer}");
        let waiting = inbox(&t, trial).await;
        assert_eq!(waiting.len(), s2.len());
        assert!(waiting.iter().all(|i| i.reason.contains("another site") && i.source == "stow"));

        // A re-send is acknowledged without a second copy.
        let answer = dicomweb_client(&base, &token, None, &s1).await;
        let mut again = uids_of(&answer, "00081199");
        again.sort();
        assert_eq!(again, named);
        assert_eq!(instances(&t, trial).await.len(), s1.len());

        // One audit record per stored instance, in the site user's name.
        let mut tx = t.app.db().read().await.unwrap();
        let recs = tx
            .list_audit(&corelab_store::audit::AuditFilter {
                trial_id: Some(trial),
                object_type: Some("instance".into()),
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        drop(tx);
        assert_eq!(recs.len(), s1.len());
        assert!(recs.iter().all(|r| r.actor_name == "site1" && r.action == "create"));

        // No planted PHI in any stored byte: blobs, database, WAL, staging.
        if backend == Backend::SqliteLocal {
            let (clean, report) = scan_phi(&bench, &corpus_dir.path().join("phi_manifest.json"), &[t.env.dir.path()]);
            assert!(clean, "PHI found in storage:\n{report}");
        }
        let m = t.get("/metrics").await.text().await.unwrap();
        assert!(m.contains("corelab_ingest_instances_total{source=\"stow\",outcome=\"stored\"}"), "{m}");
        assert!(m.contains("corelab_ingest_instances_total{source=\"stow\",outcome=\"duplicate\"}"), "{m}");
        assert_eq!(staged(&t), 0);
        t.stop().await;
    }
}

/// Reads `OUT.manifest.tsv` of `gen_corpus.py testdata`: file name → transfer syntax.
fn manifest(dir: &Path) -> std::collections::HashMap<String, String> {
    let path = PathBuf::from(format!("{}.manifest.tsv", dir.display()));
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let file = cols.iter().find(|c| c.ends_with(".dcm"))?;
            let ts = cols.iter().find(|c| c.starts_with("1.2.840.10008.1.2"))?;
            Some((Path::new(file).file_name()?.to_string_lossy().to_string(), ts.to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pydicom_test_files_are_each_stored_or_refused_with_a_reason() {
    let Some(bench) = crate::ingest::bench_dir() else {
        assert!(!ci(), "CI=true but shared/bench was not found");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("variety");
    let out = std::process::Command::new("python3")
        .arg(bench.join("gen_corpus.py"))
        .arg("testdata")
        .arg(&out_dir)
        .output()
        .unwrap();
    if !out.status.success() {
        assert!(!ci(), "gen_corpus.py testdata failed: {}", String::from_utf8_lossy(&out.stderr));
        eprintln!("note: gen_corpus.py testdata unavailable; skipping");
        return;
    }
    let all = files(&out_dir, "");
    assert!(all.len() > 100, "{}", all.len());
    let syntaxes = manifest(&out_dir);

    let t = spawn_app(Backend::SqliteLocal).await;
    let trial = corpus_trial(&t).await;
    let base = t.url("");
    let url = t.url("/dicomweb/studies");
    let (_, token) = user_with_token(&base, &t.client, trial, "site1", "site_user", Some("SITE01")).await;
    let c = client();
    let (mut ok, mut refused) = (0, Vec::new());
    for f in &all {
        let bytes = std::fs::read(f).unwrap();
        let a = post(&c, &url, Some(&token), MULTIPART, dicom_parts(&[&bytes])).await;
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        match a.status {
            200 | 202 => {
                assert_eq!(a.referenced().len(), 1, "{name}: {a:?}");
                assert!(a.failures().is_empty(), "{name}: {a:?}");
                ok += 1;
            }
            409 => {
                let reasons = a.failures();
                assert_eq!(reasons.len(), 1, "{name}: {a:?}");
                assert!([0xA700, 0xC000, 0xC111].contains(&reasons[0]), "{name}: {a:?}");
                assert!(a.warned("part 1"), "{name}: a refusal says why: {a:?}");
                refused.push(format!(
                    "{name} ({}): {}",
                    syntaxes.get(&name).map(String::as_str).unwrap_or("?"),
                    a.warnings.join(" | ")
                ));
            }
            other => panic!("{name}: unexpected status {other}: {a:?}"),
        }
        assert_eq!(a.content_type, "application/dicom+json");
    }
    eprintln!("pydicom test files: {ok} stored, {} refused:\n{}", refused.len(), refused.join("\n"));
    assert!(ok > all.len() / 2, "most test files are readable: {ok} of {}", all.len());

    // The same files in batches of 25: every part is accounted for, with the same outcome counts.
    let (mut batch_ok, mut batch_failed) = (0, 0);
    for chunk in all.chunks(25) {
        let bodies: Vec<Vec<u8>> = chunk.iter().map(|f| std::fs::read(f).unwrap()).collect();
        let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        let a = post(&c, &url, Some(&token), MULTIPART, dicom_parts(&refs)).await;
        assert!([200, 202, 409].contains(&a.status), "{a:?}");
        assert_eq!(a.referenced().len() + a.failures().len(), chunk.len(), "{a:?}");
        batch_ok += a.referenced().len();
        batch_failed += a.failures().len();
    }
    assert_eq!((batch_ok, batch_failed), (ok, refused.len()));

    // The server keeps serving: ready, and a good instance is stored and filed.
    assert_eq!(t.get("/readyz").await.status(), 200);
    let a = post(&c, &url, Some(&token), MULTIPART, dicom_parts(&[&baseline_instance(&study_uid())])).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(instances(&t, trial).await.len(), 1);
    assert_eq!(staged(&t), 0);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_their_status_and_store_nothing_partial() {
    let t = spawn_app(Backend::SqliteLocal).await;
    let trial = corpus_trial(&t).await;
    let (_, token) = user_with_token(&t.url(""), &t.client, trial, "site1", "site_user", Some("SITE01")).await;
    let tok = Some(token.as_str());
    let url = t.url("/dicomweb/studies");
    let c = client();
    let study = study_uid();
    let good = || baseline_instance(&study);

    // Not multipart/related of DICOM instances: 415 with a message, nothing read.
    for ct in [
        "application/dicom",
        "multipart/form-data; boundary=corelab-test-7f3a9c",
        "multipart/related; type=\"application/dicom+json\"; boundary=corelab-test-7f3a9c",
        "text/plain",
    ] {
        let a = post(&c, &url, tok, ct, dicom_parts(&[&good()])).await;
        assert_eq!(a.status, 415, "{ct}: {a:?}");
        assert!(a.body["error"]["message"].as_str().unwrap().contains("multipart/related"), "{a:?}");
    }
    // No boundary parameter.
    let a = post(&c, &url, tok, "multipart/related; type=\"application/dicom\"", dicom_parts(&[&good()])).await;
    assert_eq!(a.status, 400, "{a:?}");
    // A boundary that is not the one in the body.
    let ct = "multipart/related; type=\"application/dicom\"; boundary=not-the-boundary";
    let a = post(&c, &url, tok, ct, dicom_parts(&[&good(), &good()])).await;
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.warned("boundary"), "{a:?}");
    assert!(a.referenced().is_empty());
    // No parts at all.
    let a = post(&c, &url, tok, MULTIPART, format!("--{BOUNDARY}--\r\n").into_bytes()).await;
    assert_eq!(a.status, 400, "{a:?}");
    assert!(instances(&t, trial).await.is_empty());

    // A body cut inside its second part: the first is stored and reported, the second is not.
    let (first, second) = (good(), good());
    let body = dicom_parts(&[&first, &second]);
    let cut = body.len() - second.len() / 2;
    let a = post(&c, &url, tok, MULTIPART, body[..cut].to_vec()).await;
    assert_eq!(a.status, 400, "{a:?}");
    assert_eq!(a.content_type, "application/dicom+json");
    assert_eq!(a.referenced().len(), 1, "{a:?}");
    assert_eq!(a.failures(), vec![0xC000], "{a:?}");
    assert!(a.warned("part 2") && a.warned("truncated"), "{a:?}");
    let rows = instances(&t, trial).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].sop_instance_uid, a.referenced()[0]);
    // Cut just before the closing delimiter: the last part cannot be known to be whole.
    let body = dicom_parts(&[&good()]);
    let a = post(&c, &url, tok, MULTIPART, body[..body.len() - BOUNDARY.len() - 8].to_vec()).await;
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.referenced().is_empty(), "{a:?}");
    assert_eq!(instances(&t, trial).await.len(), 1);

    // A non-DICOM part and a part of another media type among good ones: 202, both reported.
    let (a1, a2) = (good(), good());
    let body = multipart(&[
        (Some("application/dicom"), &a1),
        (Some("application/dicom"), b"this is not a DICOM instance at all"),
        (Some("application/dicom+json"), b"{}"),
        (None, &a2),
    ]);
    let a = post(&c, &url, tok, MULTIPART, body).await;
    assert_eq!(a.status, 202, "{a:?}");
    assert_eq!(a.referenced().len(), 2, "{a:?}");
    assert_eq!(a.failures(), vec![0xC000, 0xC000], "{a:?}");
    assert!(a.warned("part 2") && a.warned("part 3") && a.warned("application/dicom+json"), "{a:?}");
    let at = |n: &str| a.warnings.iter().position(|w| w.contains(n)).unwrap();
    assert!(at("part 2:") < at("part 3:"), "warnings follow the part order: {a:?}");
    assert_eq!(instances(&t, trial).await.len(), 3);

    // Nothing storable: 409.
    let a = post(&c, &url, tok, MULTIPART, dicom_parts(&[b"garbage one", &vec![0xAB; 40_000]])).await;
    assert_eq!(a.status, 409, "{a:?}");
    assert_eq!(a.failures(), vec![0xC000, 0xC000]);

    // The same UID with other content: 0xC111, kept for review, the rest of the request stored.
    let original = good();
    let a = post(&c, &url, tok, MULTIPART, dicom_parts(&[&original])).await;
    assert_eq!(a.status, 200, "{a:?}");
    let mut altered = original.clone();
    let n = altered.len();
    for b in &mut altered[n - 100..] {
        *b ^= 0x5a;
    }
    let a = post(&c, &url, tok, MULTIPART, dicom_parts(&[&altered, &good()])).await;
    assert_eq!(a.status, 202, "{a:?}");
    assert_eq!(a.failures(), vec![0xC111], "{a:?}");
    assert!(a.warned("already stored"), "{a:?}");
    assert_eq!(inbox(&t, trial).await.iter().filter(|i| i.state == "conflict").count(), 1);

    // A client that hangs up inside a part: nothing of that part is kept.
    let before = instances(&t, trial).await.len();
    let whole = good();
    let body = dicom_parts(&[&good(), &whole]);
    let half = body.len() - whole.len() / 2;
    let mut sock = tokio::net::TcpStream::connect(t.addr).await.unwrap();
    let head = format!(
        "POST /dicomweb/studies HTTP/1.1\r\nHost: corelab\r\nAuthorization: Bearer {token}\r\nContent-Type: {MULTIPART}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&body[..half]).await.unwrap();
    sock.shutdown().await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), sock.read_to_end(&mut reply)).await;
    let mut after = 0;
    for _ in 0..50 {
        after = instances(&t, trial).await.len();
        if after > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(after, before + 1, "the whole first part is stored, the cut one is not");

    // Nothing half-written is left, and the server keeps serving.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(staged(&t), 0);
    let a = post(&c, &url, tok, MULTIPART, dicom_parts(&[&good()])).await;
    assert_eq!(a.status, 200, "{a:?}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn studies_study_accepts_only_that_study() {
    let t = spawn_app(Backend::SqliteLocal).await;
    let trial = corpus_trial(&t).await;
    let (_, token) = user_with_token(&t.url(""), &t.client, trial, "site1", "site_user", Some("SITE01")).await;
    let c = client();
    let (x, y) = (study_uid(), study_uid());
    let body = dicom_parts(&[&baseline_instance(&x), &baseline_instance(&y), &baseline_instance(&x)]);
    let a = post(&c, &t.url(&format!("/dicomweb/studies/{x}")), Some(&token), MULTIPART, body).await;
    assert_eq!(a.status, 202, "{a:?}");
    assert_eq!(a.referenced().len(), 2);
    assert_eq!(a.failures(), vec![0xA900], "{a:?}");
    assert!(a.warned("part 2"), "{a:?}");
    let failed = seq(&a.body, "00081198");
    let named = failed[0]["00081155"]["Value"][0].as_str().unwrap();
    assert!(named.starts_with("2.25."), "named as corelab would store it: {named}");
    let rows = instances(&t, trial).await;
    assert_eq!(rows.len(), 2);
    assert!(inbox(&t, trial).await.is_empty(), "the other study's instance is not kept anywhere");
    // The study may also be named by its stored (de-identified) UID.
    let mut tx = t.app.db().read().await.unwrap();
    let stored_uid = tx.trial_studies(trial).await.unwrap()[0].study_instance_uid.clone();
    drop(tx);
    let a = post(
        &c,
        &t.url(&format!("/dicomweb/studies/{stored_uid}")),
        Some(&token),
        MULTIPART,
        dicom_parts(&[&baseline_instance(&x)]),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    // Only instances of other studies: 409.
    let a = post(
        &c,
        &t.url(&format!("/dicomweb/studies/{x}")),
        Some(&token),
        MULTIPART,
        dicom_parts(&[&baseline_instance(&y)]),
    )
    .await;
    assert_eq!(a.status, 409, "{a:?}");
    assert_eq!(instances(&t, trial).await.len(), 3);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_limits_refuse_the_oversized_part_and_keep_what_came_before() {
    let env = Env::new(Backend::SqliteLocal).await;
    let t = spawn_app_configured(env, |c| {
        c.dicomweb.max_part_bytes = 100_000;
        c.dicomweb.max_request_bytes = 300_000;
    })
    .await;
    let trial = corpus_trial(&t).await;
    let (_, token) = user_with_token(&t.url(""), &t.client, trial, "site1", "site_user", Some("SITE01")).await;
    let c = client();
    let url = t.url("/dicomweb/studies");
    let study = study_uid();
    let small = || instance("SITE01-0001", "20230301", &study, 32, 32);
    let big = instance("SITE01-0001", "20230301", &study, 256, 256);
    assert!(big.len() > 100_000);
    let a = post(&c, &url, Some(&token), MULTIPART, dicom_parts(&[&small(), &big, &small()])).await;
    assert_eq!(a.status, 413, "{a:?}");
    assert_eq!(a.referenced().len(), 1, "{a:?}");
    assert_eq!(a.failures(), vec![0xC000], "{a:?}");
    assert!(a.warned("dicomweb.max_part_bytes"), "{a:?}");
    assert_eq!(instances(&t, trial).await.len(), 1);
    // Many small parts over the request limit: the parts before the limit are stored.
    let parts: Vec<Vec<u8>> = (0..20).map(|_| instance("SITE01-0001", "20230301", &study, 100, 100)).collect();
    assert!(parts[0].len() > 20_000 && parts[0].len() < 100_000);
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let a = post(&c, &url, Some(&token), MULTIPART, dicom_parts(&refs)).await;
    assert_eq!(a.status, 413, "{a:?}");
    assert!(a.warned("dicomweb.max_request_bytes"), "{a:?}");
    let stored = a.referenced().len();
    assert!(stored > 0 && stored < 20, "{a:?}");
    assert_eq!(instances(&t, trial).await.len(), 1 + stored);
    assert_eq!(staged(&t), 0);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_sessions_store_only_into_their_own_site() {
    let t = spawn_app(Backend::SqliteLocal).await;
    let trial = corpus_trial(&t).await;
    let base = t.url("");
    let (site1, token1) = user_with_token(&base, &t.client, trial, "site1", "site_user", Some("SITE01")).await;
    let (_, reader) = user_with_token(&base, &t.client, trial, "reader1", "reader", None).await;
    let (_, monitor) = user_with_token(&base, &t.client, trial, "monitor1", "monitor", None).await;
    let (_, manager) = user_with_token(&base, &t.client, trial, "manager1", "trial_manager", None).await;
    let c = client();
    let body = || dicom_parts(&[&baseline_instance(&study_uid())]);
    let at = |q: &str| t.url(&format!("/dicomweb/studies{q}"));

    // No credentials.
    assert_eq!(post(&c, &at(""), None, MULTIPART, body()).await.status, 401);
    // A site 1 token cannot name site 2, nor another trial.
    let a = post(&c, &at("?site=SITE02"), Some(&token1), MULTIPART, body()).await;
    assert_eq!(a.status, 404, "{a:?}");
    let a = post(&c, &at(&format!("?trial={}", Uuid::new_v4())), Some(&token1), MULTIPART, body()).await;
    assert_eq!(a.status, 404, "{a:?}");
    // Readers see no site at all; monitors see it but may not send images (audited).
    let a = post(&c, &at("?site=SITE01"), Some(&reader), MULTIPART, body()).await;
    assert_eq!(a.status, 404, "{a:?}");
    let before = {
        let mut tx = t.app.db().read().await.unwrap();
        tx.last_audit_seq().await.unwrap()
    };
    let a = post(&c, &at("?site=SITE01"), Some(&monitor), MULTIPART, body()).await;
    assert_eq!(a.status, 403, "{a:?}");
    let mut tx = t.app.db().read().await.unwrap();
    let denied = tx
        .list_audit(&corelab_store::audit::AuditFilter { after_seq: Some(before), limit: 10, ..Default::default() })
        .await
        .unwrap();
    drop(tx);
    assert_eq!(denied.len(), 1);
    assert_eq!((denied[0].action.as_str(), denied[0].actor_name.as_str()), ("permission_denied", "monitor1"));
    assert!(instances(&t, trial).await.is_empty());

    // The site 1 token stores into site 1 (with or without naming it).
    let a = post(&c, &at(""), Some(&token1), MULTIPART, body()).await;
    assert_eq!(a.status, 200, "{a:?}");
    let a = post(&c, &at(&format!("?trial={trial}&site=SITE01")), Some(&token1), MULTIPART, body()).await;
    assert_eq!(a.status, 200, "{a:?}");
    // Clients that only speak HTTP Basic send the token as the password (any user name).
    let basic = |password: &str| {
        c.post(at("")).basic_auth("forwarder", Some(password)).header("content-type", MULTIPART).body(body())
    };
    assert_eq!(basic(&token1).send().await.unwrap().status(), 200);
    let wrong = basic("clt_not-a-token").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let garbled = c.post(at("")).header("authorization", "Basic %%%").body(body()).send().await.unwrap();
    assert_eq!(garbled.status(), 401);
    assert!(garbled.text().await.unwrap().contains("USER:TOKEN"));
    // A logged-in site user names trial and site; another site is not found.
    let a = post(&site1, &at(&format!("?trial={trial}&site=SITE01")), None, MULTIPART, body()).await;
    assert_eq!(a.status, 200, "{a:?}");
    let a = post(&site1, &at(&format!("?trial={trial}&site=SITE02")), None, MULTIPART, body()).await;
    assert_eq!(a.status, 404, "{a:?}");
    let a = post(&site1, &at(""), None, MULTIPART, body()).await;
    assert_eq!(a.status, 422, "{a:?}");
    // A trial manager's token has no site: it must name one.
    let a = post(&c, &at(""), Some(&manager), MULTIPART, body()).await;
    assert_eq!(a.status, 422, "{a:?}");
    let a = post(&c, &at("?site=SITE02"), Some(&manager), MULTIPART, body()).await;
    assert_eq!(a.status, 202, "site 1's subject sent for site 2 waits in the inbox: {a:?}");
    assert_eq!(a.warning_reasons(), vec![0xB000]);
    assert!(a.warned("another site"), "{a:?}");

    let rows = instances(&t, trial).await;
    assert_eq!(rows.len(), 4);
    let waiting = inbox(&t, trial).await;
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].site_id, "SITE02");
    t.stop().await;
}

/// Peak resident memory of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_instance_streams_through_without_the_request_in_memory() {
    let env = Env::new(Backend::SqliteLocal).await;
    let server = ServeProcess::start(&env.process_env(), env.dir.path());
    let base = server.url("");
    wait_ready(&base).await;
    let admin = client();
    let r = admin
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    check(r, 200).await;
    let trial = corpus_trial_at(&base, &admin).await;
    let (_, token) = user_with_token(&base, &admin, trial, "site1", "site_user", Some("SITE01")).await;
    let c = client();
    let url = format!("{base}/dicomweb/studies");
    // Warm up (first ingest, index writer, pools) before reading the baseline.
    let a = post(&c, &url, Some(&token), MULTIPART, dicom_parts(&[&baseline_instance(&study_uid())])).await;
    assert_eq!(a.status, 200, "{a:?}");
    // Reset the peak (argon2 during logins peaks higher than ingest should) to the current RSS.
    let pid = server.child.id();
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let baseline = peak_rss(pid);
    // About 200 MB of pixel data in one part, plus a small one after it.
    let big = instance("SITE01-0001", "20230301", &study_uid(), 10_000, 10_000);
    let size = big.len() as u64;
    let body = dicom_parts(&[&big, &baseline_instance(&study_uid())]);
    drop(big);
    let c = reqwest::Client::builder().timeout(Duration::from_secs(600)).build().unwrap();
    let a = post(&c, &url, Some(&token), MULTIPART, body).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.referenced().len(), 2);
    let peak = peak_rss(pid);
    eprintln!("corelab serve peak RSS: {} MB before, {} MB after a {} MB part", baseline >> 20, peak >> 20, size >> 20);
    assert!(
        peak < baseline + 64 * 1024 * 1024,
        "peak RSS grew by {} MB for a {} MB part",
        (peak - baseline) >> 20,
        size >> 20
    );
}
