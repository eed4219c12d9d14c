-- Fixity checks: each run of `corelab verify` (or the scheduled job) and what it found.
CREATE TABLE fixity_runs (
    id           BLOB PRIMARY KEY NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT NOT NULL,
    checked      INTEGER NOT NULL,
    bytes        INTEGER NOT NULL,
    missing      INTEGER NOT NULL,
    altered      INTEGER NOT NULL,
    problems     TEXT NOT NULL
);
