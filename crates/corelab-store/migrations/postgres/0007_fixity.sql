-- Fixity checks: each run of `corelab verify` (or the scheduled job) and what it found.
CREATE TABLE fixity_runs (
    id           UUID PRIMARY KEY,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ NOT NULL,
    checked      BIGINT NOT NULL,
    bytes        BIGINT NOT NULL,
    missing      BIGINT NOT NULL,
    altered      BIGINT NOT NULL,
    problems     TEXT NOT NULL
);
