use std::collections::{HashMap, HashSet};

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::model::{Invitation, Meeting, MeetingRole, NewMeeting, Page, Paged};
use crate::schedule::{Booking, MeetingTimes, Rule, Window, first_conflict};
use crate::{Backend, Instant, Result, Store, StoreError};

const COLUMNS: &str =
    "id, title, agenda, starts_at, ends_at, rrule, chair_site_id, extended_until, ended_at";
const MAX_DURATION_SECS: i64 = 24 * 3600;

/// Which meetings a list shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct MeetingFilter {
    /// Meetings (or occurrences) ending after this instant.
    pub from: Option<Instant>,
    /// Meetings starting before this instant.
    pub to: Option<Instant>,
    /// Only meetings with a chair or invited site in this district.
    pub district: Option<i64>,
    /// Only meetings that invite this site.
    pub site: Option<i64>,
}

fn meeting(row: &AnyRow) -> Result<Meeting> {
    Ok(Meeting {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        agenda: row.try_get("agenda")?,
        starts_at: Instant(row.try_get("starts_at")?),
        ends_at: Instant(row.try_get("ends_at")?),
        rrule: row.try_get("rrule")?,
        chair_site_id: row.try_get("chair_site_id")?,
        roster: Vec::new(),
        extended_until: row
            .try_get::<Option<i64>, _>("extended_until")?
            .map(Instant),
        ended_at: row.try_get::<Option<i64>, _>("ended_at")?.map(Instant),
        phase: None,
    })
}

impl Meeting {
    pub fn times(&self) -> MeetingTimes {
        MeetingTimes {
            id: self.id,
            first: Window {
                start: self.starts_at,
                end: self.ends_at,
            },
            rule: self.rrule.as_deref().and_then(|r| r.parse().ok()),
            extended_until: self.extended_until,
            ended_at: self.ended_at,
        }
    }

    /// The role a site (or a person at it) has in this meeting, if invited.
    pub fn role_of(&self, site_id: i64, person_id: Option<i64>) -> Option<MeetingRole> {
        let personal = person_id.and_then(|p| {
            self.roster
                .iter()
                .find(|i| i.person_id == Some(p))
                .map(|i| i.role)
        });
        personal.or_else(|| {
            self.roster
                .iter()
                .find(|i| i.site_id == site_id && i.person_id.is_none())
                .map(|i| i.role)
        })
    }
}

impl Store {
    async fn validate_meeting(&self, m: &NewMeeting) -> Result<(Option<Rule>, Vec<Invitation>)> {
        Self::check_len("title", &m.title, 200)?;
        if m.agenda.chars().count() > 20_000 {
            return Err(StoreError::invalid("agenda", "at most 20000 characters"));
        }
        if m.ends_at <= m.starts_at {
            return Err(StoreError::invalid("ends_at", "must be after starts_at"));
        }
        if m.ends_at.0 - m.starts_at.0 > MAX_DURATION_SECS {
            return Err(StoreError::invalid(
                "ends_at",
                "a meeting lasts at most 24 hours",
            ));
        }
        let rule = match m.rrule.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
            Some(r) => Some(
                r.parse::<Rule>()
                    .map_err(|e| StoreError::invalid("rrule", e))?,
            ),
            None => None,
        };
        self.site(m.chair_site_id).await.map_err(|_| {
            StoreError::invalid("chair_site_id", format!("no site {}", m.chair_site_id))
        })?;
        let mut roster = m.roster.clone();
        if !roster
            .iter()
            .any(|i| i.site_id == m.chair_site_id && i.person_id.is_none())
        {
            roster.insert(
                0,
                Invitation {
                    site_id: m.chair_site_id,
                    person_id: None,
                    role: MeetingRole::Chair,
                },
            );
        }
        if roster.len() > 2_000 {
            return Err(StoreError::invalid("roster", "at most 2000 invitations"));
        }
        let mut seen = HashSet::new();
        let known: HashSet<i64> = self.site_ids().await?.into_iter().collect();
        for (n, inv) in roster.iter().enumerate() {
            if !known.contains(&inv.site_id) {
                return Err(StoreError::invalid(
                    format!("roster[{n}].site_id"),
                    format!("no site {}", inv.site_id),
                ));
            }
            if let Some(p) = inv.person_id {
                self.person(p).await.map_err(|_| {
                    StoreError::invalid(format!("roster[{n}].person_id"), format!("no person {p}"))
                })?;
            }
            if !seen.insert((inv.site_id, inv.person_id)) {
                return Err(StoreError::invalid(format!("roster[{n}]"), "listed twice"));
            }
        }
        Ok((rule, roster))
    }

    async fn site_ids(&self) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = sqlx::query_as("SELECT id FROM sites")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    pub async fn create_meeting(&self, m: &NewMeeting, created_by: Option<i64>) -> Result<Meeting> {
        if m.ends_at <= Instant::now() && m.rrule.is_none() {
            return Err(StoreError::invalid(
                "ends_at",
                "the meeting would already be over",
            ));
        }
        let (rule, roster) = self.validate_meeting(m).await?;
        let mut tx = self.pool.begin().await?;
        self.lock_meetings(&mut tx).await?;
        let row = sqlx::query(&format!(
            "INSERT INTO meetings (title, agenda, starts_at, ends_at, rrule, chair_site_id, \
             created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
        ))
        .bind(m.title.trim())
        .bind(&m.agenda)
        .bind(m.starts_at.0)
        .bind(m.ends_at.0)
        .bind(m.rrule.as_deref().map(str::trim).filter(|r| !r.is_empty()))
        .bind(m.chair_site_id)
        .bind(created_by)
        .bind(Instant::now().0)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::from_db(e, "chair_site_id"))?;
        let mut out = meeting(&row)?;
        write_roster(&mut tx, out.id, &roster).await?;
        check_overlap(&mut tx, out.id, m, rule).await?;
        tx.commit().await?;
        out.roster = roster;
        Ok(out)
    }

    pub async fn update_meeting(&self, id: i64, m: &NewMeeting) -> Result<Meeting> {
        let (rule, roster) = self.validate_meeting(m).await?;
        let mut tx = self.pool.begin().await?;
        self.lock_meetings(&mut tx).await?;
        let row = sqlx::query(&format!(
            "UPDATE meetings SET title = $1, agenda = $2, starts_at = $3, ends_at = $4, \
             rrule = $5, chair_site_id = $6, extended_until = NULL, ended_at = NULL \
             WHERE id = $7 RETURNING {COLUMNS}"
        ))
        .bind(m.title.trim())
        .bind(&m.agenda)
        .bind(m.starts_at.0)
        .bind(m.ends_at.0)
        .bind(m.rrule.as_deref().map(str::trim).filter(|r| !r.is_empty()))
        .bind(m.chair_site_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| StoreError::from_db(e, "chair_site_id"))?
        .ok_or_else(|| StoreError::not_found("meeting", id))?;
        let mut out = meeting(&row)?;
        sqlx::query("DELETE FROM invitations WHERE meeting_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        write_roster(&mut tx, id, &roster).await?;
        check_overlap(&mut tx, id, m, rule).await?;
        tx.commit().await?;
        out.roster = roster;
        Ok(out)
    }

    /// PostgreSQL runs transactions side by side: serialise meeting writes so two
    /// concurrent bookings cannot both pass the overlap check. SQLite has one writer anyway.
    /// An advisory lock rather than `LOCK TABLE`, which also waits for autovacuum.
    async fn lock_meetings(&self, tx: &mut Transaction<'_, Any>) -> Result<()> {
        if self.backend() == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7746)::text")
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    pub async fn meeting(&self, id: i64) -> Result<Meeting> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM meetings WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::not_found("meeting", id))?;
        let mut m = meeting(&row)?;
        m.roster = self.rosters(&[id]).await?.remove(&id).unwrap_or_default();
        Ok(m)
    }

    async fn rosters(&self, ids: &[i64]) -> Result<HashMap<i64, Vec<Invitation>>> {
        let mut out: HashMap<i64, Vec<Invitation>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        // Ids come from the database as integers: formatting them in is safe.
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let rows = sqlx::query(&format!(
            "SELECT meeting_id, site_id, person_id, role FROM invitations \
             WHERE meeting_id IN ({list}) ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            let role: String = r.try_get("role")?;
            out.entry(r.try_get("meeting_id")?)
                .or_default()
                .push(Invitation {
                    site_id: r.try_get("site_id")?,
                    person_id: r.try_get("person_id")?,
                    role: MeetingRole::parse(&role)
                        .ok_or_else(|| StoreError::invalid("role", role))?,
                });
        }
        Ok(out)
    }

    pub async fn meetings(&self, f: MeetingFilter, page: Page) -> Result<Paged<Meeting>> {
        let mut cond = vec![
            "(rrule IS NOT NULL OR COALESCE(extended_until, ends_at) > $3)".to_owned(),
            "starts_at < $4".to_owned(),
        ];
        if f.district.is_some() {
            cond.push(
                "(chair_site_id IN (SELECT id FROM sites WHERE id = $5 OR parent_id = $5) OR \
                 EXISTS (SELECT 1 FROM invitations i JOIN sites s ON s.id = i.site_id \
                 WHERE i.meeting_id = meetings.id AND (s.id = $5 OR s.parent_id = $5)))"
                    .into(),
            );
        } else {
            cond.push("$5 = $5".into());
        }
        if f.site.is_some() {
            cond.push(
                "EXISTS (SELECT 1 FROM invitations i WHERE i.meeting_id = meetings.id \
                 AND i.site_id = $6)"
                    .into(),
            );
        } else {
            cond.push("$6 = $6".into());
        }
        let filter = cond.join(" AND ");
        let binds = (
            f.from.unwrap_or(Instant(i64::MIN)).0,
            f.to.unwrap_or(Instant(i64::MAX)).0,
            f.district.unwrap_or(0),
            f.site.unwrap_or(0),
        );
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM meetings WHERE {filter} ORDER BY starts_at, id LIMIT $1 OFFSET $2"
        ))
        .bind(page.limit)
        .bind(page.offset)
        .bind(binds.0)
        .bind(binds.1)
        .bind(binds.2)
        .bind(binds.3)
        .fetch_all(&self.pool)
        .await?;
        let total: (i64,) = sqlx::query_as(&format!(
            "SELECT COUNT(*) FROM meetings WHERE $1 = $1 AND $2 = $2 AND {filter}"
        ))
        .bind(0i64)
        .bind(0i64)
        .bind(binds.0)
        .bind(binds.1)
        .bind(binds.2)
        .bind(binds.3)
        .fetch_one(&self.pool)
        .await?;
        let mut items = rows.iter().map(meeting).collect::<Result<Vec<_>>>()?;
        let ids: Vec<i64> = items.iter().map(|m| m.id).collect();
        let mut rosters = self.rosters(&ids).await?;
        for m in &mut items {
            m.roster = rosters.remove(&m.id).unwrap_or_default();
        }
        Ok(Paged {
            items,
            total: total.0,
            limit: page.limit,
            offset: page.offset,
        })
    }

    /// Meetings the scheduler must watch around `now`: one-offs whose lobby..close span is
    /// near, and every recurring meeting.
    pub async fn meeting_times_near(
        &self,
        now: Instant,
        reach_secs: i64,
    ) -> Result<Vec<MeetingTimes>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM meetings WHERE rrule IS NOT NULL OR \
             (starts_at <= $1 AND COALESCE(extended_until, ends_at) >= $2)"
        ))
        .bind(now.plus(reach_secs).0)
        .bind(now.plus(-reach_secs).0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| meeting(r).map(|m| m.times())).collect()
    }

    pub async fn extend_meeting(&self, id: i64, until: Instant) -> Result<()> {
        self.set_meeting_instant(id, "extended_until", until).await
    }

    pub async fn end_meeting(&self, id: i64, at: Instant) -> Result<()> {
        self.set_meeting_instant(id, "ended_at", at).await
    }

    /// `column` is one of this file's own column names, never input.
    async fn set_meeting_instant(&self, id: i64, column: &str, at: Instant) -> Result<()> {
        let r = sqlx::query(&format!("UPDATE meetings SET {column} = $1 WHERE id = $2"))
            .bind(at.0)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("meeting", id));
        }
        Ok(())
    }

    pub async fn delete_meeting(&self, id: i64) -> Result<()> {
        // Invitations, links and attendance go with it (ON DELETE CASCADE).
        self.delete_by_id(
            "meetings",
            "meeting",
            id,
            "the meeting is still referred to",
        )
        .await
    }

    pub async fn count_meetings(&self) -> Result<i64> {
        let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM meetings")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.0)
    }
}

async fn write_roster(tx: &mut Transaction<'_, Any>, id: i64, roster: &[Invitation]) -> Result<()> {
    // Many rows per statement: a province-wide roster is ~270 rows, and one round trip
    // each was most of the cost of scheduling such a meeting.
    for chunk in roster.chunks(200) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                format!(
                    "(${}, ${}, ${}, ${})",
                    4 * i + 1,
                    4 * i + 2,
                    4 * i + 3,
                    4 * i + 4
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO invitations (meeting_id, site_id, person_id, role) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for inv in chunk {
            q = q
                .bind(id)
                .bind(inv.site_id)
                .bind(inv.person_id)
                .bind(inv.role.as_str());
        }
        q.execute(&mut **tx)
            .await
            .map_err(|e| StoreError::from_db(e, "roster"))?;
    }
    Ok(())
}

/// Inside the writing transaction: does a site of this meeting that has a room endpoint
/// already sit in another meeting at an overlapping time?
async fn check_overlap(
    tx: &mut Transaction<'_, Any>,
    id: i64,
    m: &NewMeeting,
    rule: Option<Rule>,
) -> Result<()> {
    let new = Booking {
        id,
        first: Window {
            start: m.starts_at,
            end: m.ends_at,
        },
        rule,
    };
    // Two steps, so the time window drives: first the meetings that can collide at all
    // (one-offs inside this meeting's span, and recurring ones), then which of them share
    // a site that has a room endpoint. A province-wide roster meets ~100 bookings per site
    // over a year; joining those first cost tens of milliseconds.
    let (from, to) = new.span();
    let candidates: Vec<(i64,)> = sqlx::query_as(
        "SELECT id FROM meetings WHERE id <> $1 AND ended_at IS NULL AND \
         (rrule IS NOT NULL OR (starts_at < $2 AND COALESCE(extended_until, ends_at) > $3))",
    )
    .bind(id)
    .bind(to.0)
    .bind(from.0)
    .fetch_all(&mut **tx)
    .await?;
    if candidates.is_empty() {
        return Ok(());
    }
    // Ids come from the database as integers: formatting them in is safe.
    let list = candidates
        .iter()
        .map(|c| c.0.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let rows = sqlx::query(&format!(
        "SELECT DISTINCT m.id, m.title, m.starts_at, m.ends_at, m.rrule, mine.site_id, s.name \
         FROM meetings m \
         JOIN invitations other ON other.meeting_id = m.id AND other.person_id IS NULL \
         JOIN invitations mine ON mine.site_id = other.site_id AND mine.meeting_id = $1 \
              AND mine.person_id IS NULL \
         JOIN endpoints e ON e.site_id = mine.site_id AND e.revoked = 0 \
         JOIN sites s ON s.id = mine.site_id \
         WHERE m.id IN ({list})"
    ))
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    let mut others = Vec::new();
    let mut info = HashMap::new();
    for r in &rows {
        let oid: i64 = r.try_get("id")?;
        let rrule: Option<String> = r.try_get("rrule")?;
        others.push(Booking {
            id: oid,
            first: Window {
                start: Instant(r.try_get("starts_at")?),
                end: Instant(r.try_get("ends_at")?),
            },
            rule: rrule.and_then(|x| x.parse().ok()),
        });
        info.entry(oid).or_insert((
            r.try_get::<String, _>("title")?,
            r.try_get::<i64, _>("site_id")?,
            r.try_get::<String, _>("name")?,
        ));
    }
    if let Some((hit, w)) = first_conflict(&new, &others) {
        let (title, site_id, site_name) = info.remove(&hit.id).unwrap_or_default();
        return Err(StoreError::Overlap {
            meeting_id: hit.id,
            title,
            site_id,
            site_name,
            starts_at: w.start.rfc3339(),
        });
    }
    Ok(())
}
