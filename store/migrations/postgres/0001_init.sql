-- Times are UTC instants in whole seconds since the Unix epoch (BIGINT), so both backends
-- store and compare them the same way; the API shows them in Asia/Ho_Chi_Minh.
CREATE TABLE sites (
    id          BIGSERIAL PRIMARY KEY,
    code        TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('province', 'district', 'commune')),
    parent_id   BIGINT  REFERENCES sites (id),
    down_kbps   BIGINT  NOT NULL CHECK (down_kbps > 0),
    up_kbps     BIGINT  NOT NULL CHECK (up_kbps > 0),
    created_at  BIGINT  NOT NULL
);
CREATE INDEX sites_parent ON sites (parent_id);

CREATE TABLE people (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('province_admin', 'district_admin', 'official')),
    site_id       BIGINT  REFERENCES sites (id),
    password_hash TEXT,
    created_at    BIGINT  NOT NULL
);

CREATE TABLE endpoints (
    id          BIGSERIAL PRIMARY KEY,
    site_id     BIGINT  NOT NULL REFERENCES sites (id),
    name        TEXT    NOT NULL,
    key_hash    TEXT    NOT NULL UNIQUE,
    key_hint    TEXT    NOT NULL,
    revoked     BIGINT  NOT NULL DEFAULT 0,
    last_seen   BIGINT,
    health      TEXT,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX endpoints_site ON endpoints (site_id);

CREATE TABLE meetings (
    id            BIGSERIAL PRIMARY KEY,
    title         TEXT    NOT NULL,
    agenda        TEXT    NOT NULL DEFAULT '',
    starts_at     BIGINT  NOT NULL,
    ends_at       BIGINT  NOT NULL,
    rrule         TEXT,
    chair_site_id BIGINT  NOT NULL REFERENCES sites (id),
    created_by    BIGINT  REFERENCES people (id) ON DELETE SET NULL,
    extended_until BIGINT,
    ended_at      BIGINT,
    created_at    BIGINT  NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX meetings_starts ON meetings (starts_at);

-- The roster: invited sites (person_id NULL) and invited people, each with a role.
CREATE TABLE invitations (
    id          BIGSERIAL PRIMARY KEY,
    meeting_id  BIGINT  NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    site_id     BIGINT  NOT NULL REFERENCES sites (id),
    person_id   BIGINT  REFERENCES people (id) ON DELETE CASCADE,
    role        TEXT    NOT NULL CHECK (role IN ('chair', 'presenter', 'participant', 'viewer'))
);
CREATE INDEX invitations_meeting ON invitations (meeting_id);
CREATE INDEX invitations_site ON invitations (site_id);

CREATE TABLE join_links (
    jti         TEXT    PRIMARY KEY,
    meeting_id  BIGINT  NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    site_id     BIGINT  NOT NULL REFERENCES sites (id),
    person_id   BIGINT  REFERENCES people (id) ON DELETE CASCADE,
    role        TEXT    NOT NULL,
    expires_at  BIGINT  NOT NULL,
    revoked_at  BIGINT,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX join_links_meeting ON join_links (meeting_id);

CREATE TABLE attendance (
    id           BIGSERIAL PRIMARY KEY,
    meeting_id   BIGINT  NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    site_id      BIGINT  REFERENCES sites (id),
    person_id    BIGINT  REFERENCES people (id) ON DELETE SET NULL,
    endpoint_id  BIGINT  REFERENCES endpoints (id) ON DELETE SET NULL,
    display_name TEXT    NOT NULL,
    joined_at    BIGINT  NOT NULL,
    left_at      BIGINT
);
CREATE INDEX attendance_meeting ON attendance (meeting_id);

CREATE TABLE admin_sessions (
    token_hash  TEXT    PRIMARY KEY,
    person_id   BIGINT  NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    csrf        TEXT    NOT NULL,
    expires_at  BIGINT  NOT NULL
);

CREATE TABLE settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
