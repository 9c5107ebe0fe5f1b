"""CRM intake: the CRM's signed webhooks, answered fast and idempotently."""
