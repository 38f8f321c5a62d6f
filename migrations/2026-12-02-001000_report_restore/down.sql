UPDATE image_reports SET resolution = 'dismissed' WHERE resolution = 'restored';
ALTER TABLE image_reports DROP CONSTRAINT image_reports_resolution_check;
ALTER TABLE image_reports ADD CONSTRAINT image_reports_resolution_check
    CHECK (resolution IN ('hidden', 'dismissed'));
