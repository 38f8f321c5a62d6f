DROP TABLE images;
DROP TABLE generations;
