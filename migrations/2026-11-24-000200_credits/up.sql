-- The credit ledger: append-only entries, and a per-user balance kept equal to their sum by updating
-- both in one transaction. `easel admin verify-ledger` recomputes every balance from the entries.

CREATE TABLE credit_balances (
    user_id uuid PRIMARY KEY REFERENCES users (id),
    -- today's free credits: never negative
    free bigint NOT NULL DEFAULT 0 CHECK (free >= 0),
    -- purchased (and bonus) credits, which never expire; negative only after a claw-back, and then
    -- the account cannot spend until it is back at zero or above
    purchased bigint NOT NULL DEFAULT 0,
    -- the UTC day of the last daily grant
    free_granted_on date,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE credit_entries (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    kind text NOT NULL CHECK (kind IN (
        'signup_bonus', 'daily_grant', 'daily_expiry', 'reservation', 'refund',
        'purchase', 'claw_back', 'admin_grant', 'admin_deduct'
    )),
    free_delta bigint NOT NULL,
    purchased_delta bigint NOT NULL,
    free_after bigint NOT NULL,
    purchased_after bigint NOT NULL,
    generation_id uuid,
    purchase_id uuid,
    -- a refund names the reservation it returns
    refund_of uuid REFERENCES credit_entries (id),
    admin_id uuid REFERENCES users (id),
    reason text,
    grant_day date,
    idempotency_key text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (free_delta <> 0 OR purchased_delta <> 0),
    CHECK ((kind = 'refund') = (refund_of IS NOT NULL)),
    CHECK (kind NOT IN ('admin_grant', 'admin_deduct') OR (admin_id IS NOT NULL AND reason IS NOT NULL))
);
-- A reservation is refunded at most once; a day's grant is made at most once.
CREATE UNIQUE INDEX credit_entries_refund_of_key ON credit_entries (refund_of) WHERE kind = 'refund';
CREATE UNIQUE INDEX credit_entries_daily_grant_key ON credit_entries (user_id, grant_day) WHERE kind = 'daily_grant';
CREATE UNIQUE INDEX credit_entries_idempotency_key ON credit_entries (user_id, kind, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX credit_entries_user_id_idx ON credit_entries (user_id, id DESC);
CREATE INDEX credit_entries_generation_id_idx ON credit_entries (generation_id) WHERE generation_id IS NOT NULL;

-- Append-only, enforced by the database itself: corrections are new entries.
CREATE FUNCTION easel_credit_entries_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'credit_entries is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER credit_entries_append_only BEFORE UPDATE OR DELETE ON credit_entries
    FOR EACH ROW EXECUTE PROCEDURE easel_credit_entries_append_only();

-- Responses of creating POSTs sent with an Idempotency-Key, replayed for 24 hours.
CREATE TABLE idempotency_keys (
    user_id uuid NOT NULL REFERENCES users (id),
    key text NOT NULL,
    method text NOT NULL,
    path text NOT NULL,
    request_digest bytea NOT NULL,
    -- NULL while the first request is still running
    status smallint,
    response_body bytea,
    response_content_type text,
    response_location text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
