-- Version 11: application messages are known by the SHA-256 of their
-- ciphertext, so a client that re-sends one after losing the answer (its node
-- died, say) gets the first one's position instead of a second copy.
ALTER TABLE messages ADD COLUMN payload_hash TEXT;
CREATE UNIQUE INDEX messages_by_payload ON messages(group_id, payload_hash);
