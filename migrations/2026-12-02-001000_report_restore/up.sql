-- Support can take back a decision to hide an image: its reports then read `restored`.
ALTER TABLE image_reports DROP CONSTRAINT image_reports_resolution_check;
ALTER TABLE image_reports ADD CONSTRAINT image_reports_resolution_check
    CHECK (resolution IN ('hidden', 'dismissed', 'restored'));
