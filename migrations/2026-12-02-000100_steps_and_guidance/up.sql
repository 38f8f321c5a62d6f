-- A generation's steps and guidance, for models whose catalog entry accepts them. Kept beside the
-- generation rather than in it (the table is at diesel's 32 columns, and most generations have
-- neither), written in the same transaction as the submission, so a worker never claims a job
-- without them.
CREATE TABLE generation_settings (
    generation_id uuid PRIMARY KEY REFERENCES generations (id) ON DELETE CASCADE,
    steps smallint CHECK (steps BETWEEN 1 AND 200),
    guidance double precision CHECK (guidance >= 0 AND guidance <= 30),
    CHECK (steps IS NOT NULL OR guidance IS NOT NULL)
);
