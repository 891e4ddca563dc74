//! The crate's single error type and its mapping from driver errors.

use sqlx::error::ErrorKind;

/// Every failure of a [`crate::Store`] method.
///
/// The variants are what callers act on: `Unavailable` is retryable and maps to HTTP 503, `Conflict` means a
/// concurrent writer won (retry may succeed), `Constraint` and `InvalidInput` are caller bugs, `Corrupt` is a row
/// this version cannot decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The database cannot be reached or is overloaded: connection refused, pool timeout, I/O, busy.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness or serialization conflict with a concurrent writer.
    #[error("storage conflict: {0}")]
    Conflict(String),
    /// A CHECK / NOT NULL / foreign key constraint rejected the write.
    #[error("constraint violated: {0}")]
    Constraint(String),
    /// A stored row cannot be decoded into the domain types.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The arguments of a call are invalid (rejected before touching the database).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Anything else (migration problems, unexpected driver errors).
    #[error("storage error: {0}")]
    Other(String),
}

impl StorageError {
    /// Short label used as the `kind` metric label.
    pub const fn kind(&self) -> &'static str {
        match self {
            StorageError::Unavailable(_) => "unavailable",
            StorageError::Conflict(_) => "conflict",
            StorageError::Constraint(_) => "constraint",
            StorageError::Corrupt(_) => "corrupt",
            StorageError::InvalidInput(_) => "invalid_input",
            StorageError::Other(_) => "other",
        }
    }

    /// Whether retrying the same call later may succeed.
    pub const fn is_retryable(&self) -> bool {
        matches!(self, StorageError::Unavailable(_) | StorageError::Conflict(_))
    }

    pub(crate) fn corrupt(detail: impl Into<String>) -> Self {
        StorageError::Corrupt(detail.into())
    }
}

impl From<sqlx::Error> for StorageError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::BeginFailed => StorageError::Unavailable(err.to_string()),
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. } => StorageError::Corrupt(err.to_string()),
            sqlx::Error::Database(db) => from_database_error(db.as_ref()),
            sqlx::Error::Migrate(migrate) => StorageError::from(*migrate),
            other => StorageError::Other(other.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StorageError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        use sqlx::migrate::MigrateError;
        match err {
            MigrateError::Execute(inner) => StorageError::from(inner),
            MigrateError::ExecuteMigration(inner, version) => match StorageError::from(inner) {
                StorageError::Unavailable(detail) => StorageError::Unavailable(detail),
                other => StorageError::Other(format!("migration {version} failed: {other}")),
            },
            other => StorageError::Other(format!("migrations: {other}")),
        }
    }
}

fn from_database_error(db: &dyn sqlx::error::DatabaseError) -> StorageError {
    let detail = match db.constraint() {
        Some(constraint) => format!("{} ({constraint})", db.message()),
        None => db.message().to_owned(),
    };
    match db.kind() {
        ErrorKind::UniqueViolation | ErrorKind::ExclusionViolation => return StorageError::Conflict(detail),
        ErrorKind::CheckViolation | ErrorKind::NotNullViolation | ErrorKind::ForeignKeyViolation => {
            return StorageError::Constraint(detail);
        }
        _ => {}
    }
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    // SQLite reports its (extended) result code as a number, PostgreSQL a five-character SQLSTATE.
    match code.parse::<i32>() {
        Ok(sqlite_code) => match sqlite_code & 0xff {
            // BUSY, LOCKED, IOERR, FULL, CANTOPEN: the file is contended or the disk is in trouble.
            5 | 6 | 10 | 13 | 14 => StorageError::Unavailable(detail),
            // CORRUPT, NOTADB
            11 | 26 => StorageError::Corrupt(detail),
            // CONSTRAINT codes not classified by the driver (e.g. plain CHECK via a trigger)
            19 => StorageError::Constraint(detail),
            _ => StorageError::Other(format!("sqlite error {code}: {detail}")),
        },
        Err(_) => match code.get(..2) {
            // connection exception, insufficient resources, operator intervention, system error
            Some("08" | "53" | "57" | "58") => StorageError::Unavailable(format!("{code}: {detail}")),
            // serialization failure, deadlock
            Some("40") => StorageError::Conflict(format!("{code}: {detail}")),
            // integrity constraint violations not classified above, data exceptions (e.g. out of range)
            Some("23" | "22") => StorageError::Constraint(format!("{code}: {detail}")),
            _ => StorageError::Other(format!("{code}: {detail}")),
        },
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
