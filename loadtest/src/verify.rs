//! After a run: every acknowledged event must be in the database.
//!
//! Per (player, stat code) the ledger's count of acknowledged events is compared with
//! `user_stat_values.event_count`. Fewer rows than acknowledged is a lost event; more can only come from calls
//! that failed on our side (a timeout) but were committed anyway, so it must not exceed the unacknowledged events.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::Connection;

use crate::error::Result;
use crate::population::Population;

/// Mismatching pairs listed in the report at most.
const EXAMPLES: usize = 10;

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Verification {
    /// Events the server acknowledged, over the whole run (setup and warm-up included).
    pub events_acknowledged: u64,
    /// Acknowledged events of players not (yet) initialized at send time; not checked.
    pub events_untracked: u64,
    /// Events sent whose call failed or timed out.
    pub events_unacknowledged: u64,
    /// (player, stat code) pairs compared.
    pub pairs_checked: usize,
    /// Increments the acknowledged events imply, and those found.
    pub expected_increments: u64,
    pub found_increments: u64,
    /// Acknowledged but missing from the database. Must be 0.
    pub events_lost: u64,
    /// In the database but never acknowledged.
    pub extra_increments: u64,
    pub pairs_short: usize,
    pub pairs_over: usize,
    pub examples: Vec<String>,
}

impl Verification {
    /// Compares expected counts with what the database holds.
    pub fn compare<'a>(
        expected: impl Iterator<Item = (&'a str, &'a str, u64)>,
        found: &HashMap<(String, String), u64>,
    ) -> Self {
        let mut report = Self::default();
        for (user, code, want) in expected {
            let have = found.get(&(user.to_owned(), code.to_owned())).copied().unwrap_or(0);
            report.pairs_checked += 1;
            report.expected_increments += want;
            report.found_increments += have;
            if have < want {
                report.events_lost += want - have;
                report.pairs_short += 1;
            } else if have > want {
                report.extra_increments += have - want;
                report.pairs_over += 1;
            }
            if have != want && report.examples.len() < EXAMPLES {
                report.examples.push(format!("{user} / {code}: acknowledged {want}, database {have}"));
            }
        }
        report
    }
}

/// Reads the population's counters from `database_url` and compares them with the ledger.
pub async fn verify(database_url: &str, population: &Population, events_sent: u64) -> Result<Verification> {
    let mut connection = sqlx::PgConnection::connect(database_url).await?;
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT user_id, stat_code, event_count FROM user_stat_values WHERE user_id LIKE $1")
            .bind(format!("{}-u%", population.run_id))
            .fetch_all(&mut connection)
            .await?;
    connection.close().await?;
    let found: HashMap<(String, String), u64> =
        rows.into_iter().map(|(user, code, count)| ((user, code), u64::try_from(count).unwrap_or(0))).collect();
    let mut report = Verification::compare(population.expected_counts(), &found);
    report.events_acknowledged = population.acknowledged();
    report.events_untracked = population.untracked();
    report.events_unacknowledged = events_sent.saturating_sub(population.acknowledged());
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortfalls_are_lost_and_surpluses_are_extra() {
        let expected = vec![("u1", "kills", 3), ("u1", "login", 1), ("u2", "kills", 0), ("u2", "login", 2)];
        let found: HashMap<(String, String), u64> = [
            (("u1".to_owned(), "kills".to_owned()), 3),
            (("u1".to_owned(), "login".to_owned()), 0),
            (("u2".to_owned(), "kills".to_owned()), 1),
            (("u2".to_owned(), "login".to_owned()), 2),
            (("u9".to_owned(), "kills".to_owned()), 5),
        ]
        .into_iter()
        .collect();
        let report = Verification::compare(expected.into_iter(), &found);
        assert_eq!(report.pairs_checked, 4);
        assert_eq!((report.expected_increments, report.found_increments), (6, 6));
        assert_eq!((report.events_lost, report.pairs_short), (1, 1));
        assert_eq!((report.extra_increments, report.pairs_over), (1, 1));
        assert_eq!(report.examples.len(), 2);
    }
}
