-- A job's dedup key is unique among queued jobs only: while one runs, the next run of the same
-- kind of work (e.g. a study that received more images during its check) can be queued behind it.
CREATE TABLE jobs_rebuilt (
    id            BLOB PRIMARY KEY NOT NULL,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,
    dedup_key     TEXT,
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
INSERT INTO jobs_rebuilt SELECT id, kind, payload, dedup_key, state, run_at, attempts, max_attempts, locked_by,
    locked_until, last_error, created_at, finished_at FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_rebuilt RENAME TO jobs;
CREATE INDEX jobs_ready ON jobs(state, run_at);
CREATE UNIQUE INDEX jobs_dedup_queued ON jobs(dedup_key) WHERE state = 'queued';
