-- When the account's email was shown to be its owner's: a link mailed there was opened (at
-- sign-up, on asking again, or when the email was changed). Accounts from before stay unconfirmed
-- until they ask for a link.
ALTER TABLE users ADD COLUMN email_verified_at timestamptz;
