//! corelab use cases.
//!
//! Invariant: every use case that changes state checks the actor's permission, makes the change
//! and appends its audit record in one database transaction. Nothing here knows about HTTP or
//! DIMSE; adapters call these functions and turn [`AppError`] into their own responses.

pub mod access;
pub mod audit;
pub mod audit_trail;
pub mod auth;
pub mod clock;
pub mod dashboard;
pub mod documents;
pub mod error;
pub mod fixity;
pub mod gateway;
pub mod grants;
pub mod images;
pub mod ingest;
pub mod jobs;
pub mod locks;
pub mod package;
pub mod qc;
pub mod qualification;
pub mod reads;
pub mod reports;
pub mod sdtm;
pub mod signatures;
pub mod stow;
pub mod subjects;
pub mod tokens;
pub mod trials;
pub mod users;

use std::sync::Arc;

use corelab_store::{BlobStore, Db};

pub use auth::{Actor, AuthSettings};
pub use clock::Clock;
pub use error::AppError;

/// Settings the use cases need; the binary fills them from configuration.
#[derive(Debug, Clone)]
pub struct AppSettings {
    pub auth: AuthSettings,
    /// Largest document accepted by `documents::upload`.
    pub max_document_bytes: u64,
    /// A study is judged complete after this many seconds without a new instance.
    pub ingest_quiet_period_seconds: i64,
    /// Open data queries get a reminder message after this many days without one.
    pub query_reminder_days: i64,
    /// How often overdue visits are looked for.
    pub overdue_scan_interval_seconds: i64,
    /// How often every blob is re-hashed (0: never on a schedule).
    pub fixity_interval_hours: i64,
}

impl Default for AppSettings {
    fn default() -> Self {
        Self {
            auth: AuthSettings::default(),
            max_document_bytes: 256 * 1024 * 1024,
            ingest_quiet_period_seconds: ingest::DEFAULT_QUIET_PERIOD_SECONDS,
            query_reminder_days: 7,
            overdue_scan_interval_seconds: 15 * 60,
            fixity_interval_hours: 24,
        }
    }
}

/// Everything a use case needs: the database, the blob store, the clock and settings.
/// Holds no state of its own, so any number of corelab processes can serve side by side.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    blobs: BlobStore,
    clock: Clock,
    settings: AppSettings,
    index: ingest::IndexCell,
}

impl App {
    pub fn new(db: Db, blobs: BlobStore, clock: Clock, settings: AppSettings) -> App {
        App { inner: Arc::new(Inner { db, blobs, clock, settings, index: Default::default() }) }
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.inner.blobs
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    pub fn settings(&self) -> &AppSettings {
        &self.inner.settings
    }

    pub(crate) fn index_cell(&self) -> &ingest::IndexCell {
        &self.inner.index
    }

    /// Readiness: the database answers and the blob store is reachable. The error says which.
    pub async fn readiness(&self) -> Result<(), AppError> {
        self.db().ping().await.map_err(|e| AppError::Unavailable(format!("database unreachable: {e}")))?;
        self.blobs().check().await.map_err(|e| AppError::Unavailable(format!("blob store unreachable: {e}")))?;
        Ok(())
    }
}
