-- Reads (blinded independent central review): reader profiles, read cases (one per subject, with
-- its random reader case ID and its fixed readers), read tasks (one per reader and timepoint),
-- read versions (a draft, then e-signed submissions; a correction is a new version), adjudications,
-- and accepted results (versioned; the latest is in force).

CREATE TABLE reader_profiles (
    trial_id              BLOB NOT NULL REFERENCES trials(id),
    user_id               BLOB NOT NULL REFERENCES users(id),
    -- JSON arrays of charter words: therapeutic areas and criteria the reader is qualified for.
    therapeutic_areas     TEXT NOT NULL,
    criteria              TEXT NOT NULL,
    training_valid_until  TEXT,
    updated_by            BLOB,
    updated_at            TEXT NOT NULL,
    PRIMARY KEY (trial_id, user_id)
);

CREATE TABLE read_cases (
    id          BLOB PRIMARY KEY NOT NULL,
    trial_id    BLOB NOT NULL REFERENCES trials(id),
    subject_id  BLOB NOT NULL UNIQUE REFERENCES subjects(id),
    -- What readers and adjudicators call the subject; random, unique in the trial.
    case_code   TEXT NOT NULL,
    reader_1    BLOB REFERENCES users(id),
    reader_2    BLOB REFERENCES users(id),
    created_at  TEXT NOT NULL,
    UNIQUE (trial_id, case_code)
);

CREATE TABLE read_tasks (
    id            BLOB PRIMARY KEY NOT NULL,
    trial_id      BLOB NOT NULL REFERENCES trials(id),
    case_id       BLOB NOT NULL REFERENCES read_cases(id),
    visit_id      TEXT NOT NULL,
    slot          INTEGER NOT NULL,
    reader_id     BLOB REFERENCES users(id),
    baseline      INTEGER NOT NULL,
    -- Scan day from the schedule anchor (the visit's nominal day when the scan date is unknown).
    day           INTEGER NOT NULL,
    -- unassigned, open, submitted
    state         TEXT NOT NULL,
    note          TEXT,
    qc_passed_at  TEXT NOT NULL,
    assigned_at   TEXT,
    submitted_at  TEXT,
    UNIQUE (case_id, visit_id, slot)
);
CREATE INDEX read_tasks_reader ON read_tasks(reader_id, state);
CREATE INDEX read_tasks_trial ON read_tasks(trial_id, state);

CREATE TABLE read_versions (
    id            BLOB PRIMARY KEY NOT NULL,
    task_id       BLOB NOT NULL REFERENCES read_tasks(id),
    version       INTEGER NOT NULL,
    -- draft (editable) or submitted (e-signed and locked)
    state         TEXT NOT NULL,
    assessment    TEXT NOT NULL,
    result        TEXT,
    reason        TEXT,
    author_id     BLOB NOT NULL REFERENCES users(id),
    saved_at      TEXT NOT NULL,
    submitted_at  TEXT,
    UNIQUE (task_id, version)
);
-- A submitted read is locked: a correction is a new version, never an edit.
CREATE TRIGGER read_versions_locked BEFORE UPDATE ON read_versions WHEN OLD.state = 'submitted'
BEGIN SELECT RAISE(ABORT, 'a submitted read is locked'); END;
CREATE TRIGGER read_versions_no_delete BEFORE DELETE ON read_versions WHEN OLD.state = 'submitted'
BEGIN SELECT RAISE(ABORT, 'a submitted read is locked'); END;

CREATE TABLE adjudications (
    id              BLOB PRIMARY KEY NOT NULL,
    trial_id        BLOB NOT NULL REFERENCES trials(id),
    case_id         BLOB NOT NULL REFERENCES read_cases(id),
    -- unassigned, open, decided, superseded
    state           TEXT NOT NULL,
    adjudicator_id  BLOB REFERENCES users(id),
    note            TEXT,
    -- JSON: the read versions compared, per reader
    compared        TEXT NOT NULL,
    disagreements   TEXT NOT NULL,
    choice          TEXT NOT NULL,
    decision        TEXT,
    rationale       TEXT,
    created_at      TEXT NOT NULL,
    decided_at      TEXT
);
CREATE INDEX adjudications_case ON adjudications(case_id, created_at);
CREATE INDEX adjudications_adjudicator ON adjudications(adjudicator_id, state);

CREATE TABLE accepted_results (
    id               BLOB PRIMARY KEY NOT NULL,
    trial_id         BLOB NOT NULL REFERENCES trials(id),
    case_id          BLOB NOT NULL REFERENCES read_cases(id),
    seq              INTEGER NOT NULL,
    -- single_read, agreement, no_adjudication, adjudication
    basis            TEXT NOT NULL,
    adjudication_id  BLOB REFERENCES adjudications(id),
    result           TEXT NOT NULL,
    recorded_at      TEXT NOT NULL,
    UNIQUE (case_id, seq)
);
