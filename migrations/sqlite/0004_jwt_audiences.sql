-- JWT audience allowlists on registration entries (issue: helper and workload identity
-- federation): a JSON array of exact audiences or prefixes ending in `*`; '[]' = any
-- audience, which is what every existing entry keeps.
ALTER TABLE registration_entries ADD COLUMN jwt_audiences TEXT NOT NULL DEFAULT '[]';
