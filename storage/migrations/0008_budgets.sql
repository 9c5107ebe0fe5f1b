-- Budgets per period (the CRM's DAILY / WEEKLY / MONTHLY), global or per client, with token and
-- dollar limits, alert thresholds and optional auto-pause; what each period used and has
-- reserved; the reservations of calls in flight; and the alerts raised.

CREATE TABLE budgets (
    id                  bigserial PRIMARY KEY,
    scope               text NOT NULL CHECK (scope IN ('global', 'client')),
    client_id           text NULL,
    period              text NOT NULL CHECK (period IN ('daily', 'weekly', 'monthly')),
    token_limit         bigint NOT NULL CHECK (token_limit >= 0),
    cost_limit          numeric(14, 6) NOT NULL CHECK (cost_limit >= 0),
    thresholds          integer[] NOT NULL DEFAULT '{50,75,90,100}',
    auto_pause          boolean NOT NULL DEFAULT false,
    paused              boolean NOT NULL DEFAULT false,
    -- An auto-pause holds for the period in which the limit was reached (set here); a manual
    -- pause (NULL) holds until resumed.
    paused_period_start timestamptz NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT budgets_scope_client CHECK ((scope = 'client') = (client_id IS NOT NULL))
);
CREATE UNIQUE INDEX budgets_one_per_scope_period ON budgets (scope, coalesce(client_id, ''), period);
CREATE INDEX budgets_client_idx ON budgets (client_id);

-- The start of the period containing ``at``, in UTC (weeks start on Monday).
CREATE FUNCTION budget_period_start(period text, at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT date_trunc(CASE period WHEN 'daily' THEN 'day' WHEN 'weekly' THEN 'week' ELSE 'month' END,
                      at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
$$;

-- One row per budget and period: settled use, reservations in flight, and the highest
-- committed amount (used + reserved) seen, which is what a limit is held against.
CREATE TABLE budget_usage (
    budget_id       bigint NOT NULL REFERENCES budgets (id) ON DELETE CASCADE,
    period_start    timestamptz NOT NULL,
    tokens_used     bigint NOT NULL DEFAULT 0,
    cost_used       numeric(18, 8) NOT NULL DEFAULT 0,
    tokens_reserved bigint NOT NULL DEFAULT 0,
    cost_reserved   numeric(18, 8) NOT NULL DEFAULT 0,
    peak_tokens     bigint NOT NULL DEFAULT 0,
    peak_cost       numeric(18, 8) NOT NULL DEFAULT 0,
    PRIMARY KEY (budget_id, period_start)
);

-- A call's estimate held against every budget that applies to it, until the call settles (the
-- actual usage replaces the estimate), is released (the call failed) or expires (its worker
-- died: a stale reservation must not hold the limit forever).
CREATE TABLE budget_reservations (
    id            bigserial PRIMARY KEY,
    client_id     text NULL,
    budget_ids    bigint[] NOT NULL,
    period_starts timestamptz[] NOT NULL,
    tokens        bigint NOT NULL,
    cost          numeric(18, 8) NOT NULL,
    state         text NOT NULL DEFAULT 'reserved' CHECK (state IN ('reserved', 'settled', 'released', 'expired')),
    tokens_actual bigint NULL,
    cost_actual   numeric(18, 8) NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    closed_at     timestamptz NULL
);
CREATE INDEX budget_reservations_open_idx ON budget_reservations (created_at) WHERE state = 'reserved';

-- Alerts: a budget threshold crossed (once per budget, period and threshold) or the cache hit
-- rate under its target (once per day); dedupe_key enforces the "once".
CREATE TABLE alerts (
    id             bigserial PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('budget_threshold', 'cache_hit_rate')),
    dedupe_key     text NOT NULL UNIQUE,
    message        text NOT NULL,
    budget_id      bigint NULL REFERENCES budgets (id) ON DELETE SET NULL,
    threshold      integer NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    delivered      boolean NOT NULL DEFAULT false,
    delivery_error text NULL
);
CREATE INDEX alerts_created_idx ON alerts (created_at);
