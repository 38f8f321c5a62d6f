-- A change of an account's email waits for the new address to confirm it: the link mailed there
-- carries a random token of which only the SHA-256 is kept. It works once, within a day.
CREATE TABLE email_changes (
    token_hash bytea PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    new_email text NOT NULL CHECK (new_email = lower(new_email)),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX email_changes_user_id_idx ON email_changes (user_id);
