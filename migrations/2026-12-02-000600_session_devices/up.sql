-- What a person sees of their signed-in devices: the browser or program that signed in, from
-- which address, and when the session was last refreshed (every access token's lifetime while in
-- use). Sessions from before this migration show neither, and their last activity as now.
ALTER TABLE sessions
    ADD COLUMN user_agent text,
    ADD COLUMN ip text,
    ADD COLUMN last_active_at timestamptz NOT NULL DEFAULT now();
