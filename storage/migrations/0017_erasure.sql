-- Erasing a client (storage/erasure.py). archived_at: since when the CRM has the client archived
-- (set by client.archived, cleared by client.activated), which the retention period counts from.
-- client_erasures: one row per erasure, under the anonymous id the client's usage figures now
-- carry; it holds no client id, so the figures cannot be tied back to the person.
ALTER TABLE clients ADD COLUMN archived_at timestamptz;
-- A client erased under legal hold keeps its documents (and this row, which they reference).
ALTER TABLE clients ADD COLUMN erased_at timestamptz;

CREATE TABLE client_erasures (
    anon_id    text PRIMARY KEY,
    erased_at  timestamptz NOT NULL DEFAULT now(),
    legal_hold boolean NOT NULL,
    reason     text NOT NULL,       -- operator | retention
    removed    jsonb NOT NULL       -- rows removed or anonymised, per table
);

-- Work in flight when a client is erased (a section whose workflow was just terminated) may still
-- write a usage row or a reservation. For a short while after an erasure (storage.erasure:
-- TOMBSTONE_HOURS, longer than any activity attempt runs) such rows are put under the client's
-- anonymous id as they are written; then the tombstone, the last place holding the client id,
-- is deleted. A client stored again under the same id lifts its tombstone.
CREATE TABLE erased_clients (
    client_id text PRIMARY KEY,
    anon_id   text NOT NULL,
    erased_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION usage_of_erased_client() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    anon text;
BEGIN
    IF NEW.client_id IS NOT NULL THEN
        SELECT e.anon_id INTO anon FROM erased_clients e WHERE e.client_id = NEW.client_id;
        IF anon IS NOT NULL THEN
            IF TG_TABLE_NAME = 'usage_ledger' THEN
                NEW.workflow_id := replace(NEW.workflow_id, NEW.client_id, anon);
                NEW.error_message := NULL;
            END IF;
            NEW.client_id := anon;
        END IF;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER usage_ledger_erased_client BEFORE INSERT ON usage_ledger
    FOR EACH ROW EXECUTE FUNCTION usage_of_erased_client();
CREATE TRIGGER budget_reservations_erased_client BEFORE INSERT ON budget_reservations
    FOR EACH ROW EXECUTE FUNCTION usage_of_erased_client();

CREATE FUNCTION client_stored_again() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM erased_clients WHERE client_id = NEW.id;
    RETURN NEW;
END $$;

CREATE TRIGGER clients_stored_again AFTER INSERT ON clients
    FOR EACH ROW EXECUTE FUNCTION client_stored_again();
