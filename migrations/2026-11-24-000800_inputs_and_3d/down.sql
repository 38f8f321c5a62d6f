ALTER TABLE images DROP COLUMN vertex_count, DROP COLUMN kind;
DROP TABLE generation_inputs;
DROP TABLE uploads;
