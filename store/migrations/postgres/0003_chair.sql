-- Participants a meeting's chair removed. A join to the same meeting with any of the
-- row's credentials (join link, device key, named person) after `at` is refused with
-- the reason. No foreign keys: like the audit log, a row outlives what it names.
CREATE TABLE meeting_removals (
    id           BIGSERIAL PRIMARY KEY,
    meeting_id   BIGINT  NOT NULL,
    site_id      BIGINT,
    person_id    BIGINT,
    endpoint_id  BIGINT,
    jti          TEXT,
    reason       TEXT    NOT NULL,
    removed_by   TEXT    NOT NULL,
    at           BIGINT  NOT NULL
);
CREATE INDEX meeting_removals_meeting ON meeting_removals (meeting_id, at);

-- Each roll call's result per invited site: `present` (confirmed), `connected` (in the
-- meeting, did not confirm), `absent` (not connected). Written when the chair closes it.
CREATE TABLE roll_calls (
    id           BIGSERIAL PRIMARY KEY,
    meeting_id   BIGINT  NOT NULL,
    called_at    BIGINT  NOT NULL,
    site_id      BIGINT  NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('present', 'connected', 'absent')),
    confirmed_at BIGINT
);
CREATE INDEX roll_calls_meeting ON roll_calls (meeting_id, called_at);
