//! The packed form of rule-plugin evaluation: `packed-request` and `packed-updates` in `wit/rules.wit`, which
//! documents the byte layout. The host runtime encodes requests and decodes updates; the guest SDK decodes requests
//! and encodes updates. Both use this crate, so the layout has exactly one implementation.
//!
//! Why packed: the canonical ABI copies a `list<u8>` with one guest allocation and one memcpy, while each string and
//! each field of a record in a list is a separate step (with Wasmtime 48: about 170 ns per string and 100 ns per
//! seven-field record), which made marshalling, not rules, the cost of a plugin call.
//!
//! Decoding never panics on malformed input: it returns a [`DecodeError`] naming what is wrong.
#![no_std]

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;

macro_rules! wit_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $code:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $code,)+
        }

        impl $name {
            /// Case index in the WIT enum, as stored in packed data.
    #[inline]
            pub const fn code(self) -> u8 {
                self as u8
            }

    #[inline]
            pub const fn from_code(code: u8) -> Option<Self> {
                match code {
                    $($code => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

wit_enum! {
    /// Kind of player event (WIT `event-kind`).
    EventKind {
        Login = 0,
        Statistic = 1,
    }
}

wit_enum! {
    /// How a goal counts a statistic (WIT `progress-mode`).
    ProgressMode {
        Absolute = 0,
        Relative = 1,
    }
}

wit_enum! {
    /// A goal's status for a player (WIT `goal-status`).
    GoalStatus {
        NotStarted = 0,
        InProgress = 1,
        Completed = 2,
        Claimed = 3,
    }
}

wit_enum! {
    /// How the host may re-derive progress on reads without a write (WIT `progress-source`).
    ProgressSource {
        /// The returned progress is authoritative.
        Stored = 0,
        /// Progress is trunc(latest stat value) - baseline.
        StatValue = 1,
        /// Progress is the stat's event sequence - baseline.
        EventCount = 2,
    }
}

/// One player event, borrowed from a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event<'a> {
    pub id: &'a str,
    pub kind: EventKind,
    pub stat_code: &'a str,
    /// Latest statistic value (0 for logins).
    pub value: f64,
    /// The producer's increment (1 for logins).
    pub increment: f64,
    /// Events seen for this (user, stat code), this one included; maintained by the host.
    pub sequence: i64,
    /// When the event happened, in milliseconds since the Unix epoch (UTC).
    pub timestamp_ms: i64,
}

/// A goal as configured, borrowed from a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoalSpec<'a> {
    pub goal_id: &'a str,
    /// "absolute", "increment" or "daily" for the built-in rules; plugins define their own kinds.
    pub kind: &'a str,
    pub stat_code: &'a str,
    pub target: i64,
    pub progress_mode: ProgressMode,
    pub daily: bool,
    /// JSON text from the goal's configuration ("{}" when absent).
    pub params: &'a str,
}

/// A goal's stored state for one player, borrowed from a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoalState<'a> {
    pub progress: i64,
    pub status: GoalStatus,
    pub completed_at_ms: Option<i64>,
    pub baseline: Option<i64>,
    /// The plugin's own opaque bytes, as last returned by it.
    pub state: Option<&'a [u8]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoalInput<'a> {
    pub spec: GoalSpec<'a>,
    pub state: GoalState<'a>,
}

/// One player's events, in order, against that player's goals.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationRequest<'a> {
    pub user_id: &'a str,
    pub events: Vec<Event<'a>>,
    pub goals: Vec<GoalInput<'a>>,
}

/// The new state of one goal whose state changed, as a plugin returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoalUpdate {
    /// Index into the request's goals.
    pub goal_index: u32,
    pub progress: i64,
    pub status: GoalStatus,
    pub completed_at_ms: Option<i64>,
    pub baseline: Option<i64>,
    pub state: Option<Vec<u8>>,
    pub source: ProgressSource,
}

/// A [`GoalUpdate`] read back from packed updates, borrowing its state bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateView<'a> {
    pub goal_index: u32,
    pub progress: i64,
    pub status: GoalStatus,
    pub completed_at_ms: Option<i64>,
    pub baseline: Option<i64>,
    pub state: Option<&'a [u8]>,
    pub source: ProgressSource,
}

const REQUEST_HEADER: usize = 20;
const EVENT_SIZE: usize = 52;
const GOAL_SIZE: usize = 76;
const UPDATES_HEADER: usize = 4;
const UPDATE_SIZE: usize = 40;

const HAS_COMPLETED_AT: u8 = 1;
const HAS_BASELINE: u8 = 2;
const HAS_STATE: u8 = 4;
const PRESENT_BITS: u8 = HAS_COMPLETED_AT | HAS_BASELINE | HAS_STATE;

/// Stat codes compared against when encoding one: a request usually has a handful of distinct ones, each repeated per
/// event and goal. Sharing them lets the guest match events to goals by address (see `same_code` in rules-logic).
const RECENT_TEXTS: usize = 4;

/// A request too large for 32-bit offsets (4 GiB); hosts limit requests far below that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge;

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request too large to pack (4 GiB)")
    }
}

/// What is wrong with packed data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The data ends before what its header announces.
    Truncated { needed: usize, len: usize },
    /// The text area is not UTF-8.
    NotUtf8,
    /// A span points outside its area (or, for text, splits a character).
    BadSpan { item: Item, field: &'static str },
    /// A number that is not a case of the WIT enum named.
    BadCode { item: Item, field: &'static str, code: u8 },
    /// Unknown bits set in a `present` byte, a `daily` flag other than 0/1, or a non-zero reserved byte.
    BadFlags { item: Item, value: u8 },
}

/// Which part of packed data a [`DecodeError`] concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Header,
    Event(usize),
    Goal(usize),
    Update(usize),
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Header => f.write_str("header"),
            Item::Event(i) => write!(f, "event {i}"),
            Item::Goal(i) => write!(f, "goal {i}"),
            Item::Update(i) => write!(f, "update {i}"),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { needed, len } => {
                write!(f, "packed data of {len} bytes is truncated (its header needs {needed})")
            }
            DecodeError::NotUtf8 => f.write_str("packed text area is not UTF-8"),
            DecodeError::BadSpan { item, field } => write!(f, "{item}: {field} span out of range"),
            DecodeError::BadCode { item, field, code } => write!(f, "{item}: {field} code {code} is out of range"),
            DecodeError::BadFlags { item, value } => write!(f, "{item}: invalid flag byte {value:#04x}"),
        }
    }
}

/// Packs an evaluation request into `out` (cleared first). `event` and `goal` view the caller's own types, so a host
/// can pack without building intermediate collections.
pub fn encode_request<E, G>(
    out: &mut Vec<u8>,
    user_id: &str,
    events: &[E],
    event: impl Fn(&E) -> Event<'_>,
    goals: &[G],
    goal: impl Fn(&G) -> GoalInput<'_>,
) -> Result<(), TooLarge> {
    let state_bytes: usize = goals.iter().filter_map(|g| goal(g).state.state).map(<[u8]>::len).sum();
    let events_at = REQUEST_HEADER;
    let goals_at = events_at + events.len().checked_mul(EVENT_SIZE).ok_or(TooLarge)?;
    let bytes_at = goals_at.checked_add(goals.len().checked_mul(GOAL_SIZE).ok_or(TooLarge)?).ok_or(TooLarge)?;
    let text_at = bytes_at.checked_add(state_bytes).ok_or(TooLarge)?;
    u32::try_from(text_at).map_err(|_| TooLarge)?;

    out.clear();
    out.resize(text_at, 0);
    let mut text = TextWriter { text_at, recent: [(0, 0); RECENT_TEXTS], next_recent: 0, too_large: false };
    let user = text.unique(out, user_id);
    let header = record::<REQUEST_HEADER>(out, 0)?;
    put_u32(header, 0, events.len() as u32);
    put_u32(header, 4, goals.len() as u32);
    put_u32(header, 8, state_bytes as u32);
    put_span(header, 12, user);

    for (i, item) in events.iter().enumerate() {
        let e = event(item);
        let id = text.unique(out, e.id);
        let stat_code = text.shared(out, e.stat_code);
        let rec = record::<EVENT_SIZE>(out, events_at + i * EVENT_SIZE)?;
        put_u32(rec, 0, u32::from(e.kind.code()));
        put_span(rec, 4, id);
        put_span(rec, 12, stat_code);
        put(rec, 20, e.value.to_le_bytes());
        put(rec, 28, e.increment.to_le_bytes());
        put(rec, 36, e.sequence.to_le_bytes());
        put(rec, 44, e.timestamp_ms.to_le_bytes());
    }

    let mut next_byte = 0usize;
    for (i, item) in goals.iter().enumerate() {
        let GoalInput { spec, state } = goal(item);
        let spans = [
            text.unique(out, spec.goal_id),
            text.unique(out, spec.kind),
            text.shared(out, spec.stat_code),
            text.unique(out, spec.params),
        ];
        let mut state_span = (0, 0);
        if let Some(blob) = state.state {
            // The same closure gave these lengths above; `get_mut` keeps a misbehaving one from panicking.
            let at = bytes_at + next_byte;
            out.get_mut(at..at + blob.len()).ok_or(TooLarge)?.copy_from_slice(blob);
            state_span = (next_byte as u32, blob.len() as u32);
            next_byte += blob.len();
        }
        let rec = record::<GOAL_SIZE>(out, goals_at + i * GOAL_SIZE)?;
        for (n, span) in spans.into_iter().enumerate() {
            put_span(rec, n * 8, span);
        }
        put(rec, 32, spec.target.to_le_bytes());
        put(rec, 40, state.progress.to_le_bytes());
        put(rec, 48, state.completed_at_ms.unwrap_or(0).to_le_bytes());
        put(rec, 56, state.baseline.unwrap_or(0).to_le_bytes());
        put_span(rec, 64, state_span);
        rec[72] = spec.progress_mode.code();
        rec[73] = u8::from(spec.daily);
        rec[74] = state.status.code();
        rec[75] = presence(state.completed_at_ms.is_some(), state.baseline.is_some(), state.state.is_some());
    }
    if text.too_large { Err(TooLarge) } else { Ok(()) }
}

/// The `present` byte of a goal or update.
#[inline]
fn presence(completed_at: bool, baseline: bool, state: bool) -> u8 {
    let bit = |set: bool, bit: u8| if set { bit } else { 0 };
    bit(completed_at, HAS_COMPLETED_AT) | bit(baseline, HAS_BASELINE) | bit(state, HAS_STATE)
}

/// The fixed-size record at `at` in the pre-sized part of packed data.
#[inline]
fn record<const N: usize>(out: &mut [u8], at: usize) -> Result<&mut [u8; N], TooLarge> {
    out.get_mut(at..).and_then(<[u8]>::first_chunk_mut).ok_or(TooLarge)
}

/// Appends text to the end of a request, returning spans relative to the text area.
struct TextWriter {
    text_at: usize,
    recent: [(u32, u32); RECENT_TEXTS],
    next_recent: usize,
    too_large: bool,
}

impl TextWriter {
    #[inline]
    fn unique(&mut self, out: &mut Vec<u8>, text: &str) -> (u32, u32) {
        let start = out.len() - self.text_at;
        out.extend_from_slice(text.as_bytes());
        match (u32::try_from(start), u32::try_from(text.len())) {
            (Ok(start), Ok(len)) if out.len() <= u32::MAX as usize => (start, len),
            _ => {
                self.too_large = true;
                (0, 0)
            }
        }
    }

    /// Like `unique`, but reuses the span of an equal recent text.
    #[inline]
    fn shared(&mut self, out: &mut Vec<u8>, text: &str) -> (u32, u32) {
        let area = out.get(self.text_at..).unwrap_or_default();
        for &(start, len) in &self.recent {
            if len as usize == text.len() && area.get(start as usize..(start + len) as usize) == Some(text.as_bytes()) {
                return (start, len);
            }
        }
        let span = self.unique(out, text);
        self.recent[self.next_recent] = span;
        self.next_recent = (self.next_recent + 1) % RECENT_TEXTS;
        span
    }
}

/// Unpacks a request. The views borrow from `blob`.
pub fn decode_request(blob: &[u8]) -> Result<EvaluationRequest<'_>, DecodeError> {
    let header: &[u8; REQUEST_HEADER] =
        blob.first_chunk().ok_or(DecodeError::Truncated { needed: REQUEST_HEADER, len: blob.len() })?;
    let event_count = get_u32(header, 0) as usize;
    let goal_count = get_u32(header, 4) as usize;
    let byte_len = get_u32(header, 8) as usize;
    // All in u64: counts and lengths are at most 2^32, so nothing here overflows.
    let needed = REQUEST_HEADER as u64
        + event_count as u64 * EVENT_SIZE as u64
        + goal_count as u64 * GOAL_SIZE as u64
        + byte_len as u64;
    if needed > blob.len() as u64 {
        return Err(DecodeError::Truncated { needed: needed as usize, len: blob.len() });
    }
    let rest = &blob[REQUEST_HEADER..];
    let (events, rest) = rest.split_at(event_count * EVENT_SIZE);
    let (goals, rest) = rest.split_at(goal_count * GOAL_SIZE);
    let (bytes, text) = rest.split_at(byte_len);
    let text = core::str::from_utf8(text).map_err(|_| DecodeError::NotUtf8)?;
    let text = Texts(text);

    let user_id = text.get(header, 12, Item::Header, "user id")?;
    // Plain loops into pre-sized vectors: collecting an iterator of `Result`s would grow them step by step.
    let mut decoded_events = Vec::with_capacity(event_count);
    for (i, rec) in events.as_chunks::<EVENT_SIZE>().0.iter().enumerate() {
        let item = Item::Event(i);
        let kind = code_u32(rec, 0);
        decoded_events.push(Event {
            kind: EventKind::from_code(kind).ok_or(DecodeError::BadCode { item, field: "kind", code: kind })?,
            id: text.get(rec, 4, item, "id")?,
            stat_code: text.get(rec, 12, item, "stat code")?,
            value: get_f64(rec, 20),
            increment: get_f64(rec, 28),
            sequence: get_i64(rec, 36),
            timestamp_ms: get_i64(rec, 44),
        });
    }

    let mut decoded_goals = Vec::with_capacity(goal_count);
    for (i, rec) in goals.as_chunks::<GOAL_SIZE>().0.iter().enumerate() {
        let item = Item::Goal(i);
        let present = rec[75];
        if present & !PRESENT_BITS != 0 {
            return Err(DecodeError::BadFlags { item, value: present });
        }
        if rec[73] > 1 {
            return Err(DecodeError::BadFlags { item, value: rec[73] });
        }
        let spec = GoalSpec {
            goal_id: text.get(rec, 0, item, "goal id")?,
            kind: text.get(rec, 8, item, "kind")?,
            stat_code: text.get(rec, 16, item, "stat code")?,
            params: text.get(rec, 24, item, "params")?,
            target: get_i64(rec, 32),
            progress_mode: ProgressMode::from_code(rec[72]).ok_or(DecodeError::BadCode {
                item,
                field: "progress mode",
                code: rec[72],
            })?,
            daily: rec[73] == 1,
        };
        let state = GoalState {
            progress: get_i64(rec, 40),
            status: GoalStatus::from_code(rec[74]).ok_or(DecodeError::BadCode {
                item,
                field: "status",
                code: rec[74],
            })?,
            completed_at_ms: (present & HAS_COMPLETED_AT != 0).then(|| get_i64(rec, 48)),
            baseline: (present & HAS_BASELINE != 0).then(|| get_i64(rec, 56)),
            state: if present & HAS_STATE != 0 {
                Some(byte_span(bytes, rec, 64).ok_or(DecodeError::BadSpan { item, field: "state" })?)
            } else {
                None
            },
        };
        decoded_goals.push(GoalInput { spec, state });
    }
    Ok(EvaluationRequest { user_id, events: decoded_events, goals: decoded_goals })
}

/// The text area of a request.
#[derive(Clone, Copy)]
struct Texts<'a>(&'a str);

impl<'a> Texts<'a> {
    /// The text a span names; the area is UTF-8 already, so this only checks bounds and character boundaries.
    #[inline]
    fn get(self, rec: &[u8], at: usize, item: Item, field: &'static str) -> Result<&'a str, DecodeError> {
        let (start, len) = (get_u32(rec, at) as usize, get_u32(rec, at + 4) as usize);
        start.checked_add(len).and_then(|end| self.0.get(start..end)).ok_or(DecodeError::BadSpan { item, field })
    }
}

#[inline]
fn byte_span<'a>(bytes: &'a [u8], rec: &[u8], at: usize) -> Option<&'a [u8]> {
    let start = get_u32(rec, at) as usize;
    let len = get_u32(rec, at + 4) as usize;
    bytes.get(start..start.checked_add(len)?)
}

/// Packs updates into `out` (cleared first).
pub fn encode_updates(updates: &[GoalUpdate], out: &mut Vec<u8>) -> Result<(), TooLarge> {
    let state_bytes: usize = updates.iter().filter_map(|u| u.state.as_ref()).map(Vec::len).sum();
    let bytes_at =
        updates.len().checked_mul(UPDATE_SIZE).and_then(|n| n.checked_add(UPDATES_HEADER)).ok_or(TooLarge)?;
    let total = bytes_at.checked_add(state_bytes).ok_or(TooLarge)?;
    u32::try_from(total).map_err(|_| TooLarge)?;
    out.clear();
    out.reserve(total);
    out.resize(bytes_at, 0);
    put_u32(record::<UPDATES_HEADER>(out, 0)?, 0, updates.len() as u32);
    for (i, update) in updates.iter().enumerate() {
        let mut state_span = (0, 0);
        if let Some(state) = &update.state {
            state_span = ((out.len() - bytes_at) as u32, state.len() as u32);
            out.extend_from_slice(state);
        }
        let rec = record::<UPDATE_SIZE>(out, UPDATES_HEADER + i * UPDATE_SIZE)?;
        put_u32(rec, 0, update.goal_index);
        put(rec, 4, update.progress.to_le_bytes());
        put(rec, 12, update.completed_at_ms.unwrap_or(0).to_le_bytes());
        put(rec, 20, update.baseline.unwrap_or(0).to_le_bytes());
        put_span(rec, 28, state_span);
        rec[36] = update.status.code();
        rec[37] = update.source.code();
        rec[38] = presence(update.completed_at_ms.is_some(), update.baseline.is_some(), update.state.is_some());
    }
    Ok(())
}

/// Packed updates, checked for size; each update is checked as it is read.
#[derive(Debug, Clone, Copy)]
pub struct PackedUpdates<'a> {
    records: &'a [[u8; UPDATE_SIZE]],
    bytes: &'a [u8],
}

impl<'a> PackedUpdates<'a> {
    #[inline]
    pub fn parse(blob: &'a [u8]) -> Result<Self, DecodeError> {
        let header: &[u8; UPDATES_HEADER] =
            blob.first_chunk().ok_or(DecodeError::Truncated { needed: UPDATES_HEADER, len: blob.len() })?;
        let count = get_u32(header, 0) as u64;
        let needed = UPDATES_HEADER as u64 + count * UPDATE_SIZE as u64;
        if needed > blob.len() as u64 {
            return Err(DecodeError::Truncated { needed: needed as usize, len: blob.len() });
        }
        let (records, bytes) = blob[UPDATES_HEADER..].split_at(count as usize * UPDATE_SIZE);
        Ok(PackedUpdates { records: records.as_chunks().0, bytes })
    }

    /// Number of updates (read from the header, checked against the data's size).
    #[inline]
    pub fn len(&self) -> usize {
        self.records.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    #[inline]
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Result<UpdateView<'a>, DecodeError>> + 'a {
        let bytes = self.bytes;
        self.records.iter().enumerate().map(move |(i, rec)| decode_update(i, rec, bytes))
    }
}

#[inline]
fn decode_update<'a>(index: usize, rec: &[u8; UPDATE_SIZE], bytes: &'a [u8]) -> Result<UpdateView<'a>, DecodeError> {
    let item = Item::Update(index);
    let present = rec[38];
    if present & !PRESENT_BITS != 0 || rec[39] != 0 {
        return Err(DecodeError::BadFlags { item, value: if rec[39] != 0 { rec[39] } else { present } });
    }
    Ok(UpdateView {
        goal_index: get_u32(rec, 0),
        progress: get_i64(rec, 4),
        completed_at_ms: (present & HAS_COMPLETED_AT != 0).then(|| get_i64(rec, 12)),
        baseline: (present & HAS_BASELINE != 0).then(|| get_i64(rec, 20)),
        state: if present & HAS_STATE != 0 {
            Some(byte_span(bytes, rec, 28).ok_or(DecodeError::BadSpan { item, field: "state" })?)
        } else {
            None
        },
        status: GoalStatus::from_code(rec[36]).ok_or(DecodeError::BadCode { item, field: "status", code: rec[36] })?,
        source: ProgressSource::from_code(rec[37]).ok_or(DecodeError::BadCode {
            item,
            field: "source",
            code: rec[37],
        })?,
    })
}

impl UpdateView<'_> {
    #[inline]
    pub fn to_owned(&self) -> GoalUpdate {
        GoalUpdate {
            goal_index: self.goal_index,
            progress: self.progress,
            status: self.status,
            completed_at_ms: self.completed_at_ms,
            baseline: self.baseline,
            state: self.state.map(<[u8]>::to_vec),
            source: self.source,
        }
    }
}

/// A u32 enum code; values past 255 map to 255, which no enum uses.
#[inline]
fn code_u32(rec: &[u8], at: usize) -> u8 {
    u8::try_from(get_u32(rec, at)).unwrap_or(u8::MAX)
}

// Fixed offsets inside fixed-size records: the callers above never read or write past a record's end (the fallbacks
// below only keep this code free of panics). Array copies rather than `copy_from_slice`, which is not inlined.
#[inline]
fn field<const W: usize>(rec: &[u8], at: usize) -> [u8; W] {
    rec.get(at..).and_then(<[u8]>::first_chunk).copied().unwrap_or([0; W])
}

#[inline]
fn get_u32(rec: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(field(rec, at))
}

#[inline]
fn get_i64(rec: &[u8], at: usize) -> i64 {
    i64::from_le_bytes(field(rec, at))
}

#[inline]
fn get_f64(rec: &[u8], at: usize) -> f64 {
    f64::from_le_bytes(field(rec, at))
}

#[inline]
fn put<const W: usize>(rec: &mut [u8], at: usize, bytes: [u8; W]) {
    if let Some(dest) = rec.get_mut(at..).and_then(<[u8]>::first_chunk_mut) {
        *dest = bytes;
    }
}

#[inline]
fn put_u32(rec: &mut [u8], at: usize, value: u32) {
    put(rec, at, value.to_le_bytes());
}

#[inline]
fn put_span(rec: &mut [u8], at: usize, (start, len): (u32, u32)) {
    put_u32(rec, at, start);
    put_u32(rec, at + 4, len);
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn event<'a>(id: &'a str, code: &'a str, sequence: i64) -> Event<'a> {
        Event {
            id,
            kind: EventKind::Statistic,
            stat_code: code,
            value: 2.5,
            increment: -1.0,
            sequence,
            timestamp_ms: -7,
        }
    }

    fn goal<'a>(id: &'a str, code: &'a str, state: Option<&'a [u8]>) -> GoalInput<'a> {
        GoalInput {
            spec: GoalSpec {
                goal_id: id,
                kind: "increment",
                stat_code: code,
                target: i64::MAX,
                progress_mode: ProgressMode::Relative,
                daily: true,
                params: r#"{"emoji": "🏆"}"#,
            },
            state: GoalState {
                progress: -3,
                status: GoalStatus::Completed,
                completed_at_ms: Some(0),
                baseline: None,
                state,
            },
        }
    }

    fn pack(user: &str, events: &[Event<'_>], goals: &[GoalInput<'_>]) -> Vec<u8> {
        let mut out = vec![9; 3];
        encode_request(&mut out, user, events, |e| *e, goals, |g| *g).unwrap();
        out
    }

    #[test]
    fn requests_round_trip() {
        let events = [event("e1", "kills", 1), event("e2", "héros", 2), event("", "kills", 3)];
        let goals = [goal("g1", "kills", Some(&[1, 2, 3])), goal("g2", "héros", None), goal("g3", "kills", Some(&[]))];
        let packed = pack("user-ü", &events, &goals);
        let request = decode_request(&packed).unwrap();
        assert_eq!(request, EvaluationRequest { user_id: "user-ü", events: events.to_vec(), goals: goals.to_vec() });

        let empty = pack("", &[], &[]);
        assert_eq!(empty.len(), REQUEST_HEADER);
        assert_eq!(decode_request(&empty).unwrap(), EvaluationRequest { user_id: "", events: vec![], goals: vec![] });
    }

    #[test]
    fn repeated_stat_codes_share_one_copy() {
        let events = [event("e1", "kills", 1), event("e2", "deaths", 2), event("e3", "kills", 3)];
        let goals = [goal("g1", "kills", None)];
        let packed = pack("u", &events, &goals);
        let request = decode_request(&packed).unwrap();
        let kills = request.events[0].stat_code;
        assert!(core::ptr::eq(kills, request.events[2].stat_code));
        assert!(core::ptr::eq(kills, request.goals[0].spec.stat_code));
        assert!(!core::ptr::eq(kills, request.events[1].stat_code));
    }

    #[test]
    fn updates_round_trip() {
        let updates = [
            GoalUpdate {
                goal_index: 4,
                progress: -1,
                status: GoalStatus::InProgress,
                completed_at_ms: None,
                baseline: Some(i64::MIN),
                state: Some(vec![5; 9]),
                source: ProgressSource::EventCount,
            },
            GoalUpdate {
                goal_index: 0,
                progress: 10,
                status: GoalStatus::Completed,
                completed_at_ms: Some(123),
                baseline: None,
                state: None,
                source: ProgressSource::StatValue,
            },
            GoalUpdate {
                goal_index: 1,
                progress: 0,
                status: GoalStatus::NotStarted,
                completed_at_ms: None,
                baseline: None,
                state: Some(vec![]),
                source: ProgressSource::Stored,
            },
        ];
        let mut packed = vec![1, 2];
        encode_updates(&updates, &mut packed).unwrap();
        let parsed = PackedUpdates::parse(&packed).unwrap();
        assert_eq!(parsed.len(), 3);
        let back: Vec<GoalUpdate> = parsed.iter().map(|u| u.unwrap().to_owned()).collect();
        assert_eq!(back, updates);

        encode_updates(&[], &mut packed).unwrap();
        assert!(PackedUpdates::parse(&packed).unwrap().is_empty());
    }

    #[test]
    fn malformed_requests_are_errors() {
        let events = [event("e1", "kills", 1)];
        let goals = [goal("g1", "kills", Some(&[1, 2]))];
        let packed = pack("u", &events, &goals);
        let goal_at = REQUEST_HEADER + EVENT_SIZE;
        let error = |change: &dyn Fn(&mut Vec<u8>)| {
            let mut bad = packed.clone();
            change(&mut bad);
            decode_request(&bad).unwrap_err()
        };

        assert!(matches!(error(&|b| b.truncate(10)), DecodeError::Truncated { needed: 20, len: 10 }));
        assert!(matches!(error(&|b| b[0] = 200), DecodeError::Truncated { .. }), "more events than bytes");
        assert!(matches!(error(&|b| b[4..8].copy_from_slice(&u32::MAX.to_le_bytes())), DecodeError::Truncated { .. }));
        assert_eq!(
            error(&|b| b[REQUEST_HEADER] = 2),
            DecodeError::BadCode { item: Item::Event(0), field: "kind", code: 2 }
        );
        assert_eq!(error(&|b| b[REQUEST_HEADER + 8] = 250), DecodeError::BadSpan { item: Item::Event(0), field: "id" });
        assert_eq!(
            error(&|b| b[goal_at + 74] = 4),
            DecodeError::BadCode { item: Item::Goal(0), field: "status", code: 4 }
        );
        assert_eq!(error(&|b| b[goal_at + 75] |= 8), DecodeError::BadFlags { item: Item::Goal(0), value: 0x0d });
        assert_eq!(error(&|b| b[goal_at + 73] = 2), DecodeError::BadFlags { item: Item::Goal(0), value: 2 });
        assert_eq!(error(&|b| b[goal_at + 68] = 3), DecodeError::BadSpan { item: Item::Goal(0), field: "state" });
        assert_eq!(error(&|b| *b.last_mut().unwrap() = 0xff), DecodeError::NotUtf8);
        // A span ending inside a multi-byte character.
        let accented = pack("é", &[], &[]);
        let mut split = accented.clone();
        split[16] = 1;
        assert_eq!(decode_request(&split).unwrap_err(), DecodeError::BadSpan { item: Item::Header, field: "user id" });
        assert!(error(&|b| b[goal_at + 74] = 4).to_string().contains("goal 0: status code 4"));
    }

    #[test]
    fn malformed_updates_are_errors() {
        let update = GoalUpdate {
            goal_index: 0,
            progress: 1,
            status: GoalStatus::InProgress,
            completed_at_ms: None,
            baseline: None,
            state: Some(vec![1, 2, 3]),
            source: ProgressSource::Stored,
        };
        let mut packed = Vec::new();
        encode_updates(&[update], &mut packed).unwrap();
        let first = |change: &dyn Fn(&mut Vec<u8>)| {
            let mut bad = packed.clone();
            change(&mut bad);
            PackedUpdates::parse(&bad).and_then(|u| u.iter().next().unwrap()).map(|u| u.to_owned())
        };
        assert!(matches!(first(&|b| b[0] = 2), Err(DecodeError::Truncated { needed: 84, .. })));
        assert!(matches!(first(&|b| b.truncate(3)), Err(DecodeError::Truncated { needed: 4, len: 3 })));
        let at = UPDATES_HEADER;
        assert_eq!(
            first(&|b| b[at + 36] = 9),
            Err(DecodeError::BadCode { item: Item::Update(0), field: "status", code: 9 })
        );
        assert_eq!(
            first(&|b| b[at + 37] = 3),
            Err(DecodeError::BadCode { item: Item::Update(0), field: "source", code: 3 })
        );
        assert_eq!(first(&|b| b[at + 38] |= 0x80), Err(DecodeError::BadFlags { item: Item::Update(0), value: 0x84 }));
        assert_eq!(first(&|b| b[at + 39] = 1), Err(DecodeError::BadFlags { item: Item::Update(0), value: 1 }));
        assert_eq!(first(&|b| b[at + 32] = 4), Err(DecodeError::BadSpan { item: Item::Update(0), field: "state" }));
        assert_eq!(
            first(&|b| b[at + 28..at + 32].copy_from_slice(&u32::MAX.to_le_bytes())),
            Err(DecodeError::BadSpan { item: Item::Update(0), field: "state" })
        );
    }
}
