-- How the chair's controls start in a meeting, and whether its audio is recorded. A
-- meeting without a row has the defaults (no record, no self-unmute, no turn limit).
CREATE TABLE meeting_settings (
    meeting_id     BIGINT  PRIMARY KEY,
    record         BIGINT  NOT NULL DEFAULT 0,
    self_unmute    BIGINT  NOT NULL DEFAULT 0,
    floor_limit_s  BIGINT  NOT NULL DEFAULT 0
);
