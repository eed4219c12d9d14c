-- QC: automated evaluations of a visit against the charter, QC reviews (QC1, QC2), the visit's QC
-- state, and data queries to sites with their message threads.

CREATE TABLE qc_evaluations (
    id               BLOB PRIMARY KEY NOT NULL,
    trial_id         BLOB NOT NULL REFERENCES trials(id),
    site_id          TEXT NOT NULL,
    subject_id       BLOB NOT NULL REFERENCES subjects(id),
    visit_id         TEXT NOT NULL,
    charter_version  INTEGER NOT NULL,
    verdict          TEXT NOT NULL,
    complete         INTEGER NOT NULL,
    findings         TEXT NOT NULL,
    series           TEXT NOT NULL,
    instance_count   INTEGER NOT NULL,
    evaluated_at     TEXT NOT NULL
);
CREATE INDEX qc_evaluations_visit ON qc_evaluations(subject_id, visit_id, evaluated_at);

CREATE TABLE visit_qc (
    subject_id     BLOB NOT NULL REFERENCES subjects(id),
    visit_id       TEXT NOT NULL,
    trial_id       BLOB NOT NULL REFERENCES trials(id),
    site_id        TEXT NOT NULL,
    state          TEXT NOT NULL,
    evaluation_id  BLOB NOT NULL REFERENCES qc_evaluations(id),
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (subject_id, visit_id)
);
CREATE INDEX visit_qc_trial ON visit_qc(trial_id, state);

CREATE TABLE qc_reviews (
    id             BLOB PRIMARY KEY NOT NULL,
    evaluation_id  BLOB NOT NULL REFERENCES qc_evaluations(id),
    trial_id       BLOB NOT NULL REFERENCES trials(id),
    subject_id     BLOB NOT NULL REFERENCES subjects(id),
    visit_id       TEXT NOT NULL,
    stage          TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    reason         TEXT,
    reviewer_id    BLOB NOT NULL REFERENCES users(id),
    reviewer_name  TEXT NOT NULL,
    decided_at     TEXT NOT NULL
);

CREATE TABLE queries (
    id             BLOB PRIMARY KEY NOT NULL,
    trial_id       BLOB NOT NULL REFERENCES trials(id),
    site_id        TEXT NOT NULL,
    subject_id     BLOB REFERENCES subjects(id),
    visit_id       TEXT,
    source         TEXT NOT NULL,
    state          TEXT NOT NULL,
    title          TEXT NOT NULL,
    evaluation_id  BLOB,
    created_by     BLOB,
    created_by_name TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    closed_at      TEXT,
    last_reminder_at TEXT
);
CREATE INDEX queries_trial ON queries(trial_id, state);
CREATE INDEX queries_visit ON queries(subject_id, visit_id);

CREATE TABLE query_messages (
    id           BLOB PRIMARY KEY NOT NULL,
    query_id     BLOB NOT NULL REFERENCES queries(id),
    kind         TEXT NOT NULL,
    author_id    BLOB,
    author_name  TEXT NOT NULL,
    author_role  TEXT NOT NULL,
    body         TEXT NOT NULL,
    at           TEXT NOT NULL
);
CREATE INDEX query_messages_query ON query_messages(query_id, at);
