//! Errors of the configuration loader and the located problems the validator reports.

use std::fmt;
use std::path::PathBuf;

/// Names a challenge or goal in a message: by id when it has a usable one, else by position.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ItemRef {
    Id(String),
    /// 1-based position in its array, for items whose id is missing or empty.
    Position(usize),
}

impl ItemRef {
    pub fn id(id: &str) -> Self {
        ItemRef::Id(id.to_owned())
    }
}

impl fmt::Display for ItemRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ItemRef::Id(id) => write!(f, "'{id}'"),
            ItemRef::Position(n) => write!(f, "#{n}"),
        }
    }
}

/// Where a problem is: file, challenge, goal and field path (for example `requirement.targetValue`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Location {
    pub file: Option<PathBuf>,
    pub challenge: Option<ItemRef>,
    pub goal: Option<ItemRef>,
    pub field: Option<String>,
}

impl fmt::Display for Location {
    /// `challenges.json: challenge 'winter' goal 'kill-10': requirement.targetValue`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::with_capacity(3);
        if let Some(file) = &self.file {
            parts.push(file.display().to_string());
        }
        let item = match (&self.challenge, &self.goal) {
            (Some(challenge), Some(goal)) => Some(format!("challenge {challenge} goal {goal}")),
            (Some(challenge), None) => Some(format!("challenge {challenge}")),
            (None, Some(goal)) => Some(format!("goal {goal}")),
            (None, None) => None,
        };
        parts.extend(item);
        parts.extend(self.field.clone());
        f.write_str(&parts.join(": "))
    }
}

/// One thing wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Problem {
    pub location: Location,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let location = self.location.to_string();
        if location.is_empty() { f.write_str(&self.message) } else { write!(f, "{location}: {}", self.message) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },

    /// The file is not well-formed JSON.
    #[error("{}line {line}, column {column}: malformed JSON: {message}", origin_prefix(path))]
    Parse { path: Option<PathBuf>, line: usize, column: usize, message: String },

    /// Well-formed JSON that breaks configuration rules; lists every problem found.
    #[error("{}", list_problems(problems))]
    Invalid { problems: Vec<Problem> },
}

impl ConfigError {
    /// The validation problems (empty for read and parse errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems } => problems,
            _ => &[],
        }
    }
}

fn origin_prefix(path: &Option<PathBuf>) -> String {
    path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default()
}

fn count(n: usize) -> String {
    if n == 1 { "1 problem".to_owned() } else { format!("{n} problems") }
}

fn list_problems(problems: &[Problem]) -> String {
    let mut out = format!("invalid challenge configuration ({}):", count(problems.len()));
    for problem in problems {
        out.push_str("\n  - ");
        out.push_str(&problem.to_string());
    }
    out
}

/// Human-readable outcome for `host config validate FILE`: one line per problem, numbered, with a count.
pub fn report(err: &ConfigError) -> String {
    match err {
        ConfigError::Invalid { problems } => {
            let mut out = format!("{} found:\n", count(problems.len()));
            let width = problems.len().to_string().len();
            for (i, problem) in problems.iter().enumerate() {
                out.push_str(&format!("{:>width$}. {problem}\n", i + 1));
            }
            out
        }
        other => format!("{other}\n"),
    }
}
