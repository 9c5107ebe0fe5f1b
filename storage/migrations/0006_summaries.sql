-- Message threads between a client and the studio, and their summaries (DESIGN.md §1).
CREATE TABLE message_threads (
    client_id  text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    thread_id  text NOT NULL,
    subject    text,
    -- The seq of the thread's last message: appends take the next numbers under the row lock.
    last_seq   integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, thread_id)
);

-- Messages in arrival order (seq 1, 2, ...). The CRM's message id makes an append idempotent:
-- the same message delivered twice is stored once.
CREATE TABLE thread_messages (
    client_id  text NOT NULL,
    thread_id  text NOT NULL,
    seq        integer NOT NULL,
    message_id text NOT NULL,
    author     text NOT NULL CHECK (author IN ('client', 'studio')),
    text       text NOT NULL,
    sent_at    timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, thread_id, seq),
    UNIQUE (client_id, thread_id, message_id),
    FOREIGN KEY (client_id, thread_id) REFERENCES message_threads (client_id, thread_id) ON DELETE CASCADE
);

-- Versions of a thread's summary; each covers the thread's messages up to through_seq. The next
-- version is written from the previous one plus the messages after it, never the whole thread.
CREATE TABLE thread_summaries (
    id                bigserial PRIMARY KEY,
    client_id         text NOT NULL,
    thread_id         text NOT NULL,
    version           integer NOT NULL,
    from_seq          integer NOT NULL,
    through_seq       integer NOT NULL,
    schema_version    integer NOT NULL,
    prompt_version    integer NOT NULL,
    content           jsonb NOT NULL,
    model             text NOT NULL,
    prompt_tokens     integer NOT NULL DEFAULT 0,
    completion_tokens integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (client_id, thread_id, version),
    -- A retried activity stores the summary of the same messages once.
    UNIQUE (client_id, thread_id, through_seq, schema_version),
    FOREIGN KEY (client_id, thread_id) REFERENCES message_threads (client_id, thread_id) ON DELETE CASCADE
);

-- Versions of a client's summary; inputs_hash covers the client context and the thread summary
-- versions it was written from: when the latest version's hash matches, nothing is summarised.
CREATE TABLE client_summaries (
    id                 bigserial PRIMARY KEY,
    client_id          text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    version            integer NOT NULL,
    client_version     integer NOT NULL,
    thread_summary_ids bigint[] NOT NULL,
    inputs_hash        text NOT NULL,
    schema_version     integer NOT NULL,
    prompt_version     integer NOT NULL,
    content            jsonb NOT NULL,
    model              text NOT NULL,
    prompt_tokens      integer NOT NULL DEFAULT 0,
    completion_tokens  integer NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (client_id, version)
);
