-- Identity and trials: role grants per trial (and site), API tokens, e-signatures, trials with
-- versioned charters, sites, subjects, training attestations.

CREATE TABLE trials (
    id               BLOB PRIMARY KEY NOT NULL,
    protocol_id      TEXT NOT NULL UNIQUE,
    name             TEXT NOT NULL,
    sponsor          TEXT NOT NULL,
    therapeutic_area TEXT NOT NULL,
    current_version  INTEGER NOT NULL,
    -- Key for UID remapping and date shifts; never leaves the server except to the trial's gateways.
    deid_secret      BLOB NOT NULL,
    created_at       TEXT NOT NULL
);

CREATE TABLE charter_versions (
    trial_id     BLOB NOT NULL REFERENCES trials(id),
    version      INTEGER NOT NULL,
    label        TEXT NOT NULL,
    charter_text TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    reason       TEXT,
    created_by   BLOB,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (trial_id, version)
);

CREATE TABLE sites (
    trial_id        BLOB NOT NULL REFERENCES trials(id),
    site_id         TEXT NOT NULL,
    name            TEXT NOT NULL,
    country         TEXT NOT NULL,
    status          TEXT NOT NULL,
    qualified_at    TEXT,
    added_in_version INTEGER NOT NULL,
    PRIMARY KEY (trial_id, site_id)
);

-- DIMSE routing: called AE title -> trial, calling AE title -> site; rebuilt from each charter version.
CREATE TABLE ae_titles (
    ae_title  TEXT NOT NULL,
    kind      TEXT NOT NULL,
    trial_id  BLOB NOT NULL REFERENCES trials(id),
    site_id   TEXT,
    PRIMARY KEY (kind, ae_title, trial_id)
);

CREATE TABLE grants (
    id          BLOB PRIMARY KEY NOT NULL,
    user_id     BLOB NOT NULL REFERENCES users(id),
    trial_id    BLOB NOT NULL REFERENCES trials(id),
    role        TEXT NOT NULL,
    site_id     TEXT,
    unblinded   INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    created_by  BLOB,
    revoked_at  TEXT,
    revoked_by  BLOB
);
CREATE INDEX grants_user ON grants(user_id, trial_id);

CREATE TABLE api_tokens (
    id           BLOB PRIMARY KEY NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    user_id      BLOB NOT NULL REFERENCES users(id),
    trial_id     BLOB NOT NULL REFERENCES trials(id),
    role         TEXT NOT NULL,
    site_id      TEXT,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    revoked_at   TEXT,
    last_used_at TEXT
);

CREATE TABLE signatures (
    id            BLOB PRIMARY KEY NOT NULL,
    record_type   TEXT NOT NULL,
    record_id     TEXT NOT NULL,
    trial_id      BLOB,
    signer_id     BLOB NOT NULL REFERENCES users(id),
    signer_name   TEXT NOT NULL,
    meaning       TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    signed_at     TEXT NOT NULL
);
CREATE INDEX signatures_record ON signatures(record_type, record_id);

CREATE TABLE subjects (
    id              BLOB PRIMARY KEY NOT NULL,
    trial_id        BLOB NOT NULL REFERENCES trials(id),
    site_id         TEXT NOT NULL,
    subject_id      TEXT NOT NULL,
    anchor_date     TEXT NOT NULL,
    arm             TEXT,
    status          TEXT NOT NULL,
    withdrawn_on    TEXT,
    charter_version INTEGER NOT NULL,
    date_shift_days INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (trial_id, subject_id)
);
CREATE INDEX subjects_site ON subjects(trial_id, site_id);

CREATE TABLE training_records (
    id              BLOB PRIMARY KEY NOT NULL,
    trial_id        BLOB NOT NULL REFERENCES trials(id),
    site_id         TEXT,
    user_id         BLOB NOT NULL REFERENCES users(id),
    charter_version INTEGER NOT NULL,
    topic           TEXT NOT NULL,
    attested_at     TEXT NOT NULL
);

-- Site qualification: phantom or test-subject scans checked against the charter, then approved.
CREATE TABLE qualification_scans (
    id               BLOB PRIMARY KEY NOT NULL,
    trial_id         BLOB NOT NULL REFERENCES trials(id),
    site_id          TEXT NOT NULL,
    sop_instance_uid TEXT NOT NULL,
    modality         TEXT NOT NULL,
    blob_key         TEXT NOT NULL,
    sha256           TEXT NOT NULL,
    size_bytes       INTEGER NOT NULL,
    findings         TEXT NOT NULL,
    passed           INTEGER NOT NULL,
    charter_version  INTEGER NOT NULL,
    uploaded_by      BLOB,
    uploaded_at      TEXT NOT NULL
);
CREATE INDEX qualification_site ON qualification_scans(trial_id, site_id);
