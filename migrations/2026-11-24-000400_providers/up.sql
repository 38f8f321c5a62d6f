-- What a remote provider (Replicate, Cog) knows about a job: its prediction id, the newest state a
-- webhook delivered, and the per-job token that authenticates Cog's (unsigned) webhooks.
ALTER TABLE generations
    ADD COLUMN provider_ref text,
    ADD COLUMN webhook_token text,
    ADD COLUMN provider_state jsonb,
    -- 0 none yet, 1 starting, 2 processing, 3 terminal: a delivery never moves a job backwards
    ADD COLUMN provider_rank smallint NOT NULL DEFAULT 0 CHECK (provider_rank BETWEEN 0 AND 3);
CREATE UNIQUE INDEX generations_provider_ref_key ON generations (provider_ref) WHERE provider_ref IS NOT NULL;
CREATE UNIQUE INDEX generations_webhook_token_key ON generations (webhook_token) WHERE webhook_token IS NOT NULL;
