//! The metadata database: SQLite (embedded default) or PostgreSQL (scale-out), one API.
//!
//! Every repository method is written once as SQL that both backends accept (`$1` placeholders,
//! `RETURNING`, `ON CONFLICT`); the `exec!`/`fetch_*!` macros expand it into both match arms.
//! Only job claiming and the audit lock differ per backend.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

use crate::StoreError;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static PG_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database engine holds the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// Connection settings beyond the URL.
#[derive(Debug, Clone)]
pub struct DbOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self { max_connections: 8, acquire_timeout: Duration::from_secs(10) }
    }
}

/// A handle to the metadata database. Cheap to clone.
#[derive(Clone, Debug)]
pub enum Db {
    /// SQLite allows one writer at a time: a one-connection write pool whose transactions start
    /// with `BEGIN IMMEDIATE` (no deadlocking lock upgrades), and a separate pool for readers.
    Sqlite {
        write: SqlitePool,
        read: SqlitePool,
    },
    Pg(PgPool),
}

/// An open transaction on either backend. Dropping it without `commit` rolls back.
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Pg(Transaction<'static, Postgres>),
}

/// Schema versions as seen by `corelab migrate` and at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    /// Highest migration version applied in the database (0 for an empty database).
    pub database_version: i64,
    /// Highest migration version this binary knows.
    pub binary_version: i64,
    /// Migrations this binary would apply.
    pub pending: Vec<i64>,
}

impl Db {
    /// Opens the database named by `url` (`sqlite://path`, `sqlite::memory:` is refused because
    /// nothing would be durable; `postgres://...`). Does not migrate.
    pub async fn connect(url: &str, opts: &DbOptions) -> Result<Db, StoreError> {
        if url.starts_with("sqlite:") {
            if url.contains(":memory:") {
                return Err(StoreError::Config(
                    "database.url: an in-memory SQLite database would lose every record on exit; use sqlite://PATH"
                        .into(),
                ));
            }
            let base = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Config(format!("database.url: not a valid SQLite URL ({e})")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a committed transaction survives power loss, not only a process crash.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(30));
            if let Some(parent) = base.get_filename().parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StoreError::Config(format!("database.url: cannot create directory {}: {e}", parent.display()))
                })?;
            }
            // An SQLite connection is a handle in this process: a ping before each acquire only
            // costs a round trip to its worker thread on every transaction (ingest runs one per
            // batch and one read per instance). A broken one is still caught by the ping sqlx
            // runs when a connection goes back to the pool.
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .acquire_timeout(opts.acquire_timeout.max(Duration::from_secs(30)))
                .connect_with(base.clone())
                .await?;
            let read = SqlitePoolOptions::new()
                .max_connections(opts.max_connections.max(1))
                .test_before_acquire(false)
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(base.read_only(true))
                .await?;
            Ok(Db::Sqlite { write, read })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)
                .map_err(|e| StoreError::Config(format!("database.url: not a valid PostgreSQL URL ({e})")))?;
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections.max(2))
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(options)
                .await?;
            Ok(Db::Pg(pool))
        } else {
            Err(StoreError::Config(format!(
                "database.url: unsupported scheme in {:?}; accepted: sqlite://PATH or postgres://USER@HOST:PORT/DB",
                redact_url(url)
            )))
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Pg(_) => Backend::Postgres,
        }
    }

    fn migrator(&self) -> &'static Migrator {
        match self {
            Db::Sqlite { .. } => &SQLITE_MIGRATIONS,
            Db::Pg(_) => &PG_MIGRATIONS,
        }
    }

    /// Compares the database's schema with this binary's migrations.
    pub async fn schema_status(&self) -> Result<SchemaStatus, StoreError> {
        let known: Vec<i64> = self.migrator().iter().map(|m| m.version).collect();
        let binary_version = known.iter().copied().max().unwrap_or(0);
        let applied: Vec<i64> = match self {
            Db::Sqlite { write, .. } => {
                let exists: Option<(String,)> =
                    sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
                        .fetch_optional(write)
                        .await?;
                if exists.is_none() {
                    Vec::new()
                } else {
                    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(write).await?
                }
            }
            Db::Pg(pool) => {
                let exists: Option<String> =
                    sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text").fetch_one(pool).await?;
                if exists.is_none() {
                    Vec::new()
                } else {
                    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(pool).await?
                }
            }
        };
        let database_version = applied.iter().copied().max().unwrap_or(0);
        let pending = known.iter().copied().filter(|v| !applied.contains(v)).collect();
        Ok(SchemaStatus { database_version, binary_version, pending })
    }

    /// Applies pending migrations. Refuses a database whose schema is newer than this binary:
    /// an older binary must never write into a schema it does not understand.
    pub async fn migrate(&self) -> Result<SchemaStatus, StoreError> {
        let status = self.schema_status().await?;
        if status.database_version > status.binary_version {
            return Err(StoreError::SchemaNewer {
                database_version: status.database_version,
                binary_version: status.binary_version,
            });
        }
        match self {
            Db::Sqlite { write, .. } => self.migrator().run(write).await?,
            // The PostgreSQL migrator takes an advisory lock, so processes starting together are safe.
            Db::Pg(pool) => self.migrator().run(pool).await?,
        }
        self.schema_status().await
    }

    /// Begins a read-write transaction.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Db::Sqlite { write, .. } => Tx::Sqlite(write.begin_with("BEGIN IMMEDIATE").await?),
            Db::Pg(pool) => Tx::Pg(pool.begin().await?),
        })
    }

    /// Begins a read-only transaction: one consistent snapshot for a page or an export.
    pub async fn read(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Db::Sqlite { read, .. } => Tx::Sqlite(read.begin().await?),
            Db::Pg(pool) => Tx::Pg(pool.begin_with("BEGIN READ ONLY").await?),
        })
    }

    /// Writes a consistent copy of an SQLite database to `path` while it keeps serving
    /// (`VACUUM INTO` reads one snapshot). PostgreSQL is copied with `pg_dump` by the caller.
    pub async fn sqlite_snapshot(&self, path: &std::path::Path) -> Result<(), StoreError> {
        let Db::Sqlite { read, .. } = self else {
            return Err(StoreError::Config("sqlite_snapshot is for SQLite databases".into()));
        };
        let p = path.to_str().ok_or_else(|| StoreError::Config(format!("{} is not a UTF-8 path", path.display())))?;
        let quoted = p.replace('\'', "''");
        sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM INTO '{quoted}'"))).execute(read).await?;
        Ok(())
    }

    /// Round trip to the database, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Db::Sqlite { read, .. } => {
                sqlx::query("SELECT 1").execute(read).await?;
            }
            Db::Pg(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite { write, read } => {
                read.close().await;
                write.close().await;
            }
            Db::Pg(pool) => pool.close().await,
        }
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Pg(t) => t.commit().await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Pg(_) => Backend::Postgres,
        }
    }
}

/// Hides the password of a database or storage URL for messages and `config show`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("REDACTED"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Runs one statement on either backend; evaluates to `Result<u64 /* rows */, sqlx::Error>`.
macro_rules! exec {
    ($tx:expr, $sql:expr $(, $arg:expr)* $(,)?) => {
        match $tx {
            $crate::db::Tx::Sqlite(t) => sqlx::query($sql)$(.bind($arg))*.execute(&mut **t).await.map(|r| r.rows_affected()),
            $crate::db::Tx::Pg(t) => sqlx::query($sql)$(.bind($arg))*.execute(&mut **t).await.map(|r| r.rows_affected()),
        }
    };
}

/// Fetches at most one row as `$ty` (a `FromRow` type valid for both backends).
macro_rules! fetch_optional {
    ($tx:expr, $ty:ty, $sql:expr $(, $arg:expr)* $(,)?) => {
        match $tx {
            $crate::db::Tx::Sqlite(t) => sqlx::query_as::<_, $ty>($sql)$(.bind($arg))*.fetch_optional(&mut **t).await,
            $crate::db::Tx::Pg(t) => sqlx::query_as::<_, $ty>($sql)$(.bind($arg))*.fetch_optional(&mut **t).await,
        }
    };
}

/// Fetches exactly one row as `$ty`.
macro_rules! fetch_one {
    ($tx:expr, $ty:ty, $sql:expr $(, $arg:expr)* $(,)?) => {
        match $tx {
            $crate::db::Tx::Sqlite(t) => sqlx::query_as::<_, $ty>($sql)$(.bind($arg))*.fetch_one(&mut **t).await,
            $crate::db::Tx::Pg(t) => sqlx::query_as::<_, $ty>($sql)$(.bind($arg))*.fetch_one(&mut **t).await,
        }
    };
}

/// Fetches all rows as `$ty`.
macro_rules! fetch_all {
    ($tx:expr, $ty:ty, $sql:expr $(, $arg:expr)* $(,)?) => {
        match $tx {
            $crate::db::Tx::Sqlite(t) => sqlx::query_as::<_, $ty>($sql)$(.bind($arg))*.fetch_all(&mut **t).await,
            $crate::db::Tx::Pg(t) => sqlx::query_as::<_, $ty>($sql)$(.bind($arg))*.fetch_all(&mut **t).await,
        }
    };
}

pub(crate) use {exec, fetch_all, fetch_one, fetch_optional};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_have_the_same_migration_versions() {
        let s: Vec<(i64, String)> = SQLITE_MIGRATIONS.iter().map(|m| (m.version, m.description.to_string())).collect();
        let p: Vec<(i64, String)> = PG_MIGRATIONS.iter().map(|m| (m.version, m.description.to_string())).collect();
        assert_eq!(s, p, "migrations/sqlite and migrations/postgres must list the same versions and names");
        assert!(!s.is_empty());
    }

    #[test]
    fn both_backends_create_the_same_tables() {
        // The tables that exist after every migration ran (creates, drops and renames applied).
        fn tables(m: &Migrator) -> Vec<String> {
            let mut v: Vec<String> = Vec::new();
            for line in m.iter().flat_map(|m| m.sql.as_str().lines().map(str::trim).collect::<Vec<_>>()) {
                let word = |rest: &str| rest.split_whitespace().next().unwrap_or("").trim_end_matches(';').to_string();
                if let Some(rest) = line.strip_prefix("CREATE TABLE ") {
                    v.push(word(rest));
                } else if let Some(rest) = line.strip_prefix("DROP TABLE ") {
                    let t = word(rest);
                    v.retain(|x| *x != t);
                } else if let Some(rest) = line.strip_prefix("ALTER TABLE ")
                    && let Some((from, to)) = rest.split_once(" RENAME TO ")
                {
                    let (from, to) = (word(from), word(to));
                    for x in v.iter_mut().filter(|x| **x == from) {
                        *x = to.clone();
                    }
                }
            }
            v.sort();
            v
        }
        assert_eq!(tables(&SQLITE_MIGRATIONS), tables(&PG_MIGRATIONS));
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:REDACTED@h:5432/db");
        assert_eq!(redact_url("sqlite://./x.db"), "sqlite://./x.db");
    }
}
