ALTER TABLE credit_balances DROP COLUMN signup_bonus_at;
