-- Whether a session was signed in with a code after the password: support tools can ask for it.
ALTER TABLE sessions ADD COLUMN second_factor boolean NOT NULL DEFAULT false;
