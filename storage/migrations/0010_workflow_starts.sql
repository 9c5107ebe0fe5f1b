-- The webhook intake's outbox: workflow starts (and cancels) accepted from the CRM, committed
-- before the CRM gets its 202, then sent to Temporal by the API's starter (crm/starter.py),
-- oldest first and in order per workflow. Starts are idempotent (deterministic workflow ids), so
-- a row sent twice after a crash does no harm; a row never sent is the only loss, and cannot be.
CREATE TABLE workflow_starts (
    id          bigserial PRIMARY KEY,
    workflow_id text NOT NULL,
    action      text NOT NULL,      -- plan | deliverable | announce | cancel
    request     jsonb NOT NULL,     -- what the action needs (the request model, as JSON)
    created_at  timestamptz NOT NULL DEFAULT now(),
    done_at     timestamptz,
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text
);
CREATE INDEX workflow_starts_pending_idx ON workflow_starts (id) WHERE done_at IS NULL;
