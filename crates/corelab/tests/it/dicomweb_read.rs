//! DICOMweb read side: QIDO-RS searches and WADO-RS retrieval by `dicomweb-client` (PyPI) against
//! corelab, scoped by role; a reader sees only their task's study, blinded.

use std::path::Path;

use serde_json::{Value, json};

use crate::qc_flow::{SeriesSpec, ct_series};
use crate::reads::reading_world;
use crate::support::Backend;
use crate::world::{World, check};

/// Ingests a CT study of `code` at `visit` (no QC), as site staff would send it.
async fn store_study(w: &World, code: &str, site: &str, visit: &str, date: &str, uid: &str, slices: usize) {
    let dir = tempfile::tempdir().unwrap();
    let files = ct_series(
        dir.path(),
        &SeriesSpec {
            subject: code,
            time_point: visit,
            study_date: date,
            study_uid: uid,
            series_number: 3,
            slices,
            thickness_mm: 5.0,
            description: "CT CHEST",
            contrast: false,
            skip: &[],
        },
    );
    crate::reads::ingest_as_site_staff(w, site, files).await;
}

async fn token(w: &World, who: &str, role: &str, site: Option<&str>) -> String {
    let body = json!({"name": "viewer", "trial_id": w.trial, "role": role, "site_id": site, "expires_in_days": 30});
    let t = check(w.c(who).post(w.url("/api/v1/tokens")).json(&body).send().await.unwrap(), 201).await;
    t["secret"].as_str().unwrap().to_string()
}

fn client_available() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import dicomweb_client, pydicom"])
        .output()
        .is_ok_and(|o| o.status.success());
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(ok || !ci, "CI=true but python3 cannot import dicomweb_client (run scripts/test-deps.sh)");
    if !ok {
        eprintln!("note: dicomweb-client is not installed; skipping");
    }
    ok
}

async fn qido_client(w: &World, token: &str, queries: &[Value]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/qido_client.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(w.url("/dicomweb"))
        .arg(token)
        .args(queries.iter().map(Value::to_string))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "qido_client.py failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn stored_contains(blob: &[u8], frame: &[u8]) -> bool {
    blob.ends_with(frame) || blob.windows(frame.len()).any(|w| w == frame)
}

/// The parts of a `multipart/related` body, split with each part's Content-Length.
fn parts(content_type: &str, body: &[u8]) -> Vec<Vec<u8>> {
    let boundary = content_type.split("boundary=").nth(1).unwrap().trim_matches('"');
    let delimiter = format!("--{boundary}\r\n");
    let mut out = Vec::new();
    let mut rest = body;
    while rest.starts_with(delimiter.as_bytes()) {
        let head_end = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&rest[..head_end]).to_string();
        let len: usize = head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).unwrap().trim().parse().unwrap();
        let start = head_end + 4;
        out.push(rest[start..start + len].to_vec());
        rest = &rest[start + len + 2..];
    }
    assert_eq!(rest, format!("--{boundary}--\r\n").as_bytes());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dicomweb_client_searches_and_retrieves_within_each_roles_scope() {
    if !client_available() {
        return;
    }
    // Subject 101-001's baseline passed QC, so both readers have a task for it; 102-001's
    // baseline is stored but not read yet.
    let (w, _qc2) = reading_world(Backend::SqliteLocal, 0).await;
    store_study(&w, "102-001", "102", "BL", "20260921", "1.2.826.0.1.3680043.8.498.79001", 3).await;
    let rows = {
        let mut tx = w.t.app.db().read().await.unwrap();
        tx.trial_studies(w.trial).await.unwrap()
    };
    assert_eq!(rows.len(), 2);
    let read_study = rows.iter().find(|s| s.site_id == "101").unwrap();
    let other_study = rows.iter().find(|s| s.site_id == "102").unwrap();
    let instances = {
        let mut tx = w.t.app.db().read().await.unwrap();
        tx.trial_instances(w.trial).await.unwrap()
    };
    assert_eq!(instances.len(), 9);

    // The trial manager sees both studies; searches match on the index.
    let tm = token(&w, "tm", "trial_manager", None).await;
    let date = read_study.study_date.unwrap().format("%Y%m%d").to_string();
    let queries = [
        json!({}),
        json!({"filters": {"PatientID": "101-*"}}),
        json!({"filters": {"PatientID": "10?-001"}}),
        json!({"filters": {"StudyDate": format!("{date}-{date}")}}),
        json!({"filters": {"StudyDate": "-19000101"}}),
        json!({"filters": {"ModalitiesInStudy": "CT"}}),
        json!({"filters": {"ModalitiesInStudy": "MR"}}),
        json!({"filters": {"StudyInstanceUID": other_study.study_instance_uid}}),
        json!({"limit": 1}),
        json!({"limit": 1, "offset": 1}),
        json!({"fields": ["StudyDescription"], "offset": 2}),
    ];
    let a = qido_client(&w, &tm, &queries).await;
    let uid = |s: &corelab_store::ingest::StudyRow| Value::from(s.study_instance_uid.clone());
    let q = a["queries"].as_array().unwrap();
    let mut both = vec![read_study.study_instance_uid.clone(), other_study.study_instance_uid.clone()];
    both.sort();
    assert_eq!(q[0], json!(both));
    assert_eq!(q[1], json!([uid(read_study)]));
    assert_eq!(q[2], json!(both));
    assert_eq!(q[3], json!([uid(read_study)]), "date range");
    assert_eq!(q[4], json!([]));
    assert_eq!(q[5], json!(both));
    assert_eq!(q[6], json!([]));
    assert_eq!(q[7], json!([uid(other_study)]));
    assert_eq!(q[8].as_array().unwrap().len(), 1);
    assert_eq!(q[9].as_array().unwrap().len(), 1);
    assert_ne!(q[8], q[9], "offset pages on");
    assert_eq!(q[10], json!([]));
    let studies = a["studies"].as_array().unwrap();
    assert_eq!(studies.len(), 2);
    for s in studies {
        let row = rows.iter().find(|r| r.study_instance_uid == s["uid"]).unwrap();
        let mine: Vec<_> = instances.iter().filter(|i| i.study_id == row.id).collect();
        assert_eq!(s["instance_count"], json!(mine.len()));
        assert_eq!(s["series_count"], json!(1));
        assert_eq!(s["modalities"], json!(["CT"]));
        assert_eq!(s["patient_id"], if row.site_id == "101" { "101-001" } else { "102-001" });
        assert_eq!(s["study_date"], json!(row.study_date.map(|d| d.format("%Y%m%d").to_string())));
        assert_eq!(s["study_metadata"], json!(mine.len()));
        assert_eq!(s["study_retrieved"], json!(mine.len()));
        let series = &s["series"][0];
        let mut sops: Vec<String> = mine.iter().map(|i| i.sop_instance_uid.clone()).collect();
        sops.sort();
        assert_eq!(series["instances"], json!(sops));
        assert_eq!(series["retrieved"], json!(sops));
        assert_eq!(series["metadata"], json!(sops));
        assert_eq!(series["one"], json!(sops[0]));
        assert_eq!(series["one_meta"], json!(sops[0]));
        assert_eq!(series["one_rows"], json!(512));
    }

    // WADO-RS sends the stored blobs byte for byte.
    let c = crate::support::client();
    for i in &instances {
        let study = rows.iter().find(|s| s.id == i.study_id).unwrap();
        let series_uid = {
            let mut tx = w.t.app.db().read().await.unwrap();
            tx.study_series(study.id)
                .await
                .unwrap()
                .into_iter()
                .find(|x| x.id == i.series_id)
                .unwrap()
                .series_instance_uid
        };
        let url = w.url(&format!(
            "/dicomweb/studies/{}/series/{series_uid}/instances/{}",
            study.study_instance_uid, i.sop_instance_uid
        ));
        let r = c.get(&url).bearer_auth(&tm).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("multipart/related; type=\"application/dicom\""), "{ct}");
        let body = r.bytes().await.unwrap();
        let got = parts(&ct, &body);
        let stored = w.t.app.blobs().get_bytes(&i.blob_key).await.unwrap();
        assert_eq!(got, vec![stored], "{}", i.sop_instance_uid);
        // A transfer syntax corelab does not store is not acceptable.
        let r = c
            .get(&url)
            .bearer_auth(&tm)
            .header("accept", "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.4.50")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 406);
        // Frames: the native pixel data of frame 1; frame 2 does not exist.
        let r = c.get(format!("{url}/frames/1")).bearer_auth(&tm).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("multipart/related; type=\"application/octet-stream\""), "{ct}");
        let frames = parts(&ct, &r.bytes().await.unwrap());
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].len(), 512 * 512 * 2);
        assert!(stored_contains(&w.t.app.blobs().get_bytes(&i.blob_key).await.unwrap(), &frames[0]));
        let r = c.get(format!("{url}/frames/2")).bearer_auth(&tm).send().await.unwrap();
        assert_eq!(r.status(), 404);
        // The metadata's BulkDataURI for Pixel Data answers the same bytes as the frames.
        let meta: Value = c.get(format!("{url}/metadata")).bearer_auth(&tm).send().await.unwrap().json().await.unwrap();
        let bulk = meta[0]["7FE00010"]["BulkDataURI"].as_str().expect("a BulkDataURI for Pixel Data").to_string();
        assert!(bulk.ends_with(&format!("{}/bulkdata/7FE00010", i.sop_instance_uid)), "{bulk}");
        let r = c.get(&bulk).bearer_auth(&tm).send().await.unwrap();
        assert_eq!(r.status(), 200, "{bulk}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("multipart/related; type=\"application/octet-stream\""), "{ct}");
        assert_eq!(parts(&ct, &r.bytes().await.unwrap()), frames);
        // An element that is not bulk data, and a malformed tag.
        let r = c.get(format!("{url}/bulkdata/00080060")).bearer_auth(&tm).send().await.unwrap();
        assert_eq!(r.status(), 404);
        let r = c.get(format!("{url}/bulkdata/pixels")).bearer_auth(&tm).send().await.unwrap();
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains("eight hex digits"));
        // Rendered: a 512x512 PNG.
        let r = c.get(format!("{url}/rendered")).bearer_auth(&tm).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "image/png");
        let png = r.bytes().await.unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[16..24], &[0, 0, 2, 0, 0, 0, 2, 0]);
    }

    // A site user sees only their site's study.
    let site = token(&w, "site_a", "site_user", Some("101")).await;
    let a = qido_client(&w, &site, &[]).await;
    let seen: Vec<&Value> = a["studies"].as_array().unwrap().iter().map(|s| &s["uid"]).collect();
    assert_eq!(seen, vec![&uid(read_study)]);

    // A reader sees only their task's study, under the case code and without dates.
    let reader = token(&w, "reader", "reader", None).await;
    let a = qido_client(&w, &reader, &[json!({"filters": {"PatientID": "101*"}})]).await;
    assert_eq!(a["queries"][0], json!([]), "the site's subject ID is not searchable by a reader");
    let studies = a["studies"].as_array().unwrap();
    assert_eq!(studies.len(), 1, "{a}");
    let s = &studies[0];
    assert_eq!(s["uid"], uid(read_study));
    let code = s["patient_id"].as_str().unwrap().to_string();
    assert!(!code.is_empty() && code != "101-001");
    assert_eq!(s["patient_name"], json!(code));
    assert_eq!(s["study_date"], Value::Null);
    let series = &s["series"][0];
    assert_eq!(series["retrieved"].as_array().unwrap().len(), 6);
    assert_eq!(series["retrieved_patient_ids"], json!([code]));
    assert_eq!(series["retrieved_dates"], json!([""]));
    assert_eq!(series["metadata_patient_ids"], json!([code]));
    assert_eq!(series["metadata_dates"], json!(["None"]));
    let text = a.to_string();
    assert!(!text.contains("101-001") && !text.contains("102-001"), "{text}");
    // The blinded metadata names no site, site subject or timepoint, and has no date at all.
    let r = c
        .get(w.url(&format!("/dicomweb/studies/{}/metadata", read_study.study_instance_uid)))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let meta: Value = r.json().await.unwrap();
    assert_eq!(meta.as_array().unwrap().len(), 6);
    for m in meta.as_array().unwrap() {
        let text = m.to_string();
        assert!(!text.contains("101-001") && !text.contains("\"DA\"") && !text.contains("\"DT\""), "{text}");
        for tag in ["00120030", "00120040", "00120050"] {
            assert!(m.get(tag).is_none(), "{tag} in {text}");
        }
        assert_eq!(m["00120042"]["Value"][0], json!(code));
    }
    // The other subject's study does not exist for the reader.
    let r = c
        .get(w.url(&format!("/dicomweb/studies/{}/metadata", other_study.study_instance_uid)))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // A session works as well as a token (with the trial named).
    let r = w.c("reader").get(w.url(&format!("/dicomweb/studies?trial={}", w.trial))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap().as_array().unwrap().len(), 1);
    // Sponsors see no images.
    let r = w.c("sponsor").get(w.url(&format!("/dicomweb/studies?trial={}", w.trial))).send().await.unwrap();
    assert_eq!(r.status(), 403);
    w.t.stop().await;
}

#[tokio::test]
async fn cors_lets_only_configured_origins_get_with_a_token() {
    let env = crate::support::Env::new(Backend::SqliteLocal).await;
    let t = crate::support::spawn_app_configured(env, |c| {
        c.dicomweb.cors_origins = vec!["http://viewer.test:3000".into()];
    })
    .await;
    let c = crate::support::client();
    let url = t.url("/dicomweb/studies");
    let preflight = |origin: &'static str, method: &'static str| {
        c.request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let r = preflight("http://viewer.test:3000", "GET").await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], "http://viewer.test:3000");
    assert_eq!(r.headers()["access-control-allow-methods"], "GET");
    assert!(r.headers()["access-control-allow-headers"].to_str().unwrap().contains("authorization"));
    assert!(r.headers().get("access-control-allow-credentials").is_none());
    // Another origin, or another method, gets nothing the browser would accept.
    let r = preflight("http://evil.test", "GET").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = preflight("http://viewer.test:3000", "POST").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // The GET itself carries the origin (here a 401: no token), so the viewer can read the answer.
    let r = c.get(&url).header("origin", "http://viewer.test:3000").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["access-control-allow-origin"], "http://viewer.test:3000");
    let r = c.get(&url).header("origin", "http://evil.test").send().await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    t.stop().await;
}

/// Orthanc with its DICOMweb plugin, on a free port, storing into `dir`.
async fn orthanc(dir: &Path) -> Option<(tokio::process::Child, String)> {
    let bin = Path::new("/usr/sbin/Orthanc");
    let plugin = Path::new("/usr/share/orthanc/plugins/libOrthancDicomWeb.so");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if !bin.exists() || !plugin.exists() {
        assert!(!ci, "CI=true but Orthanc and its DICOMweb plugin are missing (scripts/test-deps.sh)");
        eprintln!("note: Orthanc is not installed; skipping the comparison");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = json!({
        "Name": "corelab-test", "HttpPort": port, "DicomServerEnabled": false,
        "StorageDirectory": dir.join("storage"), "IndexDirectory": dir.join("index"),
        "RemoteAccessAllowed": false, "AuthenticationEnabled": false, "Plugins": [plugin],
        "DicomWeb": {"Enable": true, "Root": "/dicom-web/", "StudiesMetadata": "Full", "SeriesMetadata": "Full"}
    });
    let path = dir.join("orthanc.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let child = tokio::process::Command::new(bin)
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let c = crate::support::client();
    for _ in 0..100 {
        if c.get(format!("{base}/system")).send().await.is_ok_and(|r| r.status() == 200) {
            return Some((child, base));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("Orthanc did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dicomweb_client_finds_the_same_in_corelab_and_orthanc() {
    if !client_available() {
        return;
    }
    let (w, _qc2) = reading_world(Backend::SqliteLocal, 0).await;
    store_study(&w, "102-001", "102", "BL", "20260921", "1.2.826.0.1.3680043.8.498.79002", 3).await;
    let dir = tempfile::tempdir().unwrap();
    let Some((mut child, base)) = orthanc(dir.path()).await else { return };
    // Orthanc gets exactly the stored (de-identified) files.
    let instances = {
        let mut tx = w.t.app.db().read().await.unwrap();
        tx.trial_instances(w.trial).await.unwrap()
    };
    let c = crate::support::client();
    for i in &instances {
        let bytes = w.t.app.blobs().get_bytes(&i.blob_key).await.unwrap();
        let r = c.post(format!("{base}/instances")).body(bytes).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let tm = token(&w, "tm", "trial_manager", None).await;
    let queries = [
        json!({}),
        json!({"filters": {"ModalitiesInStudy": "CT"}}),
        json!({"filters": {"StudyDate": "20000101-"}}),
        json!({"filters": {"StudyDate": "-19000101"}}),
        json!({"limit": 1}),
    ];
    let ours = qido_client(&w, &tm, &queries).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/qido_client.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(format!("{base}/dicom-web"))
        .arg("none")
        .args(queries.iter().map(Value::to_string))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The order of results is not defined by PS3.18, so a limited search is compared by its size and
    // by every hit being one of the full search's; the others must match exactly.
    let (ours_q, theirs_q) = (ours["queries"].as_array().unwrap(), theirs["queries"].as_array().unwrap());
    assert_eq!(ours_q[..4], theirs_q[..4]);
    assert_eq!(ours_q[0].as_array().unwrap().len(), 2);
    for q in [&ours_q[4], &theirs_q[4]] {
        let hits = q.as_array().unwrap();
        assert_eq!(hits.len(), 1, "{q}");
        assert!(ours_q[0].as_array().unwrap().contains(&hits[0]), "{q}");
    }
    // Per study: series, instances, what retrieval and metadata return, counts and dates.
    for (a, b) in ours["studies"].as_array().unwrap().iter().zip(theirs["studies"].as_array().unwrap()) {
        for key in
            ["uid", "study_date", "modalities", "series_count", "instance_count", "study_metadata", "study_retrieved"]
        {
            assert_eq!(a[key], b[key], "{key}");
        }
        assert_eq!(a["series"], b["series"]);
    }
    assert_eq!(ours["studies"].as_array().unwrap().len(), theirs["studies"].as_array().unwrap().len());
    child.kill().await.unwrap();
    w.t.stop().await;
}
