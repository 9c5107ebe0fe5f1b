-- Which sections a document version changed against the previous one, and why.
ALTER TABLE documents ADD COLUMN changes jsonb NOT NULL DEFAULT '[]';
