-- Local blobs whose index rows committed while the blob's own flush was still running
-- (docs/adr/0005-rows-commit-beside-the-blob-flush.md). A row lives from that commit until the
-- flush is known to have finished. At start-up each one left is checked: an intact blob is flushed
-- and its row dropped; the rows of a torn or missing blob were never acknowledged and are withdrawn.
CREATE TABLE unflushed_blobs (
    blob_key    TEXT PRIMARY KEY NOT NULL,
    sha256      TEXT NOT NULL,
    size_bytes  INTEGER NOT NULL,
    marked_at   TEXT NOT NULL
);
