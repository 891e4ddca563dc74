//! Challenge configuration (`challenges.json`): the typed model, the loader, the validator and the indexed
//! [`Catalog`].
//!
//! The file uses the reference format unchanged (camelCase keys, unknown keys ignored) plus our extensions:
//! a goal `rule` naming a rule plugin, `per_user` rotations with a `duration`, `custom` schedules with a
//! `cron` expression, `startTime`, `timeZone`, `autoAssign`, and a challenge-level `rotation` and `poolSize`.
//!
//! Loading is all or nothing: a file that cannot be read, is not JSON, or breaks any rule gives a
//! [`ConfigError`] (listing every problem found), never a partial catalog.
//!
//! Defaults where the file is silent: goal `type` absolute, `progressMode` absolute, `daily` and
//! `defaultAssigned` false, `prerequisites` empty, login goals' stat code [`DEFAULT_LOGIN_STAT_CODE`],
//! rotation `enabled` false, `timeZone` UTC, `autoAssign` false, `onExpiry` both true, rule plugin
//! [`BUILTIN_PLUGIN`]. A goal without a `rotation` block inherits its challenge's; a goal's own block replaces
//! the challenge's entirely (a disabled one opts the goal out).

mod catalog;
mod error;
mod model;
mod plugins;
mod raw;
mod rotation;
mod validate;

use std::path::Path;

use sha2::{Digest, Sha256};

pub use catalog::{Catalog, CatalogSummary};
pub use error::{ConfigError, ItemRef, Location, Problem, report};
pub use model::{
    Challenge, EventSource, Goal, GoalKind, OnExpiry, Operator, ProgressMode, Requirement, Reward, RewardType,
    Rotation, RotationDuration, RotationType, RuleRef, Schedule, UnknownValue,
};
pub use plugins::{BUILTIN_PLUGIN, BuiltinOnly, KnownPlugins, PluginDirectory};
pub use rotation::{parse_cron, parse_duration};
pub use validate::{DEFAULT_LOGIN_STAT_CODE, MAX_ID_LEN};

/// Hex digits of the SHA-256 kept in [`Catalog::version`].
const VERSION_HEX_LEN: usize = 16;

/// Loads and validates a configuration file.
pub fn load_file(path: impl AsRef<Path>, plugins: &dyn PluginDirectory) -> Result<Catalog, ConfigError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    load_bytes(&bytes, Some(path), plugins)
}

/// Loads and validates configuration text that has no file name (problems carry no file).
pub fn load_str(text: &str, plugins: &dyn PluginDirectory) -> Result<Catalog, ConfigError> {
    load_bytes(text.as_bytes(), None, plugins)
}

/// Loads and validates configuration bytes; `origin` names the file in errors.
pub fn load_bytes(bytes: &[u8], origin: Option<&Path>, plugins: &dyn PluginDirectory) -> Result<Catalog, ConfigError> {
    // Editors on Windows like to prepend a byte-order mark, which JSON parsers refuse.
    let json = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let doc: serde_json::Value = serde_json::from_slice(json).map_err(|err| {
        let (line, column) = (err.line(), err.column());
        let full = err.to_string();
        let message = full.strip_suffix(&format!(" at line {line} column {column}")).unwrap_or(&full).to_owned();
        ConfigError::Parse { path: origin.map(Path::to_path_buf), line, column, message }
    })?;
    let challenges = validate::validate(&doc, origin, plugins).map_err(|problems| ConfigError::Invalid { problems })?;
    let digest = hex::encode(Sha256::digest(bytes));
    Ok(Catalog::build(challenges, digest[..VERSION_HEX_LEN].to_owned()))
}
