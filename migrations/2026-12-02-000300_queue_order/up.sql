-- Jobs due at the same moment (a batch of submissions shares its transaction's now()) are taken in
-- the order they were submitted: ids are UUIDv7, so the id breaks the tie. The same order lets a
-- waiting generation say how many jobs are ahead of it.
DROP INDEX generations_due_idx;
CREATE INDEX generations_due_idx ON generations (run_after, id) WHERE status = 'queued';

-- Support looks up failures by their code; only failed generations have one, so the index costs
-- nothing for the rest.
CREATE INDEX generations_error_code_idx ON generations (error_code, id DESC)
    WHERE error_code IS NOT NULL;
