-- Tessera schema for PostgreSQL: the same tables as migrations/sqlite/0001..0006, in
-- one file because the PostgreSQL store starts at that schema. Applied by
-- server/datastore/postgres/migrate.ts inside one transaction under an advisory
-- lock (several servers may start at once), so no BEGIN/COMMIT here.
-- Times are Unix seconds (BIGINT). Text that is compared or sorted uses COLLATE "C"
-- (byte order of UTF-8 = code point order, as common/selector.ts sorts).

-- Single-row, store-wide revision counter. Every entry write takes this row's lock
-- (UPDATE ... RETURNING) in its transaction, so revisions are handed out in commit
-- order across every server on the database: an agent that has seen revision N
-- can never later miss an event below N.
CREATE TABLE store_revision (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  revision BIGINT  NOT NULL CHECK (revision >= 0)
);
INSERT INTO store_revision (id, revision) VALUES (1, 0);

CREATE TABLE registration_entries (
  -- stable paging order; a sequence never hands out a number twice
  seq            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id             TEXT    NOT NULL UNIQUE,
  spiffe_id      TEXT    COLLATE "C" NOT NULL,
  parent_id      TEXT    COLLATE "C" NOT NULL,
  -- canonical selector set, JSON [["type","value"],...] in code point order (see
  -- server/datastore/validation.ts): "same entry" is a unique index, race-free
  selectors_key  TEXT    COLLATE "C" NOT NULL,
  x509_svid_ttl  INTEGER NOT NULL CHECK (x509_svid_ttl >= 0),
  jwt_svid_ttl   INTEGER NOT NULL CHECK (jwt_svid_ttl >= 0),
  -- ordered lists read whole with their entry: JSON text, as in SQLite
  dns_names      TEXT    NOT NULL DEFAULT '[]',
  federates_with TEXT    NOT NULL DEFAULT '[]',
  hint           TEXT    NOT NULL DEFAULT '',
  jwt_audiences  TEXT    NOT NULL DEFAULT '[]',
  jwt_jti        BOOLEAN NOT NULL DEFAULT false,
  expires_at     BIGINT,
  created_at     BIGINT  NOT NULL,
  revision       BIGINT  NOT NULL
);
CREATE UNIQUE INDEX registration_entries_identity ON registration_entries (selectors_key, spiffe_id, parent_id);
CREATE INDEX registration_entries_spiffe_id ON registration_entries (spiffe_id);
CREATE INDEX registration_entries_parent_id ON registration_entries (parent_id);
CREATE INDEX registration_entries_expires_at ON registration_entries (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE entry_selectors (
  entry_id TEXT NOT NULL REFERENCES registration_entries (id) ON DELETE CASCADE,
  type     TEXT COLLATE "C" NOT NULL,
  value    TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (entry_id, type, value)
);
CREATE INDEX entry_selectors_type_value ON entry_selectors (type, value, entry_id);

-- One row per entry change, so agents sync only what changed. No foreign key.
CREATE TABLE entry_events (
  revision      BIGINT PRIMARY KEY,
  entry_id      TEXT   NOT NULL,
  op            TEXT   NOT NULL CHECK (op IN ('create', 'update', 'delete')),
  old_spiffe_id TEXT,
  old_parent_id TEXT,
  new_spiffe_id TEXT,
  new_parent_id TEXT,
  created_at    BIGINT NOT NULL
);

CREATE TABLE attested_nodes (
  seq               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  spiffe_id         TEXT    COLLATE "C" NOT NULL UNIQUE,
  attestation_type  TEXT    NOT NULL,
  serial_number     TEXT    NOT NULL,
  expires_at        BIGINT  NOT NULL,
  new_serial_number TEXT    NOT NULL DEFAULT '',
  new_expires_at    BIGINT  NOT NULL DEFAULT 0,
  banned            BOOLEAN NOT NULL DEFAULT false,
  created_at        BIGINT  NOT NULL,
  updated_at        BIGINT  NOT NULL
);
CREATE INDEX attested_nodes_attestation_type ON attested_nodes (attestation_type);

CREATE TABLE node_selectors (
  node_id TEXT NOT NULL REFERENCES attested_nodes (spiffe_id) ON DELETE CASCADE,
  type    TEXT COLLATE "C" NOT NULL,
  value   TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (node_id, type, value)
);
CREATE INDEX node_selectors_type_value ON node_selectors (type, value, node_id);

-- Keyed by the sha-256 of the secret; the secret itself is never stored. Consuming
-- is one DELETE ... RETURNING: of several servers racing, exactly one gets the row.
CREATE TABLE join_tokens (
  token_hash TEXT   PRIMARY KEY,
  token_id   TEXT   NOT NULL UNIQUE,
  expires_at BIGINT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX join_tokens_expires_at ON join_tokens (expires_at);

CREATE TABLE bundles (
  trust_domain TEXT   COLLATE "C" PRIMARY KEY,
  document     TEXT   NOT NULL,
  sequence     BIGINT NOT NULL CHECK (sequence >= 0),
  updated_at   BIGINT NOT NULL
);

-- Public halves only: certificates and public JWKs. Private keys never enter the
-- database; each server holds its own in its own key manager.
CREATE TABLE ca_journal (
  seq                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id                 TEXT   NOT NULL UNIQUE,
  kind               TEXT   NOT NULL CHECK (kind IN ('x509', 'jwt')),
  key_id             TEXT   NOT NULL,
  state              TEXT   NOT NULL CHECK (state IN ('prepared', 'active', 'retired', 'tainted', 'revoked')),
  certificate_der    BYTEA,
  upstream_chain_der BYTEA,
  public_jwk         TEXT,
  kid                TEXT   NOT NULL,
  not_before         BIGINT NOT NULL,
  not_after          BIGINT NOT NULL,
  created_at         BIGINT NOT NULL,
  updated_at         BIGINT NOT NULL
);

CREATE TABLE federation_relationships (
  trust_domain        TEXT   COLLATE "C" PRIMARY KEY,
  bundle_endpoint_url TEXT   NOT NULL,
  profile             TEXT   NOT NULL CHECK (profile IN ('https_web', 'https_spiffe')),
  endpoint_spiffe_id  TEXT,
  created_at          BIGINT NOT NULL,
  updated_at          BIGINT NOT NULL,
  last_refresh_at     BIGINT,
  last_error          TEXT,
  CHECK ((profile = 'https_spiffe') = (endpoint_spiffe_id IS NOT NULL))
);

CREATE TABLE issued_svids (
  holder       TEXT   PRIMARY KEY,
  authority_id TEXT   NOT NULL,
  expires_at   BIGINT NOT NULL
);
CREATE INDEX issued_svids_by_authority ON issued_svids (authority_id, expires_at);
CREATE INDEX issued_svids_by_expiry ON issued_svids (expires_at);
