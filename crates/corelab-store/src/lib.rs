//! corelab adapters: the metadata database (SQLite or PostgreSQL) and the blob store (local files
//! or S3). Use cases in `corelab-app` call the repository methods on [`Tx`]; nothing here decides
//! who may do what.

pub mod audit;
pub mod blob;
pub mod db;
pub mod fixity;
pub mod gateways;
pub mod identity;
pub mod ingest;
pub mod jobs;
pub mod locks;
pub mod qc;
pub mod reads;
pub mod records;
pub mod reports;
pub mod trials;

pub use blob::{BlobStore, BlobStream, Placed, S3Settings, StagedBlob};
pub use db::{Backend, Db, DbOptions, SchemaStatus, Tx, redact_url};

/// Errors of the storage layer. Messages name the setting or object involved but never carry
/// record content (which may hold PHI).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "the database schema (version {database_version}) is newer than this corelab (knows up to {binary_version}); \
         run the newer corelab or restore a backup"
    )]
    SchemaNewer { database_version: i64, binary_version: i64 },
    #[error("{0}")]
    Config(String),
    #[error("object store error: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("I/O error at {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("read error: {0}")]
    Read(std::io::Error),
    #[error("blob {0} not found")]
    BlobNotFound(String),
    #[error("invalid blob key {0:?}")]
    BadKey(String),
    #[error("more than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// True when the error is a unique-constraint violation (a duplicate).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Db(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}
