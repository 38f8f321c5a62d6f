-- People report images they find in the gallery; support decides once per image: hide it (it is
-- flagged, as a safety checker's image is: its owner alone sees it) or dismiss the reports. One
-- report per person per image.
CREATE TABLE image_reports (
    id uuid PRIMARY KEY,
    image_id uuid NOT NULL REFERENCES images (id),
    reporter_id uuid NOT NULL REFERENCES users (id),
    reason text NOT NULL CHECK (reason IN ('sexual', 'violent', 'hateful', 'spam', 'copyright', 'other')),
    details text CHECK (length(details) <= 1000),
    created_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    resolved_by uuid REFERENCES users (id),
    resolution text CHECK (resolution IN ('hidden', 'dismissed')),
    CHECK ((resolved_at IS NULL) = (resolution IS NULL)),
    UNIQUE (image_id, reporter_id)
);
CREATE INDEX image_reports_open_idx ON image_reports (image_id) WHERE resolved_at IS NULL;
