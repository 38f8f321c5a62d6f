DROP INDEX credit_entries_purchase_grant_key;
ALTER TABLE credit_entries DROP CONSTRAINT credit_entries_purchase_fkey;
DROP TABLE stripe_events;
DROP TABLE stripe_payment_adjustments;
DROP TABLE purchases;
