-- 0001: the table that holds every storage.Backend key.
--
-- key is compared byte by byte (COLLATE "C"), so that the primary key's
-- b-tree serves List's range scans (key >= prefix AND key < upper bound) and
-- sorts in the order storage.Backend promises, whatever the database's
-- default collation is. value is barrier ciphertext: storage never sees
-- plaintext.
CREATE TABLE secrethub.kv (
    key        text COLLATE "C" PRIMARY KEY,
    value      bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE secrethub.kv IS
    'SecretHub storage: slash-separated paths and barrier-encrypted values';
