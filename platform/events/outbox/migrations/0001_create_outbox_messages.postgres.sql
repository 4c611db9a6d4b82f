-- Events written in the same transaction as the state change they describe, waiting for the
-- forwarder to publish them. id gives the order: the forwarder publishes oldest first and
-- deletes each row once the bus has accepted it.
CREATE TABLE outbox_messages (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic        TEXT        NOT NULL,
    message_uuid TEXT        NOT NULL,
    metadata     TEXT        NOT NULL, -- JSON object of the message metadata (trace context, partition key)
    payload      BYTEA       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
