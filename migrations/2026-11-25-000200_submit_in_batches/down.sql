DROP FUNCTION easel_submit_generations(uuid[], date[], bigint[], uuid[], uuid[], text[], text[], text[],
                                       text[], integer[], integer[], integer[], bigint[], text[], text[],
                                       bigint[], timestamptz[]);
