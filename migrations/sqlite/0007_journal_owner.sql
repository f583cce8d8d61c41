-- Which server instance holds each journal slot's key, so several servers can share a
-- database (PostgreSQL) and each rotate only its own keys while the bundle holds all.
-- '' = a single server's slots from before; that server claims them at its next start.
ALTER TABLE ca_journal ADD COLUMN owner TEXT NOT NULL DEFAULT '';
