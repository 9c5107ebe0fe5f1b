-- What a section was written from (the projected field values its prompt carried), so a later
-- revision can patch it for the facts that changed even after its cache entry expired.
ALTER TABLE sections ADD COLUMN IF NOT EXISTS inputs jsonb;
CREATE INDEX IF NOT EXISTS sections_latest_idx ON sections (client_id, document_kind, section_key, id DESC);
