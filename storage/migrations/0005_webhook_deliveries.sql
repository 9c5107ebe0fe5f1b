-- One row per CRM webhook delivery (X-Webhook-ID): a repeated delivery gets the first answer.
CREATE TABLE webhook_deliveries (
    id          text PRIMARY KEY,
    event       text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    status_code integer NOT NULL,
    response    jsonb NOT NULL
);
