DROP INDEX generations_webhook_token_key;
DROP INDEX generations_provider_ref_key;
ALTER TABLE generations
    DROP COLUMN provider_rank,
    DROP COLUMN provider_state,
    DROP COLUMN webhook_token,
    DROP COLUMN provider_ref;
