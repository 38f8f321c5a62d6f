-- The signup bonus is given once per account, whatever touched its balance first: a purchase or an
-- admin grant can open the balance before the account's first own credit call.
ALTER TABLE credit_balances ADD COLUMN signup_bonus_at timestamptz;
UPDATE credit_balances b SET signup_bonus_at = now()
    WHERE EXISTS (SELECT 1 FROM credit_entries e WHERE e.user_id = b.user_id AND e.kind = 'signup_bonus');
