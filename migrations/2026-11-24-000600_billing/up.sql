-- Purchases of credit packages through Stripe Checkout, and Stripe events applied once each.
CREATE TABLE purchases (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    package_id text NOT NULL,
    -- what the package granted when bought (credits + bonus), from our own package file
    credits bigint NOT NULL CHECK (credits > 0),
    amount_cents bigint NOT NULL CHECK (amount_cents >= 0),
    currency text NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'paid', 'expired', 'failed')),
    stripe_session_id text,
    stripe_payment_intent text,
    -- what Stripe has told us, kept monotonic: refunds only grow, a dispute is never undone here
    refunded_cents bigint NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0),
    disputed boolean NOT NULL DEFAULT false,
    -- what the ledger holds for it
    credits_granted bigint NOT NULL DEFAULT 0,
    credits_clawed_back bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    paid_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
SELECT easel_manage_updated_at('purchases');
CREATE UNIQUE INDEX purchases_stripe_session_key ON purchases (stripe_session_id);
CREATE INDEX purchases_payment_intent_idx ON purchases (stripe_payment_intent);
CREATE INDEX purchases_user_idx ON purchases (user_id, id DESC);

-- Refunds and disputes Stripe reported for a payment we could not match to a purchase yet (they
-- can arrive before the checkout's completion); applied when the purchase learns its payment.
CREATE TABLE stripe_payment_adjustments (
    payment_intent text PRIMARY KEY,
    refunded_cents bigint NOT NULL DEFAULT 0,
    disputed boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE stripe_events (
    -- Stripe's event id: stored in the same transaction as the event's effect, so it applies once
    id text PRIMARY KEY,
    event_type text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE credit_entries
    ADD CONSTRAINT credit_entries_purchase_fkey FOREIGN KEY (purchase_id) REFERENCES purchases (id);
-- A purchase is granted at most once, whoever tries.
CREATE UNIQUE INDEX credit_entries_purchase_grant_key ON credit_entries (purchase_id) WHERE kind = 'purchase';
