-- Counting a person's generations in flight in constant time. The cap check counted their queued
-- and running generations on every submission: under a long queue (a burst of submissions, or
-- slow workers), that count grew with the queue and became the largest part of a submission's
-- cost. Now two counters answer it:
--   credit_balances.generations_submitted  written by the submissions, under the balance lock
--                                          they already take
--   generations_ended                      written by a trigger whenever generations stop being
--                                          in flight (succeeded, failed, canceled, or deleted)
-- In flight = submitted - ended. They live in two tables so that ending a job never waits for a
-- submission's lock, nor a submission for an ending job's. An owner's ends are spread over a few
-- rows (by the backend that records them): two commits ending jobs of the same people at once
-- would otherwise queue on one row each, to the end of the first one's transaction.
ALTER TABLE credit_balances ADD COLUMN generations_submitted bigint NOT NULL DEFAULT 0;
UPDATE credit_balances AS b SET generations_submitted = a.n
FROM (SELECT user_id, count(*) AS n FROM generations
      WHERE status IN ('queued', 'starting', 'processing') GROUP BY user_id) AS a
WHERE a.user_id = b.user_id;

-- Nothing counts generations by owner and status any more; the index only slowed each insert and
-- status change.
DROP INDEX generations_in_flight_idx;

CREATE TABLE generations_ended (
    user_id uuid NOT NULL REFERENCES users (id),
    shard smallint NOT NULL,
    count bigint NOT NULL,
    PRIMARY KEY (user_id, shard)
);

-- Statement-level, so a batch that ends many jobs adds to each owner's count once, in user_id
-- order: two batches never lock the same rows in opposite orders.
CREATE FUNCTION easel_count_ended_generations() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO generations_ended AS e (user_id, shard, count)
        SELECT o.user_id, pg_backend_pid() % 8, count(*)
        FROM old_rows AS o JOIN new_rows AS n ON n.id = o.id
        WHERE o.status IN ('queued', 'starting', 'processing')
          AND n.status NOT IN ('queued', 'starting', 'processing')
        GROUP BY o.user_id ORDER BY o.user_id
        ON CONFLICT (user_id, shard) DO UPDATE SET count = e.count + excluded.count;
    ELSE
        INSERT INTO generations_ended AS e (user_id, shard, count)
        SELECT o.user_id, pg_backend_pid() % 8, count(*) FROM old_rows AS o
        WHERE o.status IN ('queued', 'starting', 'processing')
        GROUP BY o.user_id ORDER BY o.user_id
        ON CONFLICT (user_id, shard) DO UPDATE SET count = e.count + excluded.count;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER generations_count_ended_on_update AFTER UPDATE ON generations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION easel_count_ended_generations();
CREATE TRIGGER generations_count_ended_on_delete AFTER DELETE ON generations
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION easel_count_ended_generations();

-- The single submission, as before, with the counters.
CREATE OR REPLACE FUNCTION easel_submit_generation(
    p_user uuid, p_today date, p_max_in_flight bigint, p_reservation uuid,
    p_id uuid, p_model text, p_prompt text, p_negative_prompt text, p_aspect_ratio text,
    p_width integer, p_height integer, p_num_outputs integer, p_seed bigint, p_style text,
    p_visibility text, p_cost bigint, p_deadline timestamptz
) RETURNS SETOF generations LANGUAGE plpgsql AS $$
DECLARE
    granted date;
    submitted bigint;
    queued generations;
BEGIN
    SELECT free_granted_on, generations_submitted INTO granted, submitted
    FROM credit_balances WHERE user_id = p_user FOR UPDATE;
    IF granted IS DISTINCT FROM p_today THEN
        RAISE EXCEPTION 'easel_grant_due';
    END IF;
    IF submitted - coalesce((SELECT sum(count)::bigint FROM generations_ended WHERE user_id = p_user), 0)
       >= p_max_in_flight THEN
        RAISE EXCEPTION 'easel_too_many_in_flight';
    END IF;
    PERFORM FROM easel_spend(p_user, p_cost, p_reservation, 'reservation', p_id, NULL, NULL, NULL, NULL);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'easel_not_covered';
    END IF;
    UPDATE credit_balances SET generations_submitted = generations_submitted + 1 WHERE user_id = p_user;
    INSERT INTO generations (id, user_id, model, prompt, negative_prompt, aspect_ratio, width, height,
                             num_outputs, seed, style, visibility, status, credits_charged,
                             reservation_id, deadline_at)
    VALUES (p_id, p_user, p_model, p_prompt, p_negative_prompt, p_aspect_ratio, p_width, p_height,
            p_num_outputs, p_seed, p_style, p_visibility, 'queued', p_cost, p_reservation, p_deadline)
    RETURNING * INTO queued;
    RETURN NEXT queued;
END
$$;

-- The batch, as before, with the counters.
CREATE OR REPLACE FUNCTION easel_submit_generations(
    p_user uuid[], p_today date[], p_max_in_flight bigint[], p_reservation uuid[], p_id uuid[],
    p_model text[], p_prompt text[], p_negative_prompt text[], p_aspect_ratio text[],
    p_width integer[], p_height integer[], p_num_outputs integer[], p_seed bigint[], p_style text[],
    p_visibility text[], p_cost bigint[], p_deadline timestamptz[]
) RETURNS TABLE (outcome text, created timestamptz) LANGUAGE plpgsql
-- Its statements take arrays, whose values the planner cannot use: planned once, not on every call.
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    n integer := coalesce(array_length(p_id, 1), 0);
    -- One element per owner, in user_id order.
    o_user uuid[];
    o_free bigint[];
    o_bought bigint[];
    o_granted date[];
    o_submitted bigint[];
    o_active bigint[];
    o_added bigint[];
    -- One element per submission.
    s_outcome text[] := array_fill(NULL::text, ARRAY[n]);
    s_free_delta bigint[] := array_fill(0::bigint, ARRAY[n]);
    s_bought_delta bigint[] := array_fill(0::bigint, ARRAY[n]);
    s_free_after bigint[] := array_fill(0::bigint, ARRAY[n]);
    s_bought_after bigint[] := array_fill(0::bigint, ARRAY[n]);
    k integer;
    take_free bigint;
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    -- Every owner's balance row is locked first, in one order, so that two batches never wait for
    -- each other in a cycle. Held to the end of the transaction, as the single function's lock is.
    SELECT array_agg(b.user_id ORDER BY b.user_id), array_agg(b.free ORDER BY b.user_id),
           array_agg(b.purchased ORDER BY b.user_id), array_agg(b.free_granted_on ORDER BY b.user_id),
           array_agg(b.generations_submitted ORDER BY b.user_id)
    INTO o_user, o_free, o_bought, o_granted, o_submitted
    FROM (SELECT user_id, free, purchased, free_granted_on, generations_submitted FROM credit_balances
          WHERE user_id = ANY (p_user) ORDER BY user_id FOR UPDATE) AS b;
    -- Each owner's generations in flight: submitted (under the lock just taken) less ended. Read
    -- after the lock, so every end committed by then counts; one committed later only makes the
    -- count high for this batch, never low.
    SELECT array_agg(o.submitted - coalesce(e.count, 0) ORDER BY o.i)
    INTO o_active
    FROM unnest(o_user, o_submitted) WITH ORDINALITY AS o(user_id, submitted, i)
    LEFT JOIN (SELECT user_id, sum(count)::bigint AS count FROM generations_ended
               WHERE user_id = ANY (o_user) GROUP BY user_id) AS e ON e.user_id = o.user_id;
    o_added := array_fill(0::bigint, ARRAY[coalesce(array_length(o_user, 1), 0)]);

    FOR i IN 1 .. n LOOP
        k := array_position(o_user, p_user[i]);
        IF k IS NULL OR o_granted[k] IS DISTINCT FROM p_today[i] THEN
            s_outcome[i] := 'grant_due';
        ELSIF o_active[k] >= p_max_in_flight[i] THEN
            s_outcome[i] := 'too_many_in_flight';
        ELSIF o_bought[k] < 0 OR o_free[k] + o_bought[k] < p_cost[i] THEN
            s_outcome[i] := 'not_covered';
        ELSE
            take_free := LEAST(o_free[k], p_cost[i]);
            s_free_delta[i] := -take_free;
            s_bought_delta[i] := -(p_cost[i] - take_free);
            o_free[k] := o_free[k] + s_free_delta[i];
            o_bought[k] := o_bought[k] + s_bought_delta[i];
            s_free_after[i] := o_free[k];
            s_bought_after[i] := o_bought[k];
            o_active[k] := o_active[k] + 1;
            o_added[k] := o_added[k] + 1;
            s_outcome[i] := 'queued';
        END IF;
    END LOOP;

    UPDATE credit_balances AS b
    SET free = v.free, purchased = v.bought, generations_submitted = b.generations_submitted + v.added,
        updated_at = now()
    FROM unnest(o_user, o_free, o_bought, o_added) AS v(user_id, free, bought, added)
    WHERE b.user_id = v.user_id AND v.added > 0;
    INSERT INTO credit_entries (id, user_id, kind, free_delta, purchased_delta, free_after,
                                purchased_after, generation_id)
    SELECT v.reservation, v.user_id, 'reservation', v.free_delta, v.bought_delta, v.free_after,
           v.bought_after, v.id
    FROM unnest(p_reservation, p_user, s_free_delta, s_bought_delta, s_free_after, s_bought_after,
                p_id, s_outcome)
        AS v(reservation, user_id, free_delta, bought_delta, free_after, bought_after, id, outcome)
    WHERE v.outcome = 'queued';
    INSERT INTO generations (id, user_id, model, prompt, negative_prompt, aspect_ratio, width, height,
                             num_outputs, seed, style, visibility, status, credits_charged,
                             reservation_id, deadline_at)
    SELECT v.id, v.user_id, v.model, v.prompt, v.negative_prompt, v.aspect_ratio, v.width, v.height,
           v.num_outputs, v.seed, v.style, v.visibility, 'queued', v.cost, v.reservation, v.deadline
    FROM unnest(p_id, p_user, p_model, p_prompt, p_negative_prompt, p_aspect_ratio, p_width, p_height,
                p_num_outputs, p_seed, p_style, p_visibility, p_cost, p_reservation, p_deadline,
                s_outcome)
        AS v(id, user_id, model, prompt, negative_prompt, aspect_ratio, width, height, num_outputs,
             seed, style, visibility, cost, reservation, deadline, outcome)
    WHERE v.outcome = 'queued';

    -- The inserts' created_at is the transaction's start, which now() is.
    RETURN QUERY SELECT v.outcome, CASE WHEN v.outcome = 'queued' THEN now() END
                 FROM unnest(s_outcome) WITH ORDINALITY AS v(outcome, i) ORDER BY v.i;
END
$$;
