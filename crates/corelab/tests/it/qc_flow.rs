//! QC end to end: storescu sends a non-compliant visit -> automated finding -> automatic data query
//! -> the site resubmits a compliant series -> the re-check passes -> the query closes -> QC1 and
//! QC2 accept (e-signed) -> the visit is ready for reading; the audit trail shows each step.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::ingest::{corpus_trial, storescu};
use crate::support::{Backend, TestApp, dcmtk, spawn_app};
use crate::world::{PASSWORD, World, check};

/// How a generated CT series should look.
pub struct SeriesSpec<'a> {
    pub subject: &'a str,
    pub time_point: &'a str,
    pub study_date: &'a str,
    pub study_uid: &'a str,
    pub series_number: u32,
    pub slices: usize,
    pub thickness_mm: f64,
    pub description: &'a str,
    pub contrast: bool,
    /// Slice indexes left out (a series with a gap).
    pub skip: &'a [usize],
}

/// Writes a CT series of 512x512 images (the charter's minimum matrix) with PHI in each header.
pub fn ct_series(dir: &Path, s: &SeriesSpec) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let series_uid = format!("{}.{}", s.study_uid, s.series_number);
    let mut out = Vec::new();
    for i in (0..s.slices).filter(|i| !s.skip.contains(i)) {
        let e = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
        let sop = format!("{series_uid}.{}", i + 1);
        let z = format!("{:.2}", -(i as f64) * s.thickness_mm);
        let mut elems = vec![
            e(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.2"),
            e(tags::SOP_INSTANCE_UID, VR::UI, &sop),
            e(tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\PRIMARY\\AXIAL"),
            e(tags::STUDY_DATE, VR::DA, s.study_date),
            e(tags::ACQUISITION_DATE, VR::DA, s.study_date),
            e(tags::MODALITY, VR::CS, "CT"),
            e(tags::MANUFACTURER, VR::LO, "ACME MEDICAL"),
            e(tags::MANUFACTURER_MODEL_NAME, VR::LO, "SCANMASTER 64"),
            e(tags::INSTITUTION_NAME, VR::LO, "Hopital Saint-Louis"),
            e(tags::SERIES_DESCRIPTION, VR::LO, s.description),
            e(tags::PATIENT_NAME, VR::PN, "DOE^JOHN^QCFLOW"),
            e(tags::PATIENT_ID, VR::LO, s.subject),
            e(tags::PATIENT_BIRTH_DATE, VR::DA, "19580412"),
            e(tags::CLINICAL_TRIAL_SUBJECT_ID, VR::LO, s.subject),
            e(tags::CLINICAL_TRIAL_TIME_POINT_ID, VR::LO, s.time_point),
            e(tags::BODY_PART_EXAMINED, VR::CS, "CHEST_TO_PELVIS"),
            e(tags::SLICE_THICKNESS, VR::DS, &format!("{}", s.thickness_mm)),
            e(tags::KVP, VR::DS, "120"),
            e(tags::STUDY_INSTANCE_UID, VR::UI, s.study_uid),
            e(tags::SERIES_INSTANCE_UID, VR::UI, &series_uid),
            e(tags::SERIES_NUMBER, VR::IS, &s.series_number.to_string()),
            e(tags::INSTANCE_NUMBER, VR::IS, &(i + 1).to_string()),
            e(tags::IMAGE_POSITION_PATIENT, VR::DS, &format!("-160\\-160\\{z}")),
            e(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, "1\\0\\0\\0\\1\\0"),
            DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1_u16)),
            e(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
            DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(512_u16)),
            DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(512_u16)),
            e(tags::PIXEL_SPACING, VR::DS, "0.7\\0.7"),
            DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16_u16)),
            DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(12_u16)),
            DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(11_u16)),
            DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(0_u16)),
            DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(vec![0u8; 512 * 512 * 2])),
        ];
        if s.contrast {
            elems.push(e(tags::CONTRAST_BOLUS_AGENT, VR::LO, "IOHEXOL 350"));
            elems.push(e(tags::CONTRAST_BOLUS_ROUTE, VR::LO, "IV"));
        }
        let file = InMemDicomObject::from_element_iter(elems)
            .with_meta(
                FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1").implementation_class_uid("1.2.3.4"),
            )
            .unwrap();
        let path = dir.join(format!("{}-{}.dcm", s.series_number, i + 1));
        file.write_to_file(&path).unwrap();
        out.push(path);
    }
    out
}

/// The corpus trial with QC staff: two QC reviewers and a site user of SITE01.
async fn qc_trial(t: &TestApp) -> (Uuid, reqwest::Client, reqwest::Client, reqwest::Client) {
    let trial = corpus_trial(t).await;
    let mut clients = Vec::new();
    for (user, name, role, site) in [
        ("qc1", "Quinn One", "qc_reviewer", None),
        ("qc2", "Quinn Two", "qc_reviewer", None),
        ("site1", "Sid Site", "site_user", Some("SITE01")),
    ] {
        let v = check(
            t.post_json("/api/v1/users", json!({"username": user, "display_name": name, "password": PASSWORD})).await,
            201,
        )
        .await;
        let id = v["user"]["id"].clone();
        check(
            t.post_json(
                &format!("/api/v1/trials/{trial}/grants"),
                json!({"user_id": id, "role": role, "site_id": site}),
            )
            .await,
            201,
        )
        .await;
        clients.push(World::login(t, user).await);
    }
    let site = clients.pop().unwrap();
    let qc2 = clients.pop().unwrap();
    let qc1 = clients.pop().unwrap();
    (trial, qc1, qc2, site)
}

async fn subject_uuid(t: &TestApp, trial: Uuid, code: &str) -> Uuid {
    let mut tx = t.app.db().read().await.unwrap();
    tx.subject_by_code(trial, code).await.unwrap().unwrap().id
}

/// Polls a visit until its state is `want` (jobs run in the background every 200 ms).
async fn wait_state(c: &reqwest::Client, t: &TestApp, subject: Uuid, visit: &str, want: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        last =
            check(c.get(t.url(&format!("/api/v1/subjects/{subject}/visits/{visit}"))).send().await.unwrap(), 200).await;
        if last["state"] == want {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("visit {visit} never reached {want}: {last:#}");
}

fn rules(eval: &Value) -> Vec<(String, String)> {
    eval["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["rule"].as_str().unwrap().to_string(), f["severity"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noncompliant_visit_loops_back_to_the_site_and_on_to_reading() {
    let Some(_) = dcmtk("storescu") else { return };
    let t = spawn_app(Backend::SqliteLocal).await;
    let (trial, qc1, qc2, site) = qc_trial(&t).await;
    let subject = subject_uuid(&t, trial, "SITE01-0001").await;
    let dir = tempfile::tempdir().unwrap();
    let study = "1.2.826.0.1.3680043.8.498.7001";
    let base = SeriesSpec {
        subject: "SITE01-0001",
        time_point: "V1",
        study_date: "20230301",
        study_uid: study,
        series_number: 2,
        slices: 12,
        thickness_mm: 7.0,
        description: "CT CAP PORTAL VENOUS",
        contrast: true,
        skip: &[],
    };
    // 1. Site sends 7 mm slices; the charter allows at most 5 mm.
    let files = ct_series(&dir.path().join("a"), &base);
    let (ok, err) = storescu(&t, "SITE01_CT", "ACMEONC301", &files, &[]).await;
    assert!(ok, "{err}");
    let v = wait_state(&site, &t, subject, "V1", "qc_failed").await;
    let eval = &v["evaluations"][0];
    let found = rules(eval);
    assert!(found.contains(&("slice_thickness".into(), "error".into())), "{found:?}");
    assert!(
        eval["findings"].as_array().unwrap().iter().any(|f| f["message"].as_str().unwrap().contains("5")),
        "the message names the limit: {eval:#}"
    );
    // 2. The automatic data query reaches the site, listing the finding.
    let qs = check(site.get(t.url(&format!("/api/v1/trials/{trial}/queries"))).send().await.unwrap(), 200).await;
    let q = qs.as_array().unwrap().iter().find(|q| q["source"] == "auto_qc").expect("an automatic query").clone();
    assert_eq!(q["state"], "open");
    assert!(q["messages"][0]["body"].as_str().unwrap().contains("7"), "{q:#}");
    let qid = q["id"].as_str().unwrap().to_string();
    // A QC reviewer cannot accept a visit that failed the automated check.
    let r = qc1
        .post(t.url(&format!("/api/v1/subjects/{subject}/visits/V1/qc")))
        .json(&json!({"outcome": "accept", "username": "qc1", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    // 3. The site answers by resubmitting a compliant 5 mm series (a new series number).
    let files = ct_series(&dir.path().join("b"), &SeriesSpec { series_number: 3, thickness_mm: 5.0, ..base });
    let (ok, err) = storescu(&t, "SITE01_CT", "ACMEONC301", &files, &[]).await;
    assert!(ok, "{err}");
    let v = wait_state(&site, &t, subject, "V1", "awaiting_qc1").await;
    let latest = v["evaluations"].as_array().unwrap().last().unwrap().clone();
    assert_ne!(latest["verdict"], "fail", "{latest:#}");
    // 4. The query closed itself, with the resubmission in its thread.
    let q = check(site.get(t.url(&format!("/api/v1/queries/{qid}"))).send().await.unwrap(), 200).await;
    assert_eq!(q["state"], "closed", "{q:#}");
    let kinds: Vec<&str> = q["messages"].as_array().unwrap().iter().map(|m| m["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"resubmission") && kinds.contains(&"closed"), "{kinds:?}");
    // 5. QC1 and QC2, each e-signed, by two different reviewers.
    let decide = |c: &reqwest::Client, body: Value| {
        c.post(t.url(&format!("/api/v1/subjects/{subject}/visits/V1/qc"))).json(&body).send()
    };
    let v =
        check(decide(&qc1, json!({"outcome": "accept", "username": "qc1", "password": PASSWORD})).await.unwrap(), 200)
            .await;
    assert_eq!(v["state"], "awaiting_qc2");
    let r = decide(&qc1, json!({"outcome": "accept", "password": PASSWORD})).await.unwrap();
    assert_eq!(r.status(), 409, "QC2 by the QC1 reviewer is refused");
    let v = check(
        decide(&qc2, json!({"outcome": "accept_with_deviation", "reason": "the repeated 7 mm series is superseded", "username": "qc2", "password": PASSWORD}))
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(v["state"], "qc_passed", "the visit moves on to reading");
    let grid = check(site.get(t.url(&format!("/api/v1/trials/{trial}/visits"))).send().await.unwrap(), 200).await;
    let row = grid.as_array().unwrap().iter().find(|r| r["subject_id"] == "SITE01-0001").unwrap();
    assert_eq!(row["visits"][0]["state"], "qc_passed");
    // 6. The audit trail shows each step with who and why.
    let mut tx = t.app.db().read().await.unwrap();
    let recs = tx
        .list_audit(&corelab_store::audit::AuditFilter { trial_id: Some(trial), limit: 1000, ..Default::default() })
        .await
        .unwrap();
    drop(tx);
    let steps: Vec<(String, String, String)> = recs
        .iter()
        .filter(|r| ["visit_qc", "query", "qc_review"].contains(&r.object_type.as_str()))
        .map(|r| (r.action.clone(), r.object_type.clone(), r.actor_name.clone()))
        .collect();
    let has = |a: &str, o: &str, who: &str| steps.iter().any(|(x, y, z)| x == a && y == o && z == who);
    assert!(has("evaluate", "visit_qc", "corelab"), "{steps:?}");
    assert!(has("create", "query", "corelab"));
    assert!(has("update", "query", "corelab"), "the automatic close is audited: {steps:?}");
    assert!(has("review", "visit_qc", "qc1") && has("review", "visit_qc", "qc2"));
    assert!(has("sign", "qc_review", "qc1") && has("sign", "qc_review", "qc2"));
    let deviation = recs.iter().find(|r| r.action == "review" && r.actor_name == "qc2").unwrap();
    assert_eq!(deviation.reason.as_deref(), Some("the repeated 7 mm series is superseded"));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_becomes_a_query_that_a_resubmission_answers() {
    let Some(_) = dcmtk("storescu") else { return };
    let t = spawn_app(Backend::SqliteLocal).await;
    let (trial, qc1, _qc2, site) = qc_trial(&t).await;
    let subject = subject_uuid(&t, trial, "SITE01-0001").await;
    let dir = tempfile::tempdir().unwrap();
    let base = SeriesSpec {
        subject: "SITE01-0001",
        time_point: "V1",
        study_date: "20230301",
        study_uid: "1.2.826.0.1.3680043.8.498.7002",
        series_number: 2,
        slices: 10,
        thickness_mm: 5.0,
        description: "CT CAP PORTAL VENOUS",
        contrast: true,
        skip: &[],
    };
    let files = ct_series(&dir.path().join("a"), &base);
    assert!(storescu(&t, "SITE01_CT", "ACMEONC301", &files, &[]).await.0);
    wait_state(&site, &t, subject, "V1", "awaiting_qc1").await;
    // A reason is required to reject; then the site gets a query.
    let decide = |body: Value| qc1.post(t.url(&format!("/api/v1/subjects/{subject}/visits/V1/qc"))).json(&body).send();
    assert_eq!(
        decide(json!({"outcome": "reject", "username": "qc1", "password": PASSWORD})).await.unwrap().status(),
        422
    );
    let v = check(
        decide(json!({"outcome": "reject", "reason": "motion artefacts in the liver", "username": "qc1", "password": PASSWORD}))
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(v["state"], "qc_rejected");
    let qs = check(site.get(t.url(&format!("/api/v1/trials/{trial}/queries"))).send().await.unwrap(), 200).await;
    let q = qs.as_array().unwrap().iter().find(|q| q["source"] == "qc_review").unwrap().clone();
    assert!(q["messages"][0]["body"].as_str().unwrap().contains("motion artefacts"));
    let qid = q["id"].as_str().unwrap().to_string();
    // The site writes back, then resubmits; the visit returns to QC and the query waits for it.
    check(
        site.post(t.url(&format!("/api/v1/queries/{qid}/messages")))
            .json(&json!({"body": "Rescanned with breath-hold."}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let files = ct_series(&dir.path().join("b"), &SeriesSpec { series_number: 3, ..base });
    assert!(storescu(&t, "SITE01_CT", "ACMEONC301", &files, &[]).await.0);
    wait_state(&site, &t, subject, "V1", "awaiting_qc1").await;
    let q = check(site.get(t.url(&format!("/api/v1/queries/{qid}"))).send().await.unwrap(), 200).await;
    assert_eq!(q["state"], "answered");
    // Accepting now closes the query.
    check(decide(json!({"outcome": "accept", "password": PASSWORD})).await.unwrap(), 200).await;
    let q = check(site.get(t.url(&format!("/api/v1/queries/{qid}"))).send().await.unwrap(), 200).await;
    assert_eq!(q["state"], "closed");
    // Site users cannot close queries; QC can reopen with a reason.
    let r =
        site.post(t.url(&format!("/api/v1/queries/{qid}/reopen"))).json(&json!({"reason": "x"})).send().await.unwrap();
    assert_eq!(r.status(), 403);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_visits_raise_queries_at_once_and_old_queries_get_reminders() {
    let t = spawn_app(Backend::SqliteLocal).await;
    let (trial, _, _, site) = qc_trial(&t).await;
    // The corpus trial's subjects were enrolled in 2023: both their V1 and V2 windows are long closed.
    let (raised, _) = t.app.overdue_scan(7).await.unwrap();
    assert_eq!(raised, 4, "two subjects x two visits");
    let (again, _) = t.app.overdue_scan(7).await.unwrap();
    assert_eq!(again, 0, "no second query for the same visit");
    let qs = check(site.get(t.url(&format!("/api/v1/trials/{trial}/queries"))).send().await.unwrap(), 200).await;
    let mine: Vec<&Value> = qs.as_array().unwrap().iter().collect();
    assert_eq!(mine.len(), 2, "the site user sees only SITE01's two");
    assert!(mine.iter().all(|q| q["source"] == "overdue" && q["title"].as_str().unwrap().contains("overdue")));
    let grid = check(site.get(t.url(&format!("/api/v1/trials/{trial}/visits"))).send().await.unwrap(), 200).await;
    assert_eq!(grid[0]["visits"][0]["state"], "overdue");
    // A week later every open query gets one reminder.
    t.app.clock().advance(chrono::Duration::days(8));
    let (_, reminded) = t.app.overdue_scan(7).await.unwrap();
    assert_eq!(reminded, 4);
    let site = World::login(&t, "site1").await;
    let q = check(
        site.get(t.url(&format!("/api/v1/queries/{}", mine[0]["id"].as_str().unwrap()))).send().await.unwrap(),
        200,
    )
    .await;
    assert!(q["messages"].as_array().unwrap().iter().any(|m| m["kind"] == "reminder"));
    assert!(q["days_open"].as_i64().unwrap() >= 8);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_sites_four_problems_exactly_those_findings_and_queries() {
    let Some(_) = dcmtk("storescu") else { return };
    let t = spawn_app(Backend::SqliteLocal).await;
    t.login_admin().await;
    // The oncology example charter with a fourth site.
    let charter = crate::world::charter_text("oncology-ct-recist.toml").replace(
        "[subjects]",
        "[[sites]]\nid = \"202\"\nname = \"Test Site Four\"\ncountry = \"NL\"\nae_titles = [\"SITE4_CT\"]\n\n[subjects]",
    );
    let trial: Uuid = check(t.post_json("/api/v1/trials", json!({"charter": charter})).await, 201).await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let sites = [("101", "SLS_CT1"), ("102", "CHARITE_CT"), ("201", "MGH_ONCO_PACS"), ("202", "SITE4_CT")];
    for (site, _) in sites {
        check(
            t.client
                .post(t.url(&format!("/api/v1/trials/{trial}/sites/{site}/qualification/scans")))
                .body(crate::world::ct_instance("PHANTOM", "2.5"))
                .send()
                .await
                .unwrap(),
            201,
        )
        .await;
        let path = format!("/api/v1/trials/{trial}/sites/{site}/qualification/decision");
        check(
            t.post_json(
                &path,
                json!({"approve": true, "username": "admin", "password": crate::support::ADMIN_PASSWORD}),
            )
            .await,
            200,
        )
        .await;
        check(
            t.post_json(
                &format!("/api/v1/trials/{trial}/subjects"),
                json!({"site_id": site, "subject_id": format!("{site}-001"), "anchor_date": "2026-10-01"}),
            )
            .await,
            201,
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let dir = tempfile::tempdir().unwrap();
    let good = |subject: &'static str, uid: &'static str| SeriesSpec {
        subject,
        time_point: "BL",
        study_date: "20260925",
        study_uid: uid,
        series_number: 2,
        slices: 12,
        thickness_mm: 5.0,
        description: "CT CAP PORTAL VENOUS",
        contrast: true,
        skip: &[],
    };
    let specs = [
        SeriesSpec { thickness_mm: 7.0, ..good("101-001", "1.2.826.0.1.3680043.8.498.6101") },
        SeriesSpec { skip: &[5, 6], ..good("102-001", "1.2.826.0.1.3680043.8.498.6102") },
        SeriesSpec {
            contrast: false,
            description: "CT CAP PORTAL VENOUS",
            ..good("201-001", "1.2.826.0.1.3680043.8.498.6201")
        },
        SeriesSpec { study_date: "20261010", ..good("202-001", "1.2.826.0.1.3680043.8.498.6202") },
    ];
    for ((site, ae), spec) in sites.iter().zip(specs.iter()) {
        let files = ct_series(&dir.path().join(site), spec);
        let (ok, err) = storescu(&t, ae, "ACME101", &files, &[]).await;
        assert!(ok, "{site}: {err}");
    }
    let expected = [
        ("101-001", vec![("slice_thickness", "error")]),
        ("102-001", vec![("missing_slices", "error")]),
        ("201-001", vec![("contrast", "error")]),
        ("202-001", vec![("visit_window", "error")]),
    ];
    for (code, want) in &expected {
        let subject = subject_uuid(&t, trial, code).await;
        let v = wait_state(&t.client, &t, subject, "BL", "qc_failed").await;
        let got = rules(&v["evaluations"][0]);
        let want: Vec<(String, String)> = want.iter().map(|(r, s)| (r.to_string(), s.to_string())).collect();
        assert_eq!(got, want, "{code}: {:#}", v["evaluations"][0]["findings"]);
    }
    // Exactly one automatic query per failing visit, addressed to its site, and nothing else.
    let qs = check(t.get(&format!("/api/v1/trials/{trial}/queries")).await, 200).await;
    let mut got: Vec<(String, String, String)> = qs
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["site_id"].as_str().unwrap().into(),
                q["subject_code"].as_str().unwrap().into(),
                q["source"].as_str().unwrap().into(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("101".into(), "101-001".into(), "auto_qc".into()),
            ("102".into(), "102-001".into(), "auto_qc".into()),
            ("201".into(), "201-001".into(), "auto_qc".into()),
            ("202".into(), "202-001".into(), "auto_qc".into()),
        ]
    );
    t.stop().await;
}
