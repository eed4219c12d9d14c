//! Site gateways' heartbeats (operational health, one row per gateway token).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::StoreError;
use crate::audit::truncate_micros;
use crate::db::{Tx, exec, fetch_all, fetch_optional};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
pub struct GatewayHeartbeatRow {
    pub token_id: Uuid,
    pub trial_id: Uuid,
    pub site_id: String,
    pub name: String,
    pub version: String,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub queue_depth: i64,
    pub waiting: i64,
    pub failed: i64,
    /// As the gateway reported it (RFC 3339).
    pub last_success_at: Option<String>,
    pub last_error: Option<String>,
}

impl Tx {
    pub async fn gateway_heartbeat(&mut self, token_id: Uuid) -> Result<Option<GatewayHeartbeatRow>, StoreError> {
        Ok(fetch_optional!(
            self,
            GatewayHeartbeatRow,
            "SELECT token_id, trial_id, site_id, name, version, first_seen_at, last_seen_at, queue_depth, waiting, failed, last_success_at, last_error \
             FROM gateway_heartbeats WHERE token_id = $1",
            token_id
        )?)
    }

    /// Inserts or replaces the gateway's row (keeping its first sighting).
    pub async fn upsert_gateway_heartbeat(&mut self, r: &GatewayHeartbeatRow) -> Result<(), StoreError> {
        exec!(
            self,
            "INSERT INTO gateway_heartbeats (token_id, trial_id, site_id, name, version, first_seen_at, last_seen_at, \
             queue_depth, waiting, failed, last_success_at, last_error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (token_id) DO UPDATE SET version = excluded.version, last_seen_at = excluded.last_seen_at, \
             queue_depth = excluded.queue_depth, waiting = excluded.waiting, failed = excluded.failed, \
             last_success_at = excluded.last_success_at, last_error = excluded.last_error",
            r.token_id,
            r.trial_id,
            r.site_id.clone(),
            r.name.clone(),
            r.version.clone(),
            truncate_micros(r.first_seen_at),
            truncate_micros(r.last_seen_at),
            r.queue_depth,
            r.waiting,
            r.failed,
            r.last_success_at.clone(),
            r.last_error.clone()
        )?;
        Ok(())
    }

    pub async fn trial_gateway_heartbeats(&mut self, trial_id: Uuid) -> Result<Vec<GatewayHeartbeatRow>, StoreError> {
        Ok(fetch_all!(
            self,
            GatewayHeartbeatRow,
            "SELECT token_id, trial_id, site_id, name, version, first_seen_at, last_seen_at, queue_depth, waiting, failed, last_success_at, last_error \
             FROM gateway_heartbeats WHERE trial_id = $1 ORDER BY site_id, name",
            trial_id
        )?)
    }
}
