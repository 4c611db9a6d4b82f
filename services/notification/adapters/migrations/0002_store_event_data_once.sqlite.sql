-- Each event's data is stored once, in notification_events; a recipient's inbox entry holds
-- only (event_id, user_id, seq). A fan-out of one event to N users used to write N copies of
-- its data; it now writes one, and N small entries.

-- data is kept as the exact JSON text clients receive. occurred_at is the event's time: the
-- created_at clients see on every notification of it.
CREATE TABLE notification_events (
    event_id    TEXT        PRIMARY KEY,
    type        TEXT        NOT NULL,
    data        TEXT        NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL
);

-- The primary key (event_id, user_id) makes a redelivered event unable to notify anyone twice,
-- and keeps one event's entries together (event ids are UUIDv7, so new events append): the
-- redelivery check of a batch is one range scan. The unique (user_id, seq) serves every inbox
-- query (by user, ranges of seq in either direction); WITHOUT ROWID makes the table the
-- primary key's B-tree and puts event_id into the (user_id, seq) index, so a page is read from
-- that index alone and a delivery writes two B-trees, not three. No foreign key to
-- notification_events: the store writes both in one transaction, and a per-row check would
-- cost every delivery.
CREATE TABLE inbox_entries (
    event_id TEXT    NOT NULL,
    user_id  TEXT    NOT NULL,
    seq      BIGINT  NOT NULL CHECK (seq > 0),
    PRIMARY KEY (event_id, user_id),
    CONSTRAINT inbox_entries_user_seq_key UNIQUE (user_id, seq)
) WITHOUT ROWID;

-- Existing notifications: every recipient of an event got the same draft, so one row per
-- event keeps everything (were an event's copies ever to differ, MIN picks one of them).
INSERT INTO notification_events (event_id, type, data, occurred_at)
SELECT event_id, MIN(type), MIN(data), MIN(created_at) FROM notifications GROUP BY event_id;

INSERT INTO inbox_entries (event_id, user_id, seq) SELECT event_id, user_id, seq FROM notifications;

DROP TABLE notifications;
