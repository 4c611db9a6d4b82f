-- The durable inbox: one counter row per user and the user's notifications (both engines).

-- last_seq is the user's newest sequence number; a delivery increments it under the row's
-- lock, in the transaction that stores the notification, so seqs are 1, 2, 3, … per user and
-- a rolled-back delivery burns none. read_seq is the read marker: it only moves forward and
-- never past last_seq.
CREATE TABLE inbox_counters (
    user_id  TEXT   PRIMARY KEY,
    last_seq BIGINT NOT NULL CHECK (last_seq >= 0),
    read_seq BIGINT NOT NULL DEFAULT 0 CHECK (read_seq >= 0),
    CHECK (read_seq <= last_seq)
);

-- data is kept as the exact JSON text clients receive (not JSONB, which would reorder keys).
-- The primary key serves every inbox query (by user, ranges of seq in either direction); the
-- unique (user_id, event_id) makes a redelivered event unable to notify anyone twice.
CREATE TABLE notifications (
    user_id    TEXT        NOT NULL,
    seq        BIGINT      NOT NULL CHECK (seq > 0),
    event_id   TEXT        NOT NULL,
    type       TEXT        NOT NULL,
    data       TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, seq),
    CONSTRAINT notifications_user_event_key UNIQUE (user_id, event_id)
);
