-- Ranked one-word searches read their page from an index already in rank order.
--
-- A ranked search through the GIN index must compute ts_rank for every match before it can sort:
-- a word in 0.4% of a million prompts is 4,000 heap rows, 10-50 ms a page. One word is what most
-- people type, so each publicly listed image also keeps, per plain word (lexeme of the letters
-- a-z) of its title and prompt, the rank a search for that word gives it. Such a search then reads
-- 21 index entries in order, first page or deep. Anything else (several words, phrases, other
-- characters) still goes through the GIN index. The feed joins back to `images` and checks that
-- each image is public, so this table only ever narrows what the public may see.
CREATE TABLE image_search_terms (
    lexeme text NOT NULL,
    -- ts_rank(images.search, '<lexeme>'::tsquery), exactly what the GIN path computes
    rank real NOT NULL,
    image_id uuid NOT NULL,
    PRIMARY KEY (lexeme, rank, image_id)
);

-- An image's entries, keyed as the index is. Its rank is recomputed from the same tsvector, so
-- removing them is a handful of exact index look-ups (no second index by image).
CREATE FUNCTION easel_image_search_terms_of(id uuid, search tsvector)
RETURNS TABLE (lexeme text, rank real, image_id uuid) LANGUAGE sql IMMUTABLE AS $$
    SELECT t.lexeme, ts_rank(search, quote_literal(t.lexeme)::tsquery), id
    FROM unnest(search) t
    WHERE t.lexeme ~ '^[a-z]+$'
$$;

-- Kept with the image in its own transaction: an image leaves every search the moment it stops
-- being public, listed and live, and its words follow its title and prompt.
CREATE FUNCTION easel_image_search_terms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.search IS NOT DISTINCT FROM OLD.search
       AND NEW.visibility = OLD.visibility AND NEW.nsfw = OLD.nsfw
       AND NEW.deleted_at IS NOT DISTINCT FROM OLD.deleted_at THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM image_search_terms s
        USING easel_image_search_terms_of(OLD.id, OLD.search) o
        WHERE (s.lexeme, s.rank, s.image_id) = (o.lexeme, o.rank, o.image_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.visibility = 'public' AND NOT NEW.nsfw
       AND NEW.deleted_at IS NULL THEN
        INSERT INTO image_search_terms SELECT * FROM easel_image_search_terms_of(NEW.id, NEW.search);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER images_search_terms
    AFTER INSERT OR DELETE OR UPDATE OF title, prompt, visibility, nsfw, deleted_at ON images
    FOR EACH ROW EXECUTE FUNCTION easel_image_search_terms();

-- Fills the table from scratch (here, and for bulk loads that ran with the trigger disabled).
CREATE FUNCTION easel_rebuild_image_search_terms() RETURNS bigint LANGUAGE sql AS $$
    TRUNCATE image_search_terms;
    INSERT INTO image_search_terms
    SELECT o.* FROM images i, easel_image_search_terms_of(i.id, i.search) o
    WHERE i.visibility = 'public' AND NOT i.nsfw AND i.deleted_at IS NULL;
    SELECT count(*) FROM image_search_terms;
$$;
SELECT easel_rebuild_image_search_terms();
