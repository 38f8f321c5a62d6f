DROP TABLE recovery_codes;
DROP TABLE two_factor_secrets;
ALTER TABLE users DROP COLUMN two_factor_at;
