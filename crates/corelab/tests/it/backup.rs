//! Backup while serving, restore elsewhere, and fixity checks that name an altered blob.

use std::process::Command;

use sha2::{Digest, Sha256};

use crate::ingest::{corpus, corpus_trial};
use crate::support::{Env, backends, corelab_bin, dcmtk, spawn_app};

fn run(env: &Env, args: &[&str]) -> std::process::Output {
    let envs = env.process_env();
    Command::new(corelab_bin()).args(args).envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_a_blob_whose_bytes_changed() {
    for backend in backends() {
        let t = spawn_app(backend).await;
        corpus_trial(&t).await;
        let out = tokio::task::block_in_place(|| run(&t.env, &["verify"]));
        assert!(out.status.success(), "{backend:?}: {}", String::from_utf8_lossy(&out.stdout));
        // One byte of one stored blob changes behind corelab's back.
        let mut tx = t.app.db().read().await.unwrap();
        let refs = tx.blob_refs_after("", 10).await.unwrap();
        drop(tx);
        let victim = &refs[0];
        let mut bytes = t.app.blobs().get_bytes(&victim.blob_key).await.unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        let staged = t.app.blobs().stage_bytes(&bytes).await.unwrap();
        t.app.blobs().commit(staged, &victim.blob_key).await.unwrap();
        let out = tokio::task::block_in_place(|| run(&t.env, &["verify"]));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{backend:?}: {stdout}");
        assert!(stdout.contains(&format!("ALTERED: {}", victim.blob_key)), "{stdout}");
        assert!(stdout.contains("1 altered"), "{stdout}");
        // The result is on /metrics of any process, read from the database.
        let m = t.get("/metrics").await.text().await.unwrap();
        assert!(m.lines().any(|l| l == "corelab_fixity_blobs_altered 1"), "{m}");
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_a_send_restores_everything_acknowledged_before_it() {
    let Some(storescu) = dcmtk("storescu") else { return };
    let Some((corpus_dir, _)) = corpus(&[
        "--subjects",
        "2",
        "--visits",
        "2",
        "--slices",
        "40",
        "--rows",
        "256",
        "--cols",
        "256",
        "--seed",
        "5",
    ]) else {
        return;
    };
    for backend in backends() {
        let t = spawn_app(backend).await;
        let trial = corpus_trial(&t).await;
        // A send in progress.
        let mut send = tokio::process::Command::new(&storescu)
            .args(["-aet", "SITE01_CT", "-aec", "ACMEONC301", "-nh", "+sd", "+r", "127.0.0.1"])
            .arg(t.dicom_addr.port().to_string())
            .arg(corpus_dir.path())
            .env("TCP_NODELAY", "1")
            .spawn()
            .unwrap();
        // Wait until part of it is acknowledged; that part must survive.
        let mut acknowledged = Vec::new();
        for _ in 0..200 {
            let mut tx = t.app.db().read().await.unwrap();
            acknowledged = tx.trial_instances(trial).await.unwrap();
            drop(tx);
            if acknowledged.len() >= 10 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(acknowledged.len() >= 10, "the send did not get going");
        let dest = tempfile::tempdir().unwrap();
        let backup_dir = dest.path().join("backup");
        let out = tokio::task::block_in_place(|| run(&t.env, &["backup", backup_dir.to_str().unwrap()]));
        assert!(
            out.status.success(),
            "{backend:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let status = send.wait().await.unwrap();
        assert!(status.success());
        // The backup checks out with standard tools.
        let check = Command::new("sha256sum")
            .arg("-c")
            .arg("--quiet")
            .arg("SHA256SUMS")
            .current_dir(&backup_dir)
            .output()
            .unwrap();
        assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
        t.stop().await;

        // Restore into a fresh instance elsewhere.
        let target = Env::new(backend).await;
        let out = tokio::task::block_in_place(|| run(&target, &["restore", backup_dir.to_str().unwrap()]));
        assert!(
            out.status.success(),
            "{backend:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("0 problem(s)"));
        let restored = crate::support::spawn_app_in(target).await;
        for inst in &acknowledged {
            let mut tx = restored.app.db().read().await.unwrap();
            let row = tx.instance_by_uid(trial, &inst.sop_instance_uid).await.unwrap();
            drop(tx);
            let row = row.unwrap_or_else(|| {
                panic!("{backend:?}: acknowledged instance {} missing after restore", inst.sop_instance_uid)
            });
            let bytes = restored.app.blobs().get_bytes(&row.blob_key).await.unwrap();
            let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(sha, inst.sha256);
        }
        // The restored audit trail is intact too.
        assert!(restored.app.db().verify_audit_chain().await.unwrap().first_bad.is_none());
        restored.stop().await;
    }
}
