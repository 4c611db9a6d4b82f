-- Posts, their likes and comments (SQLite). Authors and likers are user-service's users,
-- referred to by id only: each service owns its data, so there is no foreign key to them.

CREATE TABLE posts (
    id            TEXT        PRIMARY KEY,
    author_id     TEXT        NOT NULL,
    text          TEXT        NOT NULL CHECK (length(text) BETWEEN 1 AND 500),
    created_at    TIMESTAMPTZ NOT NULL,
    -- Kept in the transaction that adds or removes a like or comment row.
    like_count    BIGINT      NOT NULL DEFAULT 0 CHECK (like_count >= 0),
    comment_count BIGINT      NOT NULL DEFAULT 0 CHECK (comment_count >= 0)
);
-- An author's posts newest first (ListUserPosts), and the home timeline: one range scan per
-- followed author, in the order of the keyset cursor.
CREATE INDEX posts_author_recent_idx ON posts (author_id, created_at DESC, id DESC);

CREATE TABLE likes (
    post_id    TEXT        NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    user_id    TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    -- One like per user and post; also serves "which of these posts does X like".
    PRIMARY KEY (post_id, user_id)
);

CREATE TABLE comments (
    id         TEXT        PRIMARY KEY,
    post_id    TEXT        NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    author_id  TEXT        NOT NULL,
    text       TEXT        NOT NULL CHECK (length(text) BETWEEN 1 AND 500),
    created_at TIMESTAMPTZ NOT NULL
);
-- A post's comments oldest first (ListComments); also the cascade's lookup on delete.
CREATE INDEX comments_post_oldest_idx ON comments (post_id, created_at, id);
