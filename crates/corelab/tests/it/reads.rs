//! Blinded reads end to end: images through ingest and QC to `qc_passed`, read tasks for two
//! readers fixed per subject, sequential locked reads e-signed, a disagreement on the progression
//! date adjudicated, the accepted result and the audit trail; and everything a reader or
//! adjudicator receives checked, as raw JSON text, for site, subject, arm, dates and the other
//! reader's work.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::qc_flow::{SeriesSpec, ct_series};
use crate::support::Backend;
use crate::world::{PASSWORD, World, check, world};

/// A second QC reviewer (the oncology charter has QC1 and QC2), logged in.
pub struct Qc2 {
    pub c: reqwest::Client,
    pub username: String,
}

pub async fn second_qc(w: &World, username: &str) -> Qc2 {
    let admin = w.c("admin");
    let v = check(
        admin
            .post(w.url("/api/v1/users"))
            .json(&json!({"username": username, "display_name": "Quentin Second", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let id = v["user"]["id"].clone();
    check(
        w.c("tm")
            .post(w.url(&format!("/api/v1/trials/{}/grants", w.trial)))
            .json(&json!({"user_id": id, "role": "qc_reviewer"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    Qc2 { c: World::login(&w.t, username).await, username: username.into() }
}

/// A new account holding `role` in the world's trial, logged in.
pub async fn person(w: &World, username: &str, name: &str, role: &str) -> (Uuid, reqwest::Client) {
    let v = check(
        w.c("admin")
            .post(w.url("/api/v1/users"))
            .json(&json!({"username": username, "display_name": name, "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let id: Uuid = v["user"]["id"].as_str().unwrap().parse().unwrap();
    check(
        w.c("tm")
            .post(w.url(&format!("/api/v1/trials/{}/grants", w.trial)))
            .json(&json!({"user_id": id, "role": role}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    (id, World::login(&w.t, username).await)
}

/// The trial manager records a reader profile.
pub async fn profile(w: &World, user: Uuid, criteria: &[&str], until: Option<&str>) -> Value {
    check(
        w.c("tm")
            .post(w.url(&format!("/api/v1/trials/{}/reader-profiles", w.trial)))
            .json(&json!({"user_id": user, "therapeutic_areas": ["oncology"], "criteria": criteria, "training_valid_until": until}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await
}

/// Sends a 6-slice CT series of `thickness_mm` for one visit through ingest as the site's staff,
/// then polls the visit (as `qc`) until the automated check leaves it in `state`; returns the visit.
#[allow(clippy::too_many_arguments)]
pub async fn send_visit_until(
    w: &World,
    subject: Uuid,
    code: &str,
    site: &str,
    visit: &str,
    date: &str,
    study_uid: &str,
    thickness_mm: f64,
    state: &str,
) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let files = ct_series(
        dir.path(),
        &SeriesSpec {
            subject: code,
            time_point: visit,
            study_date: date,
            study_uid,
            series_number: 2,
            slices: 6,
            thickness_mm,
            description: "CT CAP PORTAL VENOUS",
            contrast: true,
            skip: &[],
        },
    );
    send_files_until(w, subject, site, visit, files, state).await
}

/// Ingests `files` through the pipeline as the staff of `site` (101: site_a, else site_b) upload them.
pub async fn ingest_as_site_staff(w: &World, site: &str, files: Vec<std::path::PathBuf>) {
    let staff = if site == "101" { "site_a" } else { "site_b" };
    let target = corelab_app::ingest::IngestTarget {
        trial_id: w.trial,
        site_id: site.into(),
        source: corelab_app::ingest::Source::Upload,
        sender: staff.into(),
        sender_role: "site_user".into(),
        sender_id: Some(w.user_ids[staff]),
    };
    let setup = w.t.app.ingest_setup(&target).await.unwrap();
    for f in files {
        w.t.app.ingest(&setup, target.clone(), std::io::BufReader::new(std::fs::File::open(f).unwrap())).await.unwrap();
    }
}

/// Ingests `files` as the site's staff for one visit, then polls the visit (as `qc`) until the
/// automated check leaves it in `state`; returns the visit.
pub async fn send_files_until(
    w: &World,
    subject: Uuid,
    site: &str,
    visit: &str,
    files: Vec<std::path::PathBuf>,
    state: &str,
) -> Value {
    ingest_as_site_staff(w, site, files).await;
    let url = w.url(&format!("/api/v1/subjects/{subject}/visits/{visit}"));
    let mut last = Value::Null;
    for _ in 0..150 {
        last = check(w.c("qc").get(&url).send().await.unwrap(), 200).await;
        if last["state"] == state {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the series of visit {visit} did not reach {state}: {last:#}");
}

/// Sends a compliant CT series for one visit through ingest, waits for the automated check, and
/// has QC1 (`qc`) and QC2 (`qc2`) accept it: the visit passes QC and is ready for reading.
#[allow(clippy::too_many_arguments)]
pub async fn pass_qc(
    w: &World,
    qc2: &Qc2,
    subject: Uuid,
    code: &str,
    site: &str,
    visit: &str,
    date: &str,
    study_uid: &str,
) {
    send_visit_until(w, subject, code, site, visit, date, study_uid, 5.0, "awaiting_qc1").await;
    accept_qc(w, qc2, subject, visit).await;
}

/// Like [`pass_qc`], with the visit's files made by the caller (e.g. images with content).
pub async fn pass_qc_files(
    w: &World,
    qc2: &Qc2,
    subject: Uuid,
    site: &str,
    visit: &str,
    files: Vec<std::path::PathBuf>,
) {
    send_files_until(w, subject, site, visit, files, "awaiting_qc1").await;
    accept_qc(w, qc2, subject, visit).await;
}

/// QC1 (`qc`) and QC2 (`qc2`) accept a visit awaiting QC1: it passes QC and is ready for reading.
async fn accept_qc(w: &World, qc2: &Qc2, subject: Uuid, visit: &str) {
    let url = w.url(&format!("/api/v1/subjects/{subject}/visits/{visit}"));
    let decide = format!("{url}/qc");
    let v = check(
        w.c("qc")
            .post(&decide)
            .json(&json!({"outcome": "accept", "username": "qc", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(v["state"], "awaiting_qc2");
    let v = check(
        qc2.c
            .post(&decide)
            .json(&json!({"outcome": "accept", "username": qc2.username, "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(v["state"], "qc_passed");
}

/// A reader's client that keeps every response body it receives.
pub struct Seen<'a> {
    pub c: &'a reqwest::Client,
    pub w: &'a World,
    pub bodies: Vec<String>,
}

impl<'a> Seen<'a> {
    pub fn new(w: &'a World, c: &'a reqwest::Client) -> Self {
        Seen { c, w, bodies: Vec::new() }
    }

    async fn keep(&mut self, r: reqwest::Response) -> (u16, Value) {
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::Null);
        self.bodies.push(text);
        (status, v)
    }

    pub async fn get(&mut self, path: &str) -> (u16, Value) {
        let r = self.c.get(self.w.url(path)).send().await.unwrap();
        self.keep(r).await
    }

    pub async fn post(&mut self, path: &str, body: Value) -> (u16, Value) {
        let r = self.c.post(self.w.url(path)).json(&body).send().await.unwrap();
        self.keep(r).await
    }

    /// The reader's tasks, by timepoint label.
    pub async fn tasks(&mut self) -> Vec<Value> {
        let (s, v) = self.get(&format!("/api/v1/trials/{}/reading/tasks", self.w.trial)).await;
        assert_eq!(s, 200, "{v}");
        v.as_array().unwrap().clone()
    }

    pub async fn task(&mut self, timepoint: &str) -> String {
        let tasks = self.tasks().await;
        let t =
            tasks.iter().find(|t| t["timepoint"] == timepoint).unwrap_or_else(|| panic!("no {timepoint}: {tasks:?}"));
        t["task_id"].as_str().unwrap().to_string()
    }

    /// Submits (and e-signs) a read; returns the response.
    pub async fn submit(&mut self, timepoint: &str, assessment: Value, username: Option<&str>) -> (u16, Value) {
        let task = self.task(timepoint).await;
        let mut body = json!({"assessment": assessment, "password": PASSWORD});
        if let Some(u) = username {
            body["username"] = json!(u);
        }
        self.post(&format!("/api/v1/read-tasks/{task}/submit"), body).await
    }
}

/// A stored (de-identified) SOP Instance UID of one visit of a subject, for reads whose
/// measurements point at an image.
pub async fn visit_instance(w: &World, subject: Uuid, visit: &str) -> String {
    let mut tx = w.t.app.db().read().await.unwrap();
    for i in tx.trial_instances(w.trial).await.unwrap() {
        let st = tx.study(i.study_id).await.unwrap().unwrap();
        if st.subject_id == subject && st.visit_id == visit {
            return i.sop_instance_uid;
        }
    }
    panic!("no stored instance of visit {visit}");
}

pub fn baseline(t1: f64, t2: f64) -> Value {
    json!({
        "slice_thickness_mm": 5,
        "targets": [
            {"id": "T1", "organ": "liver", "diameter_mm": t1},
            {"id": "T2", "organ": "lung", "diameter_mm": t2}
        ],
        "non_targets": [{"id": "NT1", "organ": "bone"}]
    })
}

pub fn follow_up(t1: f64, t2: f64) -> Value {
    json!({
        "targets": {"T1": {"value": t1}, "T2": {"value": t2}},
        "non_targets": {"NT1": {"status": "PRESENT"}},
        "new_lesions": []
    })
}

/// The reads world: the oncology trial with two readers and an adjudicator qualified, a second QC
/// reviewer, and subject 101-001's baseline and first follow-up (and optionally the second)
/// through QC.
pub async fn reading_world(backend: Backend, follow_ups: usize) -> (World, Qc2) {
    let w = world(backend).await;
    let qc2 = second_qc(&w, "qc_two").await;
    for who in ["reader", "reader2", "adjudicator"] {
        profile(&w, w.user_ids[who], &["RECIST1.1"], Some("2030-12-31")).await;
    }
    let visits = [("BL", "20260920", "77001"), ("W8", "20261126", "77002"), ("W16", "20270121", "77003")];
    for (visit, date, uid) in visits.iter().take(1 + follow_ups) {
        pass_qc(&w, &qc2, w.subject_a, "101-001", "101", visit, date, &format!("1.2.826.0.1.3680043.8.498.{uid}"))
            .await;
    }
    (w, qc2)
}

/// Task and adjudication of the reading world for other tests (the authorization matrix):
/// readers disagree at the first follow-up, so the adjudicator has an open adjudication.
pub struct ReadFixture {
    pub task: Uuid,
    pub adjudication: Uuid,
}

pub async fn read_fixture(w: &World) -> ReadFixture {
    let qc2 = second_qc(w, "qc_fixture").await;
    for who in ["reader", "reader2", "adjudicator"] {
        profile(w, w.user_ids[who], &["RECIST1.1"], Some("2030-12-31")).await;
    }
    for (visit, date, uid) in [("BL", "20260920", "78001"), ("W8", "20261126", "78002")] {
        pass_qc(w, &qc2, w.subject_a, "101-001", "101", visit, date, &format!("1.2.826.0.1.3680043.8.498.{uid}")).await;
    }
    let (c1, c2) = (World::login(&w.t, "reader").await, World::login(&w.t, "reader2").await);
    let mut r1 = Seen::new(w, &c1);
    let mut r2 = Seen::new(w, &c2);
    assert_eq!(r1.submit("TP1", baseline(30.4, 20.6), Some("reader")).await.0, 200);
    assert_eq!(r2.submit("TP1", baseline(31.3, 21.7), Some("reader2")).await.0, 200);
    let (s, v) = r1.submit("TP2", follow_up(41.2, 24.9), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(r2.submit("TP2", follow_up(33.1, 22.4), None).await.0, 200);
    let task = r1.task("TP2").await.parse().unwrap();
    let list = check(
        w.c("adjudicator").get(w.url(&format!("/api/v1/trials/{}/adjudication/tasks", w.trial))).send().await.unwrap(),
        200,
    )
    .await;
    let adjudication = list[0]["adjudication_id"].as_str().unwrap().parse().unwrap();
    ReadFixture { task, adjudication }
}

/// Readers for the audit walk (their own accounts, so the walk's grant revocation of `reader`
/// does not matter): rd1 and rd2 read, adj1 adjudicates, qc_walk does QC2. rd2's and adj1's
/// profiles are recorded here; rd1's is the walked request.
pub struct Walk {
    pub rd1: (Uuid, reqwest::Client),
    pub rd2: (Uuid, reqwest::Client),
    pub adj1: (Uuid, reqwest::Client),
    pub qc2: Qc2,
}

pub async fn walk_people(w: &World) -> Walk {
    let rd1 = person(w, "rd1", "Rhea Done", "reader").await;
    let rd2 = person(w, "rd2", "Ray Dtwo", "reader").await;
    let adj1 = person(w, "adj1", "Ava Djone", "adjudicator").await;
    let qc2 = second_qc(w, "qc_walk").await;
    profile(w, rd2.0, &["RECIST1.1"], Some("2030-12-31")).await;
    profile(w, adj1.0, &["RECIST1.1"], Some("2030-12-31")).await;
    Walk { rd1, rd2, adj1, qc2 }
}

impl Walk {
    /// Subject 102-001's baseline and first follow-up pass QC; returns rd1's baseline task.
    pub async fn tasks(&self, w: &World) -> String {
        for (visit, date, uid) in [("BL", "20260920", "79001"), ("W8", "20261126", "79002")] {
            pass_qc(
                w,
                &self.qc2,
                w.subject_b,
                "102-001",
                "102",
                visit,
                date,
                &format!("1.2.826.0.1.3680043.8.498.{uid}"),
            )
            .await;
        }
        Seen::new(w, &self.rd1.1).task("TP1").await
    }

    /// rd2 reads the baseline, both read the follow-up and disagree: returns adj1's adjudication.
    pub async fn disagree(&self, w: &World) -> String {
        let mut r1 = Seen::new(w, &self.rd1.1);
        let mut r2 = Seen::new(w, &self.rd2.1);
        assert_eq!(r2.submit("TP1", baseline(31.3, 21.7), Some("rd2")).await.0, 200);
        assert_eq!(r1.submit("TP2", follow_up(50.0, 30.0), None).await.0, 200);
        assert_eq!(r2.submit("TP2", follow_up(33.1, 22.4), None).await.0, 200);
        let list = check(
            self.adj1.1.get(w.url(&format!("/api/v1/trials/{}/adjudication/tasks", w.trial))).send().await.unwrap(),
            200,
        )
        .await;
        list[0]["adjudication_id"].as_str().unwrap().to_string()
    }
}

async fn audit(w: &World) -> Vec<corelab_store::audit::AuditRecord> {
    audit_of(w, Some(w.trial)).await
}

async fn audit_of(w: &World, trial: Option<Uuid>) -> Vec<corelab_store::audit::AuditRecord> {
    let mut tx = w.t.app.db().read().await.unwrap();
    tx.list_audit(&corelab_store::audit::AuditFilter { trial_id: trial, limit: 5000, ..Default::default() })
        .await
        .unwrap()
}

/// Walks a JSON value and collects every object key.
pub fn keys(v: &Value, out: &mut HashSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                out.insert(k.clone());
                keys(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

/// Asserts that no body holds a forbidden key or text.
pub fn assert_blind(who: &str, bodies: &[String], texts: &[String]) {
    assert!(!bodies.is_empty());
    for body in bodies {
        let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let mut k = HashSet::new();
        keys(&v, &mut k);
        for key in
            ["site", "site_id", "subject", "subject_id", "arm", "study_date", "anchor_date", "visit_id", "reader_id"]
        {
            assert!(!k.contains(key), "{who} received a field {key}: {body}");
        }
        for t in texts {
            assert!(!body.contains(t.as_str()), "{who} received {t:?}: {body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_readers_disagree_on_the_progression_date_and_the_adjudicator_decides() {
    let (w, _qc2) = reading_world(Backend::SqliteLocal, 2).await;
    let t = w.trial;
    // Readers are fixed per subject: reader 1 and reader 2 have a task at every timepoint.
    let overview =
        check(w.c("tm").get(w.url(&format!("/api/v1/trials/{t}/read-tasks"))).send().await.unwrap(), 200).await;
    let tasks = overview["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 6, "{overview:#}");
    for (slot, who) in [(1, "reader"), (2, "reader2")] {
        let mine: Vec<&Value> = tasks.iter().filter(|t| t["slot"] == slot).collect();
        assert_eq!(mine.len(), 3);
        assert!(mine.iter().all(|t| t["reader"] == who && t["state"] == "open" && t["subject_id"] == "101-001"));
    }
    let case_code = tasks[0]["case_code"].as_str().unwrap().to_string();
    assert!(case_code.starts_with("RC-") && !case_code.contains("101"), "{case_code}");

    let (c1, c2) = (w.c("reader").clone(), w.c("reader2").clone());
    let mut r1 = Seen::new(&w, &c1);
    let mut r2 = Seen::new(&w, &c2);
    let list = r1.tasks().await;
    let labels: Vec<(&str, &str, &str)> = list
        .iter()
        .map(|t| (t["timepoint"].as_str().unwrap(), t["kind"].as_str().unwrap(), t["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        labels,
        vec![("TP1", "baseline", "open"), ("TP2", "follow_up", "waiting"), ("TP3", "follow_up", "waiting")],
        "pseudo-timepoints, no days (charter: timepoint_labels = pseudo)"
    );
    assert!(list.iter().all(|t| t.get("days_from_baseline").is_none() && t["case_code"] == case_code.as_str()));

    // Reader 1 calls PD at TP2; reader 2 sees SD at TP2 and PD at TP3.
    let (s, bl) = r1.submit("TP1", baseline(30.4, 20.6), Some("reader")).await;
    assert_eq!(s, 200, "{bl}");
    assert_eq!(bl["state"], "submitted");
    assert_eq!(bl["versions"][0]["result"]["baseline_sum_mm"], json!(51.0));
    assert_eq!(bl["versions"][0]["signatures"][0]["meaning"], "read completed");
    assert_eq!(bl["images"][0]["series"][0]["instance_count"], 6);
    assert_eq!(r2.submit("TP1", baseline(31.3, 21.7), Some("reader2")).await.0, 200);
    let (s, tp2) = r1.submit("TP2", follow_up(41.2, 24.9), None).await;
    assert_eq!(s, 200, "{tp2}");
    let res = &tp2["versions"][0]["result"];
    assert_eq!((res["overall"].as_str(), res["sum_mm"].as_f64()), (Some("PD"), Some(66.1)), "{tp2:#}");
    assert_eq!(tp2["earlier"][0]["timepoint"], "TP1", "the reader sees their own baseline");
    assert_eq!(tp2["earlier"][0]["assessment"]["targets"][0]["diameter_mm"], json!(30.4));
    let (s, tp2b) = r2.submit("TP2", follow_up(33.1, 22.4), None).await;
    assert_eq!(s, 200, "{tp2b}");
    assert_eq!(tp2b["versions"][0]["result"]["overall"], "SD");
    // Disagreement on the progression date at TP2 already: an adjudication opens.
    let adj = w.c("adjudicator");
    let mine =
        check(adj.get(w.url(&format!("/api/v1/trials/{t}/adjudication/tasks"))).send().await.unwrap(), 200).await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    let first_adjudication = mine[0]["adjudication_id"].as_str().unwrap().to_string();
    assert_eq!(r1.submit("TP3", follow_up(47.8, 26.3), None).await.0, 200);
    let (s, tp3b) = r2.submit("TP3", follow_up(43.7, 26.9), None).await;
    assert_eq!(s, 200, "{tp3b}");
    assert_eq!(tp3b["versions"][0]["result"]["overall"], "PD");

    // Both have read three timepoints: the open adjudication is replaced by one over all three.
    let mut seen_adj = Vec::new();
    let r = adj.get(w.url(&format!("/api/v1/trials/{t}/adjudication/tasks"))).send().await.unwrap();
    let text = r.text().await.unwrap();
    seen_adj.push(text.clone());
    let mine: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine:#}");
    let id = mine[0]["adjudication_id"].as_str().unwrap().to_string();
    assert_ne!(id, first_adjudication);
    assert_eq!(mine[0]["variables"], json!(["progression_date"]));
    let r = adj.get(w.url(&format!("/api/v1/adjudications/{first_adjudication}"))).send().await.unwrap();
    let text = r.text().await.unwrap();
    assert!(text.contains("\"state\":\"superseded\""), "{text}");
    seen_adj.push(text);
    let r = adj.get(w.url(&format!("/api/v1/adjudications/{id}"))).send().await.unwrap();
    let text = r.text().await.unwrap();
    seen_adj.push(text.clone());
    let case: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(case["case_code"], case_code.as_str());
    assert_eq!(case["disagreements"], json!([{"variable": "progression_date", "reader_1": "TP2", "reader_2": "TP3"}]));
    // Side by side: both complete assessments.
    assert_eq!(case["reader_1"]["timepoints"].as_array().unwrap().len(), 3);
    assert_eq!(case["reader_2"]["timepoints"][2]["assessment"]["targets"]["T1"]["value"], json!(43.7));
    assert_eq!(case["reader_1"]["best_overall_response"], "PD");
    assert_eq!(case["reader_2"]["best_overall_response"], "SD");
    assert_eq!(case["reader_2"]["progression_at"], "TP3");
    assert_eq!(case["timepoints"].as_array().unwrap().len(), 3);
    // The adjudicator picks reader 2, with a rationale, e-signed.
    let rationale = "new hepatic growth at TP2 is within measurement variability; progression is unequivocal at TP3";
    let r = adj
        .post(w.url(&format!("/api/v1/adjudications/{id}/decide")))
        .json(&json!({"chosen": "reader_2", "rationale": rationale, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422, "the first signature of the session needs the username");
    let r = adj
        .post(w.url(&format!("/api/v1/adjudications/{id}/decide")))
        .json(&json!({"chosen": "reader_2", "rationale": rationale, "username": "adjudicator", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    seen_adj.push(text.clone());
    let decided: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(decided["state"], "decided", "{decided:#}");
    assert_eq!(decided["decision"], json!({"chosen": "reader_2"}));
    assert_eq!(decided["signatures"][0]["meaning"], "adjudication decided");
    assert_eq!(decided["signatures"][0]["valid"], true);

    // The accepted result is reader 2's: progression at TP3 (day 112), best response SD.
    let acc =
        check(w.c("tm").get(w.url(&format!("/api/v1/trials/{t}/accepted-results"))).send().await.unwrap(), 200).await;
    let a = &acc[0];
    assert_eq!(a["subject_id"], "101-001");
    assert_eq!(a["basis"], "adjudication");
    assert_eq!(a["adjudication_id"], id.as_str());
    assert_eq!(a["accepted_reader"], "reader2");
    assert_eq!(a["result"]["progression_day_from_baseline"], json!({"value": 112, "reader": 2}));
    assert_eq!(a["result"]["best_overall_response"]["value"], "SD");
    let tps: Vec<(&str, i64)> = a["result"]["timepoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["visit_id"].as_str().unwrap(), t["reader"].as_i64().unwrap()))
        .collect();
    assert_eq!(tps, vec![("BL", 2), ("W8", 2), ("W16", 2)]);
    assert_eq!(a["result"]["timepoints"][2]["overall"], "PD");

    // The audit trail shows the comparison, the replacement, the decision and the acceptance.
    let recs = audit(&w).await;
    let find = |action: &'static str, object: &'static str| {
        recs.iter().filter(move |r| r.action == action && r.object_type == object)
    };
    assert_eq!(find("create", "read_task").count(), 6);
    assert_eq!(find("submit", "read").count(), 6);
    assert_eq!(find("sign", "read").count(), 6);
    assert_eq!(find("create", "adjudication").count(), 2);
    let sup = find("supersede", "adjudication").next().unwrap();
    assert_eq!(sup.object_id, first_adjudication);
    let decide = find("decide", "adjudication").next().unwrap();
    assert_eq!(decide.actor_name, "adjudicator");
    assert_eq!(decide.actor_role, "adjudicator");
    assert_eq!(decide.reason.as_deref(), Some(rationale));
    assert!(decide.changes.contains("reader_2") && decide.changes.contains("reader2"), "{}", decide.changes);
    assert!(find("sign", "adjudication").any(|r| r.changes.contains("adjudication decided")));
    let accepted = find("accept", "read_case").next_back().unwrap();
    assert!(decide.seq < accepted.seq);
    assert!(accepted.changes.contains("\"adjudication\"") && accepted.changes.contains("112"), "{}", accepted.changes);

    // Metrics: one double-read subject, adjudicated, won by reader 2; kappa on TP2 and TP3.
    let m = check(w.c("tm").get(w.url(&format!("/api/v1/trials/{t}/read-metrics"))).send().await.unwrap(), 200).await;
    assert_eq!(m["double_read_subjects"], 1);
    assert_eq!(m["adjudication_rate"]["numerator"], 1);
    assert_eq!(m["adjudication_rate"]["denominator"], 1);
    let row = |who: &str| m["per_reader"].as_array().unwrap().iter().find(|r| r["reader"] == who).unwrap().clone();
    assert_eq!(row("reader2")["adjudicator_agreement_rate"]["value"], json!(1.0));
    assert_eq!(row("reader")["adjudicator_agreement_rate"]["value"], json!(0.0));
    assert_eq!(row("reader")["reader_disagreement_index"]["numerator"], 1);
    assert_eq!(row("reader")["turnaround"]["reads"], 3);
    assert_eq!(m["kappa"][0]["kappa"]["n"], 2);
    assert_eq!(m["kappa"][0]["kappa"]["agreements"], 1);

    // Nothing a reader or the adjudicator received names the site, the subject, the arm, a date
    // or the other reader.
    let mut tx = w.t.app.db().read().await.unwrap();
    let studies = tx.subject_studies(w.subject_a).await.unwrap();
    drop(tx);
    let mut common: Vec<String> = vec![
        "Hopital Saint-Louis".into(),
        "\"101\"".into(),
        "101-001".into(),
        w.subject_a.to_string(),
        "Acmetinib".into(),
        "2026-10-01".into(),
    ];
    // Signatures carry the signing time: a scan date that happens to be today is checked in its
    // compact form only.
    let today = chrono::Utc::now().date_naive();
    let mut dates: Vec<chrono::NaiveDate> = studies.iter().map(|s| s.study_date.unwrap()).collect();
    for real in ["2026-09-20", "2026-11-26", "2027-01-21"] {
        dates.push(real.parse().unwrap());
    }
    for d in dates {
        common.push(d.format("%Y%m%d").to_string());
        if d != today {
            common.push(d.format("%Y-%m-%d").to_string());
        }
    }
    let with = |extra: &[&str]| -> Vec<String> {
        let mut v = common.clone();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    // Reader 2's measurements and sums never reach reader 1, and the other way round.
    // Numbers as JSON values (":21.7," or ":21.7}"), so a signing time's seconds cannot match.
    let values =
        |vs: &[&str]| -> Vec<String> { vs.iter().flat_map(|v| [format!(":{v},"), format!(":{v}}}")]).collect() };
    let r1_values = values(&["30.4", "20.6", "41.2", "24.9", "47.8", "26.3", "51.0", "66.1", "74.1"]);
    let r2_values = values(&["31.3", "21.7", "33.1", "22.4", "43.7", "26.9", "53.0", "55.5", "70.6"]);
    let mut not_for_r1: Vec<&str> = r2_values.iter().map(String::as_str).collect();
    not_for_r1.extend(["Rob Reader", "reader2", "Ada Judge"]);
    let id2 = w.user_ids["reader2"].to_string();
    not_for_r1.push(&id2);
    let mut not_for_r2: Vec<&str> = r1_values.iter().map(String::as_str).collect();
    not_for_r2.extend(["Rita Reader", "\"reader\"", "Ada Judge"]);
    let id1 = w.user_ids["reader"].to_string();
    not_for_r2.push(&id1);
    assert_blind("reader 1", &r1.bodies, &with(&not_for_r1));
    assert_blind("reader 2", &r2.bodies, &with(&not_for_r2));
    assert_blind("the adjudicator", &seen_adj, &with(&["Rita Reader", "Rob Reader", "\"reader2\"", &id1, &id2]));
    // ... while each saw their own numbers, and the adjudicator both readers' numbers (the test would not be able to fail
    // otherwise).
    assert!(r1.bodies.iter().any(|b| b.contains("41.2")) && r2.bodies.iter().any(|b| b.contains("43.7")));
    assert!(seen_adj.iter().any(|b| b.contains("41.2") && b.contains("43.7")));
    w.t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_selection_limits_are_refused_with_clear_messages() {
    let (w, _) = reading_world(Backend::SqliteLocal, 0).await;
    let c = w.c("reader").clone();
    let mut r = Seen::new(&w, &c);
    let lesion = |id: &str, organ: &str, node: bool, mm: f64| json!({"id": id, "organ": organ, "is_node": node, "diameter_mm": mm});
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"targets": [
                lesion("T1", "liver", false, 20.0), lesion("T2", "liver", false, 21.0), lesion("T3", "lung", false, 22.0),
                lesion("T4", "lung", false, 23.0), lesion("T5", "adrenal", false, 24.0), lesion("T6", "kidney", false, 25.0)
            ]}),
            vec!["6 targets selected; at most 5 are allowed"],
        ),
        (
            json!({"targets": [lesion("T1", "Liver", false, 20.0), lesion("T2", "liver ", false, 21.0), lesion("T3", "liver", false, 22.0)]}),
            vec!["3 targets in organ \"liver\" (T1, T2, T3); at most 2 per organ"],
        ),
        (
            json!({"targets": [lesion("T1", "mediastinum", true, 16.0), lesion("T2", "axilla", true, 17.0), lesion("T3", "pelvis", true, 18.0)]}),
            vec!["at most 2 per organ (all lymph nodes count as one organ)"],
        ),
        (
            json!({"targets": [lesion("T1", "liver", false, 9.5), lesion("T2", "mediastinum", true, 12.0)]}),
            vec![
                "target T1: longest diameter 9.5 mm is below the measurable minimum of 10.0 mm",
                "target node T2: short axis 12.0 mm is pathological but not measurable",
            ],
        ),
        (
            json!({"slice_thickness_mm": 7, "targets": [lesion("T1", "liver", false, 12.0)]}),
            vec!["below the measurable minimum of 14.0 mm"],
        ),
    ];
    for (assessment, expected) in cases {
        let (s, v) = r.submit("TP1", assessment.clone(), Some("reader")).await;
        assert_eq!(s, 422, "{assessment}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.starts_with("the baseline lesion selection breaks RECIST 1.1: "), "{msg}");
        for e in expected {
            assert!(msg.contains(e), "{e:?} not in {msg}");
        }
        assert_eq!(v["error"]["field"], "assessment");
    }
    // A measurement must sit on one of this timepoint's images, not on an unknown one.
    let mut elsewhere = baseline(30.4, 20.6);
    elsewhere["targets"][0]["image"] = json!({"sop_instance_uid": "2.25.1234", "points": [[1.0, 2.0], [3.0, 4.0]]});
    let (s, v) = r.submit("TP1", elsewhere, Some("reader")).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["field"], "targets.T1.image.sop_instance_uid", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("not one of this timepoint's images"), "{v}");
    // Nothing was submitted; a valid selection then is.
    let tasks = r.tasks().await;
    assert_eq!(tasks[0]["state"], "open");
    let (s, v) = r.submit("TP1", baseline(30.4, 20.6), Some("reader")).await;
    assert_eq!(s, 200, "{v}");
    w.t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_timepoint_opens_only_after_the_earlier_one_is_submitted() {
    let (w, qc2) = reading_world(Backend::SqliteLocal, 1).await;
    let c = w.c("reader").clone();
    let mut r = Seen::new(&w, &c);
    let tp2 = r.task("TP2").await;
    for (s, v) in [
        r.get(&format!("/api/v1/read-tasks/{tp2}")).await,
        r.post(&format!("/api/v1/read-tasks/{tp2}/draft"), json!({"assessment": follow_up(20.0, 20.0)})).await,
        r.post(
            &format!("/api/v1/read-tasks/{tp2}/submit"),
            json!({"assessment": follow_up(20.0, 20.0), "username": "reader", "password": PASSWORD}),
        )
        .await,
    ] {
        assert_eq!(s, 409, "{v}");
        assert_eq!(v["error"]["message"], "TP2 opens once you have submitted TP1: timepoints are read in order");
    }
    // A draft of TP1 does not unlock TP2; submitting does.
    let tp1 = r.task("TP1").await;
    let (s, v) = r.post(&format!("/api/v1/read-tasks/{tp1}/draft"), json!({"assessment": baseline(30.4, 20.6)})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "draft");
    assert_eq!(r.get(&format!("/api/v1/read-tasks/{tp2}")).await.0, 409);
    let (s, v) =
        r.post(&format!("/api/v1/read-tasks/{tp1}/submit"), json!({"username": "reader", "password": PASSWORD})).await;
    assert_eq!(s, 200, "the saved draft is submitted: {v}");
    assert_eq!(v["versions"][0]["assessment"]["targets"][1]["diameter_mm"], json!(20.6));
    let (s, v) = r.get(&format!("/api/v1/read-tasks/{tp2}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "open");
    assert_eq!(v["earlier"][0]["timepoint"], "TP1");
    // A locked read cannot be drafted over or submitted again.
    let (s, v) = r.post(&format!("/api/v1/read-tasks/{tp1}/draft"), json!({"assessment": baseline(1.0, 1.0)})).await;
    assert_eq!(s, 409, "{v}");
    // The next follow-up waits for TP2; a follow-up must answer for every baseline lesion.
    pass_qc(&w, &qc2, w.subject_a, "101-001", "101", "W16", "20270121", "1.2.826.0.1.3680043.8.498.77013").await;
    let tp3 = r.task("TP3").await;
    assert_eq!(r.get(&format!("/api/v1/read-tasks/{tp3}")).await.0, 409);
    let (s, v) = r
        .submit("TP2", json!({"targets": {"T1": {"value": 25.0}}, "non_targets": {"NT1": {"status": "PRESENT"}}}), None)
        .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(
        v["error"]["message"],
        "TP2: every baseline lesion needs a reading (NOT_EVALUATED when it could not be assessed); missing targets.T2"
    );
    assert_eq!(r.submit("TP2", follow_up(25.0, 18.0), None).await.0, 200);
    assert_eq!(r.get(&format!("/api/v1/read-tasks/{tp3}")).await.0, 200);
    // Another reader's task is not found, whatever its state.
    let r2 = w.c("reader2");
    assert_eq!(r2.get(w.url(&format!("/api/v1/read-tasks/{tp2}"))).send().await.unwrap().status(), 404);
    w.t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correction_needs_a_reason_and_creates_a_new_version() {
    for backend in crate::support::backends() {
        correction(backend).await;
    }
}

async fn correction(backend: Backend) {
    let (w, _) = reading_world(backend, 1).await;
    let c = w.c("reader").clone();
    let mut r = Seen::new(&w, &c);
    assert_eq!(r.submit("TP1", baseline(30.4, 20.6), Some("reader")).await.0, 200);
    assert_eq!(r.submit("TP2", follow_up(41.2, 24.9), None).await.0, 200);
    let tp2 = r.task("TP2").await;
    let path = format!("/api/v1/read-tasks/{tp2}/correct");
    let corrected = follow_up(34.2, 24.9);
    let (s, v) = r.post(&path, json!({"assessment": corrected, "reason": "  ", "password": PASSWORD})).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["field"], "reason");
    let (s, v) = r.post(&path, json!({"assessment": follow_up(41.2, 24.9), "reason": "x", "password": PASSWORD})).await;
    assert_eq!(s, 422, "a correction that changes nothing: {v}");
    let (s, v) = r
        .post(
            &path,
            json!({"assessment": corrected, "reason": "T1 was measured on the wrong slice", "password": "wrong"}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    let reason = "T1 was measured on the wrong slice";
    let (s, v) = r.post(&path, json!({"assessment": corrected, "reason": reason, "password": PASSWORD})).await;
    assert_eq!(s, 200, "{v}");
    let versions = v["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{v:#}");
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(versions[0]["assessment"]["targets"]["T1"]["value"], json!(41.2), "version 1 is kept as it was");
    assert_eq!(versions[0]["result"]["overall"], "PD");
    assert_eq!(versions[0]["signatures"][0]["valid"], true, "version 1 never changed");
    assert_eq!(versions[1]["version"], 2);
    assert_eq!(versions[1]["reason"], reason);
    assert_eq!(versions[1]["result"]["overall"], "SD", "59.1 mm is +15.9 %: not PD any more");
    assert_eq!(versions[1]["signatures"][0]["meaning"], "read corrected");
    // Audited with the reason; the database refuses to edit a locked version.
    let recs = audit(&w).await;
    let rec = recs.iter().find(|r| r.action == "correct" && r.object_type == "read").unwrap();
    assert_eq!(rec.reason.as_deref(), Some(reason));
    assert_eq!(rec.actor_name, "reader");
    assert!(rec.changes.contains("\"old\":1") && rec.changes.contains("\"new\":2"), "{}", rec.changes);
    let mut tx = w.t.app.db().begin().await.unwrap();
    let task: Uuid = tp2.parse().unwrap();
    let first = tx.read_versions(task).await.unwrap().into_iter().next().unwrap();
    let edited = corelab_store::reads::ReadVersionRow { assessment: "{}".into(), ..first };
    assert!(tx.update_read_version(&edited).await.is_err(), "a submitted version is locked in the database");
    drop(tx);
    // A baseline correction that would orphan a follow-up's lesions is refused.
    let tp1 = r.task("TP1").await;
    let broken = json!({"targets": [{"id": "T9", "organ": "liver", "diameter_mm": 30}], "non_targets": [{"id": "NT1", "organ": "bone"}]});
    let (s, v) = r
        .post(
            &format!("/api/v1/read-tasks/{tp1}/correct"),
            json!({"assessment": broken, "reason": "renumbered", "password": PASSWORD}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("TP2"), "{v}");
    w.t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_are_never_assigned_when_unqualified_or_their_training_expired() {
    let w = world(Backend::SqliteLocal).await;
    let qc2 = second_qc(&w, "qc_two").await;
    let t = w.trial;
    // Reader: training expired yesterday. Reader 2: qualified for iRECIST only. No profile for a
    // third reader.
    let today = chrono::Utc::now().date_naive();
    let expired = (today - chrono::Duration::days(1)).to_string();
    profile(&w, w.user_ids["reader"], &["RECIST1.1"], Some(&expired)).await;
    profile(&w, w.user_ids["reader2"], &["iRECIST"], Some("2030-12-31")).await;
    let (third, _) = person(&w, "reader3", "Rae Three", "reader").await;
    pass_qc(&w, &qc2, w.subject_a, "101-001", "101", "BL", "20260920", "1.2.826.0.1.3680043.8.498.77021").await;
    let ov = check(w.c("tm").get(w.url(&format!("/api/v1/trials/{t}/read-tasks"))).send().await.unwrap(), 200).await;
    assert_eq!(ov["unassigned"], 2, "{ov:#}");
    for task in ov["tasks"].as_array().unwrap() {
        assert_eq!(task["state"], "unassigned");
        assert!(task["reader"].is_null());
        let note = task["note"].as_str().unwrap();
        assert!(note.starts_with("no qualified reader available"), "{note}");
        for why in [
            format!("reader: training expired on {expired}"),
            "reader2: not qualified for RECIST1.1".to_string(),
            "reader3: no reader profile".to_string(),
        ] {
            assert!(note.contains(&why), "{why} in {note}");
        }
    }
    for who in ["reader", "reader2"] {
        let mine =
            check(w.c(who).get(w.url(&format!("/api/v1/trials/{t}/reading/tasks"))).send().await.unwrap(), 200).await;
        assert_eq!(mine, json!([]), "{who} got a task");
    }
    // Renewing reader's training gives them slot 1 (audited); reader2 stays out.
    profile(&w, w.user_ids["reader"], &["RECIST1.1"], Some("2030-12-31")).await;
    let ov = check(w.c("tm").get(w.url(&format!("/api/v1/trials/{t}/read-tasks"))).send().await.unwrap(), 200).await;
    let slot = |n: i64| ov["tasks"].as_array().unwrap().iter().find(|x| x["slot"] == n).unwrap().clone();
    assert_eq!((slot(1)["reader"].as_str(), slot(1)["state"].as_str()), (Some("reader"), Some("open")));
    assert_eq!(slot(2)["state"], "unassigned");
    let s2 = slot(2);
    let note = s2["note"].as_str().unwrap();
    assert!(note.contains("reader2: not qualified for RECIST1.1") && !note.contains("reader: "), "{note}");
    let recs = audit(&w).await;
    assert!(
        recs.iter().any(|r| r.action == "assign" && r.object_type == "read_task" && r.changes.contains("\"reader\""))
    );
    assert!(recs.iter().any(|r| r.action == "update" && r.object_type == "reader_profile" && r.actor_name == "tm"));
    // The third reader qualifies: slot 2 is theirs, never reader2's.
    profile(&w, third, &["RECIST1.1"], Some("2030-12-31")).await;
    let ov = check(w.c("tm").get(w.url(&format!("/api/v1/trials/{t}/read-tasks"))).send().await.unwrap(), 200).await;
    let readers: Vec<&str> = ov["tasks"].as_array().unwrap().iter().map(|x| x["reader"].as_str().unwrap()).collect();
    assert_eq!(readers, vec!["reader", "reader3"]);
    // A later timepoint goes to the same two readers; once a fixed reader's training lapses,
    // their new task waits instead of going to someone else.
    profile(&w, third, &["RECIST1.1"], Some(&expired)).await;
    pass_qc(&w, &qc2, w.subject_a, "101-001", "101", "W8", "20261126", "1.2.826.0.1.3680043.8.498.77022").await;
    let ov = check(w.c("tm").get(w.url(&format!("/api/v1/trials/{t}/read-tasks"))).send().await.unwrap(), 200).await;
    let w8: Vec<&Value> = ov["tasks"].as_array().unwrap().iter().filter(|x| x["visit_id"] == "W8").collect();
    assert_eq!(w8[0]["reader"], "reader");
    assert!(w8[1]["reader"].is_null());
    assert_eq!(
        w8[1]["note"].as_str().unwrap(),
        format!("reader 2 of this case (reader3) cannot take it now: training expired on {expired}")
    );
    // Profiles list the gap for the trial manager.
    let p =
        check(w.c("tm").get(w.url(&format!("/api/v1/trials/{t}/reader-profiles"))).send().await.unwrap(), 200).await;
    let r2 = p.as_array().unwrap().iter().find(|x| x["username"] == "reader2").unwrap();
    assert_eq!(r2["qualified"], false);
    assert_eq!(r2["gaps"], json!(["not qualified for RECIST1.1"]));
    // Profiles are only for readers and adjudicators, and checked word by word.
    let r = w
        .c("tm")
        .post(w.url(&format!("/api/v1/trials/{t}/reader-profiles")))
        .json(&json!({"user_id": w.user_ids["site_a"], "criteria": ["RECIST1.1"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = w
        .c("tm")
        .post(w.url(&format!("/api/v1/trials/{t}/reader-profiles")))
        .json(&json!({"user_id": third, "criteria": ["RECIST 1.1"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("\\\"RECIST 1.1\\\" is not one of RECIST1.1, iRECIST, LVEF, MS"));
    w.t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitting_a_read_needs_the_e_signature() {
    let (w, _) = reading_world(Backend::SqliteLocal, 0).await;
    let c = crate::world::World::login(&w.t, "reader").await;
    let mut r = Seen::new(&w, &c);
    let task = r.task("TP1").await;
    let path = format!("/api/v1/read-tasks/{task}/submit");
    let bl = baseline(30.4, 20.6);
    let (s, v) = r.post(&path, json!({"assessment": bl})).await;
    assert_eq!(s, 422, "no password: {v}");
    let (s, v) = r.post(&path, json!({"assessment": bl, "username": "reader", "password": "not-it"})).await;
    assert_eq!(s, 422, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("password is wrong"));
    let (s, v) = r.post(&path, json!({"assessment": bl, "password": PASSWORD})).await;
    assert_eq!(s, 422, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("username and your password"));
    // An API token may read but cannot sign.
    let tok = check(
        c.post(w.url("/api/v1/tokens"))
            .json(&json!({"name": "viewer", "trial_id": w.trial, "role": "reader"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let bearer = crate::support::client();
    let secret = tok["secret"].as_str().unwrap();
    let rt = bearer.get(w.url(&format!("/api/v1/read-tasks/{task}"))).bearer_auth(secret).send().await.unwrap();
    assert_eq!(rt.status(), 200);
    let rt = bearer
        .post(w.url(&path))
        .bearer_auth(secret)
        .json(&json!({"assessment": bl, "username": "reader", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(rt.status(), 403);
    // Nothing was submitted or signed.
    assert_eq!(r.tasks().await[0]["state"], "open");
    let recs = audit(&w).await;
    assert!(!recs.iter().any(|r| r.object_type == "read" && (r.action == "submit" || r.action == "sign")));
    let all = audit_of(&w, None).await;
    assert!(all.iter().any(|r| r.action == "signature_failed" && r.actor_name == "reader"));
    let (s, v) = r.post(&path, json!({"assessment": bl, "username": "reader", "password": PASSWORD})).await;
    assert_eq!(s, 200, "{v}");
    let sig = &v["versions"][0]["signatures"][0];
    assert_eq!(sig["meaning"], "read completed");
    assert_eq!(sig["signer_name"], "Rita Reader");
    assert!(sig["manifestation"].as_str().unwrap().starts_with("signed by Rita Reader on "));
    w.t.stop().await;
}
