-- Who did what to which meeting, link, roster, person, site or device key, and from
-- where. Append-only: the store has no statement that changes or deletes a row. No
-- foreign keys: an entry outlives the person, site or meeting it names.
CREATE TABLE audit_log (
    id           BIGSERIAL PRIMARY KEY,
    at           BIGINT  NOT NULL,
    actor_id     BIGINT,
    actor        TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    target_kind  TEXT    NOT NULL,
    target_id    TEXT    NOT NULL,
    detail       TEXT    NOT NULL,
    client       TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_target ON audit_log (target_kind, target_id);
