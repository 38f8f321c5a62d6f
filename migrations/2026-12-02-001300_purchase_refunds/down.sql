DROP INDEX purchases_refund_due_idx;
ALTER TABLE purchases DROP COLUMN refund_requested_at, DROP COLUMN refund_due;
