-- Image inputs (an upload of mine, or an image I may see) and outputs of more than one kind (3D models).

-- Files a person uploaded to use as an input. Private to the uploader; purged a day after upload
-- unless a generation used them.
CREATE TABLE uploads (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    content_hash text NOT NULL,
    content_type text NOT NULL,
    byte_size bigint NOT NULL CHECK (byte_size > 0),
    width integer NOT NULL,
    height integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at timestamptz
);
CREATE INDEX uploads_user_idx ON uploads (user_id, id DESC);
CREATE INDEX uploads_unused_idx ON uploads (created_at) WHERE used_at IS NULL;
CREATE INDEX uploads_hash_idx ON uploads USING hash (content_hash);

-- The input a generation was made from: which file (content-addressed) and where it came from.
CREATE TABLE generation_inputs (
    generation_id uuid PRIMARY KEY REFERENCES generations (id),
    source text NOT NULL CHECK (source IN ('upload', 'image')),
    source_id uuid NOT NULL,
    content_hash text NOT NULL,
    content_type text NOT NULL,
    byte_size bigint NOT NULL,
    width integer NOT NULL,
    height integer NOT NULL
);
CREATE INDEX generation_inputs_hash_idx ON generation_inputs USING hash (content_hash);

-- What an output is: an image, or a 3D model (glTF binary) whose thumbnail is its preview.
ALTER TABLE images
    ADD COLUMN kind text NOT NULL DEFAULT 'image' CHECK (kind IN ('image', 'model3d')),
    ADD COLUMN vertex_count integer;
