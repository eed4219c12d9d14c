//! Charters: trial creation from the examples, broken charters, amendments with versions and a
//! diff, enrollment gated by site qualification, and the charter/trial/recist commands.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::{Backend, corelab_bin, spawn_app};
use crate::world::{World, charter_text, check, ct_instance, world};

#[tokio::test]
async fn each_example_charter_creates_a_trial() {
    let t = spawn_app(Backend::SqliteLocal).await;
    t.login_admin().await;
    for (file, protocol, sites) in [
        ("oncology-ct-recist.toml", "ACME-101", 3),
        ("cardiology-lvef.toml", "CARDIO-22", 2),
        ("neurology-ms-mri.toml", "NEURO-7", 3),
    ] {
        let v = check(t.post_json("/api/v1/trials", json!({"charter": charter_text(file)})).await, 201).await;
        assert_eq!(v["protocol_id"], protocol, "{file}");
        assert_eq!(v["charter_version"], 1);
        let id = v["id"].as_str().unwrap();
        let s = check(t.get(&format!("/api/v1/trials/{id}/sites")).await, 200).await;
        assert_eq!(s.as_array().unwrap().len(), sites, "{file}");
        assert!(s.as_array().unwrap().iter().all(|s| s["status"] == "pending"));
    }
    // The same protocol twice is refused.
    let r = t.post_json("/api/v1/trials", json!({"charter": charter_text("cardiology-lvef.toml")})).await;
    assert_eq!(r.status(), 409);
    t.stop().await;
}

#[tokio::test]
async fn a_broken_charter_gets_one_message_per_problem_with_line_and_key() {
    let broken = charter_text("oncology-ct-recist.toml")
        .replace("max_shift_days = 365", "max_shift_days = \"a year\"")
        .replace("unscheduled_visits_allowed = true", "unscheduled_visits_allowed = true\nunscheduled_visit = true")
        .replace("window = { minus_days = 7, plus_days = 7 }", "window = { minus_days = -9, plus_days = 7 }")
        .replace("imaging = [\"CT_CAP\"]\n\n[[imaging]]", "imaging = [\"CT_CAP\", \"MR_BRAIN\"]\n\n[[imaging]]");
    let line_of = |needle: &str| broken.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let expected = [
        (line_of("max_shift_days"), "deidentification.max_shift_days"),
        (line_of("unscheduled_visit = true"), "schedule.unscheduled_visit"),
        (line_of("minus_days = -9"), "visits[1].window"),
        (line_of("\"MR_BRAIN\""), "visits[1].imaging[1]"),
    ];
    // Through the API: 422 with every problem.
    let t = spawn_app(Backend::SqliteLocal).await;
    t.login_admin().await;
    let v = check(t.post_json("/api/v1/trials", json!({"charter": broken})).await, 422).await;
    let problems = v["error"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 4, "{v}");
    for (line, key) in expected {
        assert!(
            problems.iter().any(|p| p["line"] == line && p["key"].as_str().unwrap().starts_with(key)),
            "no problem at line {line} key {key}: {v}"
        );
    }
    t.stop().await;
    // Through the command line: one line per problem, FILE:LINE:COL: key: message (hint: ...).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.toml");
    std::fs::write(&file, &broken).unwrap();
    let out = Command::new(corelab_bin()).args(["charter", "check"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("broken.toml:") && l.contains("(hint: ")).collect();
    assert_eq!(lines.len(), 4, "{text}");
    for (line, key) in expected {
        assert!(
            lines.iter().any(|l| l.contains(&format!("broken.toml:{line}:")) && l.contains(key)),
            "{line} {key}: {text}"
        );
    }
    assert!(
        text.contains("keys allowed here: anchor, unscheduled_visits_allowed"),
        "unknown key lists what is allowed: {text}"
    );
    let ok =
        Command::new(corelab_bin()).args(["charter", "check", "../../charters/cardiology-lvef.toml"]).output().unwrap();
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("valid charter"));
}

#[tokio::test]
async fn amendments_apply_from_then_on_and_the_diff_lists_them() {
    for backend in crate::support::backends() {
        let w = world(backend).await;
        let t = w.trial;
        let amended = charter_text("oncology-ct-recist.toml")
            .replace("version = \"1.0\"", "version = \"2.0\"")
            .replace("slice_thickness_mm = { max = 5.0 }", "slice_thickness_mm = { max = 3.0 }")
            .replace(
                "[[imaging]]",
                "[[visits]]\nid = \"EOS\"\nlabel = \"End of study\"\nday = 730\nwindow = { minus_days = 14, plus_days = 14 }\nimaging = [\"CT_CAP\"]\n\n[[imaging]]",
            );
        // Only a trial manager may amend, and only with a reason.
        let r = w
            .c("site_a")
            .post(w.url(&format!("/api/v1/trials/{t}/charter")))
            .json(&json!({"charter": amended, "reason": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        let r = w
            .c("tm")
            .post(w.url(&format!("/api/v1/trials/{t}/charter")))
            .json(&json!({"charter": amended, "reason": " "}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422);
        let v = check(
            w.c("tm")
                .post(w.url(&format!("/api/v1/trials/{t}/charter")))
                .json(&json!({"charter": amended, "reason": "protocol amendment 2"}))
                .send()
                .await
                .unwrap(),
            201,
        )
        .await;
        let changes: Vec<String> =
            v["changes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
        assert!(changes.iter().any(|c| c.contains("EOS") && c.contains("added")), "{changes:?}");
        assert!(changes.iter().any(|c| c.contains("slice_thickness_mm.max 5 -> 3")), "{changes:?}");
        // The diff endpoint says the same.
        let d = check(
            w.c("monitor").get(w.url(&format!("/api/v1/trials/{t}/charter/diff?from=1&to=2"))).send().await.unwrap(),
            200,
        )
        .await;
        assert_eq!(d["changes"], json!(changes));
        // Existing records keep their version; new ones get the new one.
        let old =
            check(w.c("site_a").get(w.url(&format!("/api/v1/subjects/{}", w.subject_a))).send().await.unwrap(), 200)
                .await;
        assert_eq!(old["charter_version"], 1);
        let new = check(
            w.c("site_a")
                .post(w.url(&format!("/api/v1/trials/{t}/subjects")))
                .json(&json!({"site_id": "101", "subject_id": "101-002", "anchor_date": "2026-11-10"}))
                .send()
                .await
                .unwrap(),
            201,
        )
        .await;
        assert_eq!(new["charter_version"], 2);
        // The calendar of an existing subject follows the schedule in force.
        let cal = check(
            w.c("site_a").get(w.url(&format!("/api/v1/subjects/{}/calendar", w.subject_a))).send().await.unwrap(),
            200,
        )
        .await;
        let eos = cal.as_array().unwrap().iter().find(|v| v["visit_id"] == "EOS").expect("EOS in calendar");
        // 2026-10-01 + 730 days (2028 is a leap year), window opens 14 days earlier.
        assert_eq!(eos["expected_date"], "2028-09-30");
        assert_eq!(eos["window_open"], "2028-09-16");
        // Both versions stay readable.
        let vs =
            check(w.c("tm").get(w.url(&format!("/api/v1/trials/{t}/charter/versions"))).send().await.unwrap(), 200)
                .await;
        assert_eq!(vs.as_array().unwrap().len(), 2);
        assert_eq!(vs[1]["reason"], "protocol amendment 2");
        let v1 =
            check(w.c("tm").get(w.url(&format!("/api/v1/trials/{t}/charter?version=1"))).send().await.unwrap(), 200)
                .await;
        assert_eq!(v1["label"], "1.0");
        w.t.stop().await;
    }
}

#[tokio::test]
async fn subjects_wait_for_site_qualification() {
    let t = spawn_app(Backend::SqliteLocal).await;
    t.login_admin().await;
    let trial =
        check(t.post_json("/api/v1/trials", json!({"charter": charter_text("oncology-ct-recist.toml")})).await, 201)
            .await["id"]
            .as_str()
            .unwrap()
            .to_string();
    check(
        t.post_json(
            "/api/v1/users",
            json!({"username": "sue", "display_name": "Sue Site", "password": crate::world::PASSWORD}),
        )
        .await,
        201,
    )
    .await;
    check(
        t.post_json(
            "/api/v1/users",
            json!({"username": "quentin", "display_name": "Quentin QC", "password": crate::world::PASSWORD}),
        )
        .await,
        201,
    )
    .await;
    let users: Value = t.get("/api/v1/users").await.json().await.unwrap();
    let id = |name: &str| users.as_array().unwrap().iter().find(|u| u["username"] == name).unwrap()["id"].clone();
    check(
        t.post_json(
            &format!("/api/v1/trials/{trial}/grants"),
            json!({"user_id": id("sue"), "role": "site_user", "site_id": "201"}),
        )
        .await,
        201,
    )
    .await;
    check(
        t.post_json(
            &format!("/api/v1/trials/{trial}/grants"),
            json!({"user_id": id("quentin"), "role": "qc_reviewer"}),
        )
        .await,
        201,
    )
    .await;
    let sue = World::login(&t, "sue").await;
    let qc = World::login(&t, "quentin").await;
    let enroll = || {
        sue.post(t.url(&format!("/api/v1/trials/{trial}/subjects")))
            .json(&json!({"site_id": "201", "subject_id": "201-001", "anchor_date": "2026-11-01"}))
            .send()
    };
    let r = enroll().await.unwrap();
    assert_eq!(r.status(), 409);
    let msg = r.text().await.unwrap();
    assert!(msg.contains("site 201 is not qualified yet") && msg.contains("qualification scan"), "{msg}");
    // A qualification scan with 7 mm slices: de-identified, checked, findings shown.
    let scan = check(
        sue.post(t.url(&format!("/api/v1/trials/{trial}/sites/201/qualification/scans")))
            .body(ct_instance("SMITH^JOHN", "7"))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    assert_eq!(scan["passed"], false);
    assert_eq!(scan["findings"][0]["rule"], "slice_thickness");
    assert!(scan["findings"][0]["message"].as_str().unwrap().contains("at most 5 mm"));
    let q =
        check(sue.get(t.url(&format!("/api/v1/trials/{trial}/sites/201/qualification"))).send().await.unwrap(), 200)
            .await;
    assert_eq!(q["status"], "submitted");
    // The stored scan holds no PHI.
    let blobs = t.env.dir.path().join("blobs/qualification");
    for f in walk(&blobs) {
        let bytes = std::fs::read(&f).unwrap();
        for phi in ["SMITH", "MRN-7731-PHI", "19610203", "Hopital Saint-Louis Radiologie"] {
            assert!(!bytes.windows(phi.len()).any(|w| w == phi.as_bytes()), "{phi} stored in {f:?}");
        }
    }
    // Site staff cannot approve their own site; QC can, with an e-signature.
    let r = sue
        .post(t.url(&format!("/api/v1/trials/{trial}/sites/201/qualification/decision")))
        .json(&json!({"approve": true, "username": "sue", "password": crate::world::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let q = check(
        qc.post(t.url(&format!("/api/v1/trials/{trial}/sites/201/qualification/decision")))
            .json(&json!({"approve": true, "reason": "7 mm accepted for the phantom; clinical scans at 5 mm agreed", "username": "quentin", "password": crate::world::PASSWORD}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(q["status"], "qualified");
    assert_eq!(q["signatures"][0]["meaning"], "site qualification approved");
    assert_eq!(q["signatures"][0]["valid"], true);
    check(enroll().await.unwrap(), 201).await;
    // Training attestation records who, which version, when.
    let tr = check(
        sue.post(t.url(&format!("/api/v1/trials/{trial}/training")))
            .json(&json!({"topic": "imaging charter and acquisition protocol"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    assert_eq!(tr["charter_version"], 1);
    assert_eq!(tr["site_id"], "201");
    t.stop().await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
        }
    }
    out
}

#[tokio::test]
async fn trial_and_user_commands_work_on_the_servers_data() {
    let env = crate::support::Env::new(Backend::SqliteLocal).await;
    let envs = env.process_env();
    let run = |args: &[&str]| {
        Command::new(corelab_bin())
            .args(args)
            .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap()
    };
    let charters = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charters");
    let out = run(&["trial", "create", "--charter", charters.join("neurology-ms-mri.toml").to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("created trial NEURO-7"));
    let amended = env.dir.path().join("amended.toml");
    std::fs::write(&amended, charter_text("neurology-ms-mri.toml").replace("version = \"1.0\"", "version = \"1.1\""))
        .unwrap();
    let out =
        run(&["trial", "amend", "--trial", "NEURO-7", "--charter", amended.to_str().unwrap(), "--reason", "relabel"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["trial", "diff", "--trial", "NEURO-7", "--from", "1", "--to", "2"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("version \"1.0\" -> \"1.1\""),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run(&["user", "add", "rita", "--name", "Rita Reader"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("one-time password"));
    let out = run(&["user", "disable", "rita", "--reason", "left"]);
    assert!(out.status.success());
    let out = run(&["user", "list"]);
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(list.lines().any(|l| l.starts_with("rita") && l.contains("true")), "{list}");
    let out = run(&["audit", "verify"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("audit trail intact"));
    // The operator is named in the trail.
    let db = corelab_store::Db::connect(&env.database_url, &Default::default()).await.unwrap();
    let mut tx = db.read().await.unwrap();
    let recs = tx.list_audit(&Default::default()).await.unwrap();
    assert!(
        recs.iter()
            .any(|r| r.action == "disable" && r.actor_name.starts_with("cli:") && r.reason.as_deref() == Some("left"))
    );
}

#[test]
fn recist_evaluate_prints_the_computed_responses() {
    // Baseline 50 mm; week 8: 30 mm (-40 %, PR); week 16: 60 mm (+30 mm over the 30 mm nadir, PD).
    let case = json!({
        "id": "S1", "criteria": "RECIST1.1",
        "protocol": {"confirmation_required": false, "confirmation_min_days": 28, "sd_min_days_from_baseline": 42},
        "baseline": {"targets": [{"id": "T1", "organ": "liver", "is_node": false, "diameter_mm": 50}], "non_targets": []},
        "timepoints": [
            {"days_from_baseline": 56, "targets": {"T1": 30}, "non_targets": {}, "new_lesions": []},
            {"days_from_baseline": 112, "targets": {"T1": 60}, "non_targets": {}, "new_lesions": []}
        ]
    });
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("case.json");
    std::fs::write(&f, case.to_string()).unwrap();
    let out = Command::new(corelab_bin()).args(["recist", "evaluate"]).arg(&f).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["id"], "S1");
    assert_eq!(v["per_timepoint"][0]["overall"], "PR");
    assert_eq!(v["per_timepoint"][0]["sum_mm"], 30.0);
    assert_eq!(v["per_timepoint"][1]["overall"], "PD");
    assert_eq!(v["best_overall_response"], "PR");
    assert_eq!(v["progression_day_from_baseline"], 112);
    // A bad case names the case and the key.
    std::fs::write(&f, r#"{"id":"S2","criteria":"RECIST1.1","protocol":{"confirmation_required":false,"sd_min_days_from_baseline":42},"baseline":{"targets":[],"non_targets":[]},"timepoints":[{"days_from_baseline":10,"targets":{"T9":"HUGE"},"non_targets":{},"new_lesions":[]}]}"#).unwrap();
    let out = Command::new(corelab_bin()).args(["recist", "evaluate"]).arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("S2"), "{err}");
}
