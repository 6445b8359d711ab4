-- Version 9: bot accounts, each with the account that owns it.
ALTER TABLE accounts ADD COLUMN bot_owner TEXT REFERENCES accounts(username);
