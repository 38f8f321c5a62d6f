-- The order a person's ledger entries were applied in. The list of transactions was sorted by id,
-- a UUIDv7 the server mints, sometimes before the entry's balance lock: a day's first generation
-- minted its reservation's id, found the day's grant due, and was applied after the grant, yet
-- sorted before it, so the running balances (free_after, purchased_after) did not follow on from
-- one entry to the next. Every entry is inserted after its balance row is locked (the UPDATE that
-- computes free_after takes the lock), so a sequence drawn at insert counts a person's entries in
-- the order they were applied. Existing rows are numbered in the order they lie in the table,
-- which for an append-only table is about the order they were written.
ALTER TABLE credit_entries ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
DROP INDEX credit_entries_user_id_idx;
CREATE INDEX credit_entries_user_seq_idx ON credit_entries (user_id, seq DESC);
