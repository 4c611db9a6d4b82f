-- The history of connections to the gateways (SQLite).

CREATE TABLE sessions (
    connection_id   TEXT        PRIMARY KEY,
    user_id         TEXT        NOT NULL,
    instance_id     TEXT        NOT NULL,
    connected_at    TIMESTAMPTZ NOT NULL,
    -- NULL while the session is open.
    disconnected_at TIMESTAMPTZ
);
-- A user's history, newest first, and their latest open session.
CREATE INDEX sessions_user_connected_idx ON sessions (user_id, connected_at DESC, connection_id DESC);
-- A user's latest disconnect.
CREATE INDEX sessions_user_disconnected_idx ON sessions (user_id, disconnected_at);
-- The sweeper's walk over open sessions.
CREATE INDEX sessions_open_idx ON sessions (connection_id) WHERE disconnected_at IS NULL;
-- The retention purge.
CREATE INDEX sessions_disconnected_idx ON sessions (disconnected_at) WHERE disconnected_at IS NOT NULL;
