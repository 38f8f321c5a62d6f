ALTER TABLE sessions DROP COLUMN last_active_at, DROP COLUMN ip, DROP COLUMN user_agent;
