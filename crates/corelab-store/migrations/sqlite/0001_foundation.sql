-- Foundation: accounts, sessions, the audit trail, background jobs, documents.
-- Forward-only: never edit a migration once it is on main; add a new one.

CREATE TABLE users (
    id                  BLOB PRIMARY KEY NOT NULL,
    username            TEXT NOT NULL UNIQUE,
    display_name        TEXT NOT NULL,
    email               TEXT,
    password_hash       TEXT NOT NULL,
    is_system_admin     INTEGER NOT NULL DEFAULT 0,
    disabled            INTEGER NOT NULL DEFAULT 0,
    failed_logins       INTEGER NOT NULL DEFAULT 0,
    locked_until        TEXT,
    must_change_password INTEGER NOT NULL DEFAULT 0,
    password_changed_at TEXT NOT NULL,
    created_at          TEXT NOT NULL
);

CREATE TABLE sessions (
    token_hash     TEXT PRIMARY KEY NOT NULL,
    user_id        BLOB NOT NULL REFERENCES users(id),
    created_at     TEXT NOT NULL,
    last_seen_at   TEXT NOT NULL,
    signed_at      TEXT,
    ended_at       TEXT
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE audit_log (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           BLOB NOT NULL UNIQUE,
    at           TEXT NOT NULL,
    actor_id     BLOB,
    actor_name   TEXT NOT NULL,
    actor_role   TEXT NOT NULL,
    action       TEXT NOT NULL,
    object_type  TEXT NOT NULL,
    object_id    TEXT NOT NULL,
    trial_id     BLOB,
    site_id      TEXT,
    changes      TEXT NOT NULL,
    reason       TEXT,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX audit_object ON audit_log(object_type, object_id);
CREATE INDEX audit_trial ON audit_log(trial_id, at);
CREATE INDEX audit_actor ON audit_log(actor_id, at);

-- 21 CFR 11.10(e): the audit trail is append-only, for everyone, including the application.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

CREATE TABLE jobs (
    id            BLOB PRIMARY KEY NOT NULL,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,
    dedup_key     TEXT UNIQUE,
    state         TEXT NOT NULL,
    run_at        TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL,
    locked_by     TEXT,
    locked_until  TEXT,
    last_error    TEXT,
    created_at    TEXT NOT NULL,
    finished_at   TEXT
);
CREATE INDEX jobs_ready ON jobs(state, run_at);

CREATE TABLE documents (
    id            BLOB PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size_bytes    INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    blob_key      TEXT NOT NULL UNIQUE,
    uploaded_by   BLOB NOT NULL REFERENCES users(id),
    created_at    TEXT NOT NULL
);
