//! Blinded reads of the other forms, end to end: an LVEF trial (CARDIO-22: echo images through
//! ingest and QC, two blinded readers, a disagreement on EF and dysfunction, a per-variable
//! adjudication, the accepted result, and what each reader received as raw JSON), and an MS MRI
//! trial (NEURO-7 with a one-series imaging block: a single reader, the engine's lesion activity
//! and brain volume result, the accepted result).

use std::path::{Path, PathBuf};
use std::time::Duration;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::FileMetaTableBuilder;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::qc_flow::{SeriesSpec, ct_series};
use crate::reads::{Seen, assert_blind};
use crate::support::{ADMIN_PASSWORD, Backend};
use crate::world::{PASSWORD, World, charter_text, check, world};

/// Writes a series of `modality` (`sop_class`): generated as CT slices, then re-tagged.
#[allow(clippy::too_many_arguments)]
fn series(
    dir: &Path,
    subject: &str,
    visit: &str,
    date: &str,
    study_uid: &str,
    number: u32,
    description: &str,
    modality: &str,
    sop_class: &str,
) -> Vec<PathBuf> {
    let files = ct_series(
        dir,
        &SeriesSpec {
            subject,
            time_point: visit,
            study_date: date,
            study_uid,
            series_number: number,
            slices: 3,
            thickness_mm: 1.0,
            description,
            contrast: false,
            skip: &[],
        },
    );
    for f in &files {
        let mut obj = dicom_object::open_file(f).unwrap().into_inner();
        let e = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
        obj.put(e(tags::MODALITY, VR::CS, modality));
        obj.put(e(tags::SOP_CLASS_UID, VR::UI, sop_class));
        obj.put(e(tags::BURNED_IN_ANNOTATION, VR::CS, "NO"));
        obj.put(e(tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\PRIMARY"));
        obj.put(e(tags::BODY_PART_EXAMINED, VR::CS, if modality == "MR" { "BRAIN" } else { "HEART" }));
        obj.remove_element(tags::KVP);
        let file = obj
            .with_meta(
                FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1").implementation_class_uid("1.2.3.4"),
            )
            .unwrap();
        file.write_to_file(f).unwrap();
    }
    files
}

/// Ingests `files` for `site` of `trial` as `sender` would upload them.
async fn ingest(w: &World, trial: Uuid, site: &str, sender: &str, files: Vec<PathBuf>) {
    let target = corelab_app::ingest::IngestTarget {
        trial_id: trial,
        site_id: site.into(),
        source: corelab_app::ingest::Source::Upload,
        sender: sender.into(),
        sender_role: "site_user".into(),
        sender_id: Some(w.user_ids[sender]),
    };
    let setup = w.t.app.ingest_setup(&target).await.unwrap();
    for f in files {
        w.t.app.ingest(&setup, target.clone(), std::io::BufReader::new(std::fs::File::open(f).unwrap())).await.unwrap();
    }
}

/// Waits for the automated check of a visit and has QC1 accept it (both charters have one QC stage).
async fn pass_qc1(w: &World, subject: Uuid, visit: &str) {
    let url = w.url(&format!("/api/v1/subjects/{subject}/visits/{visit}"));
    let mut last = Value::Null;
    for _ in 0..150 {
        last = check(w.c("qc").get(&url).send().await.unwrap(), 200).await;
        if last["state"] == "awaiting_qc1" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(last["state"], "awaiting_qc1", "{last:#}");
    let v = check(
        w.c("qc")
            .post(format!("{url}/qc"))
            .json(&json!({"outcome": "accept", "username": "qc", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(v["state"], "qc_passed", "{v:#}");
}

/// The administrator grants `role` in `trial` to the world's account `user`.
async fn grant(w: &World, trial: Uuid, user: &str, role: &str) {
    check(
        w.c("admin")
            .post(w.url(&format!("/api/v1/trials/{trial}/grants")))
            .json(&json!({"user_id": w.user_ids[user], "role": role}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
}

async fn reader_profile(w: &World, trial: Uuid, user: &str, area: &str, criteria: &str) {
    check(
        w.c("tm")
            .post(w.url(&format!("/api/v1/trials/{trial}/reader-profiles")))
            .json(&json!({"user_id": w.user_ids[user], "therapeutic_areas": [area], "criteria": [criteria], "training_valid_until": "2030-12-31"}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
}

async fn tasks(r: &mut Seen<'_>, trial: Uuid) -> Vec<Value> {
    let (s, v) = r.get(&format!("/api/v1/trials/{trial}/reading/tasks")).await;
    assert_eq!(s, 200, "{v}");
    v.as_array().unwrap().clone()
}

async fn submit(
    r: &mut Seen<'_>,
    trial: Uuid,
    timepoint: &str,
    assessment: Value,
    username: Option<&str>,
) -> (u16, Value) {
    let list = tasks(r, trial).await;
    let task = list.iter().find(|t| t["timepoint"] == timepoint).unwrap_or_else(|| panic!("no {timepoint}: {list:?}"));
    let mut body = json!({"assessment": assessment, "password": PASSWORD});
    if let Some(u) = username {
        body["username"] = json!(u);
    }
    r.post(&format!("/api/v1/read-tasks/{}/submit", task["task_id"].as_str().unwrap()), body).await
}

const US_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.6.1";
const MR_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.4";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lvef_readers_disagree_on_dysfunction_and_the_adjudicator_chooses_per_timepoint() {
    let w = world(Backend::SqliteLocal).await;
    // The world's cardiology trial (CARDIO-22): site NL01 qualified, subject NL010001 (arm HW3).
    let t = w.other_trial;
    for (user, role) in [
        ("tm", "trial_manager"),
        ("qc", "qc_reviewer"),
        ("reader", "reader"),
        ("reader2", "reader"),
        ("adjudicator", "adjudicator"),
    ] {
        grant(&w, t, user, role).await;
    }
    for who in ["reader", "reader2", "adjudicator"] {
        reader_profile(&w, t, who, "cardiology", "LVEF").await;
    }
    let dir = tempfile::tempdir().unwrap();
    for (visit, date, uid) in [("BL", "20260926", "88001"), ("W12", "20261224", "88002")] {
        let study = format!("1.2.826.0.1.3680043.8.498.{uid}");
        let mut files = Vec::new();
        for (n, view) in [(1, "ECHO A4C"), (2, "ECHO A2C")] {
            let d = dir.path().join(format!("{visit}-{n}"));
            files.extend(series(&d, "NL010001", visit, date, &study, n, view, "US", US_IMAGE));
        }
        ingest(&w, t, "NL01", "site_b", files).await;
        pass_qc1(&w, w.other_subject, visit).await;
    }

    // Two blinded readers, a task per timepoint each.
    let overview =
        check(w.c("tm").get(w.url(&format!("/api/v1/trials/{t}/read-tasks"))).send().await.unwrap(), 200).await;
    let all = overview["tasks"].as_array().unwrap();
    assert_eq!(all.len(), 4, "{overview:#}");
    for (slot, who) in [(1, "reader"), (2, "reader2")] {
        assert!(
            all.iter().filter(|x| x["slot"] == slot).all(|x| x["reader"] == who && x["state"] == "open"),
            "{overview:#}"
        );
    }
    let (c1, c2) = (w.c("reader").clone(), w.c("reader2").clone());
    let mut r1 = Seen::new(&w, &c1);
    let mut r2 = Seen::new(&w, &c2);
    let list = tasks(&mut r1, t).await;
    let labels: Vec<(&str, &str)> =
        list.iter().map(|x| (x["timepoint"].as_str().unwrap(), x["kind"].as_str().unwrap())).collect();
    assert_eq!(labels, vec![("TP1", "baseline"), ("TP2", "follow_up")]);

    // Baselines: EF from volumes.
    let (s, bl) = submit(&mut r1, t, "TP1", json!({"edv_ml": 121.6, "esv_ml": 48.8}), Some("reader")).await;
    assert_eq!(s, 200, "{bl}");
    assert_eq!(bl["criteria"], "LVEF");
    assert_eq!(bl["state"], "submitted");
    let res = &bl["versions"][0]["result"]["lvef"];
    assert_eq!((res["ef_pct"].as_f64(), res["stroke_volume_ml"].as_f64()), (Some(59.9), Some(72.8)), "{bl:#}");
    assert_eq!(bl["versions"][0]["signatures"][0]["meaning"], "read completed");
    assert_eq!(bl["images"][0]["series"].as_array().unwrap().len(), 2);
    let (s, v) = submit(&mut r2, t, "TP1", json!({"edv_ml": 118.7, "esv_ml": 48.2}), Some("reader2")).await;
    assert_eq!(s, 200, "{v}");

    // Implausible input: the engine's error names the field.
    let (s, v) = submit(&mut r1, t, "TP2", json!({"edv_ml": 121.6, "esv_ml": 130.5}), None).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["field"], "assessment.esv_ml", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("ESV 130.5 ml must be smaller than EDV 121.6 ml"), "{v}");
    let (s, v) = submit(&mut r1, t, "TP2", json!({"edv_ml": 121.6}), None).await;
    assert_eq!((s, v["error"]["field"].as_str()), (422, Some("assessment.esv_ml")), "{v}");

    // Reader 1: EF 47.9 %, a fall of 11.9 points to below 53 %: dysfunction. Reader 2 reports an
    // EF of 55.0 %: no dysfunction. 7.1 points apart and a different category.
    let (s, tp2) = submit(&mut r1, t, "TP2", json!({"edv_ml": 121.6, "esv_ml": 63.3}), None).await;
    assert_eq!(s, 200, "{tp2}");
    let res = &tp2["versions"][0]["result"]["lvef"];
    assert_eq!(
        (res["ef_pct"].as_f64(), res["change_points"].as_f64(), res["dysfunction"].as_bool()),
        (Some(47.9), Some(-11.9), Some(true)),
        "{tp2:#}"
    );
    assert_eq!(tp2["earlier"][0]["timepoint"], "TP1");
    assert_eq!(tp2["earlier"][0]["assessment"]["edv_ml"], json!(121.6));
    let (s, tp2b) = submit(&mut r2, t, "TP2", json!({"ef_pct": 55}), None).await;
    assert_eq!(s, 200, "{tp2b}");
    assert_eq!(tp2b["versions"][0]["result"]["lvef"]["dysfunction"], false);
    assert_eq!(tp2b["versions"][0]["result"]["lvef"]["change_points"], json!(-4.4));

    // The adjudicator sees both complete assessments and the timepoint in disagreement.
    let adj = w.c("adjudicator");
    let mut seen_adj = Vec::new();
    let text =
        adj.get(w.url(&format!("/api/v1/trials/{t}/adjudication/tasks"))).send().await.unwrap().text().await.unwrap();
    seen_adj.push(text.clone());
    let mine: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine:#}");
    assert_eq!(mine[0]["variables"], json!(["lvef:TP2"]));
    let id = mine[0]["adjudication_id"].as_str().unwrap().to_string();
    let text = adj.get(w.url(&format!("/api/v1/adjudications/{id}"))).send().await.unwrap().text().await.unwrap();
    seen_adj.push(text.clone());
    let case: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(case["criteria"], "LVEF");
    assert_eq!(case["choice"], "per_variable");
    assert_eq!(
        case["disagreements"],
        json!([{"variable": "lvef:TP2", "reader_1": "EF 47.9 %, change -11.9 points, dysfunction",
                "reader_2": "EF 55.0 %, change -4.4 points, no dysfunction"}])
    );
    assert_eq!(case["reader_1"]["timepoints"][1]["assessment"], json!({"edv_ml": 121.6, "esv_ml": 63.3}));
    assert_eq!(case["reader_2"]["timepoints"][1]["result"]["lvef"]["ef_pct"], json!(55.0));
    assert!(case["reader_1"].get("best_overall_response").is_none(), "{case:#}");
    assert_eq!(case["timepoints"].as_array().unwrap().len(), 2);

    // The adjudication page offers a choice per timepoint, and its signing form states the choice.
    let page = adj.get(w.url(&format!("/adjudications/{id}"))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("name=\"var:lvef:TP2\" value=\"reader_2\"") && page.contains("EF 55.0 %"), "{page}");
    let form = adj
        .get(w.url(&format!("/adjudications/{id}/decide?var:lvef:TP2=reader_2")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(form.contains("per variable: lvef at TP2: reader 2") && form.contains("adjudication decided"), "{form}");
    for leak in ["NL010001", "Amsterdam", "2026-09-26", "Rita Reader", "Rob Reader"] {
        assert!(!page.contains(leak) && !form.contains(leak), "the adjudication pages show {leak}");
    }

    // Per variable: reader 2 for TP2, with a rationale, e-signed.
    let rationale =
        "reader 1 traced the end-systolic border inside the trabeculae; reader 2's EF matches the visual estimate";
    let r = adj
        .post(w.url(&format!("/api/v1/adjudications/{id}/decide")))
        .json(&json!({"variables": {"lvef:TP2": "reader_2"}, "rationale": rationale, "username": "adjudicator", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    seen_adj.push(text.clone());
    let decided: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(decided["state"], "decided", "{decided:#}");
    assert_eq!(decided["decision"], json!({"variables": {"lvef:TP2": "reader_2"}}));
    assert_eq!(decided["signatures"][0]["meaning"], "adjudication decided");

    // The accepted result records the adjudication: TP2 is reader 2's, no dysfunction.
    let acc =
        check(w.c("tm").get(w.url(&format!("/api/v1/trials/{t}/accepted-results"))).send().await.unwrap(), 200).await;
    let a = &acc[0];
    assert_eq!(a["subject_id"], "NL010001");
    assert_eq!(a["basis"], "adjudication");
    assert_eq!(a["adjudication_id"], id.as_str());
    assert_eq!(a["result"]["criteria"], "LVEF");
    let tps = a["result"]["timepoints"].as_array().unwrap();
    assert_eq!((tps[0]["visit_id"].as_str(), tps[0]["reader"].as_i64()), (Some("BL"), Some(1)));
    assert_eq!((tps[1]["visit_id"].as_str(), tps[1]["reader"].as_i64()), (Some("W12"), Some(2)));
    assert_eq!(tps[1]["lvef"]["ef_pct"], json!(55.0));
    assert_eq!(a["result"]["summary"], json!({"dysfunction_at_any_follow_up": false}));

    // The audit trail has the decision with its rationale.
    let mut tx = w.t.app.db().read().await.unwrap();
    let recs = tx
        .list_audit(&corelab_store::audit::AuditFilter { trial_id: Some(t), limit: 5000, ..Default::default() })
        .await
        .unwrap();
    drop(tx);
    let decide = recs.iter().find(|r| r.action == "decide" && r.object_type == "adjudication").unwrap();
    assert_eq!(decide.reason.as_deref(), Some(rationale));
    assert!(decide.changes.contains("lvef:W12") && decide.changes.contains("reader_2"), "{}", decide.changes);
    assert!(recs.iter().any(|r| r.action == "accept" && r.object_type == "read_case"));
    let submits: Vec<_> = recs.iter().filter(|r| r.action == "submit" && r.object_type == "read").collect();
    assert_eq!(submits.len(), 4);
    assert!(submits.iter().all(|r| r.changes.contains("ef_pct")), "{:?}", submits[0].changes);

    // Metrics: one double-read subject, adjudicated, kappa over TP2's dysfunction calls.
    let m = check(w.c("tm").get(w.url(&format!("/api/v1/trials/{t}/read-metrics"))).send().await.unwrap(), 200).await;
    assert_eq!(m["double_read_subjects"], 1, "{m:#}");
    assert_eq!(m["adjudication_rate"]["numerator"], 1);
    assert_eq!(m["kappa"][0]["kappa"]["n"], 1);

    // Neither reader's responses name the site, the subject, the arm, a scan date, or hold the
    // other reader's values; the adjudicator's name neither site nor reader.
    let common: Vec<String> =
        ["NL01", "NL010001", "Amsterdam", "HW3", "HW-3", "2026-09-26", "20260926", "20261224", "2026-12-24"]
            .iter()
            .map(|s| s.to_string())
            .chain([w.other_subject.to_string()])
            .collect();
    let with =
        |extra: &[&str]| -> Vec<String> { common.iter().cloned().chain(extra.iter().map(|s| s.to_string())).collect() };
    let id1 = w.user_ids["reader"].to_string();
    let id2 = w.user_ids["reader2"].to_string();
    // Numbers as JSON values (":48.2," or ":48.2}"), so a signing time's seconds cannot match.
    let values =
        |vs: &[&str]| -> Vec<String> { vs.iter().flat_map(|v| [format!(":{v},"), format!(":{v}}}")]).collect() };
    let r2_values = values(&["118.7", "48.2", "59.4", "55.0", "-4.4"]);
    let r1_values = values(&["121.6", "48.8", "63.3", "59.9", "47.9", "-11.9"]);
    let mut not_for_r1: Vec<&str> = r2_values.iter().map(String::as_str).collect();
    not_for_r1.extend(["Rob Reader", "reader2", id2.as_str()]);
    let mut not_for_r2: Vec<&str> = r1_values.iter().map(String::as_str).collect();
    not_for_r2.extend(["Rita Reader", "\"reader\"", id1.as_str()]);
    assert_blind("reader 1", &r1.bodies, &with(&not_for_r1));
    assert_blind("reader 2", &r2.bodies, &with(&not_for_r2));
    assert_blind("the adjudicator", &seen_adj, &with(&["Rita Reader", "Rob Reader", &id1, &id2]));
    assert!(r1.bodies.iter().any(|b| b.contains(":63.3")) && r2.bodies.iter().any(|b| b.contains(":55.0")));
    assert!(seen_adj.iter().any(|b| b.contains("63.3") && b.contains("118.7")));
    w.t.stop().await;
}

/// NEURO-7 with its imaging reduced to one FLAIR series without acquisition constraints, so a
/// generated series passes the automated check; the read design is the charter's.
fn ms_charter() -> String {
    let text = charter_text("neurology-ms-mri.toml");
    let head = &text[..text.find("[[imaging]]").unwrap()];
    let tail = &text[text.find("[deidentification]").unwrap()..];
    let head = head.replace("series = [\"T1_3D_PRE\", \"T1_3D_GD\", \"FLAIR_3D\", \"T2_AX\"]\n", "");
    format!(
        "{head}[[imaging]]\nid = \"MR_BRAIN\"\nmodality = \"MR\"\nbody_region = \"brain\"\n\n[[imaging.series]]\nid = \"FLAIR_3D\"\ndescription = \"3D T2-FLAIR\"\nidentify = {{ series_description = [\"*FLAIR*\"] }}\n\n{tail}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ms_trial_gets_read_tasks_and_the_engine_computes_lesion_activity() {
    let w = world(Backend::SqliteLocal).await;
    let admin = w.c("admin");
    let t: Uuid =
        check(admin.post(w.url("/api/v1/trials")).json(&json!({"charter": ms_charter()})).send().await.unwrap(), 201)
            .await["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    for (user, role) in [("tm", "trial_manager"), ("qc", "qc_reviewer"), ("reader", "reader")] {
        grant(&w, t, user, role).await;
    }
    check(
        admin
            .post(w.url(&format!("/api/v1/trials/{t}/grants")))
            .json(&json!({"user_id": w.user_ids["site_a"], "role": "site_user", "site_id": "ES10"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    reader_profile(&w, t, "reader", "neurology", "MS").await;
    check(
        admin
            .post(w.url(&format!("/api/v1/trials/{t}/sites/ES10/qualification/scans")))
            .body(crate::world::ct_instance("PHANTOM^ACR", "1"))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    check(
        admin
            .post(w.url(&format!("/api/v1/trials/{t}/sites/ES10/qualification/decision")))
            .json(&json!({"approve": true, "username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let subject: Uuid = check(
        admin
            .post(w.url(&format!("/api/v1/trials/{t}/subjects")))
            .json(&json!({"site_id": "ES10", "subject_id": "ES10-001", "anchor_date": "2026-10-01", "arm": "MB7"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (visit, date, uid) in [("BL", "20260920", "89001"), ("W12", "20261224", "89002")] {
        let study = format!("1.2.826.0.1.3680043.8.498.{uid}");
        let files = series(&dir.path().join(visit), "ES10-001", visit, date, &study, 3, "AX FLAIR 3D", "MR", MR_IMAGE);
        ingest(&w, t, "ES10", "site_a", files).await;
        pass_qc1(&w, subject, visit).await;
    }
    // One reader (readers_per_case = 1): a task per timepoint.
    let c = w.c("reader").clone();
    let mut r = Seen::new(&w, &c);
    let list = tasks(&mut r, t).await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[1]["state"], "waiting", "sequential locked reads: the follow-up waits for the baseline");
    let (s, bl) = submit(&mut r, t, "TP1", json!({"gd_enhancing": 2}), Some("reader")).await;
    assert_eq!(s, 200, "{bl}");
    assert_eq!(bl["criteria"], "MS");
    assert_eq!(bl["versions"][0]["result"]["ms"], json!({"gd_enhancing": 2}));
    // The charter measures brain volume change: a follow-up without it is refused, naming it.
    let (s, v) = submit(&mut r, t, "TP2", json!({"new_or_enlarging_t2": 1, "gd_enhancing": 0}), None).await;
    assert_eq!((s, v["error"]["field"].as_str()), (422, Some("assessment.pbvc_pct")), "{v}");
    let (s, fu) =
        submit(&mut r, t, "TP2", json!({"new_or_enlarging_t2": 1, "gd_enhancing": 0, "pbvc_pct": -0.45}), None).await;
    assert_eq!(s, 200, "{fu}");
    let res = &fu["versions"][0]["result"]["ms"];
    assert_eq!(res["mri_activity"], true, "{fu:#}");
    assert_eq!(res["cumulative_new_or_enlarging_t2"], 1);
    assert_eq!(res["pbvc_vs_baseline_pct"], json!(-0.45));
    assert!(res.get("annualised_pbvc_pct").is_none(), "annualised values would give the interval away");
    // A single read is accepted as read.
    let acc =
        check(w.c("tm").get(w.url(&format!("/api/v1/trials/{t}/accepted-results"))).send().await.unwrap(), 200).await;
    assert_eq!(acc[0]["basis"], "single_read", "{acc:#}");
    assert_eq!(acc[0]["result"]["criteria"], "MS");
    assert_eq!(acc[0]["result"]["summary"], json!({"no_evidence_of_mri_activity": false}));
    assert_eq!(acc[0]["result"]["timepoints"][1]["ms"]["new_or_enlarging_t2"], 1);

    // A correction with a reason is a new, e-signed version; the accepted result follows it.
    let task = tasks(&mut r, t).await[1]["task_id"].as_str().unwrap().to_string();
    let (s, v) = r
        .post(
            &format!("/api/v1/read-tasks/{task}/correct"),
            json!({"assessment": {"new_or_enlarging_t2": 0, "gd_enhancing": 0, "pbvc_pct": -0.45},
                   "reason": "the new lesion is a vessel on the FLAIR", "password": PASSWORD}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let versions = v["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{v:#}");
    assert_eq!(versions[1]["version"], 2);
    assert_eq!(versions[1]["reason"], "the new lesion is a vessel on the FLAIR");
    assert_eq!(versions[1]["result"]["ms"]["mri_activity"], false);
    assert_eq!(versions[1]["signatures"][0]["meaning"], "read corrected");
    assert_eq!(versions[0]["assessment"]["new_or_enlarging_t2"], 1, "the first version stays");
    let acc =
        check(w.c("tm").get(w.url(&format!("/api/v1/trials/{t}/accepted-results"))).send().await.unwrap(), 200).await;
    assert_eq!(acc[0]["revisions"], 2, "{acc:#}");
    assert_eq!(acc[0]["result"]["summary"], json!({"no_evidence_of_mri_activity": true}));
    let mut tx = w.t.app.db().read().await.unwrap();
    let recs = tx
        .list_audit(&corelab_store::audit::AuditFilter { trial_id: Some(t), limit: 5000, ..Default::default() })
        .await
        .unwrap();
    drop(tx);
    let correct = recs.iter().find(|r| r.action == "correct" && r.object_type == "read").unwrap();
    assert_eq!(correct.reason.as_deref(), Some("the new lesion is a vessel on the FLAIR"));
    assert!(correct.changes.contains("mri_activity"), "{}", correct.changes);
    let accepted = recs.iter().rfind(|r| r.action == "accept" && r.object_type == "read_case").unwrap();
    assert!(accepted.changes.contains("no_evidence_of_mri_activity"), "{}", accepted.changes);
    assert_blind("the MS reader", &r.bodies, &["ES10".to_string(), "ES10-001".into(), "MB7".into(), "20261224".into()]);
    w.t.stop().await;
}
