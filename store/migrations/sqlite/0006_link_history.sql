-- Each participant's link during meetings, sampled every few seconds (down/up kbit/s,
-- loss, round trip, jitter, the picture it received, audio only, heard, its uplink's
-- grade), for the meeting report and a site's link over the last weeks. A row holds a
-- minute or so of one attendance's samples packed (link_history.rs in the store: about
-- 14 bytes a sample), so a province's year (270 sites, a weekly 2-hour meeting) stays
-- small. Pruned after the configured number of days.
CREATE TABLE link_samples (
    attendance_id  BIGINT  NOT NULL,
    meeting_id     BIGINT  NOT NULL,
    site_id        BIGINT,
    start_at       BIGINT  NOT NULL,
    samples        BLOB   NOT NULL
);
CREATE INDEX link_samples_meeting ON link_samples (meeting_id, start_at);
CREATE INDEX link_samples_site ON link_samples (site_id, start_at);
CREATE INDEX link_samples_age ON link_samples (start_at);
