DROP TABLE idempotency_keys;
DROP TRIGGER credit_entries_append_only ON credit_entries;
DROP FUNCTION easel_credit_entries_append_only();
DROP TABLE credit_entries;
DROP TABLE credit_balances;
