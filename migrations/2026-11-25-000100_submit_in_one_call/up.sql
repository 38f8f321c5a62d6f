-- Submitting a generation in one round trip. A submission used to take seven statements (the day's
-- grant check, BEGIN, the balance lock, the in-flight count, the reservation, the insert, COMMIT);
-- round trips, not work, were most of its cost. The same steps, in the same order and under the
-- same lock, now run inside one function call.

-- The in-flight count reads only active jobs, not a person's whole history.
CREATE INDEX generations_in_flight_idx ON generations (user_id)
    WHERE status IN ('queued', 'starting', 'processing');

-- Takes `p_amount` credits, free first, then purchased, if the two cover it and nothing is owed,
-- and records the entry: one statement, so it is atomic even outside a transaction. No row when the
-- credits do not cover it: nothing changed. Every spend goes through here. PL/pgSQL, not SQL, so
-- that its plan is kept for the session (PostgreSQL 15 parses and plans an SQL function's body
-- again on every call).
CREATE FUNCTION easel_spend(
    p_user uuid, p_amount bigint, p_id uuid, p_kind text, p_generation uuid, p_purchase uuid,
    p_admin uuid, p_reason text, p_idempotency_key text
) RETURNS SETOF credit_entries LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH old AS (SELECT user_id, free, purchased FROM credit_balances WHERE user_id = p_user FOR UPDATE),
    applied AS (
        UPDATE credit_balances AS b
        SET free = b.free - LEAST(b.free, p_amount),
            purchased = b.purchased - (p_amount - LEAST(b.free, p_amount)),
            updated_at = now()
        FROM old
        WHERE b.user_id = old.user_id AND b.purchased >= 0 AND b.free + b.purchased >= p_amount
        RETURNING b.user_id, b.free AS free_after, b.purchased AS purchased_after,
                  b.free - old.free AS free_delta, b.purchased - old.purchased AS purchased_delta)
    INSERT INTO credit_entries (id, user_id, kind, free_delta, purchased_delta, free_after, purchased_after,
                                generation_id, purchase_id, admin_id, reason, idempotency_key)
    SELECT p_id, applied.user_id, p_kind, applied.free_delta, applied.purchased_delta, applied.free_after,
           applied.purchased_after, p_generation, p_purchase, p_admin, p_reason, p_idempotency_key
    FROM applied
    RETURNING *;
END
$$;

-- Reserves a generation's cost and enqueues it, or changes nothing and raises one of:
--   easel_grant_due           the day's free grant (or the account's opening) must come first
--   easel_too_many_in_flight  the person has p_max_in_flight generations queued or running
--   easel_not_covered         the credits do not cover the cost, or the account owes credits
-- The balance row's lock serialises a person's submissions; each statement below takes a fresh
-- snapshot after it, so the count sees every submission that went before.
CREATE FUNCTION easel_submit_generation(
    p_user uuid, p_today date, p_max_in_flight bigint, p_reservation uuid,
    p_id uuid, p_model text, p_prompt text, p_negative_prompt text, p_aspect_ratio text,
    p_width integer, p_height integer, p_num_outputs integer, p_seed bigint, p_style text,
    p_visibility text, p_cost bigint, p_deadline timestamptz
) RETURNS SETOF generations LANGUAGE plpgsql AS $$
DECLARE
    granted date;
    queued generations;
BEGIN
    SELECT free_granted_on INTO granted FROM credit_balances WHERE user_id = p_user FOR UPDATE;
    IF granted IS DISTINCT FROM p_today THEN
        RAISE EXCEPTION 'easel_grant_due';
    END IF;
    -- Counting stops at the cap: a long queue costs no more than the cap to check.
    IF (SELECT count(*) FROM (SELECT FROM generations
                              WHERE user_id = p_user AND status IN ('queued', 'starting', 'processing')
                              LIMIT p_max_in_flight) AS active) >= p_max_in_flight THEN
        RAISE EXCEPTION 'easel_too_many_in_flight';
    END IF;
    PERFORM FROM easel_spend(p_user, p_cost, p_reservation, 'reservation', p_id, NULL, NULL, NULL, NULL);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'easel_not_covered';
    END IF;
    INSERT INTO generations (id, user_id, model, prompt, negative_prompt, aspect_ratio, width, height,
                             num_outputs, seed, style, visibility, status, credits_charged,
                             reservation_id, deadline_at)
    VALUES (p_id, p_user, p_model, p_prompt, p_negative_prompt, p_aspect_ratio, p_width, p_height,
            p_num_outputs, p_seed, p_style, p_visibility, 'queued', p_cost, p_reservation, p_deadline)
    RETURNING * INTO queued;
    RETURN NEXT queued;
END
$$;
