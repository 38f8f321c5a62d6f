DROP INDEX images_thumb_hash_idx;
DROP INDEX images_content_hash_idx;
ALTER TABLE users DROP COLUMN avatar_image_id;
DROP TABLE collection_images;
DROP TABLE collections;
DROP TABLE image_likes;
DROP INDEX images_files_pending_idx;
DROP INDEX images_search_idx;
DROP INDEX images_public_user_idx;
DROP INDEX images_public_model_idx;
DROP INDEX images_public_trending_idx;
DROP INDEX images_public_top_idx;
DROP INDEX images_public_new_idx;
DROP TRIGGER images_trending ON images;
DROP FUNCTION easel_images_trending();
ALTER TABLE images
    DROP COLUMN files_removed_at,
    DROP COLUMN search,
    DROP COLUMN trending_score,
    DROP COLUMN like_count,
    DROP COLUMN title;
