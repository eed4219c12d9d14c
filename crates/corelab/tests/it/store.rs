//! The storage layer on every backend: migrations, the append-only audit trail, the job queue.

use std::collections::HashSet;

use chrono::{Duration, Utc};
use corelab_store::jobs::NewJob;
use corelab_store::{Db, DbOptions};

use crate::support::{Env, backends};

async fn fresh_db(env: &Env) -> Db {
    let db = Db::connect(&env.database_url, &DbOptions::default()).await.unwrap();
    db.migrate().await.unwrap();
    db
}

#[tokio::test]
async fn migrations_apply_once_and_report_the_version() {
    for b in backends() {
        let env = Env::new(b).await;
        let db = fresh_db(&env).await;
        let s = db.schema_status().await.unwrap();
        assert!(s.pending.is_empty(), "{b:?}");
        assert_eq!(s.database_version, s.binary_version);
        // Running again is a no-op.
        assert_eq!(db.migrate().await.unwrap(), s);
    }
}

#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused() {
    for b in backends() {
        let env = Env::new(b).await;
        let db = fresh_db(&env).await;
        let mut tx = db.begin().await.unwrap();
        match &mut tx {
            corelab_store::Tx::Sqlite(t) => {
                sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (999999, 'from the future', 1, x'00', 0)")
                    .execute(&mut **t)
                    .await
                    .unwrap();
            }
            corelab_store::Tx::Pg(t) => {
                sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (999999, 'from the future', true, '\\x00', 0)")
                    .execute(&mut **t)
                    .await
                    .unwrap();
            }
        }
        tx.commit().await.unwrap();
        let err = db.migrate().await.unwrap_err().to_string();
        assert!(err.contains("newer than this corelab"), "{b:?}: {err}");
        assert!(err.contains("999999"), "{err}");
    }
}

#[tokio::test]
async fn the_audit_trail_refuses_updates_and_deletes_for_everyone() {
    for b in backends() {
        let env = Env::new(b).await;
        let db = fresh_db(&env).await;
        let mut tx = db.begin().await.unwrap();
        tx.append_audit(corelab_app::audit::system_record(Utc::now(), "create", "thing", "1", vec![])).await.unwrap();
        tx.commit().await.unwrap();
        for sql in ["UPDATE audit_log SET actor_name = 'mallory'", "DELETE FROM audit_log"] {
            let mut tx = db.begin().await.unwrap();
            let res = match &mut tx {
                corelab_store::Tx::Sqlite(t) => sqlx::query(sql).execute(&mut **t).await.map(|_| ()),
                corelab_store::Tx::Pg(t) => sqlx::query(sql).execute(&mut **t).await.map(|_| ()),
            };
            let err = res.unwrap_err().to_string();
            assert!(err.contains("append-only"), "{b:?} {sql}: {err}");
        }
    }
}

#[tokio::test]
async fn a_group_commits_audit_records_chain_in_order_after_a_single_one() {
    for b in backends() {
        let env = Env::new(b).await;
        let db = fresh_db(&env).await;
        let rec = |id: &str| corelab_app::audit::system_record(Utc::now(), "create", "instance", id, vec![]);
        let mut tx = db.begin().await.unwrap();
        tx.append_audit(rec("0")).await.unwrap();
        tx.append_audits(vec![rec("1"), rec("2"), rec("3")]).await.unwrap();
        tx.append_audits(vec![]).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = db.begin().await.unwrap();
        tx.append_audits(vec![rec("4")]).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = db.read().await.unwrap();
        let recs = tx.list_audit(&Default::default()).await.unwrap();
        drop(tx);
        let ids: Vec<&str> = recs.iter().map(|r| r.object_id.as_str()).collect();
        assert_eq!(ids, ["0", "1", "2", "3", "4"], "{b:?}");
        for pair in recs.windows(2) {
            assert_eq!(pair[1].prev_hash, pair[0].hash, "{b:?}: record {} links to its predecessor", pair[1].object_id);
        }
        let report = db.verify_audit_chain().await.unwrap();
        assert_eq!(report.records_checked, 5, "{b:?}");
        assert!(report.first_bad.is_none(), "{b:?}: {:?}", report.first_bad);
    }
}

#[tokio::test]
async fn concurrent_claimers_never_get_the_same_job() {
    for b in backends() {
        let env = Env::new(b).await;
        let db = fresh_db(&env).await;
        let now = Utc::now();
        let mut tx = db.begin().await.unwrap();
        for i in 0..40 {
            let job = NewJob {
                kind: "test".into(),
                payload: serde_json::json!({"n": i}),
                run_at: now - Duration::seconds(1),
                max_attempts: 3,
                dedup_key: None,
            };
            tx.enqueue_job(job, now).await.unwrap();
        }
        tx.commit().await.unwrap();
        // Two pools stand for two processes.
        let other = Db::connect(&env.database_url, &DbOptions::default()).await.unwrap();
        let mut handles = Vec::new();
        for w in 0..4 {
            let db = if w % 2 == 0 { db.clone() } else { other.clone() };
            handles.push(tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(job) = db.claim_job(&format!("w{w}"), Utc::now(), Duration::seconds(60)).await.unwrap() {
                    assert!(db.finish_job(job.id, &format!("w{w}"), Utc::now()).await.unwrap());
                    got.push(job.id);
                }
                got
            }));
        }
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.unwrap());
        }
        let unique: HashSet<_> = all.iter().collect();
        assert_eq!(all.len(), 40, "{b:?}: every job claimed once");
        assert_eq!(unique.len(), 40, "{b:?}: no job claimed twice");
    }
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_dedup_keys_hold() {
    for b in backends() {
        let env = Env::new(b).await;
        let db = fresh_db(&env).await;
        let now = Utc::now();
        let job = |key: &str| NewJob {
            kind: "study-complete".into(),
            payload: serde_json::json!({}),
            run_at: now,
            max_attempts: 2,
            dedup_key: Some(key.into()),
        };
        let mut tx = db.begin().await.unwrap();
        assert!(tx.enqueue_job(job("k1"), now).await.unwrap().is_some());
        assert!(tx.enqueue_job(job("k1"), now).await.unwrap().is_none(), "a live job with the key exists");
        tx.commit().await.unwrap();

        let first = db.claim_job("dead-worker", now, Duration::seconds(30)).await.unwrap().unwrap();
        assert!(db.claim_job("other", now + Duration::seconds(10), Duration::seconds(30)).await.unwrap().is_none());
        // The first worker died; after its lease the job is claimed again.
        let again = db.claim_job("other", now + Duration::seconds(31), Duration::seconds(30)).await.unwrap().unwrap();
        assert_eq!(again.id, first.id);
        assert_eq!(again.attempts, 2);
        assert!(!db.finish_job(first.id, "dead-worker", now).await.unwrap(), "the old lease holder lost the job");
        db.fail_job(again.id, "other", "boom", now, now).await.unwrap();
        // Attempts used up: the job is failed, not retried.
        assert!(db.claim_job("other", now + Duration::seconds(60), Duration::seconds(30)).await.unwrap().is_none());
        let counts = db.job_counts().await.unwrap();
        assert_eq!(counts, vec![("failed".to_string(), 1)]);
    }
}

#[tokio::test]
async fn new_work_queues_behind_a_running_job_with_the_same_key() {
    for b in backends() {
        let env = Env::new(b).await;
        let db = fresh_db(&env).await;
        let now = Utc::now();
        let job = || NewJob {
            kind: "study_complete".into(),
            payload: serde_json::json!({}),
            run_at: now,
            max_attempts: 3,
            dedup_key: Some("study-complete:s1".into()),
        };
        let mut tx = db.begin().await.unwrap();
        assert!(tx.enqueue_job(job(), now).await.unwrap().is_some());
        tx.commit().await.unwrap();
        let running = db.claim_job("w1", now, Duration::seconds(60)).await.unwrap().unwrap();
        // More images arrive while the check runs: a second run is queued behind it.
        let mut tx = db.begin().await.unwrap();
        assert!(tx.enqueue_job(job(), now).await.unwrap().is_some(), "{b:?}");
        // ...but only one queued run per key.
        assert!(tx.enqueue_job(job(), now).await.unwrap().is_none(), "{b:?}");
        tx.commit().await.unwrap();
        assert!(db.finish_job(running.id, "w1", now).await.unwrap());
        let next = db.claim_job("w2", now, Duration::seconds(60)).await.unwrap().unwrap();
        assert_ne!(next.id, running.id);
    }
}
