//! The HTTP service on each backend: health, readiness, login, documents, metrics, DICOM echo.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{ADMIN_PASSWORD, Backend, backends, dcmtk, spawn_app};

#[tokio::test]
async fn ready_and_alive_on_every_backend() {
    for b in backends() {
        let t = spawn_app(b).await;
        let r = t.get("/healthz").await;
        assert_eq!(r.status(), 200);
        let r = t.get("/readyz").await;
        assert_eq!(r.status(), 200, "{b:?}");
        assert_eq!(r.json::<Value>().await.unwrap()["status"], "ready");
        t.stop().await;
    }
}

#[tokio::test]
async fn readyz_says_503_and_why_when_the_blob_store_is_gone() {
    let t = spawn_app(Backend::SqliteLocal).await;
    std::fs::remove_dir_all(t.env.dir.path().join("blobs")).unwrap();
    let r = t.get("/readyz").await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert!(body["reason"].as_str().unwrap().contains("blob store unreachable"), "{body}");
    t.stop().await;
}

#[tokio::test]
async fn documents_round_trip_and_are_audited_on_every_backend() {
    for b in backends() {
        let t = spawn_app(b).await;
        // Anonymous callers are turned away with a hint.
        let r = t.get("/api/v1/documents").await;
        assert_eq!(r.status(), 401);
        t.login_admin().await;
        // A payload bigger than one S3 part would be is still streamed, not buffered whole.
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let r = t
            .client
            .post(t.url("/api/v1/documents"))
            .query(&[("name", "imaging-charter-v1.pdf")])
            .header("content-type", "application/pdf")
            .body(content.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{b:?}");
        let doc: Value = r.json().await.unwrap();
        assert_eq!(doc["sha256"], hex(&Sha256::digest(&content)));
        assert_eq!(doc["size_bytes"], content.len());
        let id = doc["id"].as_str().unwrap();

        let r = t.get(&format!("/api/v1/documents/{id}/content")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/pdf");
        assert_eq!(r.bytes().await.unwrap().as_ref(), content.as_slice());

        let list: Value = t.get("/api/v1/documents").await.json().await.unwrap();
        assert_eq!(list.as_array().unwrap().len(), 1);

        let r = t.get("/api/v1/documents/0190a000-0000-7000-8000-000000000000").await;
        assert_eq!(r.status(), 404);

        // The upload, the login and the admin's creation are in the trail, and the chain holds.
        let mut tx = t.app.db().read().await.unwrap();
        let recs = tx.list_audit(&Default::default()).await.unwrap();
        drop(tx);
        let actions: Vec<(&str, &str)> = recs.iter().map(|r| (r.action.as_str(), r.object_type.as_str())).collect();
        assert_eq!(actions, vec![("create", "user"), ("login", "session"), ("create", "document")], "{b:?}");
        let upload = &recs[2];
        assert_eq!(upload.actor_name, "admin");
        assert_eq!(upload.actor_role, "system_admin");
        assert_eq!(upload.object_id, id);
        let changes: Value = serde_json::from_str(&upload.changes).unwrap();
        assert_eq!(changes[0], json!({"field": "name", "old": null, "new": "imaging-charter-v1.pdf"}));
        let report = t.app.db().verify_audit_chain().await.unwrap();
        assert_eq!(report.records_checked, 3);
        assert!(report.first_bad.is_none());
        t.stop().await;
    }
}

#[tokio::test]
async fn bad_names_are_refused_and_leave_nothing_behind() {
    let t = spawn_app(Backend::SqliteLocal).await;
    t.login_admin().await;
    let r = t
        .client
        .post(t.url("/api/v1/documents"))
        .query(&[("name", "../../etc/passwd")])
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["field"], "name");
    assert!(body["error"]["message"].as_str().unwrap().contains("without slashes"));
    assert!(!t.env.dir.path().join("blobs/documents").exists());
    t.stop().await;
}

#[tokio::test]
async fn failed_logins_lock_the_account_and_are_audited() {
    let t = spawn_app(Backend::SqliteLocal).await;
    for _ in 0..5 {
        let r = t.post_json("/api/v1/auth/login", json!({"username": "admin", "password": "wrong"})).await;
        assert_eq!(r.status(), 401);
        let body: Value = r.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().contains("wrong username or password"));
    }
    // Locked: even the right password is refused now.
    let r = t.post_json("/api/v1/auth/login", json!({"username": "admin", "password": ADMIN_PASSWORD})).await;
    assert_eq!(r.status(), 401);
    // An unknown user gets the same answer.
    let r = t.post_json("/api/v1/auth/login", json!({"username": "nobody", "password": "x"})).await;
    assert_eq!(r.status(), 401);

    let mut tx = t.app.db().read().await.unwrap();
    let recs = tx.list_audit(&Default::default()).await.unwrap();
    let failed = recs.iter().filter(|r| r.action == "login_failed").count();
    assert_eq!(failed, 7);
    let lock = recs.iter().find(|r| r.action == "lock").expect("lock audited");
    assert_eq!(lock.reason.as_deref(), Some("5 failed logins in a row"));
    assert_eq!(recs.last().unwrap().reason.as_deref(), Some("unknown username"));
    drop(tx);

    // After the lock-out period the right password works again.
    t.app.clock().advance(chrono::Duration::minutes(16));
    let r = t.post_json("/api/v1/auth/login", json!({"username": "admin", "password": ADMIN_PASSWORD})).await;
    assert_eq!(r.status(), 200);
    t.stop().await;
}

#[tokio::test]
async fn sessions_end_on_logout_and_after_idle_timeout() {
    let t = spawn_app(Backend::SqliteLocal).await;
    t.login_admin().await;
    assert_eq!(t.get("/api/v1/me").await.status(), 200);
    let set_cookie = {
        let r = t.post_json("/api/v1/auth/login", json!({"username": "admin", "password": ADMIN_PASSWORD})).await;
        r.headers()["set-cookie"].to_str().unwrap().to_string()
    };
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");

    t.app.clock().advance(chrono::Duration::minutes(31));
    let r = t.get("/api/v1/me").await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("log in again"));

    t.login_admin().await;
    assert_eq!(t.client.post(t.url("/api/v1/auth/logout")).send().await.unwrap().status(), 204);
    assert_eq!(t.get("/api/v1/me").await.status(), 401);
    t.stop().await;
}

#[tokio::test]
async fn a_generated_admin_password_must_be_changed_before_anything_else() {
    let env = crate::support::Env::new(Backend::SqliteLocal).await;
    let mut config = env.config();
    config.admin.password = None;
    let app = corelab::server::open_app(&config, corelab_app::Clock::system()).await.unwrap();
    let corelab_app::auth::Bootstrap::Created { generated_password: Some(pw), .. } =
        app.bootstrap_admin(None).await.unwrap()
    else {
        panic!("expected a generated password")
    };
    let running = corelab::server::start(&config, app.clone()).await.unwrap();
    let base = format!("http://{}", running.http_addr);
    let c = crate::support::client();
    let r = c
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": pw}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["must_change_password"], true);
    let r = c.get(format!("{base}/api/v1/documents")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("change your password first"));

    let r = c
        .post(format!("{base}/api/v1/auth/password"))
        .json(&json!({"current_password": pw, "new_password": "short"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("at least 12 characters"));
    let r = c
        .post(format!("{base}/api/v1/auth/password"))
        .json(&json!({"current_password": pw, "new_password": "Another-Good-Pass-7"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(c.get(format!("{base}/api/v1/documents")).send().await.unwrap().status(), 200);
    running.shutdown().await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_not_by_path() {
    let t = spawn_app(Backend::SqliteLocal).await;
    t.login_admin().await;
    for _ in 0..3 {
        t.get("/api/v1/documents/0190a000-0000-7000-8000-00000000000a").await;
    }
    let text = t.get("/metrics").await.text().await.unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("corelab_http_requests_total")
            && l.contains("route=\"/api/v1/documents/{id}\"")
            && l.contains("status=\"404\"")),
        "{text}"
    );
    assert!(text.contains("corelab_http_request_duration_seconds_bucket"), "{text}");
    assert!(!text.contains("0190a000-0000-7000-8000-00000000000a"));
    t.stop().await;
}

#[tokio::test]
async fn dcmtk_echoscu_gets_an_answer() {
    let Some(echoscu) = dcmtk("echoscu") else { return };
    let t = spawn_app(Backend::SqliteLocal).await;
    let port = t.dicom_addr.port().to_string();
    let out = tokio::process::Command::new(&echoscu)
        .args(["-aet", "SITE01", "-aec", "CORELAB", "127.0.0.1", &port])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "echoscu failed: {}", String::from_utf8_lossy(&out.stderr));
    // A wrong called AE title is rejected at association.
    let out = tokio::process::Command::new(&echoscu)
        .args(["-aet", "SITE01", "-aec", "NOTCORELAB", "127.0.0.1", &port])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Called AE Title Not Recognized"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.stop().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
