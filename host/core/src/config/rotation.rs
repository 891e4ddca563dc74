//! Rotation blocks: the reference form (`global` + daily/weekly/monthly) and our extensions (`per_user` with a
//! `duration`, `custom` schedules with a `cron` expression, `startTime`, `timeZone`, `autoAssign`).
//! Only parsing and validation live here; computing periods belongs to the rotation engine.

use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use super::model::{OnExpiry, Rotation, RotationDuration, RotationType, Schedule, one_of};
use super::raw::{RawOnExpiry, RawRotation};
use super::validate::{Scope, Validator};

/// Units of a rotation duration, smallest first.
pub(crate) const DURATION_UNITS: [(&str, i64); 5] = [("s", 1), ("m", 60), ("h", 3_600), ("d", 86_400), ("w", 604_800)];

const SCHEDULES: [&str; 4] = ["daily", "weekly", "monthly", "custom"];

/// Parses a rotation length: one or more `<whole number><unit>` parts with units s, m, h, d, w
/// (`36h`, `7d`, `90m`, `2w`, `1d12h`). The total must be positive.
pub fn parse_duration(text: &str) -> Result<RotationDuration, String> {
    let bad = || format!("expected a length like '36h', '7d', '90m' or '2w' (got '{text}')");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let unit_end = rest[digits..].find(|c: char| c.is_ascii_digit()).map_or(rest.len(), |i| digits + i);
        let (number, unit) = (&rest[..digits], &rest[digits..unit_end]);
        let size = DURATION_UNITS.iter().find(|(name, _)| *name == unit).map(|(_, size)| *size);
        let (Some(size), false) = (size, number.is_empty()) else {
            return Err(bad());
        };
        let too_long = || format!("'{text}' is too long");
        let number: i64 = number.parse().map_err(|_| too_long())?;
        total = number.checked_mul(size).and_then(|part| total.checked_add(part)).ok_or_else(too_long)?;
        rest = &rest[unit_end..];
    }
    if total == 0 {
        return Err(format!("must be longer than zero (got '{text}')"));
    }
    // TimeDelta holds milliseconds in an i64, so not every i64 of seconds fits.
    TimeDelta::try_seconds(total).ok_or_else(|| format!("'{text}' is too long"))?;
    Ok(RotationDuration { seconds: total })
}

/// Parses a cron expression as the rotation engine will: 6 or 7 fields (`sec min hour day-of-month month
/// day-of-week [year]`) or a shorthand such as `@weekly`. Day-of-week numbers run 1 = Sunday to 7 = Saturday,
/// unlike Unix cron, so 5-field Unix expressions are refused rather than silently shifted by a day.
pub fn parse_cron(expr: &str) -> Result<cron::Schedule, String> {
    let trimmed = expr.trim();
    if !trimmed.starts_with('@') && trimmed.split_whitespace().count() == 5 {
        return Err(format!(
            "'{expr}' has 5 fields; write 6 or 7 (sec min hour day-of-month month day-of-week [year]), \
             for example '0 0 4 * * Mon'"
        ));
    }
    cron::Schedule::from_str(trimmed).map_err(|err| format!("invalid cron expression '{expr}': {err}"))
}

/// A rotation block as written on a challenge or a goal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RotationDecl {
    Absent,
    /// `enabled: false`: no rotation, and the block's other fields are not checked (as in the reference).
    Disabled,
    Enabled(Rotation),
    /// Problems were reported.
    Invalid,
}

impl RotationDecl {
    /// The block that applies to a goal whose own block is `self`: its own, else its challenge's.
    pub(crate) fn effective<'a>(&'a self, challenge: &'a RotationDecl) -> &'a RotationDecl {
        if matches!(self, RotationDecl::Absent) { challenge } else { self }
    }

    pub(crate) fn into_option(self) -> Option<Rotation> {
        match self {
            RotationDecl::Enabled(rotation) => Some(rotation),
            _ => None,
        }
    }
}

impl Validator<'_> {
    /// Checks the `rotation` block of a challenge or goal.
    pub(crate) fn rotation(&mut self, scope: Scope<'_>, value: Option<&Value>) -> RotationDecl {
        let Some(value) = value else {
            return RotationDecl::Absent;
        };
        let Some(raw) = self.object::<RawRotation>(scope, "rotation", value) else {
            return RotationDecl::Invalid;
        };
        match self.flag(scope, "rotation.enabled", raw.enabled.as_ref(), false) {
            None => return RotationDecl::Invalid,
            Some(false) => return RotationDecl::Disabled,
            Some(true) => {}
        }
        let rotation_type = self.choice::<RotationType>(scope, "rotation.type", raw.rotation_type.as_ref(), None);
        let schedule = self.text(scope, "rotation.schedule", raw.schedule.as_ref());
        let cron = self.text(scope, "rotation.cron", raw.cron.as_ref());
        let duration = self.text(scope, "rotation.duration", raw.duration.as_ref());
        let (schedule, duration) = match rotation_type {
            Some(RotationType::Global) => {
                if let Some(Some(_)) = duration {
                    self.report(scope, "rotation.duration", "only per_user rotations take a duration");
                }
                (self.schedule(scope, schedule, cron).map(Some), Some(None))
            }
            Some(RotationType::PerUser) => {
                for (field, given) in [("rotation.schedule", schedule), ("rotation.cron", cron)] {
                    if let Some(Some(_)) = given {
                        self.report(scope, field, "per_user rotations use a duration, not a schedule");
                    }
                }
                (Some(None), self.duration(scope, duration).map(Some))
            }
            None => (None, None),
        };
        let start_time = self.start_time(scope, raw.start_time.as_ref());
        let time_zone = self.time_zone(scope, raw.time_zone.as_ref());
        let auto_assign = self.flag(scope, "rotation.autoAssign", raw.auto_assign.as_ref(), false);
        let on_expiry = self.on_expiry(scope, raw.on_expiry.as_ref());
        let build = || {
            Some(Rotation {
                rotation_type: rotation_type?,
                schedule: schedule?,
                duration: duration?,
                start_time: start_time?,
                time_zone: time_zone?,
                auto_assign: auto_assign?,
                on_expiry: on_expiry?,
            })
        };
        let Some(rotation) = build() else {
            return RotationDecl::Invalid;
        };
        // Well-formed but impossible (a cron that never fires, periods years apart) is still invalid.
        if let Err(reason) = crate::rotation::check(&rotation) {
            self.report(scope, "rotation", &reason);
            return RotationDecl::Invalid;
        }
        RotationDecl::Enabled(rotation)
    }

    /// `schedule` (+ `cron`) of a global rotation. `None` when a problem was reported.
    fn schedule(
        &mut self,
        scope: Scope<'_>,
        schedule: Option<Option<&str>>,
        cron: Option<Option<&str>>,
    ) -> Option<Schedule> {
        let schedule = match schedule? {
            None => {
                self.report(
                    scope,
                    "rotation.schedule",
                    format!("required for global rotations ({})", one_of(&SCHEDULES)),
                );
                return None;
            }
            Some(text) => text,
        };
        let cron = cron?;
        if schedule != "custom" && cron.is_some() {
            self.report(scope, "rotation.cron", "only used with schedule 'custom'");
        }
        match (schedule, cron) {
            ("daily", _) => Some(Schedule::Daily),
            ("weekly", _) => Some(Schedule::Weekly),
            ("monthly", _) => Some(Schedule::Monthly),
            ("custom", None) => {
                self.report(scope, "rotation.cron", "required when schedule is 'custom'");
                None
            }
            ("custom", Some(expr)) => match parse_cron(expr) {
                Ok(_) => Some(Schedule::Custom(expr.trim().to_owned())),
                Err(message) => {
                    self.report(scope, "rotation.cron", message);
                    None
                }
            },
            (other, _) => {
                self.report(
                    scope,
                    "rotation.schedule",
                    format!("unknown schedule '{other}' (expected {})", one_of(&SCHEDULES)),
                );
                None
            }
        }
    }

    fn duration(&mut self, scope: Scope<'_>, duration: Option<Option<&str>>) -> Option<RotationDuration> {
        let parsed = match duration? {
            None => Err("required for per_user rotations, for example '7d' or '36h'".to_owned()),
            Some(text) => parse_duration(text),
        };
        parsed.map_err(|message| self.report(scope, "rotation.duration", message)).ok()
    }

    fn start_time(&mut self, scope: Scope<'_>, value: Option<&Value>) -> Option<Option<DateTime<Utc>>> {
        match self.text(scope, "rotation.startTime", value)? {
            None => Some(None),
            Some(text) => match DateTime::parse_from_rfc3339(text) {
                Ok(time) => Some(Some(time.with_timezone(&Utc))),
                Err(_) => {
                    let message = format!("must be an RFC 3339 timestamp like '2025-01-06T00:00:00Z' (got '{text}')");
                    self.report(scope, "rotation.startTime", message);
                    None
                }
            },
        }
    }

    fn time_zone(&mut self, scope: Scope<'_>, value: Option<&Value>) -> Option<Tz> {
        match self.text(scope, "rotation.timeZone", value)? {
            None => Some(Tz::UTC),
            Some(name) => match Tz::from_str(name) {
                Ok(zone) => Some(zone),
                Err(_) => {
                    let message = format!("unknown time zone '{name}' (expected an IANA name such as 'Europe/Paris')");
                    self.report(scope, "rotation.timeZone", message);
                    None
                }
            },
        }
    }

    fn on_expiry(&mut self, scope: Scope<'_>, value: Option<&Value>) -> Option<OnExpiry> {
        let Some(value) = value else {
            return Some(OnExpiry::default());
        };
        let raw = self.object::<RawOnExpiry>(scope, "rotation.onExpiry", value)?;
        let defaults = OnExpiry::default();
        let reset_progress =
            self.flag(scope, "rotation.onExpiry.resetProgress", raw.reset_progress.as_ref(), defaults.reset_progress);
        let allow_reselection = self.flag(
            scope,
            "rotation.onExpiry.allowReselection",
            raw.allow_reselection.as_ref(),
            defaults.allow_reselection,
        );
        Some(OnExpiry { reset_progress: reset_progress?, allow_reselection: allow_reselection? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_units_and_compounds() {
        let secs = |text| parse_duration(text).map(RotationDuration::seconds);
        assert_eq!(secs("36h"), Ok(36 * 3600));
        assert_eq!(secs("7d"), Ok(7 * 86_400));
        assert_eq!(secs("90m"), Ok(90 * 60));
        assert_eq!(secs("2w"), Ok(14 * 86_400));
        assert_eq!(secs(" 1d12h "), Ok(36 * 3600));
        assert_eq!(parse_duration("36h").map(|d| d.to_string()), Ok("1d12h".to_owned()));
        for bad in
            ["", "h", "12", "1.5h", "-3d", "3 d", "3y", "0h", "0d0h", "99999999999999999999w", "9223372036854775807s"]
        {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn cron_needs_six_or_seven_fields() {
        assert!(parse_cron("0 0 4 * * Mon").is_ok());
        assert!(parse_cron("0 30 9 1 * * 2030").is_ok());
        assert!(parse_cron("@weekly").is_ok());
        assert!(parse_cron("0 4 * * 1").unwrap_err().contains("5 fields"));
        assert!(parse_cron("0 0 25 * * *").is_err());
        assert!(parse_cron("every monday").is_err());
    }
}
