DROP TRIGGER generations_notify_changes ON generations;
DROP FUNCTION easel_notify_generation_changes();
