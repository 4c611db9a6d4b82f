-- Accounts, sessions and refresh tokens, and the follow graph (PostgreSQL).

CREATE TABLE users (
    id              UUID        PRIMARY KEY,
    username        TEXT        NOT NULL CHECK (username = lower(username)),
    email           TEXT        NOT NULL CHECK (email = lower(email)),
    password_hash   TEXT        NOT NULL,
    display_name    TEXT        NOT NULL DEFAULT '',
    bio             TEXT        NOT NULL DEFAULT '',
    followers_count BIGINT      NOT NULL DEFAULT 0 CHECK (followers_count >= 0),
    following_count BIGINT      NOT NULL DEFAULT 0 CHECK (following_count >= 0),
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    CONSTRAINT users_username_key UNIQUE (username),
    CONSTRAINT users_email_key UNIQUE (email)
);

CREATE TABLE sessions (
    id         UUID        PRIMARY KEY,
    user_id    UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

-- Only the SHA-256 of a refresh token is stored.
CREATE TABLE refresh_tokens (
    hash       BYTEA       PRIMARY KEY,
    session_id UUID        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);

CREATE TABLE follows (
    follower_id UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    followee_id UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (follower_id, followee_id),
    CHECK (follower_id <> followee_id)
);
-- Followers of X, newest first (ListFollowers).
CREATE INDEX follows_followee_recent_idx ON follows (followee_id, created_at DESC, follower_id DESC);
-- Followers of X by id (StreamFollowerIDs batches).
CREATE UNIQUE INDEX follows_followee_follower_idx ON follows (followee_id, follower_id);
-- Whom X follows, newest first (ListFollowing).
CREATE INDEX follows_follower_recent_idx ON follows (follower_id, created_at DESC, followee_id DESC);
