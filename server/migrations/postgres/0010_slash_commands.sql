-- Version 10: the workspace's slash commands, each answered by a bot. No
-- secrets: a name, the bot, and a usage line.
CREATE TABLE slash_commands (
    name       TEXT PRIMARY KEY,
    bot        TEXT NOT NULL REFERENCES accounts(username),
    usage      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
