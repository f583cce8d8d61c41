-- Re-canonicalizes selectors_key in code point order (the byte order of UTF-8, and
-- SQLite's BINARY collation). Before this version the store sorted a selector set
-- by UTF-16 code units, which puts an astral character (U+10000 and above) before
-- U+E000..U+FFFF; common/selector.ts, the agent and the admin API sort by code
-- point. Only sets holding such characters change. json_array renders strings
-- exactly as JavaScript's JSON.stringify does, so every other key stays byte-equal.
-- entry_selectors holds the same set row by row and is the source here.
UPDATE registration_entries
SET selectors_key = (
  SELECT json_group_array(json_array(s.type, s.value) ORDER BY s.type, s.value)
  FROM entry_selectors s WHERE s.entry_id = registration_entries.id
);
