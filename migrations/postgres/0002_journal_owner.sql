-- Which server instance holds each journal slot's key (see migrations/sqlite/0007).
ALTER TABLE ca_journal ADD COLUMN owner TEXT NOT NULL DEFAULT '';
