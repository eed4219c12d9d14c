//! SIGKILL of `corelab serve` in the middle of a multi-association dcmtk `storescu` run: after a
//! restart every instance acknowledged before the kill is there and intact, a full resend stores
//! nothing twice, and no indexed blob is half-written. And what start-up does with blobs whose rows
//! committed while their flush was still running.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use corelab_app::ingest::IngestOutcome;
use corelab_store::audit::AuditFilter;
use corelab_store::ingest::UnflushedBlob;

use crate::ingest::{blobs_match, corpus, corpus_trial, corpus_trial_at, files, site01_upload};
use crate::qc_flow::{SeriesSpec, ct_series};
use crate::support::{ADMIN_PASSWORD, Env, ServeProcess, backends, client, dcmtk, spawn_app_in, wait_ready};

const ASSOCIATIONS: usize = 4;

/// Instance number of a `gen_corpus.py` file (`IM00017.dcm` -> 17).
fn instance_number(p: &std::path::Path) -> i64 {
    let name = p.file_stem().unwrap().to_string_lossy().to_string();
    name.trim_start_matches("IM").parse().unwrap()
}

/// Runs one verbose storescu association over `files`; every file whose C-STORE got a Success
/// response is added to `acked` as it happens (storescu logs "Sending file" before each request).
async fn tracked_storescu(port: u16, files: Vec<PathBuf>, acked: Arc<Mutex<HashSet<PathBuf>>>) {
    let mut child = tokio::process::Command::new(dcmtk("storescu").unwrap())
        .args(["-v", "-aet", "SITE01_CT", "-aec", "ACMEONC301", "-nh", "-to", "20", "-ta", "20", "-td", "20"])
        .arg("127.0.0.1")
        .arg(port.to_string())
        .args(&files)
        .env("TCP_NODELAY", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // dcmtk's logger writes to stdout or stderr depending on the build: follow both.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let _ = tx.send(l);
            }
        });
    }
    drop(tx);
    let mut current: Option<PathBuf> = None;
    while let Some(line) = rx.recv().await {
        if let Some(f) = line.split("Sending file: ").nth(1) {
            current = Some(PathBuf::from(f.trim()));
        } else if line.contains("Received Store Response (Success)")
            && let Some(f) = current.take()
        {
            acked.lock().unwrap().insert(f);
        }
    }
    let _ = child.wait().await;
}

async fn run_all(
    port: u16,
    files: &[PathBuf],
    acked: Arc<Mutex<HashSet<PathBuf>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..ASSOCIATIONS)
        .map(|i| {
            let chunk: Vec<PathBuf> = files.iter().skip(i).step_by(ASSOCIATIONS).cloned().collect();
            tokio::spawn(tracked_storescu(port, chunk, acked.clone()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_storescu_keeps_every_acknowledged_instance_and_a_resend_stores_nothing_twice() {
    let Some(_) = dcmtk("storescu") else { return };
    let Some((corpus_dir, _bench)) = corpus(&[
        "--subjects",
        "1",
        "--visits",
        "1",
        "--slices",
        "240",
        "--rows",
        "256",
        "--cols",
        "256",
        "--seed",
        "11",
    ]) else {
        return;
    };
    let all = files(corpus_dir.path(), "");
    let ct: Vec<PathBuf> =
        all.into_iter().filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("IM")).collect();
    assert!(ct.len() >= 200, "corpus too small: {}", ct.len());

    for backend in backends() {
        let env = Env::new(backend).await;
        let mut envs = env.process_env();
        envs.push(("CORELAB_DICOM_ROUTING_REFRESH_SECONDS".into(), "1".into()));
        let mut first = ServeProcess::start(&envs, env.dir.path());
        let base = first.url("");
        wait_ready(&base).await;
        let admin = client();
        let r = admin
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let trial = corpus_trial_at(&base, &admin).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;

        // Four associations at once; pull the plug once a sixth of the instances are acknowledged.
        let acked: Arc<Mutex<HashSet<PathBuf>>> = Arc::default();
        let port = first.dicom.expect("the banner names the DICOM address").port();
        let senders = run_all(port, &ct, acked.clone()).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while acked.lock().unwrap().len() < ct.len() / 6 {
            assert!(std::time::Instant::now() < deadline, "{backend:?}: storescu made no progress");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        first.kill9();
        for s in senders {
            s.await.unwrap();
        }
        let before_kill: BTreeSet<i64> = acked.lock().unwrap().iter().map(|p| instance_number(p)).collect();
        assert!(
            before_kill.len() < ct.len(),
            "{backend:?}: the whole run finished before the kill; the test proves nothing"
        );

        // Restart on the same database and storage.
        let t = spawn_app_in(env).await;
        let mut tx = t.app.db().read().await.unwrap();
        let rows = tx.trial_instances(trial).await.unwrap();
        let marks = tx.unflushed_blobs().await.unwrap();
        drop(tx);
        // Blobs whose rows committed while their flush still ran were settled at start-up.
        assert!(marks.is_empty(), "{backend:?}: marks left after start-up: {marks:?}");
        let stored: Vec<i64> = rows.iter().map(|r| r.instance_number.unwrap()).collect();
        let stored_set: BTreeSet<i64> = stored.iter().copied().collect();
        assert_eq!(stored.len(), stored_set.len(), "{backend:?}: an instance is indexed twice");
        let lost: Vec<&i64> = before_kill.difference(&stored_set).collect();
        assert!(lost.is_empty(), "{backend:?}: acknowledged before the kill but missing after restart: {lost:?}");
        // Every indexed blob is complete: its bytes hash to the recorded SHA-256.
        assert_eq!(blobs_match(&t, trial).await, rows.len());

        // The site resends everything: all acknowledged, nothing stored twice.
        let resent: Arc<Mutex<HashSet<PathBuf>>> = Arc::default();
        for s in run_all(t.dicom_addr.port(), &ct, resent.clone()).await {
            s.await.unwrap();
        }
        assert_eq!(resent.lock().unwrap().len(), ct.len(), "{backend:?}: the resend was not fully acknowledged");
        let mut tx = t.app.db().read().await.unwrap();
        let rows = tx.trial_instances(trial).await.unwrap();
        drop(tx);
        let numbers: BTreeSet<i64> = rows.iter().map(|r| r.instance_number.unwrap()).collect();
        assert_eq!(rows.len(), ct.len(), "{backend:?}: after the resend the index holds each instance once");
        assert_eq!(numbers, ct.iter().map(|p| instance_number(p)).collect::<BTreeSet<_>>());
        assert_eq!(blobs_match(&t, trial).await, ct.len());
        t.stop().await;
    }
}

/// Rows may commit while their blob is still being flushed (docs/adr/0005); the blob is then marked
/// until its flush is known to have finished. A stop in between (power loss) can leave a marked
/// blob torn or missing. At the next start the intact ones are kept and flushed, and the rows of
/// the others, never acknowledged, are withdrawn with an audit record; a resend stores them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_left_unflushed_by_a_stop_are_kept_when_intact_and_their_rows_withdrawn_when_not() {
    for backend in backends() {
        let mut env = Env::new(backend).await;
        // Marks only arise on local storage (an S3 object is durable once committed).
        env.storage_url = format!("file://{}", env.dir.path().join("blobs").display());
        let t = spawn_app_in(env).await;
        let trial = corpus_trial(&t).await;
        let dir = tempfile::tempdir().unwrap();
        let spec = |study_uid, time_point, study_date, slices| SeriesSpec {
            subject: "SITE01-0001",
            time_point,
            study_date,
            study_uid,
            series_number: 1,
            slices,
            thickness_mm: 5.0,
            description: "CT CAP PORTAL VENOUS",
            contrast: true,
            skip: &[],
        };
        let a = ct_series(&dir.path().join("a"), &spec("1.2.826.0.1.3680043.8.498.7711", "V1", "20230301", 3));
        let b = ct_series(&dir.path().join("b"), &spec("1.2.826.0.1.3680043.8.498.7712", "V2", "20230601", 1));
        let target = site01_upload(trial);
        let setup = t.app.ingest_setup(&target).await.unwrap();
        let send = |f: &PathBuf| {
            let (app, setup, target, f) = (t.app.clone(), setup.clone(), target.clone(), f.clone());
            async move {
                app.ingest(&setup, target, std::io::BufReader::new(std::fs::File::open(f).unwrap())).await.unwrap()
            }
        };
        for f in a.iter().chain(&b) {
            let out = send(f).await;
            assert!(matches!(out, IngestOutcome::Stored { duplicate: false, .. }), "{backend:?}: {out:?}");
        }
        let mut tx = t.app.db().read().await.unwrap();
        let rows = tx.trial_instances(trial).await.unwrap();
        let studies = tx.trial_studies(trial).await.unwrap();
        drop(tx);
        assert_eq!((rows.len(), studies.len()), (4, 2), "{backend:?}");
        let study = |visit: &str| studies.iter().find(|s| s.visit_id == visit).unwrap().id;
        let (study_a, study_b) = (study("V1"), study("V2"));
        let torn = rows.iter().find(|r| r.study_id == study_a && r.instance_number == Some(1)).unwrap().clone();
        let missing = rows.iter().find(|r| r.study_id == study_b).unwrap().clone();

        // As if the process stopped while every one of these flushes was still running.
        let mut tx = t.app.db().begin().await.unwrap();
        for r in &rows {
            let mark = UnflushedBlob {
                blob_key: r.blob_key.clone(),
                sha256: r.sha256.clone(),
                size_bytes: r.size_bytes,
                marked_at: chrono::Utc::now(),
            };
            tx.mark_unflushed(&mark).await.unwrap();
        }
        tx.commit().await.unwrap();
        let env = t.stop_keeping_env().await;
        let blob = |key: &str| env.dir.path().join("blobs").join(key);
        std::fs::OpenOptions::new()
            .write(true)
            .open(blob(&torn.blob_key))
            .unwrap()
            .set_len(u64::try_from(torn.size_bytes).unwrap() / 2)
            .unwrap();
        std::fs::remove_file(blob(&missing.blob_key)).unwrap();

        let t = spawn_app_in(env).await;
        let mut tx = t.app.db().read().await.unwrap();
        let kept = tx.trial_instances(trial).await.unwrap();
        let studies = tx.trial_studies(trial).await.unwrap();
        let counts: Vec<i64> = tx.study_series(study_a).await.unwrap().iter().map(|s| s.instance_count).collect();
        let marks = tx.unflushed_blobs().await.unwrap();
        let filter = |object_type: &str| AuditFilter {
            trial_id: Some(trial),
            object_type: Some(object_type.into()),
            ..AuditFilter::default()
        };
        let deleted: Vec<(String, String)> = tx
            .list_audit(&filter("instance"))
            .await
            .unwrap()
            .into_iter()
            .chain(tx.list_audit(&filter("study")).await.unwrap())
            .filter(|r| r.action == "delete")
            .map(|r| (r.object_id, r.reason.unwrap_or_default()))
            .collect();
        drop(tx);
        let numbers: Vec<Option<i64>> = kept.iter().map(|r| r.instance_number).collect();
        assert_eq!(numbers, vec![Some(2), Some(3)], "{backend:?}: the intact blobs' instances stay, the others go");
        assert_eq!(blobs_match(&t, trial).await, 2);
        assert_eq!(
            studies.iter().map(|s| s.id).collect::<Vec<_>>(),
            vec![study_a],
            "{backend:?}: the emptied study goes"
        );
        assert_eq!(counts, vec![2], "{backend:?}");
        assert!(marks.is_empty(), "{backend:?}: every mark was settled: {marks:?}");
        let mut ids: Vec<String> = deleted.iter().map(|(id, _)| id.clone()).collect();
        let mut expected = vec![torn.sop_instance_uid.clone(), missing.sop_instance_uid.clone(), study_b.to_string()];
        ids.sort();
        expected.sort();
        assert_eq!(ids, expected, "{backend:?}: one audit record per withdrawn instance and study");
        assert!(deleted.iter().all(|(_, reason)| reason.contains("never acknowledged")), "{deleted:?}");
        assert!(t.app.db().verify_audit_chain().await.unwrap().first_bad.is_none());

        // The site sends them again: stored anew, the torn blob replaced by whole bytes.
        let setup = t.app.ingest_setup(&target).await.unwrap();
        for f in [&a[0], &b[0]] {
            let out = t
                .app
                .ingest(&setup, target.clone(), std::io::BufReader::new(std::fs::File::open(f).unwrap()))
                .await
                .unwrap();
            assert!(matches!(out, IngestOutcome::Stored { duplicate: false, .. }), "{backend:?}: {out:?}");
        }
        assert_eq!(blobs_match(&t, trial).await, 4, "{backend:?}");
        t.stop().await;
    }
}
