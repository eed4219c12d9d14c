-- Site gateways' heartbeats: one row per gateway (its API token), the latest report wins.
CREATE TABLE gateway_heartbeats (
    token_id         UUID PRIMARY KEY,
    trial_id         UUID NOT NULL,
    site_id          TEXT NOT NULL,
    name             TEXT NOT NULL,
    version          TEXT NOT NULL,
    first_seen_at    TIMESTAMPTZ NOT NULL,
    last_seen_at     TIMESTAMPTZ NOT NULL,
    queue_depth      BIGINT NOT NULL,
    waiting          BIGINT NOT NULL,
    failed           BIGINT NOT NULL,
    last_success_at  TEXT,
    last_error       TEXT
);
CREATE INDEX gateway_heartbeats_trial ON gateway_heartbeats (trial_id, site_id);
