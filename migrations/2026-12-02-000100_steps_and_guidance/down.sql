DROP TABLE generation_settings;
