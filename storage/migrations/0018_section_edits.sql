-- Operator edits that stick. A section an operator replaced is locked: every later version of its
-- document keeps the operator's content (section_id). A regeneration that writes something else
-- for it (its inputs changed) leaves that answer as a proposal, which the operator accepts (a new
-- version with it, the lock lifted) or rejects (the lock stays). base_section_id is what the
-- operator edited over: a regeneration that gives that again has nothing new to propose.
CREATE TABLE section_locks (
    client_id       text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    document_kind   text NOT NULL,
    document_key    text NOT NULL,
    section_key     text NOT NULL,
    section_id      bigint NOT NULL REFERENCES sections (id) ON DELETE CASCADE,
    base_section_id bigint REFERENCES sections (id) ON DELETE SET NULL,
    locked_by       text,
    locked_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, document_kind, document_key, section_key)
);

CREATE TABLE section_proposals (
    id                  bigserial PRIMARY KEY,
    client_id           text NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    document_kind       text NOT NULL,
    document_key        text NOT NULL,
    section_key         text NOT NULL,
    locked_section_id   bigint NOT NULL REFERENCES sections (id) ON DELETE CASCADE,
    proposed_section_id bigint NOT NULL REFERENCES sections (id) ON DELETE CASCADE,
    state               text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'accepted', 'rejected')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    decided_at          timestamptz,
    decided_by          text,
    -- A retried assemble, or the same answer again, proposes once.
    UNIQUE (client_id, document_kind, document_key, section_key, proposed_section_id)
);
CREATE INDEX section_proposals_client_idx ON section_proposals (client_id, state);
