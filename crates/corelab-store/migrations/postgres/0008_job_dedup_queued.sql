-- A job's dedup key is unique among queued jobs only: while one runs, the next run of the same
-- kind of work (e.g. a study that received more images during its check) can be queued behind it.
ALTER TABLE jobs DROP CONSTRAINT jobs_dedup_key_key;
CREATE UNIQUE INDEX jobs_dedup_queued ON jobs(dedup_key) WHERE state = 'queued';
