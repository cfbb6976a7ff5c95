//! The entities as the API shows them. Write models (`New*`) carry what a client sends.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::schedule::Phase;
use crate::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SiteKind {
    Province,
    District,
    Commune,
}

impl SiteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Province => "province",
            Self::District => "district",
            Self::Commune => "commune",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "province" => Self::Province,
            "district" => Self::District,
            "commune" => Self::Commune,
            _ => return None,
        })
    }

    /// The kind a parent of this kind must have.
    pub fn parent_kind(self) -> Option<Self> {
        match self {
            Self::Province => None,
            Self::District => Some(Self::Province),
            Self::Commune => Some(Self::District),
        }
    }
}

/// A place that joins meetings: the province hall, a district office, a commune room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Site {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub kind: SiteKind,
    pub parent_id: Option<i64>,
    /// Expected downlink of the site's connection, kbit/s (caps what the bridge sends).
    pub down_kbps: i64,
    pub up_kbps: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSite {
    /// Administrative code, unique (e.g. the GSO code "02" for Hà Giang).
    pub code: String,
    pub name: String,
    pub kind: SiteKind,
    pub parent_id: Option<i64>,
    #[serde(default = "default_down")]
    pub down_kbps: i64,
    #[serde(default = "default_up")]
    pub up_kbps: i64,
}

fn default_down() -> i64 {
    2000
}
fn default_up() -> i64 {
    1000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PersonRole {
    /// Manages everything in the province.
    ProvinceAdmin,
    /// Manages one district: its sites, endpoints, officials and meetings.
    DistrictAdmin,
    /// Sees the meetings their site is invited to.
    Official,
}

impl PersonRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProvinceAdmin => "province_admin",
            Self::DistrictAdmin => "district_admin",
            Self::Official => "official",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "province_admin" => Self::ProvinceAdmin,
            "district_admin" => Self::DistrictAdmin,
            "official" => Self::Official,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Person {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: PersonRole,
    /// The district of a district admin; the site of an official.
    pub site_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPerson {
    pub username: String,
    pub display_name: String,
    pub role: PersonRole,
    pub site_id: Option<i64>,
    /// At least 10 characters; omitted for officials who only receive join links.
    pub password: Option<String>,
}

/// A meeting-room device: joins on its own with its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Endpoint {
    pub id: i64,
    pub site_id: i64,
    pub name: String,
    /// First characters of the key, to tell keys apart; the key itself is shown once.
    pub key_hint: String,
    pub revoked: bool,
    pub last_seen: Option<Instant>,
    /// The last health report, as the device sent it.
    pub health: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    pub site_id: i64,
    pub name: String,
}

/// An endpoint just created or re-keyed: the only time its key is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EndpointWithKey {
    pub endpoint: Endpoint,
    pub key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MeetingRole {
    /// Runs the meeting: mutes others, gives the floor, extends and ends it.
    Chair,
    Presenter,
    Participant,
    /// Watches and listens only.
    Viewer,
}

impl MeetingRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chair => "chair",
            Self::Presenter => "presenter",
            Self::Participant => "participant",
            Self::Viewer => "viewer",
        }
    }

    /// Of two roles, the one with fewer powers: a link can narrow what the roster gives a
    /// site (a viewer link for a participant), never widen it.
    pub fn narrower(self, other: Self) -> Self {
        let rank = |r: Self| match r {
            Self::Chair => 0,
            Self::Presenter => 1,
            Self::Participant => 2,
            Self::Viewer => 3,
        };
        if rank(self) >= rank(other) {
            self
        } else {
            other
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "chair" => Self::Chair,
            "presenter" => Self::Presenter,
            "participant" => Self::Participant,
            "viewer" => Self::Viewer,
            _ => return None,
        })
    }
}

/// One line of a meeting's roster: a site, or a person at a site, with a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invitation {
    pub site_id: i64,
    #[serde(default)]
    pub person_id: Option<i64>,
    pub role: MeetingRole,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Meeting {
    pub id: i64,
    pub title: String,
    pub agenda: String,
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: Instant,
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: Instant,
    /// RFC 5545 recurrence rule (`FREQ=WEEKLY;COUNT=10`), if the meeting repeats.
    pub rrule: Option<String>,
    pub chair_site_id: i64,
    pub roster: Vec<Invitation>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub extended_until: Option<Instant>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<Instant>,
    /// Where the meeting is now (filled in by the server from its schedule settings).
    pub phase: Option<Phase>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMeeting {
    pub title: String,
    #[serde(default)]
    pub agenda: String,
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: Instant,
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: Instant,
    #[serde(default)]
    pub rrule: Option<String>,
    pub chair_site_id: i64,
    /// The chair site is added as `chair` if it is not listed.
    #[serde(default)]
    pub roster: Vec<Invitation>,
}

/// A signed join link's record: what it grants, and whether it was revoked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JoinLink {
    pub jti: String,
    pub meeting_id: i64,
    pub site_id: i64,
    pub person_id: Option<i64>,
    pub role: MeetingRole,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Instant,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Attendance {
    pub id: i64,
    pub meeting_id: i64,
    pub site_id: Option<i64>,
    pub person_id: Option<i64>,
    pub endpoint_id: Option<i64>,
    pub display_name: String,
    #[schema(value_type = String, format = DateTime)]
    pub joined_at: Instant,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub left_at: Option<Instant>,
    /// Seconds present (up to now for someone still connected).
    pub seconds: i64,
}

/// A participant the chair removed from a meeting: its credential (any of them) may not
/// rejoin that meeting's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRemoval {
    pub meeting_id: i64,
    pub site_id: Option<i64>,
    pub person_id: Option<i64>,
    pub endpoint_id: Option<i64>,
    pub jti: Option<String>,
    pub reason: String,
    /// Who removed it, as the audit log names them.
    pub by: String,
}

/// A meeting's settings for its chair's controls and its record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MeetingSettings {
    /// Record the meeting's audio (every page shows it while on).
    pub record: bool,
    /// Sites the chair muted may unmute themselves.
    pub self_unmute: bool,
    /// Seconds a floor turn may last, for the pages' timers (0: no limit).
    pub floor_limit_s: u32,
}

/// A site's answer to a roll call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RollCallStatus {
    /// Confirmed ("có mặt").
    Present,
    /// In the meeting, but did not confirm.
    Connected,
    /// Not connected during the roll call.
    Absent,
}

impl RollCallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Present => "present",
            Self::Connected => "connected",
            Self::Absent => "absent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Present, Self::Connected, Self::Absent]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// One invited site's result in one roll call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RollCallEntry {
    pub site_id: i64,
    pub status: RollCallStatus,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub confirmed_at: Option<Instant>,
}

/// A roll call's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RollCall {
    #[schema(value_type = String, format = DateTime)]
    pub called_at: Instant,
    pub sites: Vec<RollCallEntry>,
}

/// Who is joining, for the attendance record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttendance {
    pub meeting_id: i64,
    pub site_id: Option<i64>,
    pub person_id: Option<i64>,
    pub endpoint_id: Option<i64>,
    pub display_name: String,
}

/// A window of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            limit: 100,
            offset: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// An administrative action the audit log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum AuditAction {
    #[serde(rename = "meeting.create")]
    MeetingCreate,
    #[serde(rename = "meeting.update")]
    MeetingUpdate,
    #[serde(rename = "meeting.delete")]
    MeetingDelete,
    /// Sites or people added to, removed from or given another role in a meeting.
    #[serde(rename = "roster.change")]
    RosterChange,
    #[serde(rename = "link.create")]
    LinkCreate,
    #[serde(rename = "link.revoke")]
    LinkRevoke,
    #[serde(rename = "site.create")]
    SiteCreate,
    #[serde(rename = "site.update")]
    SiteUpdate,
    #[serde(rename = "site.delete")]
    SiteDelete,
    #[serde(rename = "person.create")]
    PersonCreate,
    #[serde(rename = "person.delete")]
    PersonDelete,
    #[serde(rename = "person.password")]
    PersonPassword,
    #[serde(rename = "person.login")]
    PersonLogin,
    #[serde(rename = "endpoint.create")]
    EndpointCreate,
    #[serde(rename = "endpoint.delete")]
    EndpointDelete,
    #[serde(rename = "endpoint.key_rotate")]
    EndpointKeyRotate,
    /// The join-link signing key (`cauhop keys rotate`).
    #[serde(rename = "join_key.rotate")]
    JoinKeyRotate,
    /// In a meeting, by its chair: the floor given or taken back.
    #[serde(rename = "meeting.floor")]
    MeetingFloor,
    /// A microphone muted or unmuted by the chair (one site, or all).
    #[serde(rename = "meeting.mute")]
    MeetingMute,
    /// A camera stopped or allowed by the chair.
    #[serde(rename = "meeting.camera")]
    MeetingCamera,
    /// A participant removed by the chair, with the reason it was shown.
    #[serde(rename = "meeting.remove")]
    MeetingRemove,
    /// The meeting locked or unlocked, or its self-unmute setting changed.
    #[serde(rename = "meeting.lock")]
    MeetingLock,
    /// A secretary named (or none) by the chair.
    #[serde(rename = "meeting.secretary")]
    MeetingSecretary,
    /// The meeting ended or extended by its chair.
    #[serde(rename = "meeting.end")]
    MeetingEnd,
    /// A roll call opened or closed (with its counts).
    #[serde(rename = "meeting.roll_call")]
    MeetingRollCall,
    /// A meeting's audio record downloaded.
    #[serde(rename = "meeting.record_download")]
    MeetingRecordDownload,
}

impl AuditAction {
    pub const ALL: [Self; 26] = [
        Self::MeetingCreate,
        Self::MeetingUpdate,
        Self::MeetingDelete,
        Self::RosterChange,
        Self::LinkCreate,
        Self::LinkRevoke,
        Self::SiteCreate,
        Self::SiteUpdate,
        Self::SiteDelete,
        Self::PersonCreate,
        Self::PersonDelete,
        Self::PersonPassword,
        Self::PersonLogin,
        Self::EndpointCreate,
        Self::EndpointDelete,
        Self::EndpointKeyRotate,
        Self::JoinKeyRotate,
        Self::MeetingFloor,
        Self::MeetingMute,
        Self::MeetingCamera,
        Self::MeetingRemove,
        Self::MeetingLock,
        Self::MeetingSecretary,
        Self::MeetingEnd,
        Self::MeetingRollCall,
        Self::MeetingRecordDownload,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MeetingCreate => "meeting.create",
            Self::MeetingUpdate => "meeting.update",
            Self::MeetingDelete => "meeting.delete",
            Self::RosterChange => "roster.change",
            Self::LinkCreate => "link.create",
            Self::LinkRevoke => "link.revoke",
            Self::SiteCreate => "site.create",
            Self::SiteUpdate => "site.update",
            Self::SiteDelete => "site.delete",
            Self::PersonCreate => "person.create",
            Self::PersonDelete => "person.delete",
            Self::PersonPassword => "person.password",
            Self::PersonLogin => "person.login",
            Self::EndpointCreate => "endpoint.create",
            Self::EndpointDelete => "endpoint.delete",
            Self::EndpointKeyRotate => "endpoint.key_rotate",
            Self::JoinKeyRotate => "join_key.rotate",
            Self::MeetingFloor => "meeting.floor",
            Self::MeetingMute => "meeting.mute",
            Self::MeetingCamera => "meeting.camera",
            Self::MeetingRemove => "meeting.remove",
            Self::MeetingLock => "meeting.lock",
            Self::MeetingSecretary => "meeting.secretary",
            Self::MeetingEnd => "meeting.end",
            Self::MeetingRollCall => "meeting.roll_call",
            Self::MeetingRecordDownload => "meeting.record_download",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// What the target id names: `meeting`, `link` (a jti), `site`, `person`,
    /// `endpoint` or `join_key` (a key id). A roster belongs to its meeting.
    pub fn target_kind(self) -> &'static str {
        match self {
            Self::RosterChange => "meeting",
            a => a.as_str().split('.').next().unwrap_or_default(),
        }
    }
}

/// Who acted: a logged-in person, or the command line on the bridge's machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditActor {
    pub person_id: Option<i64>,
    /// The username, or `cli:<system user>` for `cauhop admin …` and `cauhop keys …`.
    pub name: String,
    /// The client's address as the bridge saw it (behind a trusted proxy, the forwarded one).
    pub client: Option<String>,
}

/// One entry to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    pub actor: AuditActor,
    pub action: AuditAction,
    pub target_id: String,
    /// What changed, as a JSON object (a title, a role, the sites added).
    pub detail: serde_json::Value,
}

/// One recorded administrative action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    #[schema(value_type = String, format = DateTime)]
    pub at: Instant,
    pub actor_id: Option<i64>,
    pub actor: String,
    pub action: AuditAction,
    pub target_kind: String,
    pub target_id: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub client: Option<String>,
}
