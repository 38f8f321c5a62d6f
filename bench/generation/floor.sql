-- The floor: accepting a generation as nothing but one row insert.
\set n random(1, 1000000000)
INSERT INTO generations (id, user_id, model, prompt, aspect_ratio, width, height, num_outputs, seed,
                         visibility, status, credits_charged, deadline_at)
SELECT gen_random_uuid(), id, 'easel-sketch', 'bench ' || :n, '1:1', 64, 64, 1, :n,
       'private', 'queued', 1, now() + interval '1 hour'
FROM users ORDER BY id LIMIT 1;
