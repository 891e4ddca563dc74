//! Events as the pipeline sees them, and the checks every transport applies before accepting one.

use chrono::{DateTime, Utc};

/// What happened, as a producer reported it.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    Login,
    Stat { stat_code: String, latest_value: f64, inc: f64 },
}

/// An event as received from a transport, before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingEvent {
    /// Producer's event id; empty when the producer sent none (such events cannot be deduplicated).
    pub id: String,
    pub user_id: String,
    pub namespace: String,
    /// Producer's timestamp (RFC3339); the server's clock is used when absent or unparsable-but-empty.
    pub timestamp: Option<String>,
    pub kind: EventKind,
}

/// A validated event ready for evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub user_id: String,
    pub occurred_at: DateTime<Utc>,
    pub kind: EventKind,
}

/// Why an event was refused; the code is stable for clients and metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub code: &'static str,
    pub message: String,
}

impl Rejection {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// Longest accepted id, user id or stat code (database columns hold 100 characters for ids).
const MAX_ID_LEN: usize = 100;

impl IncomingEvent {
    /// Checks an event against the deployment's namespace; `now` stands in for a missing timestamp.
    pub fn validate(self, namespace: &str, now: DateTime<Utc>) -> Result<Event, Rejection> {
        if self.user_id.trim().is_empty() {
            return Err(Rejection::new("MISSING_USER_ID", "userId cannot be empty"));
        }
        if self.user_id.len() > MAX_ID_LEN || self.id.len() > 200 {
            return Err(Rejection::new("ID_TOO_LONG", format!("userId is limited to {MAX_ID_LEN} characters")));
        }
        if self.namespace != namespace {
            return Err(Rejection::new(
                "UNKNOWN_NAMESPACE",
                format!("namespace '{}' is not served here (expected '{namespace}')", self.namespace),
            ));
        }
        if let EventKind::Stat { stat_code, latest_value, inc } = &self.kind {
            if stat_code.trim().is_empty() {
                return Err(Rejection::new("MISSING_STAT_CODE", "statCode cannot be empty"));
            }
            if stat_code.len() > MAX_ID_LEN {
                return Err(Rejection::new("ID_TOO_LONG", format!("statCode is limited to {MAX_ID_LEN} characters")));
            }
            if !latest_value.is_finite() || !inc.is_finite() {
                return Err(Rejection::new("INVALID_VALUE", "latestValue and inc must be finite numbers"));
            }
        }
        let occurred_at = match self.timestamp.as_deref().map(str::trim) {
            None | Some("") => now,
            Some(text) => DateTime::parse_from_rfc3339(text)
                .map_err(|e| Rejection::new("INVALID_TIMESTAMP", format!("timestamp '{text}' is not RFC3339: {e}")))?
                .with_timezone(&Utc),
        };
        Ok(Event { id: self.id, user_id: self.user_id, occurred_at, kind: self.kind })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(value: f64) -> IncomingEvent {
        IncomingEvent {
            id: "e1".into(),
            user_id: "u1".into(),
            namespace: "ns".into(),
            timestamp: Some("2026-03-06T10:00:00Z".into()),
            kind: EventKind::Stat { stat_code: "kills".into(), latest_value: value, inc: 1.0 },
        }
    }

    #[test]
    fn a_good_event_keeps_its_timestamp() {
        let event = stat(3.0).validate("ns", Utc::now()).unwrap();
        assert_eq!(event.occurred_at.to_rfc3339(), "2026-03-06T10:00:00+00:00");
    }

    #[test]
    fn bad_events_get_stable_codes() {
        let now = Utc::now();
        let code = |e: IncomingEvent| e.validate("ns", now).unwrap_err().code;
        assert_eq!(code(IncomingEvent { user_id: " ".into(), ..stat(1.0) }), "MISSING_USER_ID");
        assert_eq!(code(IncomingEvent { namespace: "other".into(), ..stat(1.0) }), "UNKNOWN_NAMESPACE");
        assert_eq!(code(stat(f64::NAN)), "INVALID_VALUE");
        assert_eq!(code(stat(f64::INFINITY)), "INVALID_VALUE");
        assert_eq!(code(IncomingEvent { timestamp: Some("yesterday".into()), ..stat(1.0) }), "INVALID_TIMESTAMP");
        let no_code =
            IncomingEvent { kind: EventKind::Stat { stat_code: "".into(), latest_value: 1.0, inc: 0.0 }, ..stat(1.0) };
        assert_eq!(code(no_code), "MISSING_STAT_CODE");
    }

    #[test]
    fn a_missing_timestamp_means_now() {
        let now = Utc::now();
        let event = IncomingEvent { timestamp: None, ..stat(1.0) }.validate("ns", now).unwrap();
        assert_eq!(event.occurred_at, now);
    }
}
