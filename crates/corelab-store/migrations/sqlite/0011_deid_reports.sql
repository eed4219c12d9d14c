-- De-identification reports, stored once per distinct report. Every instance of a series usually
-- has the same report (it lists tags, actions and counts, never values), and at ~18 KB it was most
-- of each instance row. Instances stored before this migration keep their report inline.
CREATE TABLE deid_reports (
    sha256  TEXT PRIMARY KEY NOT NULL,
    report  TEXT NOT NULL
);
ALTER TABLE instances ADD COLUMN deid_report_sha TEXT;
