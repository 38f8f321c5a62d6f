DROP INDEX generations_error_code_idx;
DROP INDEX generations_due_idx;
CREATE INDEX generations_due_idx ON generations (run_after) WHERE status = 'queued';
