//! Data lock: a trial manager locks a visit (e-signed, audited); reads, queries, QC and filing
//! under the lock answer 409 naming it (readers see no subject or visit in the message); new images
//! for the locked visit wait in the inbox; a database trigger refuses read versions too; unlocking
//! needs a reason and an e-signature and is audited; a trial lock covers everything. A lock taken,
//! or a subject's record changed, while an instance is on its way holds it back in the inbox too.

use serde_json::{Value, json};

use crate::qc_flow::{SeriesSpec, ct_series};
use crate::reads::{Seen, baseline, follow_up, reading_world};
use crate::support::Backend;
use crate::world::{PASSWORD, check};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_visits_refuse_changes_until_a_signed_unlock() {
    let (w, _qc2) = reading_world(Backend::SqliteLocal, 1).await;
    let t = w.trial;
    let a = w.subject_a;
    let tm = w.c("tm").clone();
    let (c1, c2) = (w.c("reader").clone(), w.c("reader2").clone());
    let mut r1 = Seen::new(&w, &c1);
    let mut r2 = Seen::new(&w, &c2);
    assert_eq!(r1.submit("TP1", baseline(30.4, 20.6), Some("reader")).await.0, 200);
    let locks = format!("/api/v1/trials/{t}/locks");
    let lock_body = |reason: &str, password: &str| json!({"scope": "visit", "subject_id": a, "visit_id": "W8", "reason": reason, "username": "tm", "password": password});

    // Only trial managers lock; a reason and the password are required.
    for role in ["monitor", "site_a", "qc", "reader", "sponsor"] {
        let r = w.c(role).post(w.url(&locks)).json(&lock_body("x", PASSWORD)).send().await.unwrap();
        assert_eq!(r.status(), 403, "{role}");
    }
    let r = tm.post(w.url(&locks)).json(&lock_body("  ", PASSWORD)).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let r = tm.post(w.url(&locks)).json(&lock_body("interim analysis", "wrong")).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let r = tm
        .post(w.url(&locks))
        .json(&json!({"scope": "visit", "subject_id": a, "reason": "x", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("visit_id"));
    let lock = check(
        tm.post(w.url(&locks)).json(&lock_body("interim analysis data cut", PASSWORD)).send().await.unwrap(),
        201,
    )
    .await;
    let lock_id = lock["id"].as_str().unwrap().to_string();
    assert_eq!(
        (lock["scope"].as_str(), lock["visit_id"].as_str(), lock["active"].as_bool()),
        (Some("visit"), Some("W8"), Some(true))
    );
    assert_eq!(lock["subject_id"], "101-001");
    assert_eq!(lock["signatures"][0]["meaning"], "data locked");
    assert_eq!(lock["signatures"][0]["valid"], true);
    let r = tm.post(w.url(&locks)).json(&lock_body("again", PASSWORD)).send().await.unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains(&lock_id));

    // Reads of the locked visit: 409 naming the lock, blinded (no subject, no visit).
    let (s, v) = r1.submit("TP2", follow_up(25.0, 18.0), None).await;
    assert_eq!(s, 409, "{v}");
    let msg =
        v["error"]["message"].as_str().or(v["message"].as_str()).map(str::to_string).unwrap_or_else(|| v.to_string());
    assert!(msg.contains(&lock_id) && msg.contains("submitting this read"), "{msg}");
    assert!(!msg.contains("101-001") && !msg.contains("W8"), "blinded roles see neither subject nor visit: {msg}");
    let task = r1.task("TP2").await;
    let (s, _) =
        r1.post(&format!("/api/v1/read-tasks/{task}/draft"), json!({"assessment": follow_up(25.0, 18.0)})).await;
    assert_eq!(s, 409);
    // The baseline is not locked: reader 2 reads it.
    assert_eq!(r2.submit("TP1", baseline(31.3, 21.7), Some("reader2")).await.0, 200);
    // A data query on the locked visit: 409 naming the lock and the visit.
    let r = tm
        .post(w.url(&format!("/api/v1/subjects/{a}/queries")))
        .json(&json!({"visit_id": "W8", "title": "Contrast phase", "body": "Please confirm the contrast phase."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let text = r.text().await.unwrap();
    assert!(text.contains(&lock_id) && text.contains("visit W8 of subject 101-001"), "{text}");
    // A query on another visit is fine.
    check(
        tm.post(w.url(&format!("/api/v1/subjects/{a}/queries")))
            .json(&json!({"visit_id": "BL", "title": "Slice thickness", "body": "Please confirm."}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    // New images for the locked visit wait in the inbox, the lock named as the reason.
    let dir = tempfile::tempdir().unwrap();
    let files = ct_series(
        dir.path(),
        &SeriesSpec {
            subject: "101-001",
            time_point: "W8",
            study_date: "20261126",
            study_uid: "1.2.826.0.1.3680043.8.498.99002",
            series_number: 3,
            slices: 2,
            thickness_mm: 5.0,
            description: "CT CAP PORTAL VENOUS",
            contrast: true,
            skip: &[],
        },
    );
    let target = corelab_app::ingest::IngestTarget {
        trial_id: t,
        site_id: "101".into(),
        source: corelab_app::ingest::Source::Upload,
        sender: "site_a".into(),
        sender_role: "site_user".into(),
        sender_id: Some(w.user_ids["site_a"]),
    };
    let setup = w.t.app.ingest_setup(&target).await.unwrap();
    for f in files {
        match w
            .t
            .app
            .ingest(&setup, target.clone(), std::io::BufReader::new(std::fs::File::open(f).unwrap()))
            .await
            .unwrap()
        {
            corelab_app::ingest::IngestOutcome::Inbox { reason, .. } => {
                assert!(reason.contains("is locked by data lock") && reason.contains(&lock_id), "{reason}");
            }
            other => panic!("images reached a locked visit: {other:?}"),
        }
    }
    let inbox = check(tm.get(w.url(&format!("/api/v1/trials/{t}/inbox"))).send().await.unwrap(), 200).await;
    let item =
        inbox.as_array().unwrap().iter().find(|i| i["reason"].as_str().unwrap_or("").contains(&lock_id)).cloned();
    let item = item.unwrap_or_else(|| panic!("no inbox item names the lock: {inbox:#}"));
    // Filing it into the locked visit is refused too.
    let r = tm
        .post(w.url(&format!("/api/v1/inbox/{}/assign", item["id"].as_str().unwrap())))
        .json(&json!({"subject_id": a, "visit_id": "W8", "reason": "same patient"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    // The database refuses a read version of the locked visit even past the use cases.
    let mut tx = w.t.app.db().begin().await.unwrap();
    let task_id: uuid::Uuid = task.parse().unwrap();
    let err = tx
        .insert_read_version(&corelab_store::reads::ReadVersionRow {
            id: uuid::Uuid::new_v4(),
            task_id,
            version: 99,
            state: "draft".into(),
            assessment: "{}".into(),
            result: None,
            reason: None,
            author_id: w.user_ids["reader"],
            saved_at: chrono::Utc::now(),
            submitted_at: None,
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("data lock"), "{err}");
    drop(tx);

    // Trial managers and monitors see the locks; readers do not.
    let list = check(w.c("monitor").get(w.url(&locks)).send().await.unwrap(), 200).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(w.c("reader").get(w.url(&locks)).send().await.unwrap().status(), 403);

    // Unlocking: a reason and the password; then the read goes through.
    let unlock = format!("/api/v1/locks/{lock_id}/unlock");
    let r = tm.post(w.url(&unlock)).json(&json!({"reason": "", "password": PASSWORD})).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let r = tm
        .post(w.url(&unlock))
        .json(&json!({"reason": "query on the scan", "password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        w.c("monitor")
            .post(w.url(&unlock))
            .json(&json!({"reason": "x", "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let released = check(
        tm.post(w.url(&unlock))
            .json(&json!({"reason": "site query on the W8 scan", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(released["active"], false);
    assert_eq!(released["unlock_reason"], "site query on the W8 scan");
    let meanings: Vec<&str> =
        released["signatures"].as_array().unwrap().iter().map(|s| s["meaning"].as_str().unwrap()).collect();
    assert_eq!(meanings, ["data locked", "data unlocked"]);
    assert_eq!(
        tm.post(w.url(&unlock)).json(&json!({"reason": "again", "password": PASSWORD})).send().await.unwrap().status(),
        409
    );
    let (s, v) = r1.submit("TP2", follow_up(25.0, 18.0), None).await;
    assert_eq!(s, 200, "{v}");

    // QC of a locked visit: the week 16 images pass the automated check, then the visit is
    // locked; the QC review answers 409 naming the lock.
    let dir16 = tempfile::tempdir().unwrap();
    let files = ct_series(
        dir16.path(),
        &SeriesSpec {
            subject: "101-001",
            time_point: "W16",
            study_date: "20270121",
            study_uid: "1.2.826.0.1.3680043.8.498.99003",
            series_number: 2,
            slices: 6,
            thickness_mm: 5.0,
            description: "CT CAP PORTAL VENOUS",
            contrast: true,
            skip: &[],
        },
    );
    for f in files {
        w.t.app.ingest(&setup, target.clone(), std::io::BufReader::new(std::fs::File::open(f).unwrap())).await.unwrap();
    }
    let visit16 = w.url(&format!("/api/v1/subjects/{a}/visits/W16"));
    let mut state = Value::Null;
    for _ in 0..150 {
        state = check(w.c("qc").get(&visit16).send().await.unwrap(), 200).await["state"].clone();
        if state == "awaiting_qc1" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(state, "awaiting_qc1");
    let lock16 = check(
        tm.post(w.url(&locks))
            .json(&json!({"scope": "visit", "subject_id": a, "visit_id": "W16", "reason": "data review", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let r = w
        .c("qc")
        .post(format!("{visit16}/qc"))
        .json(&json!({"outcome": "accept", "username": "qc", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let text = r.text().await.unwrap();
    assert!(text.contains(lock16["id"].as_str().unwrap()) && text.contains("a QC review of this visit"), "{text}");
    assert_eq!(check(w.c("qc").get(&visit16).send().await.unwrap(), 200).await["state"], "awaiting_qc1");
    check(
        tm.post(w.url(&format!("/api/v1/locks/{}/unlock", lock16["id"].as_str().unwrap())))
            .json(&json!({"reason": "review done", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;

    // A trial lock covers every subject and visit.
    let trial_lock = check(
        tm.post(w.url(&locks))
            .json(&json!({"scope": "trial", "reason": "database lock", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let (s, v) = r2.submit("TP2", follow_up(26.0, 18.5), None).await;
    assert_eq!(s, 409, "{v}");
    assert!(v.to_string().contains(trial_lock["id"].as_str().unwrap()));
    let r = tm
        .post(w.url(&format!("/api/v1/subjects/{a}/queries")))
        .json(&json!({"visit_id": "BL", "title": "x", "body": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("the whole trial"));
    // Subject records too: a correction or a withdrawal under the lock is refused.
    let r = w
        .c("site_a")
        .post(w.url(&format!("/api/v1/subjects/{a}/correct")))
        .json(&json!({"anchor_date": "2026-10-04", "reason": "transcription error"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("correcting this subject"));
    let r = w
        .c("site_a")
        .post(w.url(&format!("/api/v1/subjects/{a}/withdraw")))
        .json(&json!({"date": "2026-12-01", "reason": "consent withdrawn"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    // The audit trail: lock and unlock with their reasons and signatures.
    let mut tx = w.t.app.db().read().await.unwrap();
    let recs = tx
        .list_audit(&corelab_store::audit::AuditFilter { trial_id: Some(t), limit: 5000, ..Default::default() })
        .await
        .unwrap();
    drop(tx);
    let lock_rec = recs.iter().find(|r| r.action == "lock" && r.object_id == lock_id).unwrap();
    assert_eq!((lock_rec.actor_name.as_str(), lock_rec.reason.as_deref()), ("tm", Some("interim analysis data cut")));
    let unlock_rec = recs.iter().find(|r| r.action == "unlock" && r.object_id == lock_id).unwrap();
    assert_eq!(unlock_rec.reason.as_deref(), Some("site query on the W8 scan"));
    assert!(recs.iter().any(|r| r.action == "sign" && r.object_type == "data_unlock" && r.object_id == lock_id));
    w.t.stop().await;
}

/// Ingests `file` as an upload from site 101: sends its header, waits until the instance is matched
/// (its output is open in staging), runs `meanwhile`, then sends the rest.
async fn ingest_with_a_pause<F: std::future::Future<Output = ()>>(
    w: &crate::world::World,
    setup: &corelab_app::ingest::IngestSetup,
    file: &std::path::Path,
    meanwhile: F,
) -> corelab_app::ingest::IngestOutcome {
    let bytes = std::fs::read(file).unwrap();
    // Up to the pixel data's value.
    let cut = bytes.windows(4).position(|b| b == [0xE0, 0x7F, 0x10, 0x00]).unwrap() + 12;
    let (feed, rx) = tokio::sync::mpsc::channel(4);
    feed.send(bytes[..cut].to_vec().into()).await.unwrap();
    let ingest = {
        let (app, setup, target) = (w.t.app.clone(), setup.clone(), upload_target(w));
        tokio::spawn(async move {
            app.ingest(&setup, target, corelab_app::ingest::ChannelReader::new(Vec::new(), rx)).await
        })
    };
    let staging = w.t.app.blobs().new_staging_path().parent().unwrap().to_path_buf();
    let started = std::time::Instant::now();
    while std::fs::read_dir(&staging).map(|d| d.count()).unwrap_or(0) == 0 {
        assert!(started.elapsed().as_secs() < 20, "the instance was never matched");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    meanwhile.await;
    feed.send(bytes[cut..].to_vec().into()).await.unwrap();
    drop(feed);
    ingest.await.unwrap().unwrap()
}

fn upload_target(w: &crate::world::World) -> corelab_app::ingest::IngestTarget {
    corelab_app::ingest::IngestTarget {
        trial_id: w.trial,
        site_id: "101".into(),
        source: corelab_app::ingest::Source::Upload,
        sender: "site_a".into(),
        sender_role: "site_user".into(),
        sender_id: Some(w.user_ids["site_a"]),
    }
}

/// Two week-8 CT slices of subject 101-001.
fn week8_slices(dir: &std::path::Path, slices: usize) -> Vec<std::path::PathBuf> {
    ct_series(
        dir,
        &SeriesSpec {
            subject: "101-001",
            time_point: "W8",
            study_date: "20261126",
            study_uid: "1.2.826.0.1.3680043.8.498.99004",
            series_number: 3,
            slices,
            thickness_mm: 5.0,
            description: "CT CAP PORTAL VENOUS",
            contrast: true,
            skip: &[],
        },
    )
}

/// A lock taken while an instance is on its way (matched to its visit, pixels still arriving)
/// keeps it out: the index writer reads the locks in the transaction that files it. The item
/// waits in the inbox de-identified for the subject; once unlocked, filing it changes no date.
async fn lock_taken_mid_transfer(backend: Backend) {
    let w = crate::world::world(backend).await;
    let (t, a) = (w.trial, w.subject_a);
    let tm = w.c("tm").clone();
    let dir = tempfile::tempdir().unwrap();
    let files = week8_slices(dir.path(), 2);
    let target = upload_target(&w);
    let setup = w.t.app.ingest_setup(&target).await.unwrap();
    let locks = format!("/api/v1/trials/{t}/locks");
    let mut lock_id = String::new();
    let outcome = ingest_with_a_pause(&w, &setup, &files[0], async {
        let lock = check(
            tm.post(w.url(&locks))
                .json(&json!({"scope": "visit", "subject_id": a, "visit_id": "W8", "reason": "data cut",
                              "username": "tm", "password": PASSWORD}))
                .send()
                .await
                .unwrap(),
            201,
        )
        .await;
        lock_id = lock["id"].as_str().unwrap().to_string();
    })
    .await;
    match outcome {
        corelab_app::ingest::IngestOutcome::Inbox { reason, .. } => {
            assert!(reason.contains("is locked by data lock") && reason.contains(&lock_id), "{reason}");
        }
        other => panic!("an instance on its way reached a visit locked meanwhile: {other:?}"),
    }
    let mut tx = w.t.app.db().read().await.unwrap();
    assert!(tx.trial_instances(t).await.unwrap().is_empty(), "nothing is filed under the locked visit");
    drop(tx);
    let inbox = check(tm.get(w.url(&format!("/api/v1/trials/{t}/inbox"))).send().await.unwrap(), 200).await;
    let item = inbox.as_array().unwrap().iter().find(|i| i["reason"].as_str().unwrap_or("").contains(&lock_id));
    let item = item.unwrap_or_else(|| panic!("no inbox item names the lock: {inbox:#}"));
    assert_eq!((item["claimed_subject"].as_str(), item["claimed_visit"].as_str()), (Some("101-001"), Some("W8")));

    // Unlocked, the item is filed; its dates match those of the next slice, sent normally.
    check(
        tm.post(w.url(&format!("/api/v1/locks/{lock_id}/unlock")))
            .json(&json!({"reason": "cut taken", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    check(
        tm.post(w.url(&format!("/api/v1/inbox/{}/assign", item["id"].as_str().unwrap())))
            .json(&json!({"subject_id": a, "visit_id": "W8", "reason": "the visit was locked while it arrived"}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let second = std::io::BufReader::new(std::fs::File::open(&files[1]).unwrap());
    assert!(matches!(
        w.t.app.ingest(&setup, target, second).await.unwrap(),
        corelab_app::ingest::IngestOutcome::Stored { duplicate: false, .. }
    ));
    let mut tx = w.t.app.db().read().await.unwrap();
    let stored = tx.trial_instances(t).await.unwrap();
    drop(tx);
    assert_eq!(stored.len(), 2);
    let mut seen = Vec::new();
    for i in &stored {
        let b = w.t.app.blobs().get_bytes(&i.blob_key).await.unwrap();
        let obj = dicom_object::from_reader(&b[128..]).unwrap();
        let text = |tag| obj.element(tag).unwrap().to_str().unwrap().trim().to_string();
        use dicom_dictionary_std::tags;
        seen.push((text(tags::PATIENT_ID), text(tags::STUDY_DATE), text(tags::CLINICAL_TRIAL_TIME_POINT_ID)));
    }
    assert_eq!(seen[0], seen[1], "the filed item carries the subject's pseudonym and date shift exactly once");
    assert_eq!(seen[0].0, "101-001");
    assert_ne!(seen[0].1, "20261126", "the study date is shifted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_taken_while_an_instance_arrives_keeps_it_out() {
    lock_taken_mid_transfer(Backend::SqliteLocal).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_taken_while_an_instance_arrives_keeps_it_out_pg_s3() {
    lock_taken_mid_transfer(Backend::PgS3).await;
}

/// An instance matched under a subject record that changes before it is filed waits in the inbox,
/// whether the record was read for it or kept from the association's previous instance; the next
/// instance is matched under the new record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_record_changed_while_instances_arrive_holds_them_back() {
    let w = crate::world::world(Backend::SqliteLocal).await;
    let (t, a) = (w.trial, w.subject_a);
    let tm = w.c("tm").clone();
    let dir = tempfile::tempdir().unwrap();
    let files = week8_slices(dir.path(), 4);
    let target = upload_target(&w);
    let setup = w.t.app.ingest_setup(&target).await.unwrap();
    let open = |i: usize| std::io::BufReader::new(std::fs::File::open(&files[i]).unwrap());
    let stored = |o: &corelab_app::ingest::IngestOutcome| {
        matches!(o, corelab_app::ingest::IngestOutcome::Stored { duplicate: false, .. })
    };
    let correct = |anchor: &'static str| {
        let (tm, url) = (tm.clone(), w.url(&format!("/api/v1/subjects/{a}/correct")));
        async move {
            check(
                tm.post(url)
                    .json(&json!({"anchor_date": anchor, "reason": "baseline date typo"}))
                    .send()
                    .await
                    .unwrap(),
                200,
            )
            .await;
        }
    };
    let held = |o: corelab_app::ingest::IngestOutcome| match o {
        corelab_app::ingest::IngestOutcome::Inbox { reason, .. } => {
            assert!(
                reason.contains("record of subject 101-001 changed while these images were on their way"),
                "{reason}"
            )
        }
        other => panic!("an instance matched under a changed subject record was filed: {other:?}"),
    };
    let o = w.t.app.ingest(&setup, target.clone(), open(0)).await.unwrap();
    assert!(stored(&o), "{o:?}");
    // Corrected between two instances of one association: the second was matched under the record
    // kept from the first.
    correct("2026-09-21").await;
    held(w.t.app.ingest(&setup, target.clone(), open(1)).await.unwrap());
    let o = w.t.app.ingest(&setup, target.clone(), open(2)).await.unwrap();
    assert!(stored(&o), "the next instance is matched under the new record: {o:?}");
    // Corrected while an instance is on its way.
    held(ingest_with_a_pause(&w, &setup, &files[3], correct("2026-09-22")).await);
    let mut tx = w.t.app.db().read().await.unwrap();
    assert_eq!(tx.trial_instances(t).await.unwrap().len(), 2);
    let waiting = tx.inbox(t).await.unwrap();
    assert_eq!(waiting.iter().filter(|i| i.reason.contains("record of subject 101-001 changed")).count(), 2);
}
