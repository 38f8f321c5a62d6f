-- People and programs: accounts, login sessions (refresh-token families), API keys, and the identity
-- provider's webhook deliveries already applied.

CREATE TABLE users (
    id uuid PRIMARY KEY,
    -- stored lower-cased, so uniqueness and look-ups ignore case
    email text CHECK (email = lower(email)),
    username text NOT NULL CHECK (username ~ '^[a-z0-9_-]{3,32}$'),
    display_name text,
    bio text,
    -- argon2id PHC string; NULL for accounts that sign in through the external identity provider
    password_hash text,
    role text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    -- `sub` at the external identity provider
    external_subject text,
    disabled_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE UNIQUE INDEX users_username_key ON users (username);
CREATE UNIQUE INDEX users_external_subject_key ON users (external_subject);
SELECT easel_manage_updated_at('users');

-- One row per login: every refresh token issued from it belongs to this family.
CREATE TABLE sessions (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    -- logout, refresh_token_reused, account_disabled
    revoked_reason text
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);

CREATE TABLE refresh_tokens (
    -- SHA-256 of the token: the token itself is never stored
    token_hash bytea PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at timestamptz NOT NULL DEFAULT now(),
    -- set when exchanged; a second exchange is reuse and revokes the family
    used_at timestamptz
);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

CREATE TABLE api_keys (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    name text NOT NULL,
    -- shown in lists so a person can tell keys apart: "esl_AbCd" and the last four characters
    prefix text NOT NULL,
    last_four text NOT NULL,
    key_hash bytea NOT NULL,
    scopes text[] NOT NULL,
    expires_at timestamptz,
    last_used_at timestamptz,
    revoked_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX api_keys_key_hash_key ON api_keys (key_hash);
CREATE INDEX api_keys_user_id_idx ON api_keys (user_id, id);

CREATE TABLE identity_events (
    -- the provider's message id (svix-id): each delivery is applied once
    id text PRIMARY KEY,
    event_type text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
