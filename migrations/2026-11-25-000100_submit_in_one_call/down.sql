DROP FUNCTION easel_submit_generation(uuid, date, bigint, uuid, uuid, text, text, text, text, integer,
                                      integer, integer, bigint, text, text, bigint, timestamptz);
DROP FUNCTION easel_spend(uuid, bigint, uuid, text, uuid, uuid, uuid, text, text);
DROP INDEX generations_in_flight_idx;
