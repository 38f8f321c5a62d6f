DROP TABLE image_reports;
