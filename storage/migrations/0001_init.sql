-- Clients and their versioned snapshots: every accepted record is kept, never overwritten.
CREATE TABLE clients (
    id              text PRIMARY KEY,
    current_version integer NOT NULL,
    status          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE client_snapshots (
    client_id    text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    version      integer NOT NULL,
    record       jsonb NOT NULL,
    content_hash text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, version)
);

-- One row per generated section. The idempotency key (client version, section, prompt and
-- schema versions) lets a retried or replayed generation reuse finished work.
CREATE TABLE sections (
    id              bigserial PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    client_id       text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    client_version  integer NOT NULL,
    document_kind   text NOT NULL,
    section_key     text NOT NULL,
    schema_version  integer NOT NULL,
    prompt_version  integer NOT NULL,
    model           text NOT NULL,
    content         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sections_client_idx ON sections (client_id, document_kind, section_key);

CREATE TABLE documents (
    id             bigserial PRIMARY KEY,
    client_id      text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    kind           text NOT NULL,
    version        integer NOT NULL,
    level          text,
    client_version integer NOT NULL,
    workflow_id    text NOT NULL,
    run_id         text,
    section_ids    bigint[] NOT NULL,
    markdown       text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (client_id, kind, version),
    -- A retried assemble activity must not store a second version.
    UNIQUE (workflow_id, run_id)
);

-- The usage ledger: one row per LLM call (and per reuse), named like the CRM's usage record.
CREATE TABLE usage_ledger (
    id                         bigserial PRIMARY KEY,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    operation                  text NOT NULL,
    model                      text NOT NULL,
    prompt_tokens              integer NOT NULL DEFAULT 0,
    cached_prompt_tokens       integer NOT NULL DEFAULT 0,
    completion_tokens          integer NOT NULL DEFAULT 0,
    total_tokens               integer NOT NULL DEFAULT 0,
    estimated_cost             numeric(14, 8) NOT NULL DEFAULT 0,
    client_id                  text,
    workflow_id                text,
    run_id                     text,
    activity_id                text,
    attempt                    integer NOT NULL DEFAULT 1,
    document_id                bigint,
    document_type              text,
    section_key                text,
    cache_hit                  boolean NOT NULL DEFAULT false,
    cache_tier                 text,
    cache_key                  text,
    request_duration_ms        integer,
    success                    boolean NOT NULL,
    error_message              text,
    routing_tier               text,
    escalated                  boolean NOT NULL DEFAULT false,
    compression_steps          text[] NOT NULL DEFAULT '{}',
    baseline_prompt_tokens     integer NOT NULL DEFAULT 0,
    baseline_completion_tokens integer NOT NULL DEFAULT 0,
    baseline_cost              numeric(14, 8) NOT NULL DEFAULT 0,
    saved_tokens               integer NOT NULL DEFAULT 0,
    saved_cost                 numeric(14, 8) NOT NULL DEFAULT 0
);
CREATE INDEX usage_ledger_created_idx ON usage_ledger (created_at);
CREATE INDEX usage_ledger_client_idx ON usage_ledger (client_id);
CREATE INDEX usage_ledger_workflow_idx ON usage_ledger (workflow_id);
