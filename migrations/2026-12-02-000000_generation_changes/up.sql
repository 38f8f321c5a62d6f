-- Word of a generation's change for whoever waits on it (an event stream, `Prefer: wait`), in
-- every process: when a statement changes generations' status or progress, their ids go out on the
-- channel `easel_generation_changed` as the transaction commits (comma-separated, at most 200 to a
-- notice: NOTIFY's payload is limited to 8000 bytes). Waiters then read their generation once,
-- rather than every quarter second. A trigger, so that every path that moves a job (runner,
-- webhooks, cancel, watchdog) is heard without remembering to say so.
CREATE FUNCTION easel_notify_generation_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('easel_generation_changed', string_agg(changed.id::text, ','))
    FROM (SELECT n.id, (row_number() OVER ()) / 200 AS chunk
          FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
          WHERE n.status <> o.status OR n.progress <> o.progress) AS changed
    GROUP BY changed.chunk;
    RETURN NULL;
END $$;
CREATE TRIGGER generations_notify_changes AFTER UPDATE ON generations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION easel_notify_generation_changes();
