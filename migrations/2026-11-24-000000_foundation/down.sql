DROP FUNCTION IF EXISTS easel_manage_updated_at(regclass);
DROP FUNCTION IF EXISTS easel_set_updated_at();
