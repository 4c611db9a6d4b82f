-- The dead-letter archive (PostgreSQL): one row per dead-lettering of a message.

CREATE TABLE dead_letter_archive (
    id              UUID        PRIMARY KEY,
    message_uuid    TEXT        NOT NULL,
    -- The same for every delivery of one dead letter: archiving is idempotent on it.
    dedupe_key      TEXT        NOT NULL,
    original_topic  TEXT        NOT NULL,
    handler         TEXT        NOT NULL,
    reason          TEXT        NOT NULL,
    attempts        INTEGER     NOT NULL CHECK (attempts >= 0),
    first_failed_at TIMESTAMPTZ,
    last_failed_at  TIMESTAMPTZ,
    metadata        JSONB       NOT NULL,
    payload         BYTEA       NOT NULL,
    archived_at     TIMESTAMPTZ NOT NULL,
    replayed_at     TIMESTAMPTZ,
    replay_count    INTEGER     NOT NULL DEFAULT 0 CHECK (replay_count >= 0),
    CONSTRAINT dead_letter_archive_dedupe_key UNIQUE (dedupe_key)
);

-- Listing by topic, newest first.
CREATE INDEX dead_letter_archive_topic_idx ON dead_letter_archive (original_topic, id);
-- Replaying every pending entry, oldest first, and counting the depth.
CREATE INDEX dead_letter_archive_pending_idx ON dead_letter_archive (original_topic, id) WHERE replayed_at IS NULL;
-- Purging by age.
CREATE INDEX dead_letter_archive_archived_idx ON dead_letter_archive (archived_at);
