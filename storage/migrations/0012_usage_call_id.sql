-- One id per billed call or served hit, so writing the same row again (a write retried after a
-- lost acknowledgement, a row recovered from the answer spool by a later attempt) adds nothing.
-- Rows written before have none; NULLs never conflict.
ALTER TABLE usage_ledger ADD COLUMN call_id text;
CREATE UNIQUE INDEX usage_ledger_call_id_idx ON usage_ledger (call_id);
