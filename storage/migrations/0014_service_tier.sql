-- The service tier each billed call was served on (standard, flex, batch), so the ledger prices
-- it as billed and the usage report groups spend by tier. Rows before this were standard calls,
-- except Batch API lines.
ALTER TABLE usage_ledger ADD COLUMN IF NOT EXISTS service_tier text;
UPDATE usage_ledger SET service_tier = CASE WHEN operation = 'batch_section' THEN 'batch' ELSE 'standard' END
WHERE service_tier IS NULL AND NOT cache_hit AND operation <> 'embed';
