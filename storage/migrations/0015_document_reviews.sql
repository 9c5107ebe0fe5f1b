-- Review states on every document version (draft -> approved | changes_requested), and who set
-- them when. A new version always starts as a draft; an approved version is never changed in
-- place (new content makes a new version), and only the newest version of a document can be
-- reviewed (storage.documents.set_review refuses a superseded one).
ALTER TABLE documents ADD COLUMN review_state text NOT NULL DEFAULT 'draft'
    CHECK (review_state IN ('draft', 'approved', 'changes_requested'));
ALTER TABLE documents ADD COLUMN reviewed_at timestamptz;
ALTER TABLE documents ADD COLUMN reviewed_by text;
ALTER TABLE documents ADD COLUMN review_note text;

-- Every review decision, in order (the documents row holds the latest).
CREATE TABLE document_reviews (
    id          bigserial PRIMARY KEY,
    document_id bigint NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    state       text NOT NULL,
    reviewed_by text,
    note        text,
    source      text NOT NULL,      -- cli | api | crm
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX document_reviews_document_idx ON document_reviews (document_id);
