-- A payment that completes after its buyer deleted the account is refunded through Stripe: the
-- credits would go to an account nobody can use. `refund_due` is set with the grant; the watchdog
-- asks Stripe for the refund and records when it did (the refund's own event then claws the
-- credits back, as for any refund).
ALTER TABLE purchases
    ADD COLUMN refund_due boolean NOT NULL DEFAULT false,
    ADD COLUMN refund_requested_at timestamptz;
CREATE INDEX purchases_refund_due_idx ON purchases (id) WHERE refund_due AND refund_requested_at IS NULL;
