use thiserror::Error;

/// What went wrong in the store, in terms the API can turn into a status and a message.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{entity} {id} does not exist")]
    NotFound { entity: &'static str, id: String },
    /// Input that breaks a rule of the model; `field` names the offending field.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// A uniqueness or reference rule of the stored data (duplicate code, site in use).
    #[error("{field}: {reason}")]
    Conflict { field: String, reason: String },
    /// A site's room endpoint would be in two meetings at once.
    #[error(
        "site {site_name} is already booked in meeting {meeting_id} \"{title}\" from {starts_at}"
    )]
    Overlap {
        meeting_id: i64,
        title: String,
        site_id: i64,
        site_name: String,
        starts_at: String,
    },
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn not_found(entity: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    /// Turn a database constraint failure into a `Conflict`/`Invalid` naming the field;
    /// anything else stays a database error.
    pub(crate) fn from_db(e: sqlx::Error, field: &str) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return Self::Conflict {
                    field: field.into(),
                    reason: "already in use".into(),
                };
            }
            if db.is_foreign_key_violation() {
                return Self::Conflict {
                    field: field.into(),
                    reason: "refers to something that does not exist, or is still referred to"
                        .into(),
                };
            }
            if db.is_check_violation() {
                return Self::invalid(field, "value out of range");
            }
        }
        Self::Db(e)
    }
}
