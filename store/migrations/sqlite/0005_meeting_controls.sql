-- What of a meeting's chair's controls outlives a restart of the bridge (the lock, mute
-- all, holds, the secretary, the floor: by credential, as JSON), for the meeting's
-- session in progress: a row older than the session's opening is not taken up.
CREATE TABLE meeting_controls (
    meeting_id  BIGINT  PRIMARY KEY,
    state       TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL
);
