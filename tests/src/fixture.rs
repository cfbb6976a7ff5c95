//! The administrative tree and signed join links the security tests share: a province, one
//! district and its communes in the store, a meeting that is open now, and links whose
//! stored record and signed claims agree (the tests that need them to differ make their
//! own claims).

use cauhop_signaling::auth::{JoinClaims, JoinTokens};
use cauhop_store::model::{
    Invitation, JoinLink, MeetingRole, NewMeeting, NewSite, Person, PersonRole, SiteKind,
};
use cauhop_store::{Instant, Store};

/// A province `P`, its district `D`, and communes of `D` named by the caller.
pub struct Tree {
    pub province: i64,
    pub district: i64,
    pub communes: Vec<i64>,
}

fn site(code: &str, kind: SiteKind, parent: Option<i64>) -> NewSite {
    NewSite {
        code: code.into(),
        name: code.into(),
        kind,
        parent_id: parent,
        down_kbps: 384,
        up_kbps: 128,
    }
}

/// The two offices' admins with `password`: `tinh` of the province, `huyen` of the tree's
/// district.
pub async fn office_admins(
    store: &Store,
    tree: &Tree,
    password: &str,
) -> anyhow::Result<(Person, Person)> {
    let hash = cauhop_signaling::auth::hash_password(password).map_err(anyhow::Error::msg)?;
    let tinh = store
        .create_person(
            "tinh",
            "Văn phòng tỉnh",
            PersonRole::ProvinceAdmin,
            None,
            Some(&hash),
        )
        .await?;
    let huyen = store
        .create_person(
            "huyen",
            "Huyện",
            PersonRole::DistrictAdmin,
            Some(tree.district),
            Some(&hash),
        )
        .await?;
    Ok((tinh, huyen))
}

pub async fn province_tree(store: &Store, communes: &[&str]) -> anyhow::Result<Tree> {
    let province = store
        .create_site(&site("P", SiteKind::Province, None))
        .await?
        .id;
    let district = store
        .create_site(&site("D", SiteKind::District, Some(province)))
        .await?
        .id;
    let mut ids = Vec::new();
    for code in communes {
        ids.push(
            store
                .create_site(&site(code, SiteKind::Commune, Some(district)))
                .await?
                .id,
        );
    }
    Ok(Tree {
        province,
        district,
        communes: ids,
    })
}

/// An invitation as a participant, of a site or of a person at it.
pub fn invite(site_id: i64, person_id: Option<i64>) -> Invitation {
    Invitation {
        site_id,
        person_id,
        role: MeetingRole::Participant,
    }
}

/// A meeting chaired by `chair` that opened a minute ago and runs for an hour.
pub fn open_meeting(title: &str, chair: i64, roster: Vec<Invitation>) -> NewMeeting {
    let start = Instant::now().plus(-60);
    NewMeeting {
        title: title.into(),
        agenda: String::new(),
        starts_at: start,
        ends_at: start.plus(3600),
        rrule: None,
        chair_site_id: chair,
        roster,
    }
}

/// Store a participant's link `jti` and sign the same claims: what the bridge issues.
pub async fn issued_link(
    store: &Store,
    tokens: &JoinTokens,
    jti: &str,
    meeting: i64,
    site: i64,
    person: Option<i64>,
) -> anyhow::Result<String> {
    issued_link_as(
        store,
        tokens,
        jti,
        (meeting, site, person),
        MeetingRole::Participant,
    )
    .await
}

/// [`issued_link`] with another role (a viewer's link, for a display).
pub async fn issued_link_as(
    store: &Store,
    tokens: &JoinTokens,
    jti: &str,
    (meeting, site, person): (i64, i64, Option<i64>),
    role: MeetingRole,
) -> anyhow::Result<String> {
    let expires = Instant::now().plus(7200);
    store
        .create_link(&JoinLink {
            jti: jti.into(),
            meeting_id: meeting,
            site_id: site,
            person_id: person,
            role,
            expires_at: expires,
            revoked_at: None,
        })
        .await?;
    tokens
        .issue(&JoinClaims {
            jti: jti.into(),
            mid: meeting,
            site,
            pid: person,
            role,
            exp: expires.0,
            iat: Instant::now().0,
        })
        .map_err(anyhow::Error::msg)
}
