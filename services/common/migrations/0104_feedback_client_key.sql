-- Who gave each feedback, as the same client the rate limits count (its address), so that the
-- canary analysis can count at most a few labels per client: one client must not outvote
-- every user. Only a keyed digest is stored: the key is drawn once per database and never
-- leaves it, so the column names no address to whoever reads an export. The column lives and
-- dies with its feedback row (erasure, retention, withdrawn consent); rows from before this
-- migration have none and each counts as a client of its own.
CREATE TABLE client_key_secret (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    secret   bytea NOT NULL
);
INSERT INTO client_key_secret (secret)
VALUES (uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()));

ALTER TABLE feedback ADD COLUMN client_key bytea;
