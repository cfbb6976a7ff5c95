use sqlx::Row;
use sqlx::any::AnyRow;

use crate::model::{Page, Paged, Person, PersonRole, SiteKind};
use crate::{Instant, Result, Store, StoreError};

const COLUMNS: &str = "id, username, display_name, role, site_id";

pub(crate) fn person(row: &AnyRow) -> Result<Person> {
    let role: String = row.try_get("role")?;
    Ok(Person {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        role: PersonRole::parse(&role).ok_or_else(|| StoreError::invalid("role", role))?,
        site_id: row.try_get("site_id")?,
    })
}

impl Store {
    /// Create a person; `password_hash` is already hashed (argon2id) by the caller.
    pub async fn create_person(
        &self,
        username: &str,
        display_name: &str,
        role: PersonRole,
        site_id: Option<i64>,
        password_hash: Option<&str>,
    ) -> Result<Person> {
        Self::check_len("username", username, 64)?;
        if !username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
        {
            return Err(StoreError::invalid(
                "username",
                "letters, digits and . _ - @ only",
            ));
        }
        Self::check_len("display_name", display_name, 128)?;
        match (role, site_id) {
            (PersonRole::ProvinceAdmin, _) => {}
            (PersonRole::DistrictAdmin, Some(s)) => {
                let site = self
                    .site(s)
                    .await
                    .map_err(|_| StoreError::invalid("site_id", format!("no site {s}")))?;
                if site.kind != SiteKind::District {
                    return Err(StoreError::invalid(
                        "site_id",
                        "a district admin's site must be a district",
                    ));
                }
            }
            (PersonRole::Official, Some(s)) => {
                self.site(s)
                    .await
                    .map_err(|_| StoreError::invalid("site_id", format!("no site {s}")))?;
            }
            (_, None) => {
                return Err(StoreError::invalid(
                    "site_id",
                    "district admins and officials belong to a site",
                ));
            }
        }
        let row = sqlx::query(&format!(
            "INSERT INTO people (username, display_name, role, site_id, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
        ))
        .bind(username.trim())
        .bind(display_name.trim())
        .bind(role.as_str())
        .bind(site_id)
        .bind(password_hash)
        .bind(Instant::now().0)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::from_db(e, "username"))?;
        person(&row)
    }

    pub async fn person(&self, id: i64) -> Result<Person> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM people WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::not_found("person", id))?;
        person(&row)
    }

    /// The person and their password hash, for login.
    pub async fn person_for_login(
        &self,
        username: &str,
    ) -> Result<Option<(Person, Option<String>)>> {
        let Some(row) = sqlx::query(&format!(
            "SELECT {COLUMNS}, password_hash FROM people WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        Ok(Some((person(&row)?, row.try_get("password_hash")?)))
    }

    /// Set a new password and end every admin session the person had: a password is
    /// changed because the old one may be known, and so may a session opened with it.
    pub async fn set_password(&self, id: i64, password_hash: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("UPDATE people SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("person", id));
        }
        sqlx::query("DELETE FROM admin_sessions WHERE person_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// People, optionally only those at a district's sites.
    pub async fn people(&self, district: Option<i64>, page: Page) -> Result<Paged<Person>> {
        self.paged("people", COLUMNS, "site_id", district, page, person)
            .await
    }

    pub async fn delete_person(&self, id: i64) -> Result<()> {
        self.delete_by_id("people", "person", id, "the person is still referred to")
            .await
    }

    pub async fn count_people(&self) -> Result<i64> {
        let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM people")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.0)
    }
}
