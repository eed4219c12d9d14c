//! SDTM export evidence: a subject read by two readers who disagree, adjudicated; the TU, TR and RS
//! datasets downloaded as SAS XPORT and read back by an independent reader (pyreadstat, with a
//! pandas `read_sas` cross-check), every response and sum of diameters compared with what the
//! response engine computed for each read and with the accepted result; RSACPTFL marks the
//! accepted read. Also: CSV and define listings, who may export, the audit records, and the
//! `corelab export sdtm` command.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::reads::{Seen, baseline, follow_up, reading_world, visit_instance};
use crate::support::{Backend, corelab_bin};
use crate::world::{PASSWORD, World, check};

/// Reads an XPT file with pyreadstat (and checks pandas reads as many rows): name, label,
/// columns, labels and the records as JSON objects.
pub async fn read_xpt(path: &Path) -> Value {
    let script = "import json, sys, pyreadstat, pandas\n\
df, meta = pyreadstat.read_xport(sys.argv[1])\n\
pdf = pandas.read_sas(sys.argv[1], format='xport', encoding='ascii')\n\
assert len(pdf) == len(df) and list(pdf.columns) == list(df.columns), 'pandas disagrees'\n\
print(json.dumps({'name': meta.table_name, 'label': meta.file_label, 'columns': meta.column_names, \
'labels': meta.column_labels, 'rows': json.loads(df.to_json(orient='records'))}))";
    let out = tokio::process::Command::new("python3").arg("-c").arg(script).arg(path).output().await.unwrap();
    assert!(
        out.status.success(),
        "pyreadstat could not read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rows(ds: &Value) -> Vec<Value> {
    ds["rows"].as_array().unwrap().clone()
}

fn s<'a>(r: &'a Value, k: &str) -> &'a str {
    r[k].as_str().unwrap_or("")
}

/// The engine's SDTM code of a response as stored in results.
fn code(v: &Value) -> String {
    match v.as_str().unwrap() {
        "NON_CR_NON_PD" => "NON-CR/NON-PD".into(),
        other => other.into(),
    }
}

async fn download(w: &World, c: &reqwest::Client, file: &str, query: &str, dir: &Path) -> (u16, std::path::PathBuf) {
    let r = c.get(w.url(&format!("/api/v1/trials/{}/exports/sdtm/{file}{query}", w.trial))).send().await.unwrap();
    let status = r.status().as_u16();
    let path = dir.join(format!("{}{file}", if query.is_empty() { "" } else { "all-" }));
    std::fs::write(&path, r.bytes().await.unwrap()).unwrap();
    (status, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adjudicated_reads_export_to_xpt_that_reads_back_with_the_engines_results() {
    let (w, _qc2) = reading_world(Backend::SqliteLocal, 2).await;
    let t = w.trial;
    let (c1, c2) = (w.c("reader").clone(), w.c("reader2").clone());
    let mut r1 = Seen::new(&w, &c1);
    let mut r2 = Seen::new(&w, &c2);
    // What the engine computed for each locked read, as the reader got it back: (reader, visit) ->
    // result.
    let mut engine: BTreeMap<(u8, &str), Value> = BTreeMap::new();
    // Both readers measured T1 on a baseline image: TUREFID names it.
    let bl_image = visit_instance(&w, w.subject_a, "BL").await;
    let located = |mut read: Value| {
        read["targets"][0]["image"] =
            json!({"sop_instance_uid": bl_image, "frame": 1, "points": [[100.5, 80.0], [131.0, 80.0]]});
        read
    };
    let steps: [(u8, &str, &'static str, Value, Option<&str>); 6] = [
        (1, "TP1", "Baseline", located(baseline(30.4, 20.6)), Some("reader")),
        (2, "TP1", "Baseline", located(baseline(31.3, 21.7)), Some("reader2")),
        (1, "TP2", "Week 8", follow_up(41.2, 24.9), None),
        (2, "TP2", "Week 8", follow_up(33.1, 22.4), None),
        (1, "TP3", "Week 16", follow_up(47.8, 26.3), None),
        (2, "TP3", "Week 16", follow_up(43.7, 26.9), None),
    ];
    for (who, tp, visit, assessment, user) in steps {
        let seen = if who == 1 { &mut r1 } else { &mut r2 };
        let (status, v) = seen.submit(tp, assessment, user).await;
        assert_eq!(status, 200, "{v}");
        engine.insert((who, visit), v["versions"][0]["result"].clone());
    }
    assert_eq!(engine[&(1, "Week 8")]["overall"], "PD");
    assert_eq!(engine[&(2, "Week 8")]["overall"], "SD");
    // The readers disagree on the progression date; the adjudicator chooses reader 2.
    let adj = w.c("adjudicator");
    let list =
        check(adj.get(w.url(&format!("/api/v1/trials/{t}/adjudication/tasks"))).send().await.unwrap(), 200).await;
    let id = list[0]["adjudication_id"].as_str().unwrap().to_string();
    // While the subject is locked the adjudicator cannot decide (409, the lock named by id only).
    let lock = check(
        w.c("tm")
            .post(w.url(&format!("/api/v1/trials/{t}/locks")))
            .json(&json!({"scope": "subject", "subject_id": w.subject_a, "reason": "data review", "username": "tm", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let lock_id = lock["id"].as_str().unwrap();
    let r = adj
        .post(w.url(&format!("/api/v1/adjudications/{id}/decide")))
        .json(&json!({"chosen": "reader_2", "rationale": "x", "username": "adjudicator", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let text = r.text().await.unwrap();
    assert!(text.contains(lock_id) && !text.contains("101-001"), "{text}");
    check(
        w.c("tm")
            .post(w.url(&format!("/api/v1/locks/{lock_id}/unlock")))
            .json(&json!({"reason": "review finished", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let decided = check(
        adj.post(w.url(&format!("/api/v1/adjudications/{id}/decide")))
            .json(&json!({"chosen": "reader_2", "rationale": "progression is unequivocal only at week 16", "username": "adjudicator", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(decided["state"], "decided");
    let acc =
        check(w.c("tm").get(w.url(&format!("/api/v1/trials/{t}/accepted-results"))).send().await.unwrap(), 200).await;
    let accepted = acc[0]["result"].clone();
    assert_eq!(acc[0]["basis"], "adjudication");

    // Accepted reads as XPT, read back independently.
    let dir = tempfile::tempdir().unwrap();
    let tm = w.c("tm").clone();
    let mut ds = BTreeMap::new();
    for name in ["TU", "TR", "RS"] {
        let (status, path) = download(&w, &tm, &format!("{name}.xpt"), "", dir.path()).await;
        assert_eq!(status, 200, "{}", std::fs::read_to_string(&path).unwrap_or_default());
        let v = read_xpt(&path).await;
        assert_eq!(v["name"], name);
        ds.insert(name, v);
    }
    assert_eq!(ds["RS"]["label"], "Disease Response");
    let cols: Vec<&str> = ds["RS"]["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert!(cols.starts_with(&["STUDYID", "DOMAIN", "USUBJID", "RSSEQ"]) && cols.contains(&"RSACPTFL"), "{cols:?}");
    assert_eq!(ds["TR"]["labels"][13], "Numeric Result/Finding in Standard Units");
    // Only accepted records; the adjudicator's for responses, reader 2's measurements.
    for (name, flag, evalid) in
        [("TU", "TUACPTFL", "TUEVALID"), ("TR", "TRACPTFL", "TREVALID"), ("RS", "RSACPTFL", "RSEVALID")]
    {
        let rs = rows(&ds[name]);
        assert!(!rs.is_empty(), "{name}");
        for r in &rs {
            assert_eq!(s(r, flag), "Y", "{name}: {r}");
            assert_eq!(s(r, "USUBJID"), "ACME-101-101-001");
            assert_eq!(s(r, "STUDYID"), "ACME-101");
            assert_eq!(s(r, evalid), if name == "RS" { "ADJUDICATOR" } else { "RADIOLOGIST 2" }, "{name}: {r}");
        }
    }
    let rs = rows(&ds["RS"]);
    let tr = rows(&ds["TR"]);
    let find = |rows: &[Value], test_var: &str, test: &str, visit: &str| -> Vec<Value> {
        rows.iter().filter(|r| s(r, test_var) == test && s(r, "VISIT") == visit).cloned().collect()
    };
    // Every accepted response and sum equals the accepted result (the engine's, reader 2's read).
    let labels = BTreeMap::from([("BL", "Baseline"), ("W8", "Week 8"), ("W16", "Week 16")]);
    for tp in accepted["timepoints"].as_array().unwrap() {
        let visit = labels[tp["visit_id"].as_str().unwrap()];
        let sums = find(&tr, "TRTESTCD", "SUMDIAM", visit);
        assert_eq!(sums.len(), 1, "{visit}: {sums:?}");
        let want = if tp["baseline"] == true { &tp["baseline_sum_mm"] } else { &tp["sum_mm"] };
        assert_eq!(sums[0]["TRSTRESN"].as_f64(), want.as_f64(), "{visit}");
        if tp["baseline"] == true {
            continue;
        }
        for (test, key) in
            [("OVRLRESP", "overall"), ("TRGRESP", "target_response"), ("NTRGRESP", "non_target_response")]
        {
            let got = find(&rs, "RSTESTCD", test, visit);
            assert_eq!(got.len(), 1, "{test} {visit}");
            assert_eq!(s(&got[0], "RSORRES"), code(&tp[key]), "{test} {visit}");
            assert_eq!(s(&got[0], "RSLNKGRP"), format!("R2-{}", tp["visit_id"].as_str().unwrap()));
        }
        let newlind = find(&rs, "RSTESTCD", "NEWLIND", visit);
        assert_eq!(s(&newlind[0], "RSORRES"), if tp["new_lesions"] == true { "Y" } else { "N" });
    }
    let bor: Vec<&Value> = rs.iter().filter(|r| s(r, "RSTESTCD") == "BESTRESP").collect();
    assert_eq!(bor.len(), 1);
    assert_eq!(s(bor[0], "RSORRES"), code(&accepted["best_overall_response"]["value"]));
    assert_eq!(s(bor[0], "RSORRES"), "SD");
    assert!(bor[0]["VISITNUM"].is_null());
    // Visits, dates and days as the datasets name them.
    let w16 = find(&rs, "RSTESTCD", "OVRLRESP", "Week 16");
    assert_eq!(
        (w16[0]["VISITNUM"].as_f64(), s(&w16[0], "RSORRES"), s(&w16[0], "RSCAT")),
        (Some(3.0), "PD", "RECIST 1.1")
    );
    assert_eq!(s(&w16[0], "RSDTC").len(), 10, "an ISO 8601 date: {}", w16[0]);
    // TU: reader 2's lesions, located, with the method from the images and the image reference.
    let tu = rows(&ds["TU"]);
    let ids: Vec<(&str, &str, &str, &str)> =
        tu.iter().map(|r| (s(r, "TULNKID"), s(r, "TUORRES"), s(r, "TULOC"), s(r, "TUMETHOD"))).collect();
    assert_eq!(
        ids,
        vec![
            ("T1", "TARGET", "LIVER", "CT SCAN"),
            ("T2", "TARGET", "LUNG", "CT SCAN"),
            ("NT1", "NON-TARGET", "BONE", "CT SCAN")
        ]
    );
    assert_eq!(s(&tu[0], "TUREFID"), bl_image);
    // Sequence numbers 1..n.
    let seq: Vec<f64> = rs.iter().map(|r| r["RSSEQ"].as_f64().unwrap()).collect();
    assert_eq!(seq, (1..=rs.len()).map(|n| n as f64).collect::<Vec<_>>());

    // All reads: both readers' records, each equal to the engine's result for that read; the
    // accepted flag only on the adjudicator's responses and reader 2's measurements.
    let mut all = BTreeMap::new();
    for name in ["TR", "RS"] {
        let (status, path) = download(&w, &tm, &format!("{name}.xpt"), "?all_reads=true", dir.path()).await;
        assert_eq!(status, 200);
        all.insert(name, rows(&read_xpt(&path).await));
    }
    for ((who, visit), result) in &engine {
        let evalid = format!("RADIOLOGIST {who}");
        let sums: Vec<&Value> = all["TR"]
            .iter()
            .filter(|r| s(r, "TRTESTCD") == "SUMDIAM" && s(r, "VISIT") == *visit && s(r, "TREVALID") == evalid)
            .collect();
        assert_eq!(sums.len(), 1, "{evalid} {visit}");
        let want = if *visit == "Baseline" { &result["baseline_sum_mm"] } else { &result["sum_mm"] };
        assert_eq!(sums[0]["TRSTRESN"].as_f64(), want.as_f64(), "{evalid} {visit}");
        assert_eq!(s(sums[0], "TRACPTFL"), if *who == 2 { "Y" } else { "" });
        if *visit == "Baseline" {
            continue;
        }
        let overall: Vec<&Value> = all["RS"]
            .iter()
            .filter(|r| s(r, "RSTESTCD") == "OVRLRESP" && s(r, "VISIT") == *visit && s(r, "RSEVALID") == evalid)
            .collect();
        assert_eq!(overall.len(), 1, "{evalid} {visit}");
        assert_eq!(s(overall[0], "RSORRES"), code(&result["overall"]), "{evalid} {visit}");
        assert_eq!(s(overall[0], "RSACPTFL"), "", "reader records are not the accepted ones when adjudicated");
    }
    let flagged: Vec<(&str, &str)> =
        all["RS"].iter().filter(|r| s(r, "RSACPTFL") == "Y").map(|r| (s(r, "RSEVALID"), s(r, "RSTESTCD"))).collect();
    assert!(flagged.iter().all(|(e, _)| *e == "ADJUDICATOR"), "{flagged:?}");
    assert_eq!(flagged.len(), rs.len(), "the accepted records of the all-reads export are the accepted export");
    let r1_bor: Vec<&Value> =
        all["RS"].iter().filter(|r| s(r, "RSTESTCD") == "BESTRESP" && s(r, "RSEVALID") == "RADIOLOGIST 1").collect();
    assert_eq!(s(r1_bor[0], "RSORRES"), "PD");

    // CSV and the define listing.
    let r = tm.get(w.url(&format!("/api/v1/trials/{t}/exports/sdtm/RS.csv"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = r.text().await.unwrap();
    assert!(csv.starts_with("STUDYID,DOMAIN,USUBJID,RSSEQ,RSLNKGRP,RSTESTCD,"), "{csv}");
    assert_eq!(csv.matches("\r\n").count(), rs.len() + 1);
    let r = tm.get(w.url(&format!("/api/v1/trials/{t}/exports/sdtm/define"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let xml = r.text().await.unwrap();
    for ds in ["TU", "TR", "RS"] {
        assert!(xml.contains(&format!("<ItemGroupDef OID=\"IG.{ds}\"")), "{xml}");
    }
    assert!(xml.contains("Name=\"RSACPTFL\" DataType=\"text\" Length=\"1\""), "{xml}");
    let listing =
        check_text(tm.get(w.url(&format!("/api/v1/trials/{t}/exports/sdtm/define?format=csv"))).send().await.unwrap())
            .await;
    assert!(listing.contains("TR,TRSTRESN,Numeric Result/Finding in Standard Units,Num,8,Derived"), "{listing}");
    let r = tm.get(w.url(&format!("/api/v1/trials/{t}/exports/sdtm/DM.xpt"))).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("TU, TR or RS"));

    // Who may export: trial managers and administrators; not readers, adjudicators, sites, QC,
    // monitors or a blinded sponsor (403, audited).
    for role in ["admin"] {
        assert_eq!(download(&w, w.c(role), "TR.xpt", "", dir.path()).await.0, 200, "{role}");
    }
    for role in ["reader", "adjudicator", "site_a", "qc", "monitor", "sponsor"] {
        assert_eq!(download(&w, w.c(role), "TR.xpt", "", dir.path()).await.0, 403, "{role}");
    }
    // A sponsor with an unblinded grant may export.
    let v = check(
        w.c("admin")
            .post(w.url("/api/v1/users"))
            .json(&json!({"username": "sponsor_unblinded", "display_name": "Una Blinded", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    check(
        tm.post(w.url(&format!("/api/v1/trials/{t}/grants")))
            .json(&json!({"user_id": v["user"]["id"], "role": "sponsor", "unblinded": true}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let unblinded = World::login(&w.t, "sponsor_unblinded").await;
    assert_eq!(download(&w, &unblinded, "TR.xpt", "", dir.path()).await.0, 200);
    // Each export is audited: who, what, how many records.
    let mut tx = w.t.app.db().read().await.unwrap();
    let recs = tx
        .list_audit(&corelab_store::audit::AuditFilter { trial_id: Some(t), limit: 5000, ..Default::default() })
        .await
        .unwrap();
    drop(tx);
    let exports: Vec<_> = recs.iter().filter(|r| r.action == "export" && r.object_type == "sdtm_export").collect();
    assert_eq!(
        exports.len(),
        3 + 2 + 3 + 2,
        "TU/TR/RS.xpt, all-reads TR/RS, RS.csv, define xml+csv, admin and sponsor TR"
    );
    let rs_export = exports.iter().find(|r| r.object_id == "RS.xpt").unwrap();
    assert_eq!((rs_export.actor_name.as_str(), rs_export.actor_role.as_str()), ("tm", "trial_manager"));
    assert!(rs_export.changes.contains("rs_records") && rs_export.changes.contains(&rs.len().to_string()));
    assert!(
        recs.iter()
            .any(|r| r.action == "permission_denied" && r.object_type == "sdtm_export" && r.actor_name == "reader")
    );

    // The command line writes the same datasets into a folder.
    let out_dir = dir.path().join("cli");
    let env = w.t.env.process_env();
    let out = tokio::process::Command::new(corelab_bin())
        .args(["export", "sdtm", "--trial", "ACME-101", "--out"])
        .arg(&out_dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("accepted reads"));
    let mut files: Vec<String> =
        std::fs::read_dir(&out_dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    assert_eq!(files, ["define.csv", "define.xml", "rs.csv", "rs.xpt", "tr.csv", "tr.xpt", "tu.csv", "tu.xpt"]);
    let cli_rs = read_xpt(&out_dir.join("rs.xpt")).await;
    assert_eq!(rows(&cli_rs), rs);
    let again = tokio::process::Command::new(corelab_bin())
        .args(["export", "sdtm", "--trial", "ACME-101", "--out"])
        .arg(&out_dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .await
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not empty"));
    w.t.stop().await;
}

async fn check_text(r: reqwest::Response) -> String {
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}
