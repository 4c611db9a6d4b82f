-- Conversations, their participants and messages (SQLite, embedded mode). Participants and
-- senders are user-service's users, referred to by id only: each service owns its data, so
-- there is no foreign key to them. Ids are lowercase UUID text; message ids are UUIDv7, so
-- their text order is their time order.

CREATE TABLE conversations (
    id              TEXT        PRIMARY KEY,
    created_at      TIMESTAMPTZ NOT NULL,
    -- The newest message; NULL while there is none. Moved forward only, in the sending
    -- transaction.
    last_message_id TEXT
);

-- A pair's one-to-one conversation: the primary key makes it unique per pair (user_low <
-- user_high), whoever creates it and however many create it at once. The pair is claimed
-- first, then the conversation written, in one transaction: the reference is checked at
-- commit.
CREATE TABLE direct_conversations (
    user_low        TEXT NOT NULL,
    user_high       TEXT NOT NULL CHECK (user_low < user_high),
    conversation_id TEXT NOT NULL UNIQUE REFERENCES conversations (id) DEFERRABLE INITIALLY DEFERRED,
    PRIMARY KEY (user_low, user_high)
);

CREATE TABLE participants (
    conversation_id      TEXT        NOT NULL REFERENCES conversations (id),
    user_id              TEXT        NOT NULL,
    -- The conversation's last activity, copied to every participant's row in the sending
    -- transaction so that one index serves "my conversations by last activity".
    last_activity_at     TIMESTAMPTZ NOT NULL,
    -- The newest message the user has read; NULL: none. Moved forward only.
    last_read_message_id TEXT,
    PRIMARY KEY (conversation_id, user_id)
);
-- A user's conversations by last activity, newest first (ListConversations, keyset cursor).
CREATE INDEX participants_by_activity_idx ON participants (user_id, last_activity_at DESC, conversation_id DESC);

CREATE TABLE messages (
    id              TEXT        PRIMARY KEY,
    conversation_id TEXT        NOT NULL REFERENCES conversations (id),
    sender_id       TEXT        NOT NULL,
    text            TEXT        NOT NULL CHECK (length(text) BETWEEN 1 AND 4000),
    client_msg_id   TEXT        NOT NULL CHECK (length(client_msg_id) BETWEEN 1 AND 64),
    created_at      TIMESTAMPTZ NOT NULL,
    -- A retried send finds its first attempt here instead of storing a second message.
    UNIQUE (conversation_id, sender_id, client_msg_id)
);
-- A conversation's history newest first (ListMessages) and the unread counts (messages after
-- a read marker).
CREATE INDEX messages_by_conversation_idx ON messages (conversation_id, id DESC);
