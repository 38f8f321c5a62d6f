-- Links to set a new password, sent by email. Only the token's SHA-256 is kept, as for refresh
-- tokens: a copy of the table resets nobody's password. A link works once, within its hour.
CREATE TABLE password_resets (
    token_hash bytea PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX password_resets_user_id_idx ON password_resets (user_id);
