-- The answer cache: exact entries (one client's answer, by key or by embedding similarity) and
-- template entries (client-independent). An entry's key is a sha256 hex computed by the caller
-- from everything that shapes the answer (client scope included), so two clients never share one.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE cache_entries (
    key               text PRIMARY KEY,
    tier              text NOT NULL CHECK (tier IN ('exact', 'template')),
    -- Tenant scope: NULL for template entries, and only for them.
    client_id         text NULL,
    document_kind     text NOT NULL,
    section_key       text NOT NULL,
    schema_version    integer NOT NULL,
    prompt_version    integer NOT NULL,
    section_id        bigint NULL REFERENCES sections (id) ON DELETE SET NULL,
    content           jsonb NOT NULL,   -- the validated section JSON
    inputs            jsonb NOT NULL,   -- the projected field -> value map it was made from
    model             text NOT NULL,
    completion_tokens integer NOT NULL,
    cost              numeric(14, 8) NOT NULL,  -- what generating it cost: what a hit saves
    embedding         vector(256) NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    -- A client update made this answer out of date: never served as is again, but still a
    -- base the semantic tier may revise.
    stale             boolean NOT NULL DEFAULT false,
    CONSTRAINT cache_entries_tenant_scope CHECK ((tier = 'template') = (client_id IS NULL))
);

-- Semantic lookups (rows without an embedding are not indexed).
CREATE INDEX cache_entries_embedding_idx ON cache_entries USING hnsw (embedding vector_cosine_ops);
-- Per-client lookups, invalidation and purges; also the pre-filter of a semantic lookup.
CREATE INDEX cache_entries_scope_idx ON cache_entries (client_id, document_kind, section_key);
CREATE INDEX cache_entries_expiry_idx ON cache_entries (expires_at);

-- What changes on every hit lives beside the entry, not in it: an update that changes an indexed
-- column (last_used_at, for LRU) writes a new row version into every index of its table, and
-- in cache_entries that includes the HNSW graph, where one insert costs ~5 ms at 100k entries.
-- Here a hit costs two small btree inserts. One row per entry, written by the same statement.
CREATE TABLE cache_usage (
    key          text PRIMARY KEY REFERENCES cache_entries (key) ON DELETE CASCADE,
    last_used_at timestamptz NOT NULL DEFAULT now(),
    hits         integer NOT NULL DEFAULT 0
);
CREATE INDEX cache_usage_lru_idx ON cache_usage (last_used_at);

-- Counters: 'entries' (maintained by the triggers below, so eviction needs no count(*)) and
-- 'evictions' (LRU evictions made by storage.cache.put).
CREATE TABLE cache_counters (
    name  text PRIMARY KEY,
    value bigint NOT NULL
);
INSERT INTO cache_counters (name, value) VALUES ('entries', 0), ('evictions', 0);

CREATE FUNCTION cache_entries_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    SELECT count(*) INTO n FROM new_rows;  -- only rows actually inserted (not upsert updates)
    IF n > 0 THEN
        UPDATE cache_counters SET value = value + n WHERE name = 'entries';
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION cache_entries_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    SELECT count(*) INTO n FROM old_rows;
    IF n > 0 THEN
        UPDATE cache_counters SET value = value - n WHERE name = 'entries';
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION cache_entries_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cache_counters SET value = 0 WHERE name = 'entries';
    RETURN NULL;
END $$;

CREATE TRIGGER cache_entries_count_insert AFTER INSERT ON cache_entries
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cache_entries_inserted();
CREATE TRIGGER cache_entries_count_delete AFTER DELETE ON cache_entries
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cache_entries_deleted();
CREATE TRIGGER cache_entries_count_truncate AFTER TRUNCATE ON cache_entries
    FOR EACH STATEMENT EXECUTE FUNCTION cache_entries_truncated();
