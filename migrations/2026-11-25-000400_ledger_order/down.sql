DROP INDEX credit_entries_user_seq_idx;
ALTER TABLE credit_entries DROP COLUMN seq;
CREATE INDEX credit_entries_user_id_idx ON credit_entries (user_id, id DESC);
