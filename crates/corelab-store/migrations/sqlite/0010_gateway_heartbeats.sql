-- Site gateways' heartbeats: one row per gateway (its API token), the latest report wins.
CREATE TABLE gateway_heartbeats (
    token_id         BLOB PRIMARY KEY NOT NULL,
    trial_id         BLOB NOT NULL,
    site_id          TEXT NOT NULL,
    name             TEXT NOT NULL,
    version          TEXT NOT NULL,
    first_seen_at    TEXT NOT NULL,
    last_seen_at     TEXT NOT NULL,
    queue_depth      INTEGER NOT NULL,
    waiting          INTEGER NOT NULL,
    failed           INTEGER NOT NULL,
    last_success_at  TEXT,
    last_error       TEXT
);
CREATE INDEX gateway_heartbeats_trial ON gateway_heartbeats (trial_id, site_id);
