-- Shared helpers every later table uses.

-- Keeps an `updated_at` column current without each query remembering to set it:
-- `SELECT easel_manage_updated_at('table');` after creating a table with that column.
CREATE OR REPLACE FUNCTION easel_set_updated_at() RETURNS trigger AS $$
BEGIN
    IF NEW IS DISTINCT FROM OLD AND NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION easel_manage_updated_at(_tbl regclass) RETURNS void AS $$
BEGIN
    EXECUTE format('CREATE TRIGGER set_updated_at BEFORE UPDATE ON %s
                    FOR EACH ROW EXECUTE PROCEDURE easel_set_updated_at()', _tbl);
END;
$$ LANGUAGE plpgsql;
