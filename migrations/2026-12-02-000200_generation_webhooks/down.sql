DROP TABLE webhook_secrets;
DROP TABLE generation_webhooks;
