DROP TRIGGER images_search_terms ON images;
DROP FUNCTION easel_rebuild_image_search_terms();
DROP FUNCTION easel_image_search_terms();
DROP FUNCTION easel_image_search_terms_of(uuid, tsvector);
DROP TABLE image_search_terms;
