-- Entries whose JWT-SVIDs carry a unique `jti` (for relying parties that refuse a
-- replayed token, such as a model provider's token endpoint); the agent then mints
-- one per request instead of caching. 0 = no jti, as every existing entry keeps.
ALTER TABLE registration_entries ADD COLUMN jwt_jti INTEGER NOT NULL DEFAULT 0;
