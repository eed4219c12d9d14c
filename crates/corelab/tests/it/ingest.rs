//! Ingest over DIMSE with real clients (dcmtk storescu, pynetdicom) on synthetic trial data with
//! planted PHI: the index holds exactly what was sent, blobs match their hashes, nothing of the
//! planted PHI is stored, unmatched instances wait in the inbox, duplicates are not stored twice.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::support::{ADMIN_PASSWORD, Backend, TestApp, backends, dcmtk, spawn_app};
use crate::world::check;

/// The shared bench scripts: $TEST_BENCH_DIR, else `shared/bench` beside or above the workspace.
pub fn bench_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("TEST_BENCH_DIR") {
        return Some(PathBuf::from(d));
    }
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    loop {
        for cand in [dir.join("shared/bench"), dir.join("../shared/bench")] {
            if cand.join("gen_corpus.py").is_file() {
                return Some(cand);
            }
        }
        if !dir.pop() {
            return None;
        }
    }
}

/// Generates `gen_corpus.py synthetic` data into a temp dir, or skips (fails under CI=true).
pub fn corpus(args: &[&str]) -> Option<(tempfile::TempDir, PathBuf)> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let bench = match bench_dir() {
        Some(b) => b,
        None => {
            assert!(!ci, "CI=true but shared/bench/gen_corpus.py was not found");
            eprintln!("note: shared/bench not found; skipping");
            return None;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .arg(bench.join("gen_corpus.py"))
        .arg("synthetic")
        .arg(dir.path())
        .args(args)
        .output()
        .unwrap();
    if !out.status.success() {
        assert!(!ci, "gen_corpus.py failed: {}", String::from_utf8_lossy(&out.stderr));
        eprintln!("note: gen_corpus.py unavailable ({}); skipping", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    Some((dir, bench))
}

/// Files under `dir` whose path contains `needle`.
pub fn files(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "dcm") && p.to_string_lossy().contains(needle) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A trial matching the synthetic corpus, both sites qualified, the corpus's subjects enrolled.
pub async fn corpus_trial(t: &TestApp) -> Uuid {
    t.login_admin().await;
    let trial = corpus_trial_at(&t.url(""), &t.client).await;
    // DIMSE routing reloads every few seconds; wait until the new AE titles are known.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    trial
}

/// [`corpus_trial`] against any corelab at `base`, with `admin` logged in as the administrator.
pub async fn corpus_trial_at(base: &str, admin: &reqwest::Client) -> Uuid {
    let url = |p: &str| format!("{base}{p}");
    let charter =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/corpus-trial.toml"))
            .unwrap();
    let r = admin.post(url("/api/v1/trials")).json(&json!({"charter": charter})).send().await.unwrap();
    let trial: Uuid = check(r, 201).await["id"].as_str().unwrap().parse().unwrap();
    for site in ["SITE01", "SITE02"] {
        let r = admin
            .post(url(&format!("/api/v1/trials/{trial}/sites/{site}/qualification/scans")))
            .body(crate::world::ct_instance("PHANTOM", "2.5"))
            .send()
            .await
            .unwrap();
        check(r, 201).await;
        let path = format!("/api/v1/trials/{trial}/sites/{site}/qualification/decision");
        let body = json!({"approve": true, "username": "admin", "password": ADMIN_PASSWORD});
        check(admin.post(url(&path)).json(&body).send().await.unwrap(), 200).await;
    }
    for (site, subject, anchor) in [("SITE01", "SITE01-0001", "2023-03-03"), ("SITE02", "SITE02-0002", "2023-08-06")] {
        let body = json!({"site_id": site, "subject_id": subject, "anchor_date": anchor});
        check(admin.post(url(&format!("/api/v1/trials/{trial}/subjects"))).json(&body).send().await.unwrap(), 201)
            .await;
    }
    trial
}

/// Runs dcmtk storescu from `calling` to the trial's AE; returns (success, stderr).
pub async fn storescu(t: &TestApp, calling: &str, called: &str, files: &[PathBuf], extra: &[&str]) -> (bool, String) {
    let bin = dcmtk("storescu").unwrap();
    let out = tokio::process::Command::new(bin)
        .args(["-aet", calling, "-aec", called, "-nh"])
        .args(extra)
        .arg("127.0.0.1")
        .arg(t.dicom_addr.port().to_string())
        .args(files)
        .env("TCP_NODELAY", "1")
        .output()
        .await
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
}

/// Every stored blob's bytes hash to its recorded SHA-256.
pub async fn blobs_match(t: &TestApp, trial: Uuid) -> usize {
    let mut tx = t.app.db().read().await.unwrap();
    let rows = tx.trial_instances(trial).await.unwrap();
    drop(tx);
    for r in &rows {
        let bytes = t.app.blobs().get_bytes(&r.blob_key).await.unwrap();
        let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sha, r.sha256, "blob {} altered", r.blob_key);
    }
    rows.len()
}

pub fn scan_phi(bench: &Path, manifest: &Path, dirs: &[&Path]) -> (bool, String) {
    let out = Command::new("python3").arg(bench.join("scan_phi.py")).arg(manifest).args(dirs).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storescu_stores_deidentified_indexed_instances_and_inboxes_the_rest() {
    let Some(_) = dcmtk("storescu") else { return };
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
        "7",
    ]) else {
        return;
    };
    for backend in backends() {
        let t = spawn_app(backend).await;
        let trial = corpus_trial(&t).await;
        let site1 = files(corpus_dir.path(), "");
        let (s1, s2): (Vec<_>, Vec<_>) = site1.into_iter().partition(|p| {
            let bytes = std::fs::read(p).unwrap();
            bytes.windows(11).any(|w| w == b"SITE01-0001")
        });
        assert!(!s1.is_empty() && !s2.is_empty());
        // An unknown calling AE is refused at association.
        let (ok, err) = storescu(&t, "STRANGER", "ACMEONC301", &s1[..1], &[]).await;
        assert!(!ok, "a stranger's association must be refused");
        assert!(err.contains("Calling AE Title Not Recognized"), "{err}");
        let metrics_before = t.get("/metrics").await.text().await.unwrap();
        // Site 1 sends its subject's studies (CT and MR, two visits) over one association.
        let (ok, err) = storescu(&t, "SITE01_CT", "ACMEONC301", &s1, &[]).await;
        assert!(ok, "{err}");
        // Site 1 also sends site 2's subject by mistake: kept in the inbox, not filed.
        let (ok, err) = storescu(&t, "SITE01_CT", "ACMEONC301", &s2, &[]).await;
        assert!(ok, "{err}");
        // A re-send is acknowledged without a second copy.
        let (ok, err) = storescu(&t, "SITE01_CT", "ACMEONC301", &s1, &[]).await;
        assert!(ok, "{err}");

        let stored = blobs_match(&t, trial).await;
        assert_eq!(stored, s1.len(), "{backend:?}: exactly the instances sent are indexed");
        let mut tx = t.app.db().read().await.unwrap();
        let studies = tx.trial_studies(trial).await.unwrap();
        let visits: Vec<&str> = studies.iter().map(|s| s.visit_id.as_str()).collect();
        assert!(visits.contains(&"V1") && visits.contains(&"V2"), "{visits:?}");
        let inbox = tx.inbox(trial).await.unwrap();
        drop(tx);
        assert_eq!(inbox.len(), s2.len(), "{backend:?}: each mis-sent instance waits in the inbox once");
        assert!(inbox.iter().all(|i| i.reason.contains("another site")), "{:?}", inbox[0].reason);

        // No planted PHI in any stored byte: blobs, database, WAL, staging.
        if backend == Backend::SqliteLocal {
            let (clean, report) = scan_phi(&bench, &corpus_dir.path().join("phi_manifest.json"), &[t.env.dir.path()]);
            assert!(clean, "PHI found in storage:\n{report}");
        }
        // Audit: one record per stored instance, named after the sending AE.
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
        assert_eq!(recs.len(), s1.len());
        assert!(recs.iter().all(|r| r.actor_name == "dicom:SITE01_CT"));
        drop(tx);
        let m = t.get("/metrics").await.text().await.unwrap();
        assert!(m.contains("corelab_ingest_instances_total{source=\"dimse\",outcome=\"duplicate\"}"), "{m}");
        // Every instance sent was timed through each stage of its storage's pipeline.
        let stages: &[&str] = match backend {
            Backend::SqliteLocal => &["header", "match", "deidentify", "blob_flush", "index"],
            Backend::PgS3 => &["header", "match", "deidentify", "store_and_index"],
        };
        for stage in stages {
            let timed = stage_count(&m, stage) - stage_count(&metrics_before, stage);
            assert!(timed >= (2 * s1.len() + s2.len()) as f64, "{backend:?}: {timed} instances timed in {stage}");
        }
        t.stop().await;
    }
}

/// How many DIMSE instances `/metrics` text `m` has timed in ingest stage `stage` (0 before the first).
fn stage_count(m: &str, stage: &str) -> f64 {
    let series = format!("corelab_ingest_stage_seconds_count{{source=\"dimse\",stage=\"{stage}\"}} ");
    m.lines().find_map(|l| l.strip_prefix(series.as_str())).map_or(0.0, |v| v.trim().parse().unwrap())
}

/// Opens an association as SITE01_CT to the trial's AE title and sends a C-STORE-RQ command for a
/// CT image; returns the association and its presentation context.
fn begin_raw_store(port: u16) -> (dicom_ul::ClientAssociation<std::net::TcpStream>, u8) {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::{tags, uids};
    use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};
    let mut assoc = dicom_ul::ClientAssociationOptions::new()
        .calling_ae_title("SITE01_CT")
        .called_ae_title("ACMEONC301")
        .with_presentation_context(uids::CT_IMAGE_STORAGE, vec![uids::EXPLICIT_VR_LITTLE_ENDIAN])
        .establish(("127.0.0.1", port))
        .unwrap();
    let pc = assoc.presentation_contexts()[0].id;
    let cmd = corelab_dimse::encode_command(vec![
        DataElement::new(tags::AFFECTED_SOP_CLASS_UID, VR::UI, PrimitiveValue::from(uids::CT_IMAGE_STORAGE)),
        DataElement::new(tags::COMMAND_FIELD, VR::US, PrimitiveValue::from(0x0001_u16)),
        DataElement::new(tags::MESSAGE_ID, VR::US, PrimitiveValue::from(1_u16)),
        DataElement::new(tags::PRIORITY, VR::US, PrimitiveValue::from(0_u16)),
        DataElement::new(tags::COMMAND_DATA_SET_TYPE, VR::US, PrimitiveValue::from(0x0000_u16)),
        DataElement::new(tags::AFFECTED_SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from("1.2.826.0.1.3680043.8.498.99")),
    ])
    .unwrap();
    let data =
        vec![PDataValue { presentation_context_id: pc, value_type: PDataValueType::Command, is_last: true, data: cmd }];
    assoc.send(&Pdu::PData { data }).unwrap();
    (assoc, pc)
}

/// A raw DIMSE client: sends one C-STORE whose data set is `data`, in PDVs of 16 KiB; when
/// `abort_after` is set, aborts the association after that many data PDVs instead of finishing.
fn raw_store(port: u16, data: Vec<u8>, abort_after: Option<usize>) -> Option<u16> {
    use dicom_dictionary_std::tags;
    use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};
    let (mut assoc, pc) = begin_raw_store(port);
    let chunks: Vec<Vec<u8>> = data.chunks(16 * 1024).map(|c| c.to_vec()).collect();
    let n = chunks.len();
    for (i, c) in chunks.into_iter().enumerate() {
        if abort_after == Some(i) {
            assoc.abort().unwrap();
            return None;
        }
        let data = vec![PDataValue {
            presentation_context_id: pc,
            value_type: PDataValueType::Data,
            is_last: i + 1 == n,
            data: c,
        }];
        assoc.send(&Pdu::PData { data }).unwrap();
    }
    let Pdu::PData { data } = assoc.receive().unwrap() else { panic!("expected a response") };
    let rsp = corelab_dimse::read_command(&data[0].data).unwrap();
    let status = rsp.element(tags::STATUS).unwrap().to_int::<u16>().unwrap();
    assoc.release().unwrap();
    Some(status)
}

/// A raw DIMSE client that begins a C-STORE, then writes `raw` bytes where the data PDUs belong
/// and half-closes. Returns once the server has closed the connection (panics if it does not
/// within 10 s).
fn raw_pdus_after_store_command(port: u16, raw: &[u8]) {
    use std::io::{Read, Write};
    let (mut assoc, _) = begin_raw_store(port);
    let socket = assoc.inner_stream();
    socket.write_all(raw).unwrap();
    socket.shutdown(std::net::Shutdown::Write).unwrap();
    socket.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut rest = Vec::new();
    match socket.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) => {
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "the server must close the connection: {e}")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_or_cut_pdata_pdus_end_the_association_and_leave_nothing() {
    let t = spawn_app(Backend::SqliteLocal).await;
    let trial = corpus_trial(&t).await;
    let port = t.dicom_addr.port();
    let full = dataset_of(&crate::world::ct_instance("DOE^CUT", "2.5"));
    let pdata = |body: &[u8]| [vec![0x04, 0], (body.len() as u32).to_be_bytes().to_vec(), body.to_vec()].concat();
    let item = |len: u32, data: &[u8]| [len.to_be_bytes().to_vec(), vec![1, 0x00], data.to_vec()].concat();
    let cases = [
        // The connection closes inside a P-DATA-TF PDU: its header promises more than comes.
        [vec![0x04, 0, 0, 0, 0x40, 0], item(0x4000 - 4, &full[..1000])].concat(),
        // A PDV item that declares more bytes than its PDU holds.
        pdata(&item(5000, &full[..100])),
        // A PDV item shorter than its own 2-byte header.
        pdata(&item(1, &[])),
        // A PDU larger than the largest corelab offered.
        [vec![0x04, 0], (64u32 << 20).to_be_bytes().to_vec(), item(1000, &full[..998])].concat(),
    ];
    for raw in cases {
        tokio::task::spawn_blocking(move || raw_pdus_after_store_command(port, &raw)).await.unwrap();
    }
    assert_nothing_kept(&t, trial).await;
    // The server keeps serving.
    let status = tokio::task::spawn_blocking(move || raw_store(port, full, None)).await.unwrap();
    assert_eq!(status, Some(0x0000));
    t.stop().await;
}

/// After refused or broken transfers: no instance and no inbox item in the trial, and nothing
/// half-written left in staging.
async fn assert_nothing_kept(t: &TestApp, trial: Uuid) {
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut tx = t.app.db().read().await.unwrap();
    assert!(tx.trial_instances(trial).await.unwrap().is_empty());
    assert!(tx.inbox(trial).await.unwrap().is_empty());
    drop(tx);
    let staging = t.env.dir.path().join("blobs/.staging");
    assert_eq!(std::fs::read_dir(staging).unwrap().count(), 0, "nothing half-written is left in staging");
}

/// The data set (no file meta) of a Part 10 file.
fn dataset_of(part10: &[u8]) -> Vec<u8> {
    let obj = dicom_object::from_reader(&part10[128..]).unwrap();
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, &dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased())
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_instances_get_a_failure_status_and_leave_nothing() {
    let t = spawn_app(Backend::SqliteLocal).await;
    let trial = corpus_trial(&t).await;
    let port = t.dicom_addr.port();
    let full = dataset_of(&crate::world::ct_instance("DOE^TRUNCATED", "2.5"));
    // A data set cut off inside its pixel data, sent as if complete: refused with an error status.
    let truncated = full[..full.len() - 100_000].to_vec();
    let status = tokio::task::spawn_blocking(move || raw_store(port, truncated, None)).await.unwrap();
    assert_eq!(status, Some(0xC000));
    // Garbage where the data set should be.
    let status = tokio::task::spawn_blocking(move || raw_store(port, vec![0xAB; 50_000], None)).await.unwrap();
    assert_eq!(status, Some(0xC000));
    // A transfer cut mid-instance by an abort: never acknowledged, nothing kept.
    let partial = full.clone();
    tokio::task::spawn_blocking(move || raw_store(port, partial, Some(3))).await.unwrap();
    assert_nothing_kept(&t, trial).await;
    // The server keeps serving: the intact instance is stored.
    let status = tokio::task::spawn_blocking(move || raw_store(port, full, None)).await.unwrap();
    assert_eq!(status, Some(0x0000));
    let mut tx = t.app.db().read().await.unwrap();
    assert_eq!(tx.inbox(trial).await.unwrap().len(), 1, "no subject in the header: it waits in the inbox");
    drop(tx);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_object_under_a_stored_uid_is_refused_and_kept_for_review() {
    let Some(_) = dcmtk("storescu") else { return };
    let Some((corpus_dir, _)) =
        corpus(&["--subjects", "1", "--visits", "1", "--slices", "2", "--rows", "32", "--cols", "32", "--seed", "3"])
    else {
        return;
    };
    let t = spawn_app(Backend::SqliteLocal).await;
    let trial = corpus_trial(&t).await;
    let all = files(corpus_dir.path(), "");
    let original = &all[0];
    let (ok, err) = storescu(&t, "SITE01_CT", "ACMEONC301", std::slice::from_ref(original), &[]).await;
    assert!(ok, "{err}");
    // Same UIDs, different pixels: a different object.
    let mut altered = std::fs::read(original).unwrap();
    let n = altered.len();
    for b in &mut altered[n - 200..] {
        *b ^= 0x5a;
    }
    let p = corpus_dir.path().join("altered.dcm");
    std::fs::write(&p, &altered).unwrap();
    let (_, err) = storescu(&t, "SITE01_CT", "ACMEONC301", &[p], &["-v"]).await;
    assert!(err.contains("Error: CannotUnderstand"), "the conflict must be reported as an error: {err}");
    let mut tx = t.app.db().read().await.unwrap();
    assert_eq!(tx.trial_instances(trial).await.unwrap().len(), 1);
    let inbox = tx.inbox(trial).await.unwrap();
    drop(tx);
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].state, "conflict");
    t.stop().await;
}

/// One CT image of a contrast CAP series dated 2023-03-01 (in SITE01-0001's visit V1 window), with
/// `subject` as both Patient ID and Clinical Trial Subject ID.
fn one_ct_image(dir: &Path, subject: &str, time_point: &str, study_uid: &str) -> PathBuf {
    let spec = crate::qc_flow::SeriesSpec {
        subject,
        time_point,
        study_date: "20230301",
        study_uid,
        series_number: 1,
        slices: 1,
        thickness_mm: 5.0,
        description: "CT CAP PORTAL VENOUS",
        contrast: true,
        skip: &[],
    };
    crate::qc_flow::ct_series(dir, &spec).remove(0)
}

/// An upload by a SITE01 user, for calling the ingest use case directly.
pub fn site01_upload(trial: Uuid) -> corelab_app::ingest::IngestTarget {
    corelab_app::ingest::IngestTarget {
        trial_id: trial,
        site_id: "SITE01".into(),
        source: corelab_app::ingest::Source::Upload,
        sender: "test".into(),
        sender_role: "site_user".into(),
        sender_id: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_assigns_an_unmatched_instance_and_its_dates_follow_the_subject() {
    let t = spawn_app(Backend::SqliteLocal).await;
    let trial = corpus_trial(&t).await;
    // An instance whose patient ID is not an enrolled subject: kept in the inbox.
    let dir = tempfile::tempdir().unwrap();
    let file = one_ct_image(dir.path(), "HOSP-MRN-991", "", "1.2.826.0.1.3680043.8.498.9901");
    let target = site01_upload(trial);
    let setup = t.app.ingest_setup(&target).await.unwrap();
    let out = t.app.ingest(&setup, target, std::io::BufReader::new(std::fs::File::open(&file).unwrap())).await.unwrap();
    assert!(matches!(out, corelab_app::ingest::IngestOutcome::Inbox { .. }), "{out:?}");
    let inbox = check(t.get(&format!("/api/v1/trials/{trial}/inbox")).await, 200).await;
    let item = &inbox[0];
    assert_eq!(item["state"], "unassigned");
    assert!(item["reason"].as_str().unwrap().contains("no enrolled subject"), "{item}");
    let text = inbox.to_string();
    assert!(!text.contains("HOSP-MRN-991") && !text.contains("DOE"), "no PHI in the inbox listing: {text}");
    // The coordinator files it under SITE01-0001, visit V1.
    let mut tx = t.app.db().read().await.unwrap();
    let subject = tx.subject_by_code(trial, "SITE01-0001").await.unwrap().unwrap();
    drop(tx);
    let id = item["id"].as_str().unwrap();
    let r = t
        .post_json(
            &format!("/api/v1/inbox/{id}/assign"),
            json!({"subject_id": subject.id, "visit_id": "V1", "reason": ""}),
        )
        .await;
    assert_eq!(r.status(), 422, "a reason is required");
    let r = t
        .post_json(
            &format!("/api/v1/inbox/{id}/assign"),
            json!({"subject_id": subject.id, "visit_id": "V1", "reason": "MRN confirmed by the site"}),
        )
        .await;
    check(r, 200).await;
    let mut tx = t.app.db().read().await.unwrap();
    let rows = tx.trial_instances(trial).await.unwrap();
    let studies = tx.trial_studies(trial).await.unwrap();
    drop(tx);
    assert_eq!(rows.len(), 1);
    assert_eq!(studies[0].visit_id, "V1");
    let bytes = t.app.blobs().get_bytes(&rows[0].blob_key).await.unwrap();
    let obj = corelab_dicom::deid::read_object(&bytes).unwrap();
    let s = |tag| obj.element(tag).unwrap().to_str().unwrap().trim_end_matches(['\0', ' ']).to_string();
    assert_eq!(s(dicom_dictionary_std::tags::PATIENT_ID), "SITE01-0001");
    assert_eq!(s(dicom_dictionary_std::tags::CLINICAL_TRIAL_TIME_POINT_ID), "V1");
    // The stored date is the real date moved by this subject's own shift.
    let real = chrono::NaiveDate::from_ymd_opt(2023, 3, 1).unwrap();
    let expected = (real + chrono::Duration::days(subject.date_shift_days)).format("%Y%m%d").to_string();
    assert_eq!(s(dicom_dictionary_std::tags::STUDY_DATE), expected);
    let inbox = check(t.get(&format!("/api/v1/trials/{trial}/inbox")).await, 200).await;
    assert_eq!(inbox[0]["state"], "assigned");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pynetdicom_sends_every_transfer_syntax_of_pydicoms_test_files() {
    let Some(bench) = bench_dir() else { return };
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new("python3")
        .arg(bench.join("gen_corpus.py"))
        .arg("testdata")
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    if !out.status.success() {
        assert!(!ci, "gen_corpus.py testdata failed: {}", String::from_utf8_lossy(&out.stderr));
        return;
    }
    let t = spawn_app(Backend::SqliteLocal).await;
    let trial = corpus_trial(&t).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/pynetdicom_store.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .args(["127.0.0.1", &t.dicom_addr.port().to_string(), "SITE01_CT", "ACMEONC301"])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let statuses: Vec<&str> = stdout.lines().filter_map(|l| l.split('\t').next()).collect();
    let ok = statuses.iter().filter(|s| **s == "0x0000").count();
    // Every answer is success or a clear refusal; nothing is lost to an internal failure.
    // (`unreadable`/`send-error`: pydicom or pynetdicom cannot read or encode the file itself.)
    for s in &statuses {
        assert!(
            ["0x0000", "0xc000", "0xc111", "unreadable", "send-error"].contains(s),
            "unexpected outcome {s}:\n{stdout}"
        );
    }
    eprintln!("{}", stdout.lines().filter(|l| !l.starts_with("0x0000")).collect::<Vec<_>>().join("\n"));
    assert!(ok >= 100, "most of the bundled files are accepted ({ok} of {}):\n{stdout}", statuses.len());
    // What was accepted is durably kept (the files' patients are not enrolled: the inbox).
    let mut tx = t.app.db().read().await.unwrap();
    let inbox = tx.inbox(trial).await.unwrap();
    let stored = tx.trial_instances(trial).await.unwrap().len();
    drop(tx);
    let distinct_sop: std::collections::HashSet<&str> = inbox.iter().map(|i| i.sop_instance_uid.as_str()).collect();
    assert!(stored + inbox.len() >= distinct_sop.len() && !inbox.is_empty());
    // Every blob is intact, and several transfer syntaxes were kept as received.
    let mut ts = std::collections::HashSet::new();
    for i in &inbox {
        let bytes = t.app.blobs().get_bytes(&i.blob_key).await.unwrap();
        let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sha, i.sha256);
        let obj = corelab_dicom::deid::read_object(&bytes).unwrap();
        ts.insert(obj.meta().transfer_syntax().trim_end_matches('\0').to_string());
    }
    assert!(ts.len() >= 5, "{ts:?}");
    t.stop().await;
}

/// The index writer remembers the studies and series it committed; instances arriving one by one
/// (a batch each) still count into the right series, and a study already filed under one visit
/// is still caught when an instance claims it for another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_one_by_one_count_into_their_series_and_a_study_claimed_for_another_visit_waits() {
    for backend in backends() {
        let t = spawn_app(backend).await;
        let trial = corpus_trial(&t).await;
        let dir = tempfile::tempdir().unwrap();
        let spec = |series_number, slices, time_point| crate::qc_flow::SeriesSpec {
            subject: "SITE01-0001",
            time_point,
            study_date: "20230301",
            study_uid: "1.2.826.0.1.3680043.8.498.7701",
            series_number,
            slices,
            thickness_mm: 5.0,
            description: "CT CAP PORTAL VENOUS",
            contrast: true,
            skip: &[],
        };
        let mut sent = crate::qc_flow::ct_series(&dir.path().join("a"), &spec(1, 3, "V1"));
        sent.extend(crate::qc_flow::ct_series(&dir.path().join("b"), &spec(2, 2, "V1")));
        let elsewhere = crate::qc_flow::ct_series(&dir.path().join("c"), &spec(3, 1, "V2"));
        let target = site01_upload(trial);
        let setup = t.app.ingest_setup(&target).await.unwrap();
        for f in sent.iter().chain(&elsewhere) {
            let out = t
                .app
                .ingest(&setup, target.clone(), std::io::BufReader::new(std::fs::File::open(f).unwrap()))
                .await
                .unwrap();
            let stored = matches!(out, corelab_app::ingest::IngestOutcome::Stored { duplicate: false, .. });
            assert_eq!(stored, sent.contains(f), "{backend:?} {}: {out:?}", f.display());
        }
        let mut tx = t.app.db().read().await.unwrap();
        let studies = tx.trial_studies(trial).await.unwrap();
        assert_eq!(studies.len(), 1, "{backend:?}");
        assert_eq!(studies[0].visit_id, "V1");
        let counts: Vec<i64> = tx.study_series(studies[0].id).await.unwrap().iter().map(|s| s.instance_count).collect();
        assert_eq!(counts, vec![3, 2], "{backend:?}");
        assert_eq!(tx.trial_instances(trial).await.unwrap().len(), 5);
        let inbox = tx.inbox(trial).await.unwrap();
        drop(tx);
        assert_eq!(inbox.len(), 1, "{backend:?}");
        assert_eq!(inbox[0].state, "conflict");
        assert!(inbox[0].reason.contains("another subject or visit"), "{}", inbox[0].reason);
        t.stop().await;
    }
}

/// The subject is the first of Clinical Trial Subject ID and Patient ID that names an enrolled
/// subject; that subject must be enrolled at the sending site, or the instance waits in the inbox.
#[tokio::test]
async fn the_first_enrolled_subject_code_decides_and_must_be_of_the_sending_site() {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    use dicom_object::FileMetaTableBuilder;
    for backend in backends() {
        let t = spawn_app(backend).await;
        let trial = corpus_trial(&t).await;
        let dir = tempfile::tempdir().unwrap();
        // (study UID suffix, Clinical Trial Subject ID, Patient ID)
        let cases = [
            ("1", "NOT-ENROLLED", "SITE01-0001"),
            ("2", "SITE01-0001", "SITE02-0002"),
            ("3", "SITE02-0002", "SITE01-0001"),
        ];
        let target = site01_upload(trial);
        let setup = t.app.ingest_setup(&target).await.unwrap();
        let mut outcomes = Vec::new();
        for (suffix, ct_subject, patient) in cases {
            let study_uid = format!("1.2.826.0.1.3680043.8.498.7702.{suffix}");
            let f = one_ct_image(&dir.path().join(suffix), "SITE01-0001", "V1", &study_uid);
            let mut obj = dicom_object::open_file(&f).unwrap().into_inner();
            obj.put(DataElement::new(tags::CLINICAL_TRIAL_SUBJECT_ID, VR::LO, PrimitiveValue::from(ct_subject)));
            obj.put(DataElement::new(tags::PATIENT_ID, VR::LO, PrimitiveValue::from(patient)));
            let meta =
                FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1").implementation_class_uid("1.2.3.4");
            obj.with_meta(meta).unwrap().write_to_file(&f).unwrap();
            outcomes.push(
                t.app
                    .ingest(&setup, target.clone(), std::io::BufReader::new(std::fs::File::open(&f).unwrap()))
                    .await
                    .unwrap(),
            );
        }
        use corelab_app::ingest::IngestOutcome;
        assert!(matches!(outcomes[0], IngestOutcome::Stored { .. }), "{backend:?}: {:?}", outcomes[0]);
        assert!(matches!(outcomes[1], IngestOutcome::Stored { .. }), "{backend:?}: {:?}", outcomes[1]);
        match &outcomes[2] {
            IngestOutcome::Inbox { reason, .. } => {
                assert!(reason.contains("enrolled at another site"), "{backend:?}: {reason}")
            }
            other => panic!("{backend:?}: {other:?}"),
        }
        // Both stored studies are SITE01-0001's, though the second also named SITE02's subject.
        let mut tx = t.app.db().read().await.unwrap();
        let subject = tx.subject_by_code(trial, "SITE01-0001").await.unwrap().unwrap();
        let studies = tx.trial_studies(trial).await.unwrap();
        assert_eq!(studies.len(), 2, "{backend:?}");
        assert!(studies.iter().all(|s| s.subject_id == subject.id && s.visit_id == "V1"), "{backend:?}");
        assert_eq!(tx.inbox(trial).await.unwrap().len(), 1, "{backend:?}");
        drop(tx);
        t.stop().await;
    }
}
