//! The audit log of administrative actions: how handlers write it and how a province
//! admin reads it.
//!
//! An entry is written after the action has succeeded, by the handler that did it. If
//! the write fails the action stands (undoing a revocation because the log is full would
//! be worse) and the failure is logged at error level with the entry, so an operator's
//! log still holds it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::Json;
use cauhop_store::model::{
    AuditAction, AuditActor, AuditEntry, Invitation, Meeting, NewAuditEntry, Paged, Person,
};
use cauhop_store::{AuditFilter, Instant, Store};
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{ApiQuery, PageQuery, Principal};
use crate::AppState;

/// What a handler needs to record what it did: the store and where the request came from
/// (the forwarded client behind a trusted proxy, else the TCP peer).
pub struct Audit {
    store: Store,
    client: Option<String>,
}

impl FromRequestParts<Arc<AppState>> for Audit {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let client = parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|c| state.client_addr(c.0, &parts.headers).ip().to_string());
        Ok(Self {
            store: state.store.clone(),
            client,
        })
    }
}

impl Audit {
    /// The client's address, as entries written through this request name it.
    pub fn client(&self) -> Option<&str> {
        self.client.as_deref()
    }

    /// Record that `who` did `action` to `target`.
    pub async fn record(
        &self,
        who: &Person,
        action: AuditAction,
        target: impl std::fmt::Display,
        detail: serde_json::Value,
    ) {
        let entry = NewAuditEntry {
            actor: AuditActor {
                person_id: Some(who.id),
                name: who.username.clone(),
                client: self.client.clone(),
            },
            action,
            target_id: target.to_string(),
            detail,
        };
        write(&self.store, &entry).await;
    }
}

/// Append `entry`; a failure is logged with the entry, never returned.
pub async fn write(store: &Store, entry: &NewAuditEntry) {
    match store.record_audit(entry).await {
        Ok(e) => tracing::info!(
            target: "cauhop::audit",
            id = e.id,
            actor = %e.actor,
            action = e.action.as_str(),
            target = %e.target_id,
            client = e.client.as_deref().unwrap_or("-"),
            "audit"
        ),
        Err(err) => tracing::error!(
            target: "cauhop::audit",
            actor = %entry.actor.name,
            action = entry.action.as_str(),
            target = %entry.target_id,
            detail = %entry.detail,
            client = entry.actor.client.as_deref().unwrap_or("-"),
            "cannot write the audit log: {err}"
        ),
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// `meeting`, `link`, `site`, `person`, `endpoint` or `join_key`.
    pub kind: Option<String>,
    /// With `kind`: one meeting, link (jti), site, person or endpoint.
    pub target: Option<String>,
    /// Actions by one person.
    pub actor_id: Option<i64>,
    /// RFC 3339 times.
    pub from: Option<String>,
    pub to: Option<String>,
    /// 1-500, default 100.
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

const KINDS: [&str; 6] = ["meeting", "link", "site", "person", "endpoint", "join_key"];

/// Administrative actions, newest first. Province administrators only: the log names
/// every district's people and links.
#[utoipa::path(operation_id = "audit_list", get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Paged<AuditEntry>), (status = 401, body = super::error::ErrorBody),
              (status = 403, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Paged<AuditEntry>>, ApiError> {
    if principal.admin()?.district().is_some() {
        return Err(ApiError::forbidden(
            "the audit log is read by the province's administrators",
        ));
    }
    let page = PageQuery {
        limit: q.limit,
        offset: q.offset,
    }
    .page()?;
    if let Some(k) = q.kind.as_deref()
        && !KINDS.contains(&k)
    {
        return Err(ApiError::invalid(
            "kind",
            format!("expected one of {}", KINDS.join(", ")),
        ));
    }
    if q.target.is_some() && q.kind.is_none() {
        return Err(ApiError::invalid("target", "give `kind` with `target`"));
    }
    let time = |field: &str, v: Option<&str>| {
        v.map(|t| Instant::parse(t).map_err(|e| ApiError::invalid(field, e)))
            .transpose()
    };
    let filter = AuditFilter {
        target_kind: q.kind,
        target_id: q.target,
        actor_id: q.actor_id,
        from: time("from", q.from.as_deref())?,
        to: time("to", q.to.as_deref())?,
    };
    Ok(Json(state.store.audit_log(&filter, page).await?))
}

/// What the log keeps of a meeting: enough to tell which one it was.
pub fn meeting_detail(m: &Meeting) -> serde_json::Value {
    serde_json::json!({
        "title": m.title,
        "starts_at": m.starts_at,
        "ends_at": m.ends_at,
        "rrule": m.rrule,
        "chair_site_id": m.chair_site_id,
        "sites": m.roster.len(),
    })
}

/// One roster line as the log writes it: `site`, `site/person`, with `:role`.
fn line(i: &Invitation) -> String {
    match i.person_id {
        Some(p) => format!("{}/{p}:{}", i.site_id, i.role.as_str()),
        None => format!("{}:{}", i.site_id, i.role.as_str()),
    }
}

/// Who was added to, removed from or given another role on a roster; `None` when the
/// roster is the same.
pub fn roster_change(before: &[Invitation], after: &[Invitation]) -> Option<serde_json::Value> {
    let key = |i: &Invitation| (i.site_id, i.person_id);
    let old: BTreeMap<_, _> = before.iter().map(|i| (key(i), i)).collect();
    let new: BTreeMap<_, _> = after.iter().map(|i| (key(i), i)).collect();
    let added: Vec<String> = new
        .iter()
        .filter(|(k, _)| !old.contains_key(*k))
        .map(|(_, i)| line(i))
        .collect();
    let removed: Vec<String> = old
        .iter()
        .filter(|(k, _)| !new.contains_key(*k))
        .map(|(_, i)| line(i))
        .collect();
    let role: Vec<String> = new
        .iter()
        .filter_map(|(k, i)| {
            let was = old.get(k)?;
            (was.role != i.role).then(|| format!("{} -> {}", line(was), i.role.as_str()))
        })
        .collect();
    if added.is_empty() && removed.is_empty() && role.is_empty() {
        return None;
    }
    Some(serde_json::json!({"added": added, "removed": removed, "role": role}))
}

#[cfg(test)]
mod tests {
    use cauhop_store::model::MeetingRole;

    use super::*;

    fn inv(site_id: i64, person_id: Option<i64>, role: MeetingRole) -> Invitation {
        Invitation {
            site_id,
            person_id,
            role,
        }
    }

    #[test]
    fn a_roster_change_names_who_came_who_went_and_whose_role_changed() {
        use MeetingRole::*;
        let before = [
            inv(1, None, Chair),
            inv(2, None, Participant),
            inv(3, Some(9), Participant),
        ];
        let after = [
            inv(1, None, Chair),
            inv(3, Some(9), Presenter),
            inv(4, None, Viewer),
        ];
        let c = roster_change(&before, &after).expect("changed");
        assert_eq!(c["added"], serde_json::json!(["4:viewer"]));
        assert_eq!(c["removed"], serde_json::json!(["2:participant"]));
        assert_eq!(
            c["role"],
            serde_json::json!(["3/9:participant -> presenter"])
        );
        // Order does not matter; the same roster is no change.
        let shuffled = [after[2].clone(), after[0].clone(), after[1].clone()];
        assert_eq!(roster_change(&after, &shuffled), None);
    }
}
