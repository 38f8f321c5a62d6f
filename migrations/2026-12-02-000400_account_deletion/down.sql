DROP INDEX users_erasure_pending_idx;
ALTER TABLE users DROP COLUMN erased_at, DROP COLUMN deleted_at;
