//! The reading pages over HTTP: a reader's task list and read-only read, the adjudicator's list
//! and side-by-side page, a decision through the page form with its e-signature (checked through
//! the API and the audit trail); the browser walk of the same pages (web/e2e/reading.mjs); and a
//! read exported as DICOM SR, checked with dcmtk's dsrdump and pydicom.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::reads::{Seen, baseline, read_fixture, reading_world};
use crate::support::{Backend, ci, e2e_artifacts, e2e_ready, run_e2e};
use crate::ui::{follow, ok_page, page, submit, ui_login};
use crate::world::{PASSWORD, World, check, world};

/// What no blinded page may show: sites, subjects, arms, the other reader, scan dates.
const LEAKS: &[&str] =
    &["101-001", "Hopital", "Saint-Louis", "Acmetinib", "Rob Reader", "2026-09-20", "2026-11-26", "20260920"];

fn no_leaks(who: &str, body: &str) {
    for l in LEAKS {
        assert!(!body.contains(l), "{who} sees {l}: {body}");
    }
}

async fn audit_since(w: &World, after: i64) -> Vec<corelab_store::audit::AuditRecord> {
    let mut tx = w.t.app.db().read().await.unwrap();
    tx.list_audit(&corelab_store::audit::AuditFilter { trial_id: Some(w.trial), limit: 5000, ..Default::default() })
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.seq > after)
        .collect()
}

async fn last_seq(w: &World) -> i64 {
    audit_since(w, 0).await.iter().map(|r| r.seq).max().unwrap_or(0)
}

async fn case_code(w: &World) -> String {
    let tasks = check(
        w.c("reader").get(w.url(&format!("/api/v1/trials/{}/reading/tasks", w.trial))).send().await.unwrap(),
        200,
    )
    .await;
    tasks[0]["case_code"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_pages_show_blinded_reads_and_the_adjudicator_decides_with_a_signature() {
    let w = world(Backend::SqliteLocal).await;
    let reads = read_fixture(&w).await;
    let t = &w.t;
    let trial = w.trial;
    let code = case_code(&w).await;

    // The reader: a "Reading" entry in the trial navigation, their tasks with state and times.
    let reader = ui_login(t, "reader", PASSWORD).await;
    let head = ok_page(&reader, t, &format!("/trials/{trial}")).await;
    assert!(head.contains(&format!("href=\"/trials/{trial}/reading\"")), "{head}");
    assert!(!head.contains(&format!("href=\"/trials/{trial}/adjudication\"")), "{head}");
    let list = ok_page(&reader, t, &format!("/trials/{trial}/reading")).await;
    for want in [
        code.as_str(),
        "TP1",
        "TP2",
        "Submitted and signed",
        &format!("href=\"/read-tasks/{}/workstation\"", reads.task),
        &format!("href=\"/read-tasks/{}\"", reads.task),
        " UTC",
    ] {
        assert!(list.contains(want), "the task list lacks {want}: {list}");
    }
    no_leaks("the reader's list", &list);
    // The submitted read, read-only: lesions with organs, the computed result, the signature.
    let read = ok_page(&reader, t, &format!("/read-tasks/{}", reads.task)).await;
    let sr_link = format!("/api/v1/read-tasks/{}/sr", reads.task);
    for want in ["Target T1 (liver)", "41.2 mm", "Overall response", "PD", "read completed", sr_link.as_str()] {
        assert!(read.contains(want), "the read page lacks {want}: {read}");
    }
    assert!(!read.contains("33.1"), "reader 2's measurement on reader 1's page");
    // The page's SR link works with the page session.
    let r = reader.get(t.url(&sr_link)).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["content-type"].to_str().unwrap()), (200, "application/dicom"));
    no_leaks("the reader's read", &read);
    // Another reader's task is not found; the adjudication pages are refused.
    let c2 = World::login(t, "reader2").await;
    let other = Seen::new(&w, &c2).task("TP2").await;
    assert_eq!(page(&reader, t, &format!("/read-tasks/{other}")).await.0, 404);
    assert_eq!(page(&reader, t, &format!("/trials/{trial}/adjudication")).await.0, 403);
    assert_eq!(page(&reader, t, &format!("/adjudications/{}", reads.adjudication)).await.0, 403);

    // The adjudicator: the list, then both reads side by side with the trigger.
    let adj = ui_login(t, "adjudicator", PASSWORD).await;
    let list = ok_page(&adj, t, &format!("/trials/{trial}/adjudication")).await;
    let href = format!("/adjudications/{}", reads.adjudication);
    assert!(list.contains(&code) && list.contains(&href) && list.contains("progression date"), "{list}");
    let side = ok_page(&adj, t, &href).await;
    for want in [
        "Why this case is adjudicated",
        "progression date",
        "41.2 mm",
        "33.1 mm",
        "Target T1 (liver)",
        "class=\"differs\"",
        "Choose reader 1 and sign",
        &format!("{href}/decide?chosen=reader_2"),
    ] {
        assert!(side.contains(want), "the adjudication page lacks {want}: {side}");
    }
    no_leaks("the adjudicator", &side);
    assert!(!side.contains("Rita Reader"), "a reader's name on the adjudication page");

    // The signing form states what is signed.
    let form_url = format!("{href}/decide?chosen=reader_2");
    let form = ok_page(&adj, t, &form_url).await;
    for want in [code.as_str(), "accept the complete assessment of reader 2", "adjudication decided", "sign-username"] {
        assert!(form.contains(want), "the signing form lacks {want}: {form}");
    }
    let action = format!("{href}/decision");
    let before = last_seq(&w).await;
    // Without a rationale, and with a wrong password: the form again, nothing decided.
    for (reason, password, field) in [("", PASSWORD, "rationale"), ("reason given", "wrong-password", "password")] {
        let fields = [("chosen", "reader_2"), ("reason", reason), ("username", "adjudicator"), ("password", password)];
        let r = submit(&adj, t, &form_url, &action, &fields).await;
        assert_eq!(r.status(), 422);
        let body = r.text().await.unwrap();
        assert!(body.contains("aria-invalid=\"true\"") && body.contains("role=\"alert\""), "{field}: {body}");
    }
    let state = check(w.c("adjudicator").get(w.url(&format!("/api/v1{href}"))).send().await.unwrap(), 200).await;
    assert_eq!(state["state"], "open");
    assert!(audit_since(&w, before).await.iter().all(|r| r.action != "decide"));

    // Signed: back to the page with the decision, its rationale and signature.
    let rationale = "The TP2 sum of reader 2 is within measurement variability of the baseline";
    let fields = [("chosen", "reader_2"), ("reason", rationale), ("username", "adjudicator"), ("password", PASSWORD)];
    let r = submit(&adj, t, &form_url, &action, &fields).await;
    let (to, body) = follow(&adj, t, r).await;
    assert_eq!(to, format!("{href}?done=adjudicated"));
    for want in [
        "Decided and signed",
        "reader 2 for the whole case",
        rationale,
        "adjudication decided",
        "is decided and signed",
    ] {
        assert!(body.contains(want), "the decided page lacks {want}: {body}");
    }
    assert!(!body.contains("Choose reader 1 and sign"), "a decided adjudication offers the decision again");

    // The API agrees: decided for reader 2, and reader 2's read is the accepted result.
    let v = check(w.c("adjudicator").get(w.url(&format!("/api/v1{href}"))).send().await.unwrap(), 200).await;
    assert_eq!((v["state"].as_str(), v["decision"]["chosen"].as_str()), (Some("decided"), Some("reader_2")), "{v:#}");
    assert_eq!(v["rationale"], rationale);
    assert_eq!(v["signatures"][0]["meaning"], "adjudication decided");
    let accepted =
        check(w.c("tm").get(w.url(&format!("/api/v1/trials/{trial}/accepted-results"))).send().await.unwrap(), 200)
            .await;
    let mine = accepted.as_array().unwrap().iter().find(|a| a["case_code"] == code.as_str()).expect("accepted result");
    assert_eq!(mine["basis"], "adjudication");
    assert_eq!(mine["adjudication_id"], json!(reads.adjudication));
    assert_eq!(mine["accepted_reader"], "reader2");
    // The trail: the adjudicator's decision (with the rationale) and signature, and the accepted result.
    let recs = audit_since(&w, before).await;
    let got: Vec<(&str, &str, &str)> = recs
        .iter()
        .filter(|r| ["decide", "sign", "accept"].contains(&r.action.as_str()))
        .map(|r| (r.action.as_str(), r.object_type.as_str(), r.actor_role.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("decide", "adjudication", "adjudicator"),
            ("sign", "adjudication", "user"),
            ("accept", "read_case", "system")
        ],
        "{recs:#?}"
    );
    let decide = recs.iter().find(|r| r.action == "decide").unwrap();
    assert_eq!((decide.actor_name.as_str(), decide.reason.as_deref()), ("adjudicator", Some(rationale)));
    assert!(decide.changes.contains("reader_2"), "{}", decide.changes);
    assert!(recs.iter().any(|r| r.action == "sign" && r.actor_name == "adjudicator"));
    // Deciding again through the page is refused with a way back.
    let r =
        submit(&adj, t, &href, &action, &[("chosen", "reader_1"), ("reason", "again"), ("password", PASSWORD)]).await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("already decided"));
    w.t.stop().await;
}

/// Runs web/e2e/reading.mjs against a world with an open adjudication: screenshots into
/// target/ui-artifacts/ and axe-core on the list, side-by-side page and signing dialog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_pages_in_the_browser_with_screenshots_and_no_serious_axe_violations() {
    if !e2e_ready("the reading pages' browser test", &[]) {
        return;
    }
    let w = world(Backend::SqliteLocal).await;
    read_fixture(&w).await;
    let out = e2e_artifacts();
    let cfg = json!({
        "url": format!("http://{}", w.t.addr),
        "out": out,
        "trial": w.trial,
        "case_code": case_code(&w).await,
        "password": PASSWORD,
    });
    run_e2e(
        "reading.mjs",
        cfg,
        Duration::from_secs(300),
        &["30-adjudication-list.png", "31-adjudication-side-by-side.png", "32-adjudication-sign-dialog.png"],
    )
    .await;
    w.t.stop().await;
}

/// A stored, de-identified instance of subject 101-001's baseline: (SOP Instance UID, study UID).
async fn baseline_instance(w: &World) -> (String, String) {
    let mut tx = w.t.app.db().read().await.unwrap();
    for i in tx.trial_instances(w.trial).await.unwrap() {
        let study = tx.study(i.study_id).await.unwrap().unwrap();
        if study.subject_id == w.subject_a && study.visit_id == "BL" {
            return (i.sop_instance_uid, study.study_instance_uid);
        }
    }
    panic!("no stored baseline instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_read_exports_as_dicom_sr_that_dcmtk_and_pydicom_read() {
    let (w, _qc2) = reading_world(Backend::SqliteLocal, 0).await;
    let (sop, study) = baseline_instance(&w).await;
    // Reader 1's baseline: T1 drawn on a stored image, T2 a node measured without a drawing.
    let mut read = baseline(30.4, 20.6);
    read["targets"][0]["image"] =
        json!({"sop_instance_uid": sop, "frame": 1, "points": [[100.5, 80.0], [131.0, 80.0]]});
    read["targets"][1]["is_node"] = json!(true);
    let c1 = w.c("reader").clone();
    let mut r1 = Seen::new(&w, &c1);
    let (s, v) = r1.submit("TP1", read, Some("reader")).await;
    assert_eq!(s, 200, "{v}");
    let task = r1.task("TP1").await;
    let url = w.url(&format!("/api/v1/read-tasks/{task}/sr"));

    // Who may: the reader and the trial manager; QC is refused, the other reader finds nothing.
    let before = last_seq(&w).await;
    let r = w.c("reader").get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/dicom");
    assert!(r.headers()["content-disposition"].to_str().unwrap().contains("_TP1_v1.dcm"));
    let bytes = r.bytes().await.unwrap().to_vec();
    assert_eq!(&bytes[128..132], b"DICM");
    let recs = audit_since(&w, before).await;
    assert_eq!(
        recs.iter().map(|r| (r.action.as_str(), r.object_type.as_str(), r.object_id.clone())).collect::<Vec<_>>(),
        vec![("export", "read_sr", task.clone())]
    );
    assert_eq!(w.c("tm").get(&url).send().await.unwrap().status(), 200);
    assert_eq!(w.c("qc").get(&url).send().await.unwrap().status(), 403);
    assert_eq!(w.c("reader2").get(&url).send().await.unwrap().status(), 404);
    assert_eq!(
        w.c("reader").get(w.url(&format!("/api/v1/read-tasks/{}/sr", Uuid::nil()))).send().await.unwrap().status(),
        404
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("read.dcm");
    std::fs::write(&file, &bytes).unwrap();
    // dcmtk reads it as a structured report and prints the lengths and the region.
    // +Pu prints referenced SOP Instance UIDs, +Pt the template identification.
    let out = std::process::Command::new("dsrdump").args(["+Pu", "+Pt"]).arg(&file).output();
    match out {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "dsrdump failed: {text}\n{err}");
            for want in [
                "Imaging Measurement Report",
                "Long Axis",
                "\"30.4\" (mm",
                "Short Axis",
                "\"20.6\" (mm",
                "POLYLINE",
                "T1",
                &sop,
            ] {
                assert!(text.contains(want), "dsrdump shows no {want}:\n{text}");
            }
            assert!(!err.contains("E: ") && !err.contains("W: "), "dsrdump complains:\n{err}");
        }
        Err(e) => {
            assert!(!ci(), "CI=true but dsrdump (dcmtk) cannot run: {e}");
            eprintln!("note: dsrdump not found ({e}); apt-get install dcmtk");
        }
    }
    // pydicom walks the content tree: the measurement groups, their values and the image reference.
    let script = r#"
import json, sys
import pydicom
ds = pydicom.dcmread(sys.argv[1])
def meaning(item):
    return item.ConceptNameCodeSequence[0].CodeMeaning if "ConceptNameCodeSequence" in item else ""
def walk(items, out):
    for it in items:
        out.append(it)
        if "ContentSequence" in it:
            walk(it.ContentSequence, out)
    return out
groups = [it for it in walk(ds.ContentSequence, []) if meaning(it) == "Measurement Group"]
res = {"title": meaning(ds), "template": ds.ContentTemplateSequence[0].TemplateIdentifier, "study": ds.StudyInstanceUID,
       "patient": ds.PatientID, "groups": []}
for g in groups:
    items = walk(g.ContentSequence, [])
    grp = {"lengths": {}, "refs": []}
    for it in items:
        m = meaning(it)
        if m == "Tracking Identifier": grp["id"] = it.TextValue
        if m == "Tracking Unique Identifier": grp["uid"] = it.UID
        if m == "Finding Site": grp["site"] = it.ConceptCodeSequence[0].CodeMeaning
        if it.ValueType == "NUM":
            mv = it.MeasuredValueSequence[0]
            grp["lengths"][m] = [str(mv.NumericValue), mv.MeasurementUnitsCodeSequence[0].CodeValue]
        if it.ValueType == "SCOORD": grp["graphic"] = [it.GraphicType, [float(x) for x in it.GraphicData]]
        if it.ValueType == "IMAGE": grp["refs"].append(it.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
    res["groups"].append(grp)
print(json.dumps(res))
"#;
    let out = std::process::Command::new("python3").arg("-c").arg(script).arg(&file).output().unwrap();
    if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("No module named 'pydicom'") {
        assert!(!ci(), "CI=true but pydicom is missing");
        eprintln!("note: pydicom not installed; pip install pydicom");
        w.t.stop().await;
        return;
    }
    assert!(out.status.success(), "pydicom: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["title"], "Imaging Measurement Report");
    assert_eq!(v["template"], "1500");
    assert_eq!(v["study"], study.as_str(), "the SR belongs to the de-identified study of the timepoint");
    assert!(v["patient"].as_str().unwrap().starts_with("RC-"), "the patient is the blinded case code: {v}");
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3, "T1, T2 and NT1: {v:#}");
    assert_eq!(groups[0]["id"], "T1");
    assert_eq!(groups[0]["site"], "liver");
    assert_eq!(groups[0]["lengths"], json!({"Long Axis": ["30.4", "mm"]}));
    assert_eq!(groups[0]["graphic"], json!(["POLYLINE", [100.5, 80.0, 131.0, 80.0]]));
    assert_eq!(groups[0]["refs"], json!([sop]));
    assert_eq!(groups[1]["lengths"], json!({"Short Axis": ["20.6", "mm"]}), "a node is measured on its short axis");
    assert_eq!(groups[2]["id"], "NT1");
    assert_eq!(groups[2]["lengths"], json!({}));
    assert!(groups[0]["uid"].as_str().unwrap().starts_with("2.25."));
    // The export is deterministic: the same read gives the same file.
    let twice = w.c("reader").get(&url).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(twice.to_vec(), bytes);
    let text = String::from_utf8_lossy(&bytes);
    for leak in ["101-001", "Hopital", "MRN-7731", "20260920", "Rita Reader"] {
        assert!(!text.contains(leak), "the SR holds {leak}");
    }
    w.t.stop().await;
}
