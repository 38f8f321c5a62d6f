-- Submitting many generations in one transaction. Under load, each HTTP worker gathers the
-- submissions that arrive while its last batch runs and sends them together: the round trip, the
-- executor's start-up and the commit are paid once per batch instead of once per submission.

-- `easel_submit_generation` for each submission, in order, but a refusal is an outcome rather than
-- an exception, so it refuses only that submission. One row per submission, in order:
--   'queued' with the generation's created_at, or
--   'grant_due', 'too_many_in_flight', 'not_covered' (as the single function raises them), and no
--   change for that submission.
CREATE FUNCTION easel_submit_generations(
    p_user uuid[], p_today date[], p_max_in_flight bigint[], p_reservation uuid[], p_id uuid[],
    p_model text[], p_prompt text[], p_negative_prompt text[], p_aspect_ratio text[],
    p_width integer[], p_height integer[], p_num_outputs integer[], p_seed bigint[], p_style text[],
    p_visibility text[], p_cost bigint[], p_deadline timestamptz[]
) RETURNS TABLE (outcome text, created timestamptz) LANGUAGE plpgsql AS $$
DECLARE
    s record;
    granted date;
BEGIN
    -- Every owner's balance row is locked first, in one order, so that two batches never wait for
    -- each other in a cycle. Held to the end of the transaction, as the single function's lock is.
    PERFORM FROM credit_balances WHERE user_id = ANY (p_user) ORDER BY user_id FOR UPDATE;
    FOR s IN
        SELECT * FROM unnest(p_user, p_today, p_max_in_flight, p_reservation, p_id, p_model, p_prompt,
                             p_negative_prompt, p_aspect_ratio, p_width, p_height, p_num_outputs,
                             p_seed, p_style, p_visibility, p_cost, p_deadline)
            AS t(user_id, today, max_in_flight, reservation, id, model, prompt, negative_prompt,
                 aspect_ratio, width, height, num_outputs, seed, style, visibility, cost, deadline)
    LOOP
        created := NULL;
        SELECT free_granted_on INTO granted FROM credit_balances WHERE user_id = s.user_id;
        IF granted IS DISTINCT FROM s.today THEN
            outcome := 'grant_due';
        -- Each statement takes a fresh snapshot, so the count includes this batch's earlier inserts.
        ELSIF (SELECT count(*) FROM (SELECT FROM generations
                                     WHERE user_id = s.user_id
                                       AND status IN ('queued', 'starting', 'processing')
                                     LIMIT s.max_in_flight) AS active) >= s.max_in_flight THEN
            outcome := 'too_many_in_flight';
        ELSE
            PERFORM FROM easel_spend(s.user_id, s.cost, s.reservation, 'reservation', s.id,
                                     NULL, NULL, NULL, NULL);
            IF NOT FOUND THEN
                outcome := 'not_covered';
            ELSE
                INSERT INTO generations (id, user_id, model, prompt, negative_prompt, aspect_ratio,
                                         width, height, num_outputs, seed, style, visibility, status,
                                         credits_charged, reservation_id, deadline_at)
                VALUES (s.id, s.user_id, s.model, s.prompt, s.negative_prompt, s.aspect_ratio,
                        s.width, s.height, s.num_outputs, s.seed, s.style, s.visibility, 'queued',
                        s.cost, s.reservation, s.deadline)
                RETURNING generations.created_at INTO created;
                outcome := 'queued';
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;
