-- The public face of the images: titles, likes, full-text search, trending, collections, avatars.
ALTER TABLE images
    ADD COLUMN title text CHECK (char_length(title) <= 200),
    ADD COLUMN like_count integer NOT NULL DEFAULT 0 CHECK (like_count >= 0),
    -- likes decayed by age, as a "hot" score: log10(likes) + created/12.5 h, so ten times the likes
    -- buy 12.5 hours of freshness. It changes only when likes do, which keeps keyset pages stable.
    ADD COLUMN trending_score double precision NOT NULL DEFAULT 0,
    ADD COLUMN search tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', coalesce(title, '')), 'A') || setweight(to_tsvector('english', prompt), 'B')
    ) STORED,
    -- set once the job runner has removed a deleted image's files (when nothing else uses them)
    ADD COLUMN files_removed_at timestamptz;

CREATE FUNCTION easel_images_trending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.trending_score := log(greatest(NEW.like_count, 1)) + extract(epoch FROM NEW.created_at) / 45000;
    RETURN NEW;
END $$;
CREATE TRIGGER images_trending BEFORE INSERT OR UPDATE OF like_count, created_at ON images
    FOR EACH ROW EXECUTE FUNCTION easel_images_trending();
UPDATE images SET like_count = like_count;

-- The feed's indexes hold only what the public may see.
CREATE INDEX images_public_new_idx ON images (id DESC)
    WHERE visibility = 'public' AND NOT nsfw AND deleted_at IS NULL;
CREATE INDEX images_public_top_idx ON images (like_count DESC, id DESC)
    WHERE visibility = 'public' AND NOT nsfw AND deleted_at IS NULL;
CREATE INDEX images_public_trending_idx ON images (trending_score DESC, id DESC)
    WHERE visibility = 'public' AND NOT nsfw AND deleted_at IS NULL;
CREATE INDEX images_public_model_idx ON images (model, id DESC)
    WHERE visibility = 'public' AND NOT nsfw AND deleted_at IS NULL;
CREATE INDEX images_public_user_idx ON images (user_id, id DESC)
    WHERE visibility = 'public' AND NOT nsfw AND deleted_at IS NULL;
CREATE INDEX images_search_idx ON images USING gin (search)
    WHERE visibility = 'public' AND NOT nsfw AND deleted_at IS NULL;
CREATE INDEX images_files_pending_idx ON images (deleted_at)
    WHERE deleted_at IS NOT NULL AND files_removed_at IS NULL;

CREATE TABLE image_likes (
    image_id uuid NOT NULL REFERENCES images (id),
    user_id uuid NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_id, user_id)
);
CREATE INDEX image_likes_user_idx ON image_likes (user_id, created_at DESC);

CREATE TABLE collections (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    -- URL-safe, unique per owner
    slug text NOT NULL CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND char_length(slug) <= 120),
    description text CHECK (char_length(description) <= 1000),
    visibility text NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'unlisted', 'public')),
    cover_image_id uuid REFERENCES images (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
SELECT easel_manage_updated_at('collections');
CREATE UNIQUE INDEX collections_user_slug_key ON collections (user_id, slug);
CREATE INDEX collections_user_idx ON collections (user_id, id DESC);

CREATE TABLE collection_images (
    collection_id uuid NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    image_id uuid NOT NULL REFERENCES images (id),
    added_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (collection_id, image_id)
);
CREATE INDEX collection_images_order_idx ON collection_images (collection_id, added_at DESC, image_id DESC);
CREATE INDEX collection_images_image_idx ON collection_images (image_id);

ALTER TABLE users ADD COLUMN avatar_image_id uuid REFERENCES images (id);

-- The file sweep asks whether any live image still uses a file.
CREATE INDEX images_content_hash_idx ON images (content_hash);
CREATE INDEX images_thumb_hash_idx ON images (thumb_hash);
