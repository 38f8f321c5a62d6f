-- Generations are the jobs: the row is the queue entry, claimed by workers with FOR UPDATE SKIP LOCKED.
CREATE TABLE generations (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    model text NOT NULL,
    prompt text NOT NULL,
    negative_prompt text,
    aspect_ratio text NOT NULL,
    width integer NOT NULL,
    height integer NOT NULL,
    num_outputs integer NOT NULL CHECK (num_outputs BETWEEN 1 AND 16),
    seed bigint NOT NULL,
    style text,
    visibility text NOT NULL CHECK (visibility IN ('private', 'unlisted', 'public')),
    status text NOT NULL CHECK (status IN ('queued', 'starting', 'processing', 'succeeded', 'failed', 'canceled')),
    progress smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    credits_charged bigint NOT NULL CHECK (credits_charged >= 0),
    credits_refunded bigint NOT NULL DEFAULT 0 CHECK (credits_refunded >= 0),
    reservation_id uuid REFERENCES credit_entries (id),
    error_code text,
    error_message text,
    error_retryable boolean,
    attempts integer NOT NULL DEFAULT 0,
    -- when a worker may next pick it up (retries back off)
    run_after timestamptz NOT NULL DEFAULT now(),
    -- past this, the watchdog fails and refunds it
    deadline_at timestamptz NOT NULL,
    claimed_by text,
    heartbeat_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    completed_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((status IN ('succeeded', 'failed', 'canceled')) = (completed_at IS NOT NULL))
);
SELECT easel_manage_updated_at('generations');
CREATE INDEX generations_user_id_idx ON generations (user_id, id DESC);
CREATE INDEX generations_due_idx ON generations (run_after) WHERE status = 'queued';
CREATE INDEX generations_active_idx ON generations (deadline_at) WHERE status IN ('queued', 'starting', 'processing');

CREATE TABLE images (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    generation_id uuid NOT NULL REFERENCES generations (id),
    -- position among the generation's outputs: at most one image per slot, whatever retries happen
    output_index integer NOT NULL,
    model text NOT NULL,
    prompt text NOT NULL,
    width integer NOT NULL,
    height integer NOT NULL,
    seed bigint NOT NULL,
    visibility text NOT NULL CHECK (visibility IN ('private', 'unlisted', 'public')),
    -- SHA-256 of the original and of its thumbnail: their storage keys
    content_hash text NOT NULL,
    thumb_hash text NOT NULL,
    content_type text NOT NULL,
    byte_size bigint NOT NULL,
    nsfw boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
CREATE UNIQUE INDEX images_generation_output_key ON images (generation_id, output_index);
CREATE INDEX images_user_id_idx ON images (user_id, id DESC) WHERE deleted_at IS NULL;
