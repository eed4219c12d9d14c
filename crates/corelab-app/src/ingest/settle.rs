//! Blobs whose rows committed while their flush was still running (see `index.rs` and
//! docs/adr/0005-rows-commit-beside-the-blob-flush.md): settled at start-up, or at once when the
//! flush failed.

use serde_json::Value;

use crate::audit::{change, trial_record};
use crate::{Actor, App, AppError};

/// What start-up found among the marked blobs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// Intact: flushed, their rows kept.
    pub flushed: usize,
    /// Missing or torn: their never-acknowledged rows were withdrawn.
    pub withdrawn: usize,
}

impl App {
    /// Settles every blob marked as committed before its flush finished: an intact one (its size
    /// and SHA-256 as recorded) is flushed and kept; the rows of a missing or torn one are
    /// withdrawn. Run at start-up, before serving.
    pub async fn settle_unflushed_blobs(&self) -> Result<Settled, AppError> {
        let mut tx = self.db().read().await?;
        let marks = tx.unflushed_blobs().await?;
        drop(tx);
        let mut settled = Settled::default();
        let mut intact = Vec::new();
        for mark in marks {
            let (store, key, sha) = (self.blobs().clone(), mark.blob_key.clone(), mark.sha256.clone());
            let size = u64::try_from(mark.size_bytes).unwrap_or(0);
            let held = tokio::task::spawn_blocking(move || store.settle_placed(&key, size, &sha))
                .await
                .map_err(AppError::internal)??;
            if held {
                intact.push(mark.blob_key);
                settled.flushed += 1;
            } else {
                self.withdraw_unflushed(
                    &mark.blob_key,
                    "its image file was missing or incomplete when corelab started again",
                )
                .await?;
                settled.withdrawn += 1;
            }
        }
        if !intact.is_empty() {
            let mut tx = self.db().begin().await?;
            tx.clear_unflushed(&intact).await?;
            tx.commit().await?;
        }
        Ok(settled)
    }

    /// Withdraws, audited, the rows that refer to a marked blob that is not durable, and its mark.
    /// They were never acknowledged: the sender heard of a failure, or nothing, and sends again.
    pub(crate) async fn withdraw_unflushed(&self, blob_key: &str, why: &str) -> Result<(), AppError> {
        let now = self.clock().now();
        let reason = format!("withdrawn: {why}; it was never acknowledged, so the sender is expected to send it again");
        let mut tx = self.db().begin().await?;
        let gone = tx.withdraw_blob_rows(blob_key, now).await?;
        let record = |trial, site: Option<&str>, action, object_type, object_id: String, changes| {
            let mut rec =
                trial_record(&Actor::system(), "system", trial, site, now, action, object_type, object_id, changes);
            rec.reason = Some(reason.clone());
            rec
        };
        let mut audits = Vec::new();
        for i in &gone.instances {
            let changes = vec![
                change("sha256", i.sha256.clone(), Value::Null),
                change("blob_key", i.blob_key.clone(), Value::Null),
            ];
            audits.push(record(i.trial_id, None, "delete", "instance", i.sop_instance_uid.clone(), changes));
        }
        for study in &gone.emptied_studies {
            if let Some(i) = gone.instances.iter().find(|i| i.study_id == *study) {
                audits.push(record(i.trial_id, None, "delete", "study", study.to_string(), vec![]));
            }
        }
        for item in &gone.inbox {
            let changes = vec![change("state", item.state.clone(), "discarded")];
            audits.push(record(
                item.trial_id,
                Some(&item.site_id),
                "update",
                "inbox_item",
                item.id.to_string(),
                changes,
            ));
        }
        tx.append_audits(audits).await?;
        tx.clear_unflushed(&[blob_key.to_string()]).await?;
        tx.commit().await?;
        tracing::warn!(
            key = blob_key,
            instances = gone.instances.len(),
            inbox_items = gone.inbox.len(),
            "withdrew rows whose blob never became durable"
        );
        Ok(())
    }
}
