-- One reservation as `credits::store::spend` makes it: a single statement that takes the credits
-- (free first, never below zero, not while owing) and records the ledger entry with the resulting
-- balances.
\set uid random(1, :users)
WITH old AS (SELECT user_id, free, purchased FROM credit_balances
             WHERE user_id = md5(:uid::text)::uuid FOR UPDATE),
applied AS (
    UPDATE credit_balances AS b
    SET free = b.free - LEAST(b.free, 1),
        purchased = b.purchased - (1 - LEAST(b.free, 1)),
        updated_at = now()
    FROM old
    WHERE b.user_id = old.user_id AND b.purchased >= 0 AND b.free + b.purchased >= 1
    RETURNING b.user_id, b.free AS free_after, b.purchased AS purchased_after,
              b.free - old.free AS free_delta, b.purchased - old.purchased AS purchased_delta
)
INSERT INTO credit_entries (id, user_id, kind, free_delta, purchased_delta, free_after, purchased_after)
SELECT gen_random_uuid(), user_id, 'reservation', free_delta, purchased_delta, free_after, purchased_after
FROM applied;
