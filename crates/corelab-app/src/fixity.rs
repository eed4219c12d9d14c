//! Fixity: re-hash every stored blob against the SHA-256 the index recorded for it, and report
//! missing or altered ones. Run by `corelab verify` and by the scheduled `fixity_verify` job; each run
//! is recorded (and audited) so `/metrics` can show the last result on every process.

use corelab_store::StoreError;
use corelab_store::fixity::FixityRunRow;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::audit::{change, system_record};
use crate::{App, AppError};

/// One blob that failed its check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FixityProblem {
    pub blob_key: String,
    /// "missing" or "altered".
    pub problem: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FixityReport {
    pub checked: u64,
    pub bytes: u64,
    pub problems: Vec<FixityProblem>,
}

impl App {
    /// Re-hashes every blob the index refers to (streamed, never whole in memory).
    pub async fn verify_blobs(&self) -> Result<FixityReport, AppError> {
        let started = self.clock().now();
        let mut report = FixityReport { checked: 0, bytes: 0, problems: Vec::new() };
        let mut after = String::new();
        loop {
            let mut tx = self.db().read().await?;
            let page = tx.blob_refs_after(&after, 500).await?;
            drop(tx);
            let Some(last) = page.last() else { break };
            after = last.blob_key.clone();
            for r in page {
                report.checked += 1;
                let mut stream = match self.blobs().get(&r.blob_key).await {
                    Ok(s) => s,
                    Err(StoreError::BlobNotFound(_)) => {
                        report.problems.push(FixityProblem { blob_key: r.blob_key, problem: "missing".into() });
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                let mut h = Sha256::new();
                let mut n = 0u64;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    n += chunk.len() as u64;
                    h.update(&chunk);
                }
                report.bytes += n;
                if hex::encode(h.finalize()) != r.sha256 {
                    report.problems.push(FixityProblem { blob_key: r.blob_key, problem: "altered".into() });
                }
            }
        }
        let finished = self.clock().now();
        let missing = report.problems.iter().filter(|p| p.problem == "missing").count() as i64;
        let altered = report.problems.len() as i64 - missing;
        let row = FixityRunRow {
            id: Uuid::now_v7(),
            started_at: started,
            finished_at: finished,
            checked: report.checked as i64,
            bytes: report.bytes as i64,
            missing,
            altered,
            problems: serde_json::to_string(&report.problems).map_err(AppError::internal)?,
        };
        let mut tx = self.db().begin().await?;
        tx.insert_fixity_run(&row).await?;
        let mut rec = system_record(
            finished,
            "create",
            "fixity_run",
            row.id,
            vec![
                change("checked", Value::Null, row.checked),
                change("missing", Value::Null, missing),
                change("altered", Value::Null, altered),
            ],
        );
        if !report.problems.is_empty() {
            rec.reason = Some(format!("{} blob(s) failed the fixity check", report.problems.len()));
        }
        tx.append_audit(rec).await?;
        tx.commit().await?;
        Ok(report)
    }

    /// The last fixity run, for `/metrics` and status pages.
    pub async fn last_fixity_run(&self) -> Result<Option<Value>, AppError> {
        let mut tx = self.db().read().await?;
        Ok(tx.last_fixity_run().await?.map(|r| {
            json!({
                "finished_at": r.finished_at, "checked": r.checked, "bytes": r.bytes,
                "missing": r.missing, "altered": r.altered,
            })
        }))
    }
}
