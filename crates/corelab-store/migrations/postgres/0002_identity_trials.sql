-- Identity and trials: role grants per trial (and site), API tokens, e-signatures, trials with
-- versioned charters, sites, subjects, training attestations.

CREATE TABLE trials (
    id               UUID PRIMARY KEY,
    protocol_id      TEXT NOT NULL UNIQUE,
    name             TEXT NOT NULL,
    sponsor          TEXT NOT NULL,
    therapeutic_area TEXT NOT NULL,
    current_version  BIGINT NOT NULL,
    -- Key for UID remapping and date shifts; never leaves the server except to the trial's gateways.
    deid_secret      BYTEA NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL
);

CREATE TABLE charter_versions (
    trial_id     UUID NOT NULL REFERENCES trials(id),
    version      BIGINT NOT NULL,
    label        TEXT NOT NULL,
    charter_text TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    reason       TEXT,
    created_by   UUID,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (trial_id, version)
);

CREATE TABLE sites (
    trial_id        UUID NOT NULL REFERENCES trials(id),
    site_id         TEXT NOT NULL,
    name            TEXT NOT NULL,
    country         TEXT NOT NULL,
    status          TEXT NOT NULL,
    qualified_at    TIMESTAMPTZ,
    added_in_version BIGINT NOT NULL,
    PRIMARY KEY (trial_id, site_id)
);

-- DIMSE routing: called AE title -> trial, calling AE title -> site; rebuilt from each charter version.
CREATE TABLE ae_titles (
    ae_title  TEXT NOT NULL,
    kind      TEXT NOT NULL,
    trial_id  UUID NOT NULL REFERENCES trials(id),
    site_id   TEXT,
    PRIMARY KEY (kind, ae_title, trial_id)
);

CREATE TABLE grants (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users(id),
    trial_id    UUID NOT NULL REFERENCES trials(id),
    role        TEXT NOT NULL,
    site_id     TEXT,
    unblinded   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMPTZ NOT NULL,
    created_by  UUID,
    revoked_at  TIMESTAMPTZ,
    revoked_by  UUID
);
CREATE INDEX grants_user ON grants(user_id, trial_id);

CREATE TABLE api_tokens (
    id           UUID PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    user_id      UUID NOT NULL REFERENCES users(id),
    trial_id     UUID NOT NULL REFERENCES trials(id),
    role         TEXT NOT NULL,
    site_id      TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);

CREATE TABLE signatures (
    id            UUID PRIMARY KEY,
    record_type   TEXT NOT NULL,
    record_id     TEXT NOT NULL,
    trial_id      UUID,
    signer_id     UUID NOT NULL REFERENCES users(id),
    signer_name   TEXT NOT NULL,
    meaning       TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    signed_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX signatures_record ON signatures(record_type, record_id);

CREATE TABLE subjects (
    id              UUID PRIMARY KEY,
    trial_id        UUID NOT NULL REFERENCES trials(id),
    site_id         TEXT NOT NULL,
    subject_id      TEXT NOT NULL,
    anchor_date     DATE NOT NULL,
    arm             TEXT,
    status          TEXT NOT NULL,
    withdrawn_on    DATE,
    charter_version BIGINT NOT NULL,
    date_shift_days BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (trial_id, subject_id)
);
CREATE INDEX subjects_site ON subjects(trial_id, site_id);

CREATE TABLE training_records (
    id              UUID PRIMARY KEY,
    trial_id        UUID NOT NULL REFERENCES trials(id),
    site_id         TEXT,
    user_id         UUID NOT NULL REFERENCES users(id),
    charter_version BIGINT NOT NULL,
    topic           TEXT NOT NULL,
    attested_at     TIMESTAMPTZ NOT NULL
);

-- Site qualification: phantom or test-subject scans checked against the charter, then approved.
CREATE TABLE qualification_scans (
    id               UUID PRIMARY KEY,
    trial_id         UUID NOT NULL REFERENCES trials(id),
    site_id          TEXT NOT NULL,
    sop_instance_uid TEXT NOT NULL,
    modality         TEXT NOT NULL,
    blob_key         TEXT NOT NULL,
    sha256           TEXT NOT NULL,
    size_bytes       BIGINT NOT NULL,
    findings         TEXT NOT NULL,
    passed           BOOLEAN NOT NULL,
    charter_version  BIGINT NOT NULL,
    uploaded_by      UUID,
    uploaded_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX qualification_site ON qualification_scans(trial_id, site_id);
