//! `corelab serve` as real processes: two side by side on one PostgreSQL + S3, and SIGKILL in the
//! middle of writes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{ADMIN_PASSWORD, Backend, Env, ServeProcess, backends, client, pg_s3_available, wait_ready};

async fn login(c: &reqwest::Client, base: &str) {
    let r = c
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// A document body that carries its own length, so a truncated copy can be recognised.
fn body(i: usize) -> Vec<u8> {
    let len = 50_000 + (i * 7919) % 400_000;
    let mut v = format!("corelab-test-doc {i} {len}\n").into_bytes();
    v.extend((0..len).map(|j| ((i + j) % 253) as u8));
    v
}

fn self_consistent(bytes: &[u8]) -> bool {
    let Some(nl) = bytes.iter().position(|&b| b == b'\n') else { return false };
    let header = String::from_utf8_lossy(&bytes[..nl]).to_string();
    let parts: Vec<&str> = header.split(' ').collect();
    parts.len() == 3 && parts[2].parse::<usize>().is_ok_and(|len| bytes.len() == nl + 1 + len)
}

#[tokio::test]
async fn two_processes_share_one_postgres_and_one_bucket() {
    if !pg_s3_available() {
        return;
    }
    let env = Env::new(Backend::PgS3).await;
    let a = ServeProcess::start(&env.process_env(), env.dir.path());
    let b = ServeProcess::start(&env.process_env(), env.dir.path());
    wait_ready(&a.url("")).await;
    wait_ready(&b.url("")).await;

    let c = client();
    login(&c, &a.url("")).await;
    let content = body(1);
    let r = c
        .post(a.url("/api/v1/documents"))
        .query(&[("name", "site-training.pdf")])
        .body(content.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();

    // The session made on A is valid on B: no process keeps state the other needs.
    let r = c.get(b.url(&format!("/api/v1/documents/{id}/content"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), content.as_slice());
    let list: Value = c.get(b.url("/api/v1/documents")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list[0]["name"], "site-training.pdf");
    // Only one of the two created the first administrator.
    let out = [a.stdout.join("\n"), b.stdout.join("\n")];
    assert_eq!(out.iter().filter(|s| s.contains("created the system administrator")).count(), 1, "{out:?}");
}

#[tokio::test]
async fn sigkill_during_writes_loses_no_acknowledged_write_and_shows_nothing_half_written() {
    for backend in backends() {
        let env = Env::new(backend).await;
        let mut first = ServeProcess::start(&env.process_env(), env.dir.path());
        let base = first.url("");
        wait_ready(&base).await;
        let c = client();
        login(&c, &base).await;

        let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let writer = {
            let c = c.clone();
            let acked = acked.clone();
            let base = base.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let content = body(i);
                    let sha = hex(&Sha256::digest(&content));
                    let res = c
                        .post(format!("{base}/api/v1/documents"))
                        .query(&[("name", format!("doc-{i}.bin"))])
                        .body(content)
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status() == 201 => {
                            let v: Value = match r.json().await {
                                Ok(v) => v,
                                Err(_) => break,
                            };
                            acked.lock().unwrap().push((v["id"].as_str().unwrap().to_string(), sha));
                        }
                        _ => break,
                    }
                }
            })
        };
        // Let writes run, then pull the plug in the middle of one.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        first.kill9();
        writer.await.unwrap();
        let acked = acked.lock().unwrap().clone();
        assert!(acked.len() >= 3, "{backend:?}: too few writes before the kill to mean anything ({})", acked.len());

        let second = ServeProcess::start(&env.process_env(), env.dir.path());
        wait_ready(&second.url("")).await;
        let c = client();
        login(&c, &second.url("")).await;
        for (id, sha) in &acked {
            let r = c.get(second.url(&format!("/api/v1/documents/{id}/content"))).send().await.unwrap();
            assert_eq!(r.status(), 200, "{backend:?}: acknowledged document {id} lost");
            let bytes = r.bytes().await.unwrap();
            assert_eq!(&hex(&Sha256::digest(&bytes)), sha, "{backend:?}: document {id} altered");
        }
        // Every row the restarted server knows points at complete bytes.
        let list: Value = c.get(second.url("/api/v1/documents")).send().await.unwrap().json().await.unwrap();
        for d in list.as_array().unwrap() {
            let r = c
                .get(second.url(&format!("/api/v1/documents/{}/content", d["id"].as_str().unwrap())))
                .send()
                .await
                .unwrap();
            let bytes = r.bytes().await.unwrap();
            assert!(self_consistent(&bytes), "{backend:?}: a stored document is truncated");
        }
        // And no blob file visible under its final name is half-written.
        if backend == Backend::SqliteLocal {
            let dir = env.dir.path().join("blobs/documents");
            for entry in std::fs::read_dir(&dir).unwrap() {
                let bytes = std::fs::read(entry.unwrap().path()).unwrap();
                assert!(self_consistent(&bytes), "a half-written blob is visible");
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
