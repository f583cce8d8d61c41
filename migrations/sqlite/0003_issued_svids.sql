-- Issued SVIDs by signer (issue #4, key rotation): which CA or JWT key signed the
-- SVIDs agents currently hold, so that revoking a tainted key can say how many
-- SVIDs still depend on it. One row per holder — (agent, entry) for X.509-SVIDs,
-- (agent, entry, audience set) for JWT-SVIDs, the agent for its own SVID — the
-- latest issuance replacing the previous one; rows are pruned once expired.

CREATE TABLE issued_svids (
  holder       TEXT    PRIMARY KEY,
  -- ca_journal.id of the signer; no foreign key: a pruned slot's rows expire anyway
  authority_id TEXT    NOT NULL,
  expires_at   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX issued_svids_by_authority ON issued_svids (authority_id, expires_at);
CREATE INDEX issued_svids_by_expiry ON issued_svids (expires_at);
