-- Two-step sign-in with a time-based one-time password (RFC 6238). `users.two_factor_at` says it is
-- on (and since when); the shared secret and the last time step used (a code works once) live
-- apart from the account's row, which every request's session check reads. A row without
-- `users.two_factor_at` is a set-up waiting for its first code.
ALTER TABLE users ADD COLUMN two_factor_at timestamptz;

CREATE TABLE two_factor_secrets (
    user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret bytea NOT NULL CHECK (length(secret) = 20),
    last_step bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Single-use codes for when the authenticator is lost: only their SHA-256 is kept.
CREATE TABLE recovery_codes (
    code_hash bytea PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at timestamptz
);
CREATE INDEX recovery_codes_user_id_idx ON recovery_codes (user_id);
