-- Reads (blinded independent central review): reader profiles, read cases (one per subject, with
-- its random reader case ID and its fixed readers), read tasks (one per reader and timepoint),
-- read versions (a draft, then e-signed submissions; a correction is a new version), adjudications,
-- and accepted results (versioned; the latest is in force).

CREATE TABLE reader_profiles (
    trial_id              UUID NOT NULL REFERENCES trials(id),
    user_id               UUID NOT NULL REFERENCES users(id),
    -- JSON arrays of charter words: therapeutic areas and criteria the reader is qualified for.
    therapeutic_areas     TEXT NOT NULL,
    criteria              TEXT NOT NULL,
    training_valid_until  DATE,
    updated_by            UUID,
    updated_at            TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (trial_id, user_id)
);

CREATE TABLE read_cases (
    id          UUID PRIMARY KEY,
    trial_id    UUID NOT NULL REFERENCES trials(id),
    subject_id  UUID NOT NULL UNIQUE REFERENCES subjects(id),
    -- What readers and adjudicators call the subject; random, unique in the trial.
    case_code   TEXT NOT NULL,
    reader_1    UUID REFERENCES users(id),
    reader_2    UUID REFERENCES users(id),
    created_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (trial_id, case_code)
);

CREATE TABLE read_tasks (
    id            UUID PRIMARY KEY,
    trial_id      UUID NOT NULL REFERENCES trials(id),
    case_id       UUID NOT NULL REFERENCES read_cases(id),
    visit_id      TEXT NOT NULL,
    slot          BIGINT NOT NULL,
    reader_id     UUID REFERENCES users(id),
    baseline      BOOLEAN NOT NULL,
    -- Scan day from the schedule anchor (the visit's nominal day when the scan date is unknown).
    day           BIGINT NOT NULL,
    -- unassigned, open, submitted
    state         TEXT NOT NULL,
    note          TEXT,
    qc_passed_at  TIMESTAMPTZ NOT NULL,
    assigned_at   TIMESTAMPTZ,
    submitted_at  TIMESTAMPTZ,
    UNIQUE (case_id, visit_id, slot)
);
CREATE INDEX read_tasks_reader ON read_tasks(reader_id, state);
CREATE INDEX read_tasks_trial ON read_tasks(trial_id, state);

CREATE TABLE read_versions (
    id            UUID PRIMARY KEY,
    task_id       UUID NOT NULL REFERENCES read_tasks(id),
    version       BIGINT NOT NULL,
    -- draft (editable) or submitted (e-signed and locked)
    state         TEXT NOT NULL,
    assessment    TEXT NOT NULL,
    result        TEXT,
    reason        TEXT,
    author_id     UUID NOT NULL REFERENCES users(id),
    saved_at      TIMESTAMPTZ NOT NULL,
    submitted_at  TIMESTAMPTZ,
    UNIQUE (task_id, version)
);
-- A submitted read is locked: a correction is a new version, never an edit.
CREATE FUNCTION read_versions_locked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.state = 'submitted' THEN
        RAISE EXCEPTION 'a submitted read is locked';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER read_versions_locked BEFORE UPDATE OR DELETE ON read_versions
    FOR EACH ROW EXECUTE FUNCTION read_versions_locked();

CREATE TABLE adjudications (
    id              UUID PRIMARY KEY,
    trial_id        UUID NOT NULL REFERENCES trials(id),
    case_id         UUID NOT NULL REFERENCES read_cases(id),
    -- unassigned, open, decided, superseded
    state           TEXT NOT NULL,
    adjudicator_id  UUID REFERENCES users(id),
    note            TEXT,
    -- JSON: the read versions compared, per reader
    compared        TEXT NOT NULL,
    disagreements   TEXT NOT NULL,
    choice          TEXT NOT NULL,
    decision        TEXT,
    rationale       TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    decided_at      TIMESTAMPTZ
);
CREATE INDEX adjudications_case ON adjudications(case_id, created_at);
CREATE INDEX adjudications_adjudicator ON adjudications(adjudicator_id, state);

CREATE TABLE accepted_results (
    id               UUID PRIMARY KEY,
    trial_id         UUID NOT NULL REFERENCES trials(id),
    case_id          UUID NOT NULL REFERENCES read_cases(id),
    seq              BIGINT NOT NULL,
    -- single_read, agreement, no_adjudication, adjudication
    basis            TEXT NOT NULL,
    adjudication_id  UUID REFERENCES adjudications(id),
    result           TEXT NOT NULL,
    recorded_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (case_id, seq)
);
