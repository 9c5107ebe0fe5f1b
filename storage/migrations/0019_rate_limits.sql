-- Provider rate limits shared by every worker: each LLM call in the last minute, per model, with
-- the tokens it holds (its estimate until settled, then what it was billed). A call goes only when
-- the window's tokens and requests plus its own stay within the model's per-minute limits.
-- Rows older than the window are deleted by the next reservation of the model.
CREATE TABLE rate_limit_calls (
    id         bigserial PRIMARY KEY,
    model      text NOT NULL,
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    tokens     bigint NOT NULL CHECK (tokens >= 0),
    settled    boolean NOT NULL DEFAULT false
);
CREATE INDEX rate_limit_calls_model_at ON rate_limit_calls (model, at);
