-- Keep the de-identification report of inbox items, so an assigned item is filed with it.
ALTER TABLE inbox ADD COLUMN deid_report TEXT NOT NULL DEFAULT '{}';
-- And the QC facts read from its de-identified header when it arrived.
ALTER TABLE inbox ADD COLUMN facts TEXT NOT NULL DEFAULT '{}';
