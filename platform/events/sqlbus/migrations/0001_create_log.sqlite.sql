-- The event log. seq is AUTOINCREMENT so that a seq is never reused, even after pruning deleted
-- the newest rows: a reused seq could fall behind a consumer group's cursor and be skipped.
CREATE TABLE bus_messages (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    topic        TEXT        NOT NULL,
    part         INTEGER     NOT NULL,
    uuid         TEXT        NOT NULL,
    metadata     TEXT        NOT NULL,
    payload      BLOB        NOT NULL,
    published_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX bus_messages_topic_part_seq ON bus_messages (topic, part, seq);

CREATE INDEX bus_messages_published_at ON bus_messages (published_at);

-- One cursor per consumer group, topic and partition: the seq of the last message the group
-- acked there. Everything above it is still to be delivered.
CREATE TABLE bus_offsets (
    topic      TEXT    NOT NULL,
    group_name TEXT    NOT NULL,
    part       INTEGER NOT NULL,
    acked_seq  INTEGER NOT NULL,
    PRIMARY KEY (topic, group_name, part)
);
