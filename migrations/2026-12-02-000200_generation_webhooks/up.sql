-- `generation.completed` for API clients: a submission may name a `webhook_url`, and once the
-- generation ends (succeeded, failed or canceled) Easel POSTs it there, signed with the owner's
-- secret, retrying with backoff. Kept beside the generation, as its settings are (the table is at
-- diesel's 32 columns), and written in the submission's transaction.
CREATE TABLE generation_webhooks (
    generation_id uuid PRIMARY KEY REFERENCES generations (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id),
    url text NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- When the next attempt may start (once the generation has ended); null once delivered or
    -- given up. An attempt under way holds it 150 s ahead, so a process that dies mid-delivery
    -- leaves it to be tried again.
    next_attempt_at timestamptz DEFAULT now(),
    delivered_at timestamptz,
    -- The receiver's HTTP status on the last attempt (null: no answer), and what went wrong.
    last_status integer,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (delivered_at IS NULL OR next_attempt_at IS NULL)
);
-- The deliverer's look-up: pending webhooks in time order (few: at most the generations in flight
-- and the deliveries waiting to be retried).
CREATE INDEX generation_webhooks_pending ON generation_webhooks (next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;

-- The secret each account's webhooks are signed with (Standard Webhooks: `whsec_` and base64 of
-- 32 random bytes), made when first asked for or first needed.
CREATE TABLE webhook_secrets (
    user_id uuid PRIMARY KEY REFERENCES users (id),
    secret text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
