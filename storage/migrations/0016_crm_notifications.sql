-- The CRM outbox: webhooks telling the CRM a document was completed, failed or needs review.
-- A row is committed by the activity that decides it (assemble, or the workflow's failure
-- step), then POSTed by a sender (activities/crm_notify.py) until the CRM answers 2xx; a restart
-- loses nothing. delivery_id is the X-Webhook-ID of every attempt, and unique: a retried
-- activity enqueues once, and the CRM can drop a repeat.
CREATE TABLE crm_notifications (
    id              bigserial PRIMARY KEY,
    delivery_id     text NOT NULL UNIQUE,
    event           text NOT NULL,
    client_id       text NOT NULL,
    payload         jsonb NOT NULL,   -- the envelope's data: ids, versions, states; no personal data
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    delivered_at    timestamptz,
    last_error      text
);
CREATE INDEX crm_notifications_pending_idx ON crm_notifications (next_attempt_at) WHERE delivered_at IS NULL;
