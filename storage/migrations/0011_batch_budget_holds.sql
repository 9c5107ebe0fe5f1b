-- Batch API submissions hold their estimate against the budgets while the batch runs (up to the
-- provider's 24 h window), longer than a direct call's reservation lives before it counts as
-- abandoned: hold_until says until when. bulk_budget_holds ties a request set's holds (one per
-- client) to it, so collecting the batch settles them with what was billed.
ALTER TABLE budget_reservations ADD COLUMN hold_until timestamptz NULL;

CREATE TABLE bulk_budget_holds (
    ref            text NOT NULL REFERENCES bulk_requests (ref) ON DELETE CASCADE,
    client_id      text NOT NULL,
    reservation_id bigint NOT NULL REFERENCES budget_reservations (id) ON DELETE CASCADE,
    PRIMARY KEY (ref, client_id)
);
