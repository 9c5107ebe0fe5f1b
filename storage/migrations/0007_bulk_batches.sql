-- Bulk regenerations through the OpenAI Batch API. One request set per bulk workflow run: the
-- sections that needed generating, each a line of the batch (custom_id = the section's
-- idempotency key), and the batch once submitted (at most one per request set).
CREATE TABLE bulk_requests (
    ref            text PRIMARY KEY,
    workflow_id    text NOT NULL,
    document_kind  text NOT NULL,
    level          text NOT NULL,
    mode           text NOT NULL,              -- 'batch' or 'direct'
    batch_id       text,
    input_file_id  text,
    batch_status   text,
    output_file_id text,
    error_file_id  text,
    collected_at   timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bulk_items (
    ref                text NOT NULL REFERENCES bulk_requests (ref) ON DELETE CASCADE,
    custom_id          text NOT NULL,
    client_id          text NOT NULL,
    client_version     integer NOT NULL,
    section_key        text NOT NULL,
    document_sections  text[] NOT NULL,
    model              text NOT NULL,
    -- The request body as sent, as text: jsonb would reorder the schema's keys, and the order
    -- of a strict schema's properties is the order the model writes them in.
    body               text NOT NULL,
    state              text NOT NULL DEFAULT 'pending',   -- pending, stored, failed
    section_id         bigint,
    error              text,
    PRIMARY KEY (ref, custom_id)
);
