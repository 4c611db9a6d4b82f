-- One row per event a consumer has processed; the primary key is the claim.
CREATE TABLE processed_events (
    consumer   TEXT        NOT NULL,
    event_id   TEXT        NOT NULL,
    claimed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

CREATE INDEX processed_events_claimed_at ON processed_events (claimed_at);
