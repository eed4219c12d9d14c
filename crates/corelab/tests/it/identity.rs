//! Identity: site isolation, blinding of readers, the authorization matrix over every route, the
//! audit trail (completeness and tamper detection) and e-signatures.

use std::collections::HashSet;
use std::process::Command;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Backend, backends, corelab_bin};
use crate::world::{PASSWORD, ROLES, World, check, ct_instance, world};

#[tokio::test]
async fn a_site_user_sees_nothing_of_another_site() {
    let w = world(Backend::SqliteLocal).await;
    let a = w.c("site_a");
    let t = w.trial;
    let subjects: Value = check(a.get(w.url(&format!("/api/v1/trials/{t}/subjects"))).send().await.unwrap(), 200).await;
    let ids: Vec<&str> = subjects.as_array().unwrap().iter().map(|s| s["subject_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["101-001"]);
    let sites: Value = check(a.get(w.url(&format!("/api/v1/trials/{t}/sites"))).send().await.unwrap(), 200).await;
    assert_eq!(sites.as_array().unwrap().len(), 1);
    assert_eq!(sites[0]["site_id"], "101");
    let b = w.subject_b;
    for path in [
        format!("/api/v1/subjects/{b}"),
        format!("/api/v1/subjects/{b}/calendar"),
        format!("/api/v1/trials/{t}/sites/102"),
        format!("/api/v1/trials/{t}/sites/102/qualification"),
    ] {
        let r = a.get(w.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let body = r.text().await.unwrap();
        assert!(!body.contains("102-001") && !body.contains("Charite"), "{path} leaked: {body}");
    }
    for (path, body) in [
        (format!("/api/v1/subjects/{b}/correct"), json!({"reason": "x", "anchor_date": "2026-10-02"})),
        (format!("/api/v1/subjects/{b}/withdraw"), json!({"reason": "x", "date": "2026-10-02"})),
        (
            format!("/api/v1/trials/{t}/subjects"),
            json!({"site_id": "102", "subject_id": "102-002", "anchor_date": "2026-10-02"}),
        ),
    ] {
        let r = a.post(w.url(&path)).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    // Nothing changed at site B.
    let sb: Value = check(w.c("site_b").get(w.url(&format!("/api/v1/subjects/{b}"))).send().await.unwrap(), 200).await;
    assert_eq!(sb["anchor_date"], "2026-10-01");
    assert_eq!(sb["status"], "enrolled");
    // Site staff see the arm they recorded; a blinded monitor does not.
    let sa: Value = check(a.get(w.url(&format!("/api/v1/subjects/{}", w.subject_a))).send().await.unwrap(), 200).await;
    assert_eq!(sa["arm"], "A");
    let m: Value =
        check(w.c("monitor").get(w.url(&format!("/api/v1/subjects/{}", w.subject_a))).send().await.unwrap(), 200).await;
    assert!(m.get("arm").is_none(), "{m}");
    w.t.stop().await;
}

/// Walks a JSON value and collects every object key.
fn keys(v: &Value, out: &mut HashSet<String>) {
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

#[tokio::test]
async fn readers_get_no_site_arm_phi_or_other_readers_data() {
    let w = world(Backend::SqliteLocal).await;
    let t = w.trial;
    for role in ["reader", "adjudicator"] {
        let c = w.c(role);
        let mut bodies = Vec::new();
        for path in ["/api/v1/trials".to_string(), format!("/api/v1/trials/{t}"), format!("/api/v1/trials/{t}/charter")]
        {
            let r = c.get(w.url(&path)).send().await.unwrap();
            assert_eq!(r.status(), 200, "{role} {path}");
            bodies.push((path, r.text().await.unwrap()));
        }
        for (path, body) in &bodies {
            let v: Value = serde_json::from_str(body).unwrap();
            let mut k = HashSet::new();
            keys(&v, &mut k);
            for forbidden in
                ["sites", "site_id", "site", "arms", "arm", "dimse", "ae_titles", "subjects", "patient_name"]
            {
                assert!(!k.contains(forbidden), "{role} {path} has field {forbidden}");
            }
            for value in [
                "Hopital Saint-Louis",
                "Charite",
                "Acmetinib",
                "Docetaxel",
                "101-001",
                "102-001",
                "SLS_CT1",
                "Rob Reader",
            ] {
                assert!(!body.contains(value), "{role} {path} contains {value}");
            }
        }
        for path in [
            format!("/api/v1/trials/{t}/subjects"),
            format!("/api/v1/trials/{t}/sites"),
            format!("/api/v1/subjects/{}", w.subject_a),
            format!("/api/v1/trials/{t}/sites/101/qualification"),
        ] {
            assert_eq!(c.get(w.url(&path)).send().await.unwrap().status(), 404, "{role} {path}");
        }
        // Who else reads is other readers' data too.
        assert_eq!(c.get(w.url(&format!("/api/v1/trials/{t}/grants"))).send().await.unwrap().status(), 403);
    }
    w.t.stop().await;
}

/// What the matrix expects of one role on one route.
#[derive(Debug, Clone, Copy, PartialEq)]
enum E {
    /// Authorization passes (any status but 401, 403, 404).
    Ok,
    Forbidden,
    Hidden,
    Unauthenticated,
}

fn classify(status: u16) -> E {
    match status {
        401 => E::Unauthenticated,
        403 => E::Forbidden,
        404 => E::Hidden,
        _ => E::Ok,
    }
}

/// The matrix: for every API route, what each role gets in scope (trial T1, site 101, subject
/// of site 101) and out of scope (another trial). A route missing here fails the test.
fn matrix_entry(method: &str, path: &str, role: &str) -> Option<(E, E)> {
    use E::*;
    let admin = role == "admin";
    let any = |e: E| Some((e, e));
    let trial_roles = |allowed: &[&str]| {
        let inside = if admin || allowed.contains(&role) { Ok } else { Forbidden };
        Some((inside, if admin { Ok } else { Hidden }))
    };
    // Site-level objects: readers, adjudicators and sponsors cannot even see them.
    let site_level = |allowed: &[&str]| {
        let inside = if admin || allowed.contains(&role) {
            Ok
        } else if ["reader", "adjudicator", "sponsor"].contains(&role) {
            Hidden
        } else {
            Forbidden
        };
        Some((inside, if admin { Ok } else { Hidden }))
    };
    let p = path.trim_start_matches("/api/v1");
    match (method, p) {
        ("POST", "/auth/login") => any(Ok),
        ("POST", "/auth/logout") | ("POST", "/auth/password") | ("GET", "/me") => any(Ok),
        ("GET", "/documents") | ("GET", "/documents/{id}") | ("GET", "/documents/{id}/content") => any(Ok),
        ("POST", "/documents") => any(if admin { Ok } else { Forbidden }),
        ("GET", "/users") => any(if admin || role == "tm" { Ok } else { Forbidden }),
        ("POST", "/users")
        | ("POST", "/users/{username}/disable")
        | ("POST", "/users/{username}/enable")
        | ("POST", "/users/{username}/reset-password") => any(if admin { Ok } else { Forbidden }),
        ("GET", "/tokens") | ("POST", "/tokens") => any(Ok),
        // A token id that is not the caller's is not found, whoever asks.
        ("POST", "/tokens/{token}/revoke") => any(Hidden),
        ("GET", "/trials") => any(Ok),
        ("POST", "/trials") => any(if admin { Ok } else { Forbidden }),
        ("GET", "/trials/{trial}")
        | ("GET", "/trials/{trial}/charter")
        | ("GET", "/trials/{trial}/charter/versions") => trial_roles(ROLES),
        ("POST", "/trials/{trial}/charter") => trial_roles(&["tm"]),
        ("GET", "/trials/{trial}/charter/diff") => trial_roles(&["tm", "monitor", "qc"]),
        ("GET", "/trials/{trial}/grants") => trial_roles(&["tm", "monitor"]),
        ("POST", "/trials/{trial}/grants") | ("POST", "/trials/{trial}/grants/{grant}/revoke") => trial_roles(&["tm"]),
        ("GET", "/trials/{trial}/training") => trial_roles(ROLES),
        // Administrators hold no trial role, so they have no training to attest.
        ("POST", "/trials/{trial}/training") => {
            Some((if admin { Forbidden } else { Ok }, if admin { Forbidden } else { Hidden }))
        }
        ("GET", "/trials/{trial}/sites") => {
            let inside = if ["reader", "adjudicator"].contains(&role) { Hidden } else { Ok };
            Some((inside, if admin { Ok } else { Hidden }))
        }
        ("GET", "/trials/{trial}/sites/{site}") | ("GET", "/trials/{trial}/sites/{site}/qualification") => {
            site_level(&["tm", "qc", "monitor", "site_a"])
        }
        ("POST", "/trials/{trial}/sites/{site}/qualification/scans") => site_level(&["tm", "site_a"]),
        ("POST", "/trials/{trial}/sites/{site}/qualification/decision") => site_level(&["qc"]),
        ("GET", "/trials/{trial}/subjects") => site_level(&["tm", "qc", "monitor", "site_a"]),
        ("POST", "/trials/{trial}/subjects") => site_level(&["tm", "site_a"]),
        ("GET", "/subjects/{subject}") | ("GET", "/subjects/{subject}/calendar") => {
            site_level(&["tm", "qc", "monitor", "site_a"])
        }
        ("POST", "/subjects/{subject}/correct")
        | ("POST", "/subjects/{subject}/withdraw")
        | ("POST", "/subjects/{subject}/sign") => site_level(&["tm", "site_a"]),
        ("GET", "/audit") | ("GET", "/audit/export") => trial_roles(&["tm", "monitor"]),
        ("GET", "/trials/{trial}/visits") | ("GET", "/trials/{trial}/queries") => {
            site_level(&["tm", "qc", "monitor", "site_a"])
        }
        ("GET", "/trials/{trial}/qc-queue") => trial_roles(&["tm", "qc"]),
        ("GET", "/subjects/{subject}/visits/{visit}") | ("GET", "/queries/{query}") => {
            site_level(&["tm", "qc", "monitor", "site_a"])
        }
        ("POST", "/subjects/{subject}/visits/{visit}/qc") => site_level(&["qc"]),
        ("POST", "/subjects/{subject}/queries") => site_level(&["qc", "tm"]),
        ("POST", "/queries/{query}/messages") => site_level(&["site_a", "qc", "tm"]),
        ("POST", "/queries/{query}/close") | ("POST", "/queries/{query}/reopen") => site_level(&["qc", "tm"]),
        ("GET", "/trials/{trial}/inbox") => site_level(&["tm", "site_a", "qc", "monitor"]),
        ("POST", "/inbox/{item}/assign") => site_level(&["tm", "site_a"]),
        ("POST", "/inbox/{item}/discard") => site_level(&["tm"]),
        // DICOMweb STOW-RS: site staff of that site and trial managers send images.
        ("POST", "/dicomweb/studies") | ("POST", "/dicomweb/studies/{study}") => site_level(&["tm", "site_a"]),
        // DICOMweb QIDO-RS / WADO-RS: everyone with images in their scope searches (readers and
        // adjudicators only their tasks' studies), sponsors see no images; the study of the
        // matrix is not stored, so naming it is not found for everyone who may look.
        ("GET", "/dicomweb/studies") => {
            Some((if role == "sponsor" { Forbidden } else { Ok }, if admin { Ok } else { Hidden }))
        }
        ("GET", x) if x.starts_with("/dicomweb/studies/{study}") => {
            Some((if role == "sponsor" { Forbidden } else { Hidden }, Hidden))
        }
        // A site gateway's settings: the site's own staff and trial managers.
        ("GET", "/gateway/config") => site_level(&["tm", "site_a"]),
        ("POST", "/gateway/heartbeat") => site_level(&["tm", "site_a"]),
        ("GET", "/trials/{trial}/gateways") => site_level(&["tm", "site_a", "qc", "monitor"]),
        // Reads: a task or an adjudication is its reader's / adjudicator's alone (others in the
        // trial are refused; anyone else's, or one of another trial, is not found).
        ("GET", "/read-tasks/{task}")
        | ("POST", "/read-tasks/{task}/draft")
        | ("POST", "/read-tasks/{task}/evaluate")
        | ("POST", "/read-tasks/{task}/submit")
        | ("POST", "/read-tasks/{task}/correct") => Some((
            if role == "reader" {
                Ok
            } else if admin {
                Hidden
            } else {
                Forbidden
            },
            Hidden,
        )),
        ("GET", "/adjudications/{adjudication}") | ("POST", "/adjudications/{adjudication}/decide") => Some((
            if role == "adjudicator" {
                Ok
            } else if admin {
                Hidden
            } else {
                Forbidden
            },
            Hidden,
        )),
        // A read as DICOM SR: its own reader, trial managers (and unblinded sponsors; the world's
        // sponsor is blinded); another reader's task is not found.
        ("GET", "/read-tasks/{task}/sr") => {
            Some((if ["reader", "tm", "admin"].contains(&role) { Ok } else { Forbidden }, Hidden))
        }
        ("GET", "/trials/{trial}/reading/tasks") => trial_roles(&["reader"]),
        ("GET", "/trials/{trial}/adjudication/tasks") => trial_roles(&["adjudicator"]),
        ("GET", "/trials/{trial}/reader-profiles")
        | ("GET", "/trials/{trial}/read-tasks")
        | ("GET", "/trials/{trial}/read-metrics")
        | ("GET", "/trials/{trial}/accepted-results") => trial_roles(&["tm", "monitor"]),
        ("POST", "/trials/{trial}/reader-profiles") => trial_roles(&["tm"]),
        // SDTM exports: trial managers (and unblinded sponsors; the world's sponsor is blinded).
        ("GET", "/trials/{trial}/exports/sdtm/define") | ("GET", "/trials/{trial}/exports/sdtm/{file}") => {
            trial_roles(&["tm"])
        }
        ("GET", "/trials/{trial}/locks") => trial_roles(&["tm", "monitor"]),
        ("POST", "/trials/{trial}/locks") => trial_roles(&["tm"]),
        // A lock id that does not exist is not found, whoever asks.
        ("POST", "/locks/{lock}/unlock") => any(Hidden),
        _ => None,
    }
}

/// A concrete request for a route, in or out of scope. Bodies are chosen so that a request that
/// passes authorization fails validation afterwards and changes nothing.
fn concrete(
    w: &World,
    reads: &crate::reads::ReadFixture,
    method: &str,
    path: &str,
    inside: bool,
) -> (String, Option<Value>, Option<Vec<u8>>) {
    let trial = if inside { w.trial } else { w.other_trial };
    let site = if inside { "101" } else { "NL01" };
    let subject = if inside { w.subject_a } else { w.other_subject };
    let grant = if inside { w.reader_grant } else { w.other_grant };
    let mut q = String::new();
    let p = path
        .replace("{trial}", &trial.to_string())
        .replace("{site}", site)
        .replace("{subject}", &subject.to_string())
        .replace("{grant}", &grant.to_string())
        .replace("{id}", &w.document.to_string())
        .replace("{token}", &Uuid::nil().to_string())
        .replace("{username}", "monitor")
        .replace("{visit}", "BL")
        .replace("{item}", &(if inside { w.inbox_item } else { w.other_inbox_item }).to_string())
        .replace("{query}", &(if inside { w.query } else { w.other_query }).to_string())
        .replace("{study}", "1.2.826.0.1.3680043.8.498.1")
        .replace("{series}", "1.2.826.0.1.3680043.8.498.2")
        .replace("{instance}", "1.2.826.0.1.3680043.8.498.3")
        .replace("{frames}", "1")
        .replace("{tag}", "7FE00010")
        .replace("{task}", &(if inside { reads.task } else { Uuid::nil() }).to_string())
        .replace("{file}", "TU.xpt")
        .replace("{lock}", &Uuid::nil().to_string())
        .replace("{adjudication}", &(if inside { reads.adjudication } else { Uuid::nil() }).to_string());
    if p.ends_with("/charter/diff") {
        q = "?from=1&to=1".into();
    } else if p.ends_with("/audit") || p.ends_with("/audit/export") {
        q = format!("?trial_id={trial}&format=json&limit=1");
    } else if p.ends_with("/documents") && method == "POST" {
        q = "?name=..%2Fbad".into();
    } else if p.starts_with("/dicomweb") && method == "GET" {
        q = format!("?trial={trial}");
    } else if p.starts_with("/dicomweb") || p.ends_with("/gateway/config") || p.ends_with("/gateway/heartbeat") {
        q = format!("?trial={trial}&site={site}");
    }
    let invalid = json!({"reason": ""});
    let body = match (method, p.trim_start_matches("/api/v1")) {
        ("GET", _) => None,
        ("POST", "/auth/login") => Some(json!({"username": "nobody"})),
        ("POST", x) if x.starts_with("/read-tasks/") && (x.ends_with("/draft") || x.ends_with("/evaluate")) => {
            Some(json!({"assessment": "not an assessment"}))
        }
        ("POST", x) if x.starts_with("/read-tasks/") && x.ends_with("/submit") => Some(json!({"password": "wrong"})),
        ("POST", x) if x.starts_with("/read-tasks/") && x.ends_with("/correct") => {
            Some(json!({"assessment": {}, "reason": "", "password": "wrong"}))
        }
        ("POST", x) if x.ends_with("/decide") => {
            Some(json!({"chosen": "reader_1", "rationale": "", "password": "wrong"}))
        }
        ("POST", x) if x.ends_with("/reader-profiles") => Some(json!({"user_id": Uuid::nil(), "criteria": []})),
        // Authorized, then refused: a session is not a gateway, and a count is negative.
        ("POST", "/gateway/heartbeat") => Some(json!({"version": "t", "queue_depth": -1, "waiting": 0, "failed": 0})),
        ("POST", "/auth/logout") => None,
        ("POST", "/auth/password") => Some(json!({"current_password": "wrong", "new_password": "x"})),
        ("POST", "/users") => Some(json!({"username": "!", "display_name": "x"})),
        ("POST", "/trials") => Some(json!({"charter": "not a charter"})),
        ("POST", "/tokens") => Some(json!({"name": "t", "trial_id": trial, "role": "monitor", "expires_in_days": 0})),
        ("POST", x) if x.ends_with("/charter") => Some(json!({"charter": "x", "reason": ""})),
        ("POST", x) if x.ends_with("/grants") => Some(json!({"user_id": Uuid::nil(), "role": "monitor"})),
        ("POST", x) if x.ends_with("/subjects") => {
            Some(json!({"site_id": site, "subject_id": "BAD", "anchor_date": "2026-10-01"}))
        }
        ("POST", x) if x.ends_with("/withdraw") => Some(json!({"date": "2026-10-02", "reason": ""})),
        ("POST", x) if x.ends_with("/decision") => Some(json!({"approve": false, "reason": "", "password": "wrong"})),
        ("POST", x) if x.ends_with("/training") => Some(json!({"topic": ""})),
        ("POST", x) if x.ends_with("/sign") => Some(json!({"meaning": "", "password": "wrong"})),
        ("POST", x) if x.ends_with("/qc") => Some(json!({"outcome": "accept", "password": "wrong"})),
        ("POST", x) if x.ends_with("/queries") => Some(json!({"title": "", "body": ""})),
        ("POST", x) if x.ends_with("/messages") => Some(json!({"body": ""})),
        ("POST", x) if x.ends_with("/assign") => {
            Some(json!({"subject_id": Uuid::nil(), "visit_id": "BL", "reason": ""}))
        }
        ("POST", x) if x.ends_with("/correct") => Some(json!({"reason": ""})),
        // Without a multipart Content-Type, STOW-RS answers 415 once authorization has passed.
        ("POST", x) if x.ends_with("/scans") || x.ends_with("/documents") || x.starts_with("/dicomweb") => {
            return (format!("{p}{q}"), None, Some(b"not dicom".to_vec()));
        }
        ("POST", _) => Some(invalid),
        _ => None,
    };
    (format!("{p}{q}"), body, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_matrix_covers_every_route_and_role() {
    let w = world(Backend::SqliteLocal).await;
    // A read task of `reader` and an open adjudication of `adjudicator` in the trial.
    let reads = crate::reads::read_fixture(&w).await;
    let mut routes = corelab_web::api::route_list();
    routes.extend(corelab_web::dicomweb::route_list());
    let anonymous = crate::support::client();
    let mut failures = Vec::new();
    for (method, path) in &routes {
        for role in ROLES.iter().copied().chain(["anonymous"]) {
            let Some((want_in, want_out)) = matrix_entry(method, path, if role == "anonymous" { "tm" } else { role })
            else {
                failures.push(format!("no matrix entry for {method} {path}"));
                break;
            };
            for inside in [true, false] {
                let want = if role == "anonymous" {
                    if path.ends_with("/auth/login") { E::Ok } else { E::Unauthenticated }
                } else if inside {
                    want_in
                } else {
                    want_out
                };
                // Logging out would end the role's session for the rest of the matrix.
                let fresh;
                let c = if path.ends_with("/auth/logout") && role != "anonymous" && role != "admin" {
                    fresh = World::login(&w.t, role).await;
                    &fresh
                } else if role == "anonymous" {
                    &anonymous
                } else if path.ends_with("/auth/logout") {
                    fresh = {
                        let c = crate::support::client();
                        c.post(w.url("/api/v1/auth/login"))
                            .json(&json!({"username": "admin", "password": crate::support::ADMIN_PASSWORD}))
                            .send()
                            .await
                            .unwrap();
                        c
                    };
                    &fresh
                } else {
                    w.c(role)
                };
                let (url, json_body, raw) = concrete(&w, &reads, method, path, inside);
                let mut req = if *method == "GET" { c.get(w.url(&url)) } else { c.post(w.url(&url)) };
                if let Some(b) = json_body {
                    req = req.json(&b);
                }
                if let Some(b) = raw {
                    req = req.body(b);
                }
                let r = req.send().await.unwrap();
                let status = r.status().as_u16();
                if classify(status) != want {
                    let text = r.text().await.unwrap_or_default();
                    failures.push(format!(
                        "{method} {path} as {role} ({}): got {status}, expected {want:?}: {text}",
                        if inside { "in scope" } else { "out of scope" }
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    // Nothing the matrix sent changed a subject.
    let s: Value =
        check(w.c("tm").get(w.url(&format!("/api/v1/subjects/{}", w.subject_a))).send().await.unwrap(), 200).await;
    assert_eq!(s["status"], "enrolled");
    w.t.stop().await;
}

/// The audit records (action, object type) added since `after`.
async fn new_audit(w: &World, after: i64) -> Vec<(String, String)> {
    let mut tx = w.t.app.db().read().await.unwrap();
    let recs = tx
        .list_audit(&corelab_store::audit::AuditFilter { after_seq: Some(after), limit: 1000, ..Default::default() })
        .await
        .unwrap();
    recs.into_iter().map(|r| (r.action, r.object_type)).collect()
}

async fn last_seq(w: &World) -> i64 {
    let mut tx = w.t.app.db().read().await.unwrap();
    tx.last_audit_seq().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutating_route_writes_exactly_its_audit_records() {
    for backend in backends() {
        let w = world(backend).await;
        let t = w.trial;
        let a = w.subject_a;
        let pair = |a: &str, o: &str| (a.to_string(), o.to_string());
        let mut covered: HashSet<String> = HashSet::new();
        // (method, route pattern, client, url, json body, raw body, expected records)
        let tm = w.c("tm").clone();
        let admin = w.c("admin").clone();
        let site_a = w.c("site_a").clone();
        let qc = w.c("qc").clone();
        let fresh = World::login(&w.t, "monitor").await;
        let study = crate::stow::study_uid();
        // Readers rd1, rd2 and adjudicator adj1 of their own (the walk revokes `reader`'s role).
        let rw = crate::reads::walk_people(&w).await;
        let amended = crate::world::charter_text("oncology-ct-recist.toml").replace("version = \"1.0\"", "version = \"1.1\"").replace(
            "[subjects]",
            "[[sites]]\nid = \"301\"\nname = \"Karolinska\"\ncountry = \"SE\"\nae_titles = [\"KS_CT\"]\n\n[subjects]",
        );
        type Step = (
            &'static str,
            &'static str,
            reqwest::Client,
            String,
            Option<Value>,
            Option<Vec<u8>>,
            Vec<(String, String)>,
        );
        let steps: Vec<Step> = vec![
            (
                "POST",
                "/auth/login",
                crate::support::client(),
                "/api/v1/auth/login".into(),
                Some(json!({"username": "sponsor", "password": PASSWORD})),
                None,
                vec![pair("login", "session")],
            ),
            (
                "POST",
                "/auth/logout",
                fresh.clone(),
                "/api/v1/auth/logout".into(),
                None,
                None,
                vec![pair("logout", "session")],
            ),
            (
                "POST",
                "/documents",
                admin.clone(),
                "/api/v1/documents?name=sop.pdf".into(),
                None,
                Some(b"%PDF-1.4".to_vec()),
                vec![pair("create", "document")],
            ),
            (
                "POST",
                "/users",
                admin.clone(),
                "/api/v1/users".into(),
                Some(json!({"username": "newbie", "display_name": "New Bie"})),
                None,
                vec![pair("create", "user")],
            ),
            (
                "POST",
                "/users/{username}/disable",
                admin.clone(),
                "/api/v1/users/newbie/disable".into(),
                Some(json!({"reason": "left the core lab"})),
                None,
                vec![pair("disable", "user")],
            ),
            (
                "POST",
                "/users/{username}/enable",
                admin.clone(),
                "/api/v1/users/newbie/enable".into(),
                Some(json!({"reason": "came back"})),
                None,
                vec![pair("enable", "user")],
            ),
            (
                "POST",
                "/users/{username}/reset-password",
                admin.clone(),
                "/api/v1/users/newbie/reset-password".into(),
                Some(json!({"reason": "forgotten"})),
                None,
                vec![pair("reset_password", "user")],
            ),
            (
                "POST",
                "/trials",
                admin.clone(),
                "/api/v1/trials".into(),
                Some(json!({"charter": crate::world::charter_text("neurology-ms-mri.toml")})),
                None,
                {
                    let mut v = vec![pair("create", "trial")];
                    v.extend(std::iter::repeat_n(pair("create", "site"), 3));
                    v
                },
            ),
            (
                "POST",
                "/trials/{trial}/charter",
                tm.clone(),
                format!("/api/v1/trials/{t}/charter"),
                Some(json!({"charter": amended, "reason": "new site in Sweden"})),
                None,
                vec![pair("amend", "trial"), pair("create", "site")],
            ),
            (
                "POST",
                "/trials/{trial}/grants",
                tm.clone(),
                format!("/api/v1/trials/{t}/grants"),
                Some(json!({"user_id": w.user_ids["reader2"], "role": "qc_reviewer"})),
                None,
                vec![pair("create", "grant")],
            ),
            (
                "POST",
                "/trials/{trial}/grants/{grant}/revoke",
                tm.clone(),
                format!("/api/v1/trials/{t}/grants/{}/revoke", w.reader_grant),
                Some(json!({"reason": "reader left"})),
                None,
                vec![pair("revoke", "grant")],
            ),
            (
                "POST",
                "/tokens",
                site_a.clone(),
                "/api/v1/tokens".into(),
                Some(json!({"name": "gateway", "trial_id": t, "role": "site_user", "site_id": "101"})),
                None,
                vec![pair("create", "api_token")],
            ),
            (
                "POST",
                "/dicomweb/studies",
                site_a.clone(),
                format!("/dicomweb/studies?trial={t}&site=101"),
                None,
                // Dated in week 16's window, so these images stay out of the baseline QC'd below.
                Some(crate::stow::dicom_parts(&[&crate::stow::instance(
                    "101-001",
                    "20270121",
                    &crate::stow::study_uid(),
                    16,
                    16,
                )])),
                vec![pair("create", "instance")],
            ),
            (
                "POST",
                "/dicomweb/studies/{study}",
                site_a.clone(),
                format!("/dicomweb/studies/{study}?trial={t}&site=101"),
                None,
                Some(crate::stow::dicom_parts(&[
                    &crate::stow::instance("101-001", "20270121", &study, 16, 16),
                    &crate::stow::instance("101-001", "20270121", &study, 16, 16),
                ])),
                vec![pair("create", "instance"), pair("create", "instance")],
            ),
            (
                "POST",
                "/trials/{trial}/sites/{site}/qualification/scans",
                site_a.clone(),
                format!("/api/v1/trials/{t}/sites/101/qualification/scans"),
                None,
                Some(ct_instance("PHANTOM", "2.5")),
                vec![pair("create", "qualification_scan")],
            ),
            (
                "POST",
                "/trials/{trial}/sites/{site}/qualification/decision",
                qc.clone(),
                format!("/api/v1/trials/{t}/sites/301/qualification/decision"),
                Some(json!({"approve": true, "password": PASSWORD})),
                None,
                vec![],
            ),
            (
                "POST",
                "/trials/{trial}/training",
                site_a.clone(),
                format!("/api/v1/trials/{t}/training"),
                Some(json!({"topic": "imaging charter v1.1"})),
                None,
                vec![pair("create", "training_record")],
            ),
            (
                "POST",
                "/trials/{trial}/subjects",
                site_a.clone(),
                format!("/api/v1/trials/{t}/subjects"),
                Some(json!({"site_id": "101", "subject_id": "101-002", "anchor_date": "2026-10-05"})),
                None,
                vec![pair("create", "subject")],
            ),
            (
                "POST",
                "/subjects/{subject}/queries",
                qc.clone(),
                format!("/api/v1/subjects/{a}/queries"),
                Some(
                    json!({"visit_id": "BL", "title": "Contrast timing", "body": "Please confirm the contrast timing."}),
                ),
                None,
                vec![pair("create", "query"), pair("create", "query")],
            ),
            (
                "POST",
                "/queries/{query}/messages",
                site_a.clone(),
                format!("/api/v1/queries/{}/messages", w.query),
                Some(json!({"body": "Confirmed on 2026-09-20."})),
                None,
                vec![pair("create", "query"), pair("update", "query")],
            ),
            (
                "POST",
                "/queries/{query}/close",
                qc.clone(),
                format!("/api/v1/queries/{}/close", w.query),
                Some(json!({"reason": "answered"})),
                None,
                vec![pair("create", "query"), pair("update", "query")],
            ),
            (
                "POST",
                "/queries/{query}/reopen",
                qc.clone(),
                format!("/api/v1/queries/{}/reopen", w.query),
                Some(json!({"reason": "date inconsistent"})),
                None,
                vec![pair("create", "query"), pair("update", "query")],
            ),
            (
                "POST",
                "/subjects/{subject}/visits/{visit}/qc",
                qc.clone(),
                format!("/api/v1/subjects/{a}/visits/BL/qc"),
                Some(json!({"outcome": "accept", "password": PASSWORD})),
                None,
                vec![pair("review", "visit_qc"), pair("sign", "qc_review")],
            ),
            (
                "POST",
                "/inbox/{item}/assign",
                tm.clone(),
                String::new(),
                Some(
                    json!({"subject_id": a, "visit_id": "W8", "reason": "site confirmed by phone: MRN belongs to 101-001"}),
                ),
                None,
                vec![pair("create", "instance"), pair("assign", "inbox_item")],
            ),
            (
                "POST",
                "/inbox/{item}/discard",
                tm.clone(),
                String::new(),
                Some(json!({"reason": "sent for the wrong trial"})),
                None,
                vec![pair("discard", "inbox_item")],
            ),
            (
                "POST",
                "/trials/{trial}/reader-profiles",
                tm.clone(),
                format!("/api/v1/trials/{t}/reader-profiles"),
                Some(
                    json!({"user_id": rw.rd1.0, "therapeutic_areas": ["oncology"], "criteria": ["RECIST1.1"], "training_valid_until": "2030-12-31"}),
                ),
                None,
                vec![pair("create", "reader_profile")],
            ),
            (
                "POST",
                "/read-tasks/{task}/draft",
                rw.rd1.1.clone(),
                String::new(),
                Some(json!({"assessment": crate::reads::baseline(30.4, 20.6)})),
                None,
                vec![pair("save_draft", "read")],
            ),
            // The engine's answer before signing: nothing stored, nothing audited.
            (
                "POST",
                "/read-tasks/{task}/evaluate",
                rw.rd1.1.clone(),
                String::new(),
                Some(json!({"assessment": crate::reads::baseline(30.4, 20.6)})),
                None,
                vec![],
            ),
            (
                "POST",
                "/read-tasks/{task}/submit",
                rw.rd1.1.clone(),
                String::new(),
                Some(json!({"username": "rd1", "password": PASSWORD})),
                None,
                vec![pair("submit", "read"), pair("sign", "read")],
            ),
            (
                "POST",
                "/read-tasks/{task}/correct",
                rw.rd1.1.clone(),
                String::new(),
                Some(
                    json!({"assessment": crate::reads::baseline(30.4, 20.8), "reason": "T2 remeasured", "password": PASSWORD}),
                ),
                None,
                vec![pair("correct", "read"), pair("sign", "read")],
            ),
            (
                "GET",
                "/read-tasks/{task}/sr",
                rw.rd1.1.clone(),
                String::new(),
                None,
                None,
                vec![pair("export", "read_sr")],
            ),
            (
                "POST",
                "/adjudications/{adjudication}/decide",
                rw.adj1.1.clone(),
                String::new(),
                Some(
                    json!({"chosen": "reader_2", "rationale": "the TP2 growth is within measurement variability", "username": "adj1", "password": PASSWORD}),
                ),
                None,
                vec![pair("decide", "adjudication"), pair("sign", "adjudication"), pair("accept", "read_case")],
            ),
            (
                "POST",
                "/subjects/{subject}/sign",
                site_a.clone(),
                format!("/api/v1/subjects/{a}/sign"),
                Some(json!({"meaning": "enrollment confirmed", "username": "site_a", "password": PASSWORD})),
                None,
                vec![pair("sign", "subject")],
            ),
            (
                "POST",
                "/subjects/{subject}/correct",
                site_a.clone(),
                format!("/api/v1/subjects/{a}/correct"),
                Some(json!({"anchor_date": "2026-10-03", "reason": "transcription error"})),
                None,
                vec![pair("update", "subject")],
            ),
            (
                "POST",
                "/subjects/{subject}/withdraw",
                site_a.clone(),
                format!("/api/v1/subjects/{a}/withdraw"),
                Some(json!({"date": "2026-11-20", "reason": "consent withdrawn"})),
                None,
                vec![pair("withdraw", "subject")],
            ),
            (
                "GET",
                "/audit/export",
                tm.clone(),
                format!("/api/v1/audit/export?trial_id={t}&format=csv"),
                None,
                None,
                vec![pair("export", "audit_log")],
            ),
            (
                "POST",
                "/trials/{trial}/locks",
                tm.clone(),
                format!("/api/v1/trials/{t}/locks"),
                Some(
                    json!({"scope": "visit", "subject_id": w.subject_b, "visit_id": "W16", "reason": "interim analysis", "username": "tm", "password": PASSWORD}),
                ),
                None,
                vec![pair("lock", "data_lock"), pair("sign", "data_lock")],
            ),
            (
                "POST",
                "/locks/{lock}/unlock",
                tm.clone(),
                String::new(),
                Some(json!({"reason": "query on the week 16 scan", "username": "tm", "password": PASSWORD})),
                None,
                vec![pair("unlock", "data_lock"), pair("sign", "data_unlock")],
            ),
            ("POST", "/auth/password", fresh.clone(), "/api/v1/auth/password".into(), None, None, vec![]),
            ("POST", "/gateway/heartbeat", site_a.clone(), String::new(), None, None, vec![]),
            (
                "POST",
                "/tokens/{token}/revoke",
                site_a.clone(),
                String::new(),
                None,
                None,
                vec![pair("revoke", "api_token")],
            ),
        ];
        let mut token_id = String::new();
        let mut lock_id = String::new();
        let mut read_task = String::new();
        for (method, pattern, c, url, body, raw, expected) in steps {
            covered.insert(format!("{method} {pattern}"));
            // Steps whose inputs come from earlier steps.
            let (url, body, expected) = match pattern {
                "/tokens/{token}/revoke" => (format!("/api/v1/tokens/{token_id}/revoke"), None, expected),
                "/locks/{lock}/unlock" => (format!("/api/v1/locks/{lock_id}/unlock"), body, expected),
                "/inbox/{item}/assign" | "/inbox/{item}/discard" => {
                    let item = crate::world::unmatched_instance(&w.t, t, "101").await;
                    let verb = pattern.rsplit('/').next().unwrap();
                    (format!("/api/v1/inbox/{item}/{verb}"), body, expected)
                }
                "/read-tasks/{task}/draft" => {
                    // Subject 102-001's baseline and first follow-up pass QC: rd1 and rd2 get tasks.
                    read_task = rw.tasks(&w).await;
                    (format!("/api/v1/read-tasks/{read_task}/draft"), body, expected)
                }
                "/read-tasks/{task}/evaluate" => (format!("/api/v1/read-tasks/{read_task}/evaluate"), body, expected),
                "/read-tasks/{task}/submit" => (format!("/api/v1/read-tasks/{read_task}/submit"), body, expected),
                "/read-tasks/{task}/correct" => (format!("/api/v1/read-tasks/{read_task}/correct"), body, expected),
                "/read-tasks/{task}/sr" => (format!("/api/v1/read-tasks/{read_task}/sr"), body, expected),
                "/adjudications/{adjudication}/decide" => {
                    // rd2 reads the baseline; both read the follow-up and disagree on progression.
                    let a = rw.disagree(&w).await;
                    (format!("/api/v1/adjudications/{a}/decide"), body, expected)
                }
                "/gateway/heartbeat" => {
                    // A gateway's first heartbeat registers it (audited); later ones only update it.
                    let body = json!({"name": "site 101 gateway", "trial_id": t, "role": "site_user", "site_id": "101", "expires_in_days": 30});
                    let tok = check(c.post(w.url("/api/v1/tokens")).json(&body).send().await.unwrap(), 201).await;
                    let secret = tok["secret"].as_str().unwrap().to_string();
                    let beat = json!({"version": "0.1.0", "queue_depth": 3, "waiting": 1, "failed": 0, "last_success": null, "last_error": null});
                    for expected in [vec![pair("create", "gateway")], vec![]] {
                        let before = last_seq(&w).await;
                        let r = crate::support::client()
                            .post(w.url("/api/v1/gateway/heartbeat"))
                            .bearer_auth(&secret)
                            .json(&beat)
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
                        assert_eq!(new_audit(&w, before).await, expected, "{backend:?}");
                    }
                    continue;
                }
                "/auth/password" => {
                    let c2 = World::login(&w.t, "sponsor").await;
                    let before = last_seq(&w).await;
                    let r = c2
                        .post(w.url("/api/v1/auth/password"))
                        .json(&json!({"current_password": PASSWORD, "new_password": "Brand-New-Pass-88"}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 204);
                    assert_eq!(new_audit(&w, before).await, vec![pair("change_password", "user")], "{backend:?}");
                    let _ = c;
                    continue;
                }
                "/subjects/{subject}/visits/{visit}/qc" => {
                    // Images for the baseline first: ingested through the use case, checked by the
                    // background job, then waiting for QC1.
                    let dir = tempfile::tempdir().unwrap();
                    let files = crate::qc_flow::ct_series(
                        dir.path(),
                        &crate::qc_flow::SeriesSpec {
                            subject: "101-001",
                            time_point: "BL",
                            study_date: "20260920",
                            study_uid: "1.2.826.0.1.3680043.8.498.8101",
                            series_number: 2,
                            slices: 6,
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
                        w.t.app
                            .ingest(&setup, target.clone(), std::io::BufReader::new(std::fs::File::open(f).unwrap()))
                            .await
                            .unwrap();
                    }
                    let mut v = Value::Null;
                    for _ in 0..100 {
                        v = check(
                            w.c("qc").get(w.url(&format!("/api/v1/subjects/{a}/visits/BL"))).send().await.unwrap(),
                            200,
                        )
                        .await;
                        if v["state"] == "awaiting_qc1" {
                            break;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                    assert_eq!(v["state"], "awaiting_qc1", "{:#}", v["evaluations"]);
                    (url, body, expected)
                }
                "/trials/{trial}/sites/{site}/qualification/decision" => {
                    // Site 301 (added by the amendment) uploads first; then QC decides.
                    check(
                        w.c("tm")
                            .post(w.url(&format!("/api/v1/trials/{t}/sites/301/qualification/scans")))
                            .body(ct_instance("PHANTOM", "2.5"))
                            .send()
                            .await
                            .unwrap(),
                        201,
                    )
                    .await;
                    (url, body, vec![pair("qualify", "site"), pair("sign", "site_qualification")])
                }
                _ => (url, body, expected),
            };
            let before = last_seq(&w).await;
            let mut req = if method == "GET" { c.get(w.url(&url)) } else { c.post(w.url(&url)) };
            if let Some(b) = body {
                req = req.json(&b);
            }
            if let Some(b) = raw {
                req = req.body(b);
            }
            if pattern.starts_with("/dicomweb") {
                req = req.header("content-type", crate::stow::MULTIPART);
            }
            let r = req.send().await.unwrap();
            assert!(r.status().is_success(), "{method} {url}: {} {}", r.status(), r.text().await.unwrap());
            if pattern == "/tokens" {
                token_id = r.json::<Value>().await.unwrap()["token"]["id"].as_str().unwrap().to_string();
            } else if pattern == "/trials/{trial}/locks" {
                lock_id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
            }
            assert_eq!(new_audit(&w, before).await, expected, "{backend:?} {method} {url}");
            if pattern == "/inbox/{item}/assign" {
                // The filed instance is checked by a background job: let it finish so its records
                // do not fall into the next step's window.
                for _ in 0..100 {
                    let v = check(
                        w.c("tm").get(w.url(&format!("/api/v1/subjects/{a}/visits/W8"))).send().await.unwrap(),
                        200,
                    )
                    .await;
                    if !v["evaluations"].as_array().unwrap().is_empty() {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
        // A denial is audited too.
        let before = last_seq(&w).await;
        let r = w
            .c("adjudicator")
            .post(w.url(&format!("/api/v1/trials/{t}/grants")))
            .json(&json!({"user_id": Uuid::nil(), "role": "monitor"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert_eq!(new_audit(&w, before).await, vec![pair("permission_denied", "grant")]);
        // Every mutating route of the API and of DICOMweb was walked.
        for (method, path) in corelab_web::api::route_list().into_iter().chain(corelab_web::dicomweb::route_list()) {
            if method == "POST" {
                let key = format!("POST {}", path.trim_start_matches("/api/v1"));
                assert!(covered.contains(&key), "mutating route {key} is not walked by this test");
            }
        }
        let report = w.t.app.db().verify_audit_chain().await.unwrap();
        assert!(report.first_bad.is_none(), "{backend:?}: {report:?}");
        w.t.stop().await;
    }
}

#[tokio::test]
async fn audit_verify_names_a_record_edited_directly_in_the_database() {
    for backend in backends() {
        let w = world(backend).await;
        let env_vars = w.t.env.process_env();
        let verify = || {
            Command::new(corelab_bin())
                .args(["audit", "verify"])
                .envs(env_vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .output()
                .unwrap()
        };
        let out = verify();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
        assert!(String::from_utf8_lossy(&out.stdout).contains("audit trail intact"));
        // Someone with database access rewrites who enrolled subject 101-001.
        let mut tx = w.t.app.db().begin().await.unwrap();
        let seq: i64 = match &mut tx {
            corelab_store::Tx::Sqlite(c) => {
                sqlx::query("DROP TRIGGER audit_log_no_update").execute(&mut **c).await.unwrap();
                let (seq,): (i64,) = sqlx::query_as("SELECT seq FROM audit_log WHERE object_type = 'subject' AND action = 'create' ORDER BY seq LIMIT 1")
                    .fetch_one(&mut **c)
                    .await
                    .unwrap();
                sqlx::query("UPDATE audit_log SET actor_name = 'someone_else' WHERE seq = $1")
                    .bind(seq)
                    .execute(&mut **c)
                    .await
                    .unwrap();
                seq
            }
            corelab_store::Tx::Pg(c) => {
                sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update")
                    .execute(&mut **c)
                    .await
                    .unwrap();
                let (seq,): (i64,) = sqlx::query_as("SELECT seq FROM audit_log WHERE object_type = 'subject' AND action = 'create' ORDER BY seq LIMIT 1")
                    .fetch_one(&mut **c)
                    .await
                    .unwrap();
                sqlx::query("UPDATE audit_log SET actor_name = 'someone_else' WHERE seq = $1")
                    .bind(seq)
                    .execute(&mut **c)
                    .await
                    .unwrap();
                sqlx::query("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update")
                    .execute(&mut **c)
                    .await
                    .unwrap();
                seq
            }
        };
        tx.commit().await.unwrap();
        let out = verify();
        assert_eq!(out.status.code(), Some(1), "{backend:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(&format!("record #{seq} ")), "{backend:?}: {stdout}");
        assert!(stdout.contains("altered"), "{stdout}");
        w.t.stop().await;
    }
}

#[tokio::test]
async fn e_signatures_need_the_password_and_show_when_the_record_changed() {
    let w = world(Backend::SqliteLocal).await;
    let a = w.subject_a;
    let c = World::login(&w.t, "site_a").await;
    let sign = |body: Value| c.post(w.url(&format!("/api/v1/subjects/{a}/sign"))).json(&body).send();
    // Wrong password: refused, nothing signed.
    let r = sign(json!({"meaning": "enrollment confirmed", "username": "site_a", "password": "not-it"})).await.unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("password is wrong"));
    // First signing of a session needs the username too.
    let r = sign(json!({"meaning": "enrollment confirmed", "password": PASSWORD})).await.unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("username and your password"));
    let v = check(
        sign(json!({"meaning": "enrollment confirmed", "username": "site_a", "password": PASSWORD})).await.unwrap(),
        200,
    )
    .await;
    let s = &v["signatures"][0];
    assert_eq!(s["signer_name"], "Sam Sitea");
    assert_eq!(s["meaning"], "enrollment confirmed");
    assert_eq!(s["valid"], true);
    assert!(s["manifestation"].as_str().unwrap().starts_with("signed by Sam Sitea on "));
    // Later in the same session the password alone suffices.
    check(sign(json!({"meaning": "eligibility reviewed", "password": PASSWORD})).await.unwrap(), 200).await;
    // The record changes: both signatures now show as invalidated, and say why.
    let v = check(
        c.post(w.url(&format!("/api/v1/subjects/{a}/correct")))
            .json(&json!({"anchor_date": "2026-10-04", "reason": "randomization date entered wrongly"}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    for s in v["signatures"].as_array().unwrap() {
        assert_eq!(s["valid"], false);
        assert!(s["manifestation"].as_str().unwrap().ends_with("(invalidated: the record changed after signing)"));
    }
    // A token cannot sign.
    let tok = check(
        c.post(w.url("/api/v1/tokens"))
            .json(&json!({"name": "script", "trial_id": w.trial, "role": "site_user", "site_id": "101"}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let secret = tok["secret"].as_str().unwrap();
    let r = crate::support::client()
        .post(w.url(&format!("/api/v1/subjects/{a}/sign")))
        .bearer_auth(secret)
        .json(&json!({"meaning": "x", "username": "site_a", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    w.t.stop().await;
}

#[tokio::test]
async fn api_tokens_are_scoped_revocable_and_die_with_their_role() {
    let w = world(Backend::SqliteLocal).await;
    let a = w.c("site_a");
    let t = w.trial;
    // Only roles one holds.
    let r = a
        .post(w.url("/api/v1/tokens"))
        .json(&json!({"name": "x", "trial_id": t, "role": "site_user", "site_id": "102"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let tok = check(
        a.post(w.url("/api/v1/tokens")).json(&json!({"name": "site 101 gateway", "trial_id": t, "role": "site_user", "site_id": "101", "expires_in_days": 30})).send().await.unwrap(),
        201,
    )
    .await;
    let secret = tok["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("clt_"));
    // Hashed at rest: the secret is nowhere in the database.
    let mut tx = w.t.app.db().read().await.unwrap();
    let stored = tx.user_tokens(w.user_ids["site_a"]).await.unwrap();
    assert!(stored.iter().all(|t| t.token_hash != secret && !t.token_hash.contains(&secret[4..])));
    drop(tx);
    let bearer = crate::support::client();
    let get = |path: String| bearer.get(w.url(&path)).bearer_auth(&secret).send();
    assert_eq!(get(format!("/api/v1/trials/{t}/subjects")).await.unwrap().status(), 200);
    assert_eq!(get(format!("/api/v1/subjects/{}", w.subject_b)).await.unwrap().status(), 404);
    assert_eq!(get(format!("/api/v1/trials/{}", w.other_trial)).await.unwrap().status(), 404);
    // Expiry.
    w.t.app.clock().advance(chrono::Duration::days(31));
    assert_eq!(get(format!("/api/v1/trials/{t}")).await.unwrap().status(), 401);
    w.t.app.clock().advance(chrono::Duration::days(-31));
    // Revoking the role kills the token at once.
    let grants: Value =
        check(w.c("tm").get(w.url(&format!("/api/v1/trials/{t}/grants"))).send().await.unwrap(), 200).await;
    let gid = grants.as_array().unwrap().iter().find(|g| g["user_id"] == json!(w.user_ids["site_a"])).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    check(
        w.c("tm")
            .post(w.url(&format!("/api/v1/trials/{t}/grants/{gid}/revoke")))
            .json(&json!({"reason": "left the site"}))
            .send()
            .await
            .unwrap(),
        204,
    )
    .await;
    let r = get(format!("/api/v1/trials/{t}")).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("revoked"));
    w.t.stop().await;
}

#[tokio::test]
async fn readers_and_adjudicators_can_never_be_site_staff_in_the_same_trial() {
    let w = world(Backend::SqliteLocal).await;
    let t = w.trial;
    let tm = w.c("tm");
    let r = tm
        .post(w.url(&format!("/api/v1/trials/{t}/grants")))
        .json(&json!({"user_id": w.user_ids["reader"], "role": "site_user", "site_id": "101"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("cannot also be site staff"));
    let r = tm
        .post(w.url(&format!("/api/v1/trials/{t}/grants")))
        .json(&json!({"user_id": w.user_ids["site_a"], "role": "adjudicator"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    // In another trial the same person may hold a site role.
    let r = w
        .c("admin")
        .post(w.url(&format!("/api/v1/trials/{}/grants", w.other_trial)))
        .json(&json!({"user_id": w.user_ids["reader"], "role": "site_user", "site_id": "GB02"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    w.t.stop().await;
}

#[tokio::test]
async fn audit_browsing_filters_and_exports_csv_and_json() {
    let w = world(Backend::SqliteLocal).await;
    let t = w.trial;
    let tm = w.c("tm");
    let recs: Value =
        check(tm.get(w.url(&format!("/api/v1/audit?trial_id={t}&object_type=subject"))).send().await.unwrap(), 200)
            .await;
    let recs = recs.as_array().unwrap();
    assert_eq!(recs.len(), 2, "two enrollments");
    assert!(recs.iter().all(|r| r["object_type"] == "subject" && r["trial_id"] == json!(t)));
    assert_eq!(recs[0]["actor_name"], "site_a");
    assert_eq!(recs[0]["actor_role"], "site_user");
    let csv = tm.get(w.url(&format!("/api/v1/audit/export?trial_id={t}&format=csv"))).send().await.unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("seq,id,at,actor_id,actor_name,actor_role,action,object_type,object_id"));
    assert!(csv.lines().count() > 10);
    assert!(!csv.contains(&w.other_trial.to_string()), "another trial's records in the export");
    let json_export: Value =
        check(tm.get(w.url(&format!("/api/v1/audit/export?trial_id={t}&format=json"))).send().await.unwrap(), 200)
            .await;
    assert!(json_export.as_array().unwrap().iter().all(|r| r["trial_id"] == json!(t)));
    // The exports are in the trail.
    let exports: Value =
        check(tm.get(w.url(&format!("/api/v1/audit?trial_id={t}&object_type=audit_log"))).send().await.unwrap(), 200)
            .await;
    assert_eq!(exports.as_array().unwrap().iter().filter(|r| r["action"] == "export").count(), 2);
    // A monitor of this trial may browse; asking without a trial is refused with a hint.
    let r = w.c("monitor").get(w.url("/api/v1/audit")).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("give the trial"));
    w.t.stop().await;
}
