-- Tessera initial schema. Applied by server/datastore/migrate.ts inside one
-- transaction, so this file must not contain BEGIN/COMMIT. Times are Unix seconds.
-- Foreign keys are enforced (the store opens with PRAGMA foreign_keys=ON).

-- Single-row, store-wide revision counter. Every registration entry write bumps
-- it by one, in the same transaction as the write and its entry_events row.
CREATE TABLE store_revision (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  revision INTEGER NOT NULL CHECK (revision >= 0)
);
INSERT INTO store_revision (id, revision) VALUES (1, 0);

CREATE TABLE registration_entries (
  -- Stable paging order. AUTOINCREMENT so a deleted highest seq is never reused:
  -- a page token "after seq N" then never skips an entry created later.
  seq            INTEGER PRIMARY KEY AUTOINCREMENT,
  id             TEXT    NOT NULL UNIQUE,
  spiffe_id      TEXT    NOT NULL,
  parent_id      TEXT    NOT NULL,
  -- Canonical selector set: JSON [["type","value"],...] sorted by (type, value),
  -- no duplicates. It makes "same spiffe_id, parent_id and selector set" a plain
  -- UNIQUE index (race-free, no read-then-write check), answers exact selector
  -- matches through that index, and lets an entry be read from one row.
  -- entry_selectors holds the same set row by row for subset/superset/any.
  selectors_key  TEXT    NOT NULL,
  x509_svid_ttl  INTEGER NOT NULL CHECK (x509_svid_ttl >= 0),
  jwt_svid_ttl   INTEGER NOT NULL CHECK (jwt_svid_ttl >= 0),
  -- Ordered lists that are always read whole with their entry, so JSON arrays
  -- rather than child tables. federates_with is filtered only by admin listings
  -- (json_each scan); an indexed child table can be added by a later migration.
  dns_names      TEXT    NOT NULL DEFAULT '[]',
  federates_with TEXT    NOT NULL DEFAULT '[]',
  admin          INTEGER NOT NULL CHECK (admin IN (0, 1)),
  downstream     INTEGER NOT NULL CHECK (downstream IN (0, 1)),
  hint           TEXT    NOT NULL DEFAULT '',
  expires_at     INTEGER,
  created_at     INTEGER NOT NULL,
  revision       INTEGER NOT NULL
);
-- selectors_key leads so that exact selector matches use this index too.
CREATE UNIQUE INDEX registration_entries_identity
  ON registration_entries (selectors_key, spiffe_id, parent_id);
CREATE INDEX registration_entries_spiffe_id ON registration_entries (spiffe_id);
CREATE INDEX registration_entries_parent_id ON registration_entries (parent_id);
CREATE INDEX registration_entries_expires_at
  ON registration_entries (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE entry_selectors (
  entry_id TEXT NOT NULL REFERENCES registration_entries (id) ON DELETE CASCADE,
  type     TEXT NOT NULL,
  value    TEXT NOT NULL,
  PRIMARY KEY (entry_id, type, value)
) WITHOUT ROWID;
-- Selector matching starts from the caller's selectors.
CREATE INDEX entry_selectors_type_value ON entry_selectors (type, value, entry_id);

-- One row per entry change, so agents can sync what changed since a revision.
-- No foreign key: events outlive the entries they describe.
CREATE TABLE entry_events (
  revision      INTEGER PRIMARY KEY,
  entry_id      TEXT    NOT NULL,
  op            TEXT    NOT NULL CHECK (op IN ('create', 'update', 'delete')),
  old_spiffe_id TEXT,
  old_parent_id TEXT,
  new_spiffe_id TEXT,
  new_parent_id TEXT,
  -- not part of EntryEvent; kept so old events can be pruned by age later
  created_at    INTEGER NOT NULL
);

CREATE TABLE attested_nodes (
  seq               INTEGER PRIMARY KEY AUTOINCREMENT,
  spiffe_id         TEXT    NOT NULL UNIQUE,
  attestation_type  TEXT    NOT NULL,
  serial_number     TEXT    NOT NULL,
  expires_at        INTEGER NOT NULL,
  new_serial_number TEXT    NOT NULL DEFAULT '',
  new_expires_at    INTEGER NOT NULL DEFAULT 0,
  banned            INTEGER NOT NULL DEFAULT 0 CHECK (banned IN (0, 1)),
  created_at        INTEGER NOT NULL,
  updated_at        INTEGER NOT NULL
);
CREATE INDEX attested_nodes_attestation_type ON attested_nodes (attestation_type);

CREATE TABLE node_selectors (
  node_id TEXT NOT NULL REFERENCES attested_nodes (spiffe_id) ON DELETE CASCADE,
  type    TEXT NOT NULL,
  value   TEXT NOT NULL,
  PRIMARY KEY (node_id, type, value)
) WITHOUT ROWID;
CREATE INDEX node_selectors_type_value ON node_selectors (type, value, node_id);

-- Keyed by the sha-256 of the secret; the secret itself is never stored.
CREATE TABLE join_tokens (
  token_hash TEXT    PRIMARY KEY,
  token_id   TEXT    NOT NULL UNIQUE,
  expires_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX join_tokens_expires_at ON join_tokens (expires_at);

CREATE TABLE bundles (
  trust_domain TEXT    PRIMARY KEY,
  document     TEXT    NOT NULL,
  sequence     INTEGER NOT NULL CHECK (sequence >= 0),
  updated_at   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE ca_journal (
  -- insertion order for listing (an upsert keeps it); rowid alone could change on VACUUM
  seq                INTEGER PRIMARY KEY AUTOINCREMENT,
  id                 TEXT    NOT NULL UNIQUE,
  kind               TEXT    NOT NULL CHECK (kind IN ('x509', 'jwt')),
  key_id             TEXT    NOT NULL,
  state              TEXT    NOT NULL
                     CHECK (state IN ('prepared', 'active', 'retired', 'tainted', 'revoked')),
  certificate_der    BLOB,
  upstream_chain_der BLOB,
  public_jwk         TEXT,
  kid                TEXT    NOT NULL,
  not_before         INTEGER NOT NULL,
  not_after          INTEGER NOT NULL,
  created_at         INTEGER NOT NULL,
  updated_at         INTEGER NOT NULL
);
