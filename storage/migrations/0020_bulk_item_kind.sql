-- A request set's lines may be any document's sections (a deliverable month due days away goes
-- through the Batch API too), so each line says which catalogue its section key belongs to and
-- the stored context it reads (a month's digest of earlier months), as generate_section needs.
ALTER TABLE bulk_items
    ADD COLUMN document_kind text NOT NULL DEFAULT 'business_plan',
    ADD COLUMN context_ref   text;
