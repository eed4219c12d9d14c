-- QC: automated evaluations of a visit against the charter, QC reviews (QC1, QC2), the visit's QC
-- state, and data queries to sites with their message threads.

CREATE TABLE qc_evaluations (
    id               UUID PRIMARY KEY,
    trial_id         UUID NOT NULL REFERENCES trials(id),
    site_id          TEXT NOT NULL,
    subject_id       UUID NOT NULL REFERENCES subjects(id),
    visit_id         TEXT NOT NULL,
    charter_version  BIGINT NOT NULL,
    verdict          TEXT NOT NULL,
    complete         BOOLEAN NOT NULL,
    findings         TEXT NOT NULL,
    series           TEXT NOT NULL,
    instance_count   BIGINT NOT NULL,
    evaluated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX qc_evaluations_visit ON qc_evaluations(subject_id, visit_id, evaluated_at);

CREATE TABLE visit_qc (
    subject_id     UUID NOT NULL REFERENCES subjects(id),
    visit_id       TEXT NOT NULL,
    trial_id       UUID NOT NULL REFERENCES trials(id),
    site_id        TEXT NOT NULL,
    state          TEXT NOT NULL,
    evaluation_id  UUID NOT NULL REFERENCES qc_evaluations(id),
    updated_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (subject_id, visit_id)
);
CREATE INDEX visit_qc_trial ON visit_qc(trial_id, state);

CREATE TABLE qc_reviews (
    id             UUID PRIMARY KEY,
    evaluation_id  UUID NOT NULL REFERENCES qc_evaluations(id),
    trial_id       UUID NOT NULL REFERENCES trials(id),
    subject_id     UUID NOT NULL REFERENCES subjects(id),
    visit_id       TEXT NOT NULL,
    stage          TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    reason         TEXT,
    reviewer_id    UUID NOT NULL REFERENCES users(id),
    reviewer_name  TEXT NOT NULL,
    decided_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE queries (
    id             UUID PRIMARY KEY,
    trial_id       UUID NOT NULL REFERENCES trials(id),
    site_id        TEXT NOT NULL,
    subject_id     UUID REFERENCES subjects(id),
    visit_id       TEXT,
    source         TEXT NOT NULL,
    state          TEXT NOT NULL,
    title          TEXT NOT NULL,
    evaluation_id  UUID,
    created_by     UUID,
    created_by_name TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    closed_at      TIMESTAMPTZ,
    last_reminder_at TIMESTAMPTZ
);
CREATE INDEX queries_trial ON queries(trial_id, state);
CREATE INDEX queries_visit ON queries(subject_id, visit_id);

CREATE TABLE query_messages (
    id           UUID PRIMARY KEY,
    query_id     UUID NOT NULL REFERENCES queries(id),
    kind         TEXT NOT NULL,
    author_id    UUID,
    author_name  TEXT NOT NULL,
    author_role  TEXT NOT NULL,
    body         TEXT NOT NULL,
    at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX query_messages_query ON query_messages(query_id, at);
