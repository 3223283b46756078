-- The audit chain. canonical holds the exact bytes that were hashed and is
-- what audit verify checks; event is a jsonb copy of the same document, and
-- time, path, operation and result are copies of its fields, for querying.
CREATE TABLE audit.events (
    seq       bigint PRIMARY KEY,
    time      timestamptz NOT NULL,
    path      text,
    operation text,
    result    text,
    prev_hash bytea NOT NULL,
    hash      bytea NOT NULL,
    signature bytea NOT NULL,
    canonical bytea NOT NULL,
    event     jsonb NOT NULL
);

CREATE INDEX events_time_idx ON audit.events (time);
