-- Federation relationships (issue #4): which foreign trust domains this server
-- fetches bundles from, where, and how it authenticates the endpoint. The fetched
-- bundles themselves live in `bundles`, keyed by the foreign trust domain, so a
-- relationship can be deleted and re-created without losing the last good bundle.

CREATE TABLE federation_relationships (
  trust_domain        TEXT    PRIMARY KEY,
  bundle_endpoint_url TEXT    NOT NULL,
  profile             TEXT    NOT NULL CHECK (profile IN ('https_web', 'https_spiffe')),
  -- required for https_spiffe (the endpoint's X.509-SVID must carry exactly this
  -- ID), meaningless for https_web
  endpoint_spiffe_id  TEXT,
  created_at          INTEGER NOT NULL,
  updated_at          INTEGER NOT NULL,
  -- outcome of the last fetch attempt; last_error is NULL after a success
  last_refresh_at     INTEGER,
  last_error          TEXT,
  CHECK ((profile = 'https_spiffe') = (endpoint_spiffe_id IS NOT NULL))
) WITHOUT ROWID;
