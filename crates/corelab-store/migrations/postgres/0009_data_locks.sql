-- Data locks: a visit, a subject or a whole trial locked by a trial manager (e-signed, audited).
-- While a lock is active (unlocked_at IS NULL) nothing under it may change; unlocking keeps the
-- row with who, when and why.

CREATE TABLE data_locks (
    id             UUID PRIMARY KEY,
    trial_id       UUID NOT NULL REFERENCES trials(id),
    -- trial, subject or visit
    scope          TEXT NOT NULL,
    subject_id     UUID REFERENCES subjects(id),
    visit_id       TEXT,
    reason         TEXT NOT NULL,
    locked_by      UUID REFERENCES users(id),
    locked_at      TIMESTAMPTZ NOT NULL,
    unlocked_by    UUID REFERENCES users(id),
    unlocked_at    TIMESTAMPTZ,
    unlock_reason  TEXT
);
CREATE INDEX data_locks_trial ON data_locks(trial_id, unlocked_at);

-- Defence in depth: no read version is written for a locked visit, whatever the code path.
CREATE FUNCTION read_versions_data_lock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM read_tasks t JOIN read_cases c ON c.id = t.case_id JOIN data_locks l ON l.trial_id = t.trial_id
        WHERE t.id = NEW.task_id AND l.unlocked_at IS NULL
          AND (l.scope = 'trial' OR (l.scope = 'subject' AND l.subject_id = c.subject_id)
               OR (l.scope = 'visit' AND l.subject_id = c.subject_id AND l.visit_id = t.visit_id))
    ) THEN
        RAISE EXCEPTION 'the visit is under a data lock';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER read_versions_data_lock BEFORE INSERT OR UPDATE ON read_versions
    FOR EACH ROW EXECUTE FUNCTION read_versions_data_lock();
