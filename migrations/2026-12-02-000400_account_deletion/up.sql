-- An account its owner deleted: marked (and shut) at once, then erased (its images, collections,
-- likes, prompts) by the request or, if that was cut short, by the watchdog, which takes up every
-- account marked and not yet erased. The ledger and purchases stay: they are the money's record.
ALTER TABLE users ADD COLUMN deleted_at timestamptz, ADD COLUMN erased_at timestamptz;
CREATE INDEX users_erasure_pending_idx ON users (deleted_at)
    WHERE deleted_at IS NOT NULL AND erased_at IS NULL;
