-- What happened to how an account signs in, for its owner to look over: sign-ins, wrong
-- passwords, changes of password, two-step sign-in, API keys and devices, and data downloads. Each names
-- the session that did it, or (for sign-ins, which have none yet) the address and browser.
CREATE TABLE security_events (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind text NOT NULL,
    session_id uuid,
    ip text,
    user_agent text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX security_events_user_idx ON security_events (user_id, id DESC);
-- Old events are purged by age.
CREATE INDEX security_events_created_idx ON security_events (created_at);
