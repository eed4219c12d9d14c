-- Ingest: de-identified studies, series and instances matched to trial/site/subject/visit, and an
-- inbox for what could not be matched or conflicts with what is stored.

CREATE TABLE studies (
    id                 BLOB PRIMARY KEY NOT NULL,
    trial_id           BLOB NOT NULL REFERENCES trials(id),
    site_id            TEXT NOT NULL,
    subject_id         BLOB NOT NULL REFERENCES subjects(id),
    visit_id           TEXT NOT NULL,
    study_instance_uid TEXT NOT NULL,
    -- The study date as stored (shifted when the charter shifts dates); the real date is not kept.
    study_date         TEXT,
    -- The real acquisition date's offset from the subject's anchor, in days (for QC windows).
    anchor_day         INTEGER,
    state              TEXT NOT NULL,
    charter_version    INTEGER NOT NULL,
    first_received_at  TEXT NOT NULL,
    last_received_at   TEXT NOT NULL,
    completed_at       TEXT,
    UNIQUE (trial_id, study_instance_uid)
);
CREATE INDEX studies_subject ON studies(subject_id, visit_id);

CREATE TABLE series (
    id                  BLOB PRIMARY KEY NOT NULL,
    study_id            BLOB NOT NULL REFERENCES studies(id),
    series_instance_uid TEXT NOT NULL,
    modality            TEXT NOT NULL,
    series_number       INTEGER,
    series_description  TEXT,
    instance_count      INTEGER NOT NULL,
    UNIQUE (study_id, series_instance_uid)
);

CREATE TABLE instances (
    id               BLOB PRIMARY KEY NOT NULL,
    trial_id         BLOB NOT NULL REFERENCES trials(id),
    study_id         BLOB NOT NULL REFERENCES studies(id),
    series_id        BLOB NOT NULL REFERENCES series(id),
    sop_instance_uid TEXT NOT NULL,
    sop_class_uid    TEXT NOT NULL,
    transfer_syntax  TEXT NOT NULL,
    instance_number  INTEGER,
    blob_key         TEXT NOT NULL,
    sha256           TEXT NOT NULL,
    size_bytes       INTEGER NOT NULL,
    facts            TEXT NOT NULL,
    deid_report      TEXT NOT NULL,
    burned_in_flag   INTEGER NOT NULL,
    source           TEXT NOT NULL,
    received_at      TEXT NOT NULL,
    UNIQUE (trial_id, sop_instance_uid)
);
CREATE INDEX instances_series ON instances(series_id);

CREATE TABLE inbox (
    id               BLOB PRIMARY KEY NOT NULL,
    trial_id         BLOB NOT NULL REFERENCES trials(id),
    site_id          TEXT NOT NULL,
    reason           TEXT NOT NULL,
    state            TEXT NOT NULL,
    -- A keyed hash of the original Patient ID: groups one patient's items without keeping the ID.
    patient_key      TEXT NOT NULL,
    claimed_subject  TEXT,
    claimed_visit    TEXT,
    provisional_shift INTEGER NOT NULL,
    anchor_date_hint TEXT,
    sop_instance_uid TEXT NOT NULL,
    study_instance_uid TEXT NOT NULL,
    modality         TEXT NOT NULL,
    blob_key         TEXT NOT NULL,
    sha256           TEXT NOT NULL,
    size_bytes       INTEGER NOT NULL,
    source           TEXT NOT NULL,
    received_at      TEXT NOT NULL,
    resolved_at      TEXT,
    resolved_by      BLOB
);
CREATE INDEX inbox_open ON inbox(trial_id, state);
