-- A deliverable run stores five documents (one per document of the month), so a document is
-- identified by its key within its kind: versions count per (client, kind, document key), and
-- a retried assemble stores each document of its run once. Business plans keep one document a
-- run; their key is their kind.
ALTER TABLE documents ADD COLUMN document_key text;
UPDATE documents SET document_key = kind WHERE document_key IS NULL;
ALTER TABLE documents ALTER COLUMN document_key SET NOT NULL;
ALTER TABLE documents DROP CONSTRAINT documents_client_id_kind_version_key;
ALTER TABLE documents DROP CONSTRAINT documents_workflow_id_run_id_key;
ALTER TABLE documents ADD CONSTRAINT documents_client_kind_document_version_key
    UNIQUE (client_id, kind, document_key, version);
ALTER TABLE documents ADD CONSTRAINT documents_run_document_key UNIQUE (workflow_id, run_id, document_key);

-- The compact digest of earlier months a deliverable month is written with, stored once and
-- passed to activities by its key (a sha256 of the text), so workflow payloads stay small.
CREATE TABLE deliverable_digests (
    key        text PRIMARY KEY,
    client_id  text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    month      integer NOT NULL,
    text       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
