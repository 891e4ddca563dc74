//! [`PluginRegistry`] on SQLite. Every change runs in one `BEGIN IMMEDIATE` transaction on the single writer
//! connection that starts by bumping the revision row. Registry reads are rare and small, so they use the writer
//! pool too. Timestamps are INTEGER milliseconds since the epoch (UTC).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use crate::error::{Result, StorageError};
use crate::logic::instrument;
use crate::registry::{
    ActivationOutcome, DeleteOutcome, InsertOutcome, NewPluginVersion, PluginActivation, PluginRegistry, PluginStatus,
    PluginVersion, RollbackOutcome, check_insert, existing_outcome, parse_plugin_status,
};
use crate::sqlite::SqliteStore;

macro_rules! version_columns {
    () => {
        "name, version, sha256, size_bytes, wit_world, description, limits, status, uploaded_by, uploaded_at"
    };
}

fn time(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>> {
    let value: i64 = row.try_get(column)?;
    DateTime::from_timestamp_millis(value)
        .ok_or_else(|| StorageError::corrupt(format!("{column} = {value} is not a valid timestamp")))
}

fn version_from_row(row: &SqliteRow) -> Result<PluginVersion> {
    Ok(PluginVersion {
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        sha256: row.try_get("sha256")?,
        size_bytes: row.try_get("size_bytes")?,
        wit_world: row.try_get("wit_world")?,
        description: row.try_get("description")?,
        limits: row.try_get("limits")?,
        status: parse_plugin_status(row.try_get("status")?)?,
        uploaded_by: row.try_get("uploaded_by")?,
        uploaded_at: time(row, "uploaded_at")?,
    })
}

fn activation_from_row(row: &SqliteRow) -> Result<PluginActivation> {
    Ok(PluginActivation {
        name: row.try_get("name")?,
        active_version: row.try_get("active_version")?,
        previous_version: row.try_get("previous_version")?,
        activated_by: row.try_get("activated_by")?,
        activated_at: time(row, "activated_at")?,
    })
}

/// Starts a registry change: bumps the revision (and takes its row lock) first.
async fn begin_change(store: &SqliteStore) -> Result<Transaction<'static, Sqlite>> {
    let mut tx = store.writer_pool().begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query("UPDATE plugin_registry_revision SET revision = revision + 1 WHERE id = 1").execute(&mut *tx).await?;
    Ok(tx)
}

async fn version_in(tx: &mut Transaction<'static, Sqlite>, name: &str, version: &str) -> Result<Option<PluginVersion>> {
    let row =
        sqlx::query(concat!("SELECT ", version_columns!(), " FROM plugin_versions WHERE name = ?1 AND version = ?2"))
            .bind(name)
            .bind(version)
            .fetch_optional(&mut **tx)
            .await?;
    row.as_ref().map(version_from_row).transpose()
}

async fn activation_in(tx: &mut Transaction<'static, Sqlite>, name: &str) -> Result<Option<PluginActivation>> {
    let row = sqlx::query(
        "SELECT name, active_version, previous_version, activated_by, activated_at \
         FROM plugin_activations WHERE name = ?1",
    )
    .bind(name)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(activation_from_row).transpose()
}

async fn set_status(
    tx: &mut Transaction<'static, Sqlite>,
    name: &str,
    version: &str,
    status: PluginStatus,
) -> Result<()> {
    sqlx::query("UPDATE plugin_versions SET status = ?3 WHERE name = ?1 AND version = ?2")
        .bind(name)
        .bind(version)
        .bind(status.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Writes the activation row: `active` becomes active, `previous` the rollback target.
async fn write_activation(
    tx: &mut Transaction<'static, Sqlite>,
    name: &str,
    active: &str,
    previous: Option<&str>,
    by: &str,
    now: DateTime<Utc>,
) -> Result<PluginActivation> {
    let row = sqlx::query(
        "INSERT INTO plugin_activations (name, active_version, previous_version, activated_by, activated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (name) DO UPDATE SET active_version = excluded.active_version, \
           previous_version = excluded.previous_version, activated_by = excluded.activated_by, \
           activated_at = excluded.activated_at \
         RETURNING name, active_version, previous_version, activated_by, activated_at",
    )
    .bind(name)
    .bind(active)
    .bind(previous)
    .bind(by)
    .bind(now.timestamp_millis())
    .fetch_one(&mut **tx)
    .await?;
    set_status(tx, name, active, PluginStatus::Active).await?;
    if let Some(previous) = previous {
        set_status(tx, name, previous, PluginStatus::Retired).await?;
    }
    activation_from_row(&row)
}

#[async_trait]
impl PluginRegistry for SqliteStore {
    async fn registry_revision(&self) -> Result<i64> {
        instrument("registry_revision", async {
            Ok(sqlx::query_scalar("SELECT revision FROM plugin_registry_revision WHERE id = 1")
                .fetch_one(self.writer_pool())
                .await?)
        })
        .await
    }

    async fn insert_plugin_version(&self, new: &NewPluginVersion<'_>) -> Result<InsertOutcome> {
        check_insert(new)?;
        instrument("insert_plugin_version", async {
            let mut tx = begin_change(self).await?;
            if let Some(existing) = version_in(&mut tx, new.name, new.version).await? {
                return Ok(existing_outcome(existing, new.sha256));
            }
            let row = sqlx::query(concat!(
                "INSERT INTO plugin_versions (name, version, sha256, size_bytes, component, wit_world, description, \
                   limits, status, uploaded_by, uploaded_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) RETURNING ",
                version_columns!()
            ))
            .bind(new.name)
            .bind(new.version)
            .bind(new.sha256)
            .bind(new.component.len() as i64)
            .bind(new.component)
            .bind(new.wit_world)
            .bind(new.description)
            .bind(new.limits)
            .bind(new.status.as_str())
            .bind(new.uploaded_by)
            .bind(new.uploaded_at.timestamp_millis())
            .fetch_one(&mut *tx)
            .await?;
            let inserted = version_from_row(&row)?;
            tx.commit().await?;
            Ok(InsertOutcome::Inserted(inserted))
        })
        .await
    }

    async fn mark_plugin_validated(&self, name: &str, version: &str) -> Result<bool> {
        instrument("mark_plugin_validated", async {
            let mut tx = begin_change(self).await?;
            let done = sqlx::query(
                "UPDATE plugin_versions SET status = 'validated' \
                 WHERE name = ?1 AND version = ?2 AND status = 'uploaded'",
            )
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            tx.commit().await?;
            Ok(done)
        })
        .await
    }

    async fn plugin_versions(&self, name: Option<&str>) -> Result<Vec<PluginVersion>> {
        instrument("plugin_versions", async {
            let rows = sqlx::query(concat!(
                "SELECT ",
                version_columns!(),
                " FROM plugin_versions WHERE ?1 IS NULL OR name = ?1 ORDER BY name, uploaded_at, version"
            ))
            .bind(name)
            .fetch_all(self.writer_pool())
            .await?;
            rows.iter().map(version_from_row).collect()
        })
        .await
    }

    async fn plugin_version(&self, name: &str, version: &str) -> Result<Option<PluginVersion>> {
        instrument("plugin_version", async {
            let row = sqlx::query(concat!(
                "SELECT ",
                version_columns!(),
                " FROM plugin_versions WHERE name = ?1 AND version = ?2"
            ))
            .bind(name)
            .bind(version)
            .fetch_optional(self.writer_pool())
            .await?;
            row.as_ref().map(version_from_row).transpose()
        })
        .await
    }

    async fn plugin_component(&self, name: &str, version: &str) -> Result<Option<Vec<u8>>> {
        instrument("plugin_component", async {
            Ok(sqlx::query_scalar("SELECT component FROM plugin_versions WHERE name = ?1 AND version = ?2")
                .bind(name)
                .bind(version)
                .fetch_optional(self.writer_pool())
                .await?)
        })
        .await
    }

    async fn plugin_activations(&self) -> Result<Vec<PluginActivation>> {
        instrument("plugin_activations", async {
            let rows = sqlx::query(
                "SELECT name, active_version, previous_version, activated_by, activated_at \
                 FROM plugin_activations ORDER BY name",
            )
            .fetch_all(self.writer_pool())
            .await?;
            rows.iter().map(activation_from_row).collect()
        })
        .await
    }

    async fn activate_plugin_version(
        &self,
        name: &str,
        version: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<ActivationOutcome> {
        instrument("activate_plugin_version", async {
            let mut tx = begin_change(self).await?;
            match version_in(&mut tx, name, version).await? {
                None => return Ok(ActivationOutcome::NotFound),
                Some(found) if found.status == PluginStatus::Uploaded => return Ok(ActivationOutcome::NotValidated),
                Some(_) => {}
            }
            let current = activation_in(&mut tx, name).await?;
            if let Some(current) = current.as_ref().filter(|current| current.active_version == version) {
                return Ok(ActivationOutcome::AlreadyActive(current.clone()));
            }
            let previous = current.map(|current| current.active_version);
            let activation = write_activation(&mut tx, name, version, previous.as_deref(), by, now).await?;
            tx.commit().await?;
            Ok(ActivationOutcome::Activated(activation))
        })
        .await
    }

    async fn activate_if_unset(&self, name: &str, version: &str, by: &str, now: DateTime<Utc>) -> Result<bool> {
        instrument("activate_if_unset", async {
            let mut tx = begin_change(self).await?;
            if activation_in(&mut tx, name).await?.is_some() {
                return Ok(false);
            }
            write_activation(&mut tx, name, version, None, by, now).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn rollback_plugin(&self, name: &str, by: &str, now: DateTime<Utc>) -> Result<RollbackOutcome> {
        instrument("rollback_plugin", async {
            let mut tx = begin_change(self).await?;
            let Some(current) = activation_in(&mut tx, name).await? else {
                return Ok(RollbackOutcome::NotActive);
            };
            let Some(previous) = current.previous_version else {
                return Ok(RollbackOutcome::NoPrevious);
            };
            let activation = write_activation(&mut tx, name, &previous, Some(&current.active_version), by, now).await?;
            tx.commit().await?;
            Ok(RollbackOutcome::RolledBack(activation))
        })
        .await
    }

    async fn set_plugin_limits(&self, name: &str, limits: &str) -> Result<u64> {
        instrument("set_plugin_limits", async {
            let mut tx = begin_change(self).await?;
            let updated = sqlx::query("UPDATE plugin_versions SET limits = ?2 WHERE name = ?1")
                .bind(name)
                .bind(limits)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(updated)
        })
        .await
    }

    async fn delete_plugin_version(&self, name: &str, version: &str) -> Result<DeleteOutcome> {
        instrument("delete_plugin_version", async {
            let mut tx = begin_change(self).await?;
            if version_in(&mut tx, name, version).await?.is_none() {
                return Ok(DeleteOutcome::NotFound);
            }
            if activation_in(&mut tx, name).await?.is_some_and(|current| current.active_version == version) {
                return Ok(DeleteOutcome::Active);
            }
            sqlx::query(
                "UPDATE plugin_activations SET previous_version = NULL WHERE name = ?1 AND previous_version = ?2",
            )
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM plugin_versions WHERE name = ?1 AND version = ?2")
                .bind(name)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(DeleteOutcome::Deleted)
        })
        .await
    }
}
