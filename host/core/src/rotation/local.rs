//! Wall-clock arithmetic: boundaries are found on the local clock of the rotation's zone, where there are no
//! gaps or repeats, and only then mapped to instants.
//!
//! Mapping a wall-clock time to an instant ([`resolve`]): a time skipped by a spring-forward gap becomes the
//! first instant after the gap; a time repeated by a fall-back becomes its earlier occurrence. That mapping
//! never goes backwards, so the order of boundaries survives it (several may collapse into one instant).

use chrono::{DateTime, Datelike, Days, LocalResult, Months, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// Widest offset change searched for around a gap or a repeat. The largest in the tz database are a whole
/// day (Pacific/Apia skipping 2011-12-30, Alaska repeating a day in 1867).
const TRANSITION_SEARCH_SECS: i64 = 26 * 3_600;

/// How far back [`Steps::last_at_or_before`] looks for a cron fire time: windows of 1 s, 2 s, 4 s, ... up to
/// 2^28 s (about 8.5 years), comfortably more than the 5-year gap [`super::check`] allows.
const CRON_LOOKBACK_DOUBLINGS: u32 = 28;

/// The instant a wall-clock time stands for (see the module docs).
pub(crate) fn resolve(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => Some(at.with_timezone(&Utc)),
        LocalResult::None => {
            // Inside a gap: the first valid instant after it is the instant the clock jumps, whose wall-clock
            // reading is the first valid local time after `local`.
            let after_gap = first_second_where(local, |m| tz.from_local_datetime(&m).earliest().is_some())?;
            tz.from_local_datetime(&after_gap).earliest().map(|at| at.with_timezone(&Utc))
        }
    }
}

/// The latest wall-clock time whose [`resolve`]d instant is at or before `at`: for any local time `l`,
/// `resolve(l) <= at` exactly when `l <= local_threshold(at)`.
///
/// Usually the wall-clock reading of `at`. During the second pass through a repeated hour, though, the rest of
/// that hour already happened (its first pass resolves earlier), so the threshold is the end of the repeat.
pub(crate) fn local_threshold(tz: Tz, at: DateTime<Utc>) -> NaiveDateTime {
    let here = at.with_timezone(&tz);
    let wall = here.naive_local();
    match tz.from_local_datetime(&wall) {
        LocalResult::Ambiguous(first, _) if first != here => {
            let repeat_end =
                first_second_where(wall, |m| !matches!(tz.from_local_datetime(&m), LocalResult::Ambiguous(..)));
            repeat_end.and_then(|end| end.checked_sub_signed(TimeDelta::nanoseconds(1))).unwrap_or(wall)
        }
        _ => wall,
    }
}

/// The first whole second after `from` (within [`TRANSITION_SEARCH_SECS`]) where `holds` is true, assuming it
/// turns true once and stays true over that span. Zone offsets change on whole seconds, so this is exact.
fn first_second_where(from: NaiveDateTime, holds: impl Fn(NaiveDateTime) -> bool) -> Option<NaiveDateTime> {
    let base = from.with_nanosecond(0)?;
    let at = |secs: i64| base.checked_add_signed(TimeDelta::seconds(secs));
    let (mut lo, mut hi) = (0, TRANSITION_SEARCH_SECS);
    if !holds(at(hi)?) {
        return None;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if holds(at(mid)?) { hi = mid } else { lo = mid }
    }
    at(hi)
}

/// Boundaries of a global schedule, as wall-clock times.
#[derive(Debug, Clone)]
pub(crate) enum Steps {
    Daily,
    Weekly,
    Monthly,
    // Boxed: a parsed schedule is some 250 bytes, the other variants none.
    Cron(Box<cron::Schedule>),
}

impl Steps {
    /// The latest boundary at or before `local`.
    pub(crate) fn last_at_or_before(&self, local: NaiveDateTime) -> Option<NaiveDateTime> {
        let midnight = |date: chrono::NaiveDate| date.and_hms_opt(0, 0, 0);
        let date = local.date();
        match self {
            Steps::Daily => midnight(date),
            Steps::Weekly => {
                let back = u64::from(date.weekday().num_days_from_monday());
                midnight(date.checked_sub_days(Days::new(back))?)
            }
            Steps::Monthly => midnight(date.with_day(1)?),
            Steps::Cron(schedule) => cron_last_at_or_before(schedule, local),
        }
    }

    /// The earliest boundary strictly after `local`.
    pub(crate) fn first_after(&self, local: NaiveDateTime) -> Option<NaiveDateTime> {
        match self {
            Steps::Daily => self.last_at_or_before(local)?.checked_add_days(Days::new(1)),
            Steps::Weekly => self.last_at_or_before(local)?.checked_add_days(Days::new(7)),
            Steps::Monthly => self.last_at_or_before(local)?.checked_add_months(Months::new(1)),
            Steps::Cron(schedule) => cron_first_after(schedule, local),
        }
    }
}

/// The first fire time strictly after `local`. The cron crate runs on a UTC clock here, which has no gaps or
/// repeats, so it reads as the plain wall clock.
fn cron_first_after(schedule: &cron::Schedule, local: NaiveDateTime) -> Option<NaiveDateTime> {
    schedule.after(&local.and_utc()).next().map(|fire| fire.naive_utc())
}

/// The last fire time at or before `local`, found with forward queries only: double a window back from
/// `local` until it holds a fire time, then bisect for the last one. About 2 log2(gap) forward queries.
/// (The cron crate's reverse iterator mishandles schedules restricted to certain years, so it is not used.)
fn cron_last_at_or_before(schedule: &cron::Schedule, local: NaiveDateTime) -> Option<NaiveDateTime> {
    // Fire times are whole seconds.
    let local = local.with_nanosecond(0)?;
    let fires_by_local = |from: NaiveDateTime| cron_first_after(schedule, from).is_some_and(|fire| fire <= local);
    let back = |secs: i64| local.checked_sub_signed(TimeDelta::seconds(secs));
    // Invariant: some fire time lies in (local - far, local], none in (local - near, local].
    let mut far = 1_i64;
    while !fires_by_local(back(far)?) {
        if far >= 1 << CRON_LOOKBACK_DOUBLINGS {
            return None;
        }
        far *= 2;
    }
    let mut near = 0_i64;
    while far - near > 1 {
        let mid = near + (far - near) / 2;
        if fires_by_local(back(mid)?) { far = mid } else { near = mid }
    }
    // No fire time in (local - near, local], so the first one after local - far is the last one by local.
    cron_first_after(schedule, back(far)?)
}
