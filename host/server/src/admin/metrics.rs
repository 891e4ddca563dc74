//! The per-plugin metrics view of the admin API, read back from this process's Prometheus exposition (the plugin
//! runtime records `plugin_calls_total`, `plugin_errors_total{kind}` and `plugin_eval_seconds` per plugin and
//! version; the registry sets `plugin_active`). Counts are this instance's, since it started.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionMetrics {
    pub version: String,
    /// Whether evaluations on this instance use this version (goals that pin another version aside).
    pub active: bool,
    pub calls: u64,
    /// Failed calls by error kind (`trap`, `out_of_fuel`, `out_of_memory`, `bad_output`, ...); kinds that never
    /// happened are left out.
    pub errors: BTreeMap<String, u64>,
    pub latency: Latency,
}

/// The `plugin_eval_seconds` histogram of one version.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    pub count: u64,
    pub sum_seconds: f64,
    pub mean_seconds: f64,
    /// Upper bounds of the buckets holding the 50th, 90th and 99th percentiles (0 without calls).
    pub p50_seconds: f64,
    pub p90_seconds: f64,
    pub p99_seconds: f64,
    /// Cumulative counts per bucket upper bound (`le`), as exposed.
    pub buckets: Vec<Bucket>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    pub le: f64,
    pub count: u64,
}

/// Every version of `plugin` that appears in `exposition`, by version.
pub fn plugin_metrics(exposition: &str, plugin: &str) -> BTreeMap<String, VersionMetrics> {
    let mut versions: BTreeMap<String, VersionMetrics> = BTreeMap::new();
    for line in exposition.lines().filter(|line| !line.starts_with('#')) {
        let Some((name, labels, value)) = parse_sample(line) else { continue };
        if !name.starts_with("plugin_") || labels.get("plugin").map(String::as_str) != Some(plugin) {
            continue;
        }
        let Some(version) = labels.get("version") else { continue };
        let entry = versions
            .entry(version.clone())
            .or_insert_with(|| VersionMetrics { version: version.clone(), ..VersionMetrics::default() });
        let count = value.max(0.0) as u64;
        match name {
            "plugin_calls_total" => entry.calls = count,
            "plugin_errors_total" if count > 0 => {
                entry.errors.insert(labels.get("kind").cloned().unwrap_or_default(), count);
            }
            "plugin_active" => entry.active = value > 0.0,
            "plugin_eval_seconds_count" => entry.latency.count = count,
            "plugin_eval_seconds_sum" => entry.latency.sum_seconds = value,
            "plugin_eval_seconds_bucket" => {
                let le = labels.get("le").map_or(f64::INFINITY, |le| le.parse().unwrap_or(f64::INFINITY));
                entry.latency.buckets.push(Bucket { le, count });
            }
            _ => {}
        }
    }
    for metrics in versions.values_mut() {
        let latency = &mut metrics.latency;
        latency.buckets.sort_by(|a, b| a.le.total_cmp(&b.le));
        if latency.count > 0 {
            latency.mean_seconds = latency.sum_seconds / latency.count as f64;
            latency.p50_seconds = quantile(&latency.buckets, latency.count, 0.50);
            latency.p90_seconds = quantile(&latency.buckets, latency.count, 0.90);
            latency.p99_seconds = quantile(&latency.buckets, latency.count, 0.99);
        }
    }
    versions
}

/// The upper bound of the first bucket whose cumulative count reaches quantile `q`.
fn quantile(buckets: &[Bucket], total: u64, q: f64) -> f64 {
    let rank = (q * total as f64).ceil() as u64;
    buckets.iter().find(|bucket| bucket.count >= rank).map_or(f64::INFINITY, |bucket| bucket.le)
}

/// `name{a="x",b="y"} value` → (name, labels, value).
fn parse_sample(line: &str) -> Option<(&str, BTreeMap<String, String>, f64)> {
    let (head, value) = line.trim().rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let Some((name, rest)) = head.split_once('{') else {
        return Some((head, BTreeMap::new(), value));
    };
    let body = rest.strip_suffix('}')?;
    Some((name, parse_labels(body)?, value))
}

fn parse_labels(body: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut chars = body.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return Some(labels);
        }
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').trim().to_owned(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPOSITION: &str = r#"# TYPE plugin_calls_total counter
plugin_calls_total{plugin="streak",version="1.0.0"} 4
plugin_calls_total{plugin="streak",version="1.1.0"} 2
plugin_calls_total{plugin="other",version="1.0.0"} 99
plugin_errors_total{plugin="streak",version="1.0.0",kind="trap"} 1
plugin_errors_total{plugin="streak",version="1.0.0",kind="out_of_fuel"} 0
plugin_active{plugin="streak",version="1.1.0"} 1
plugin_active{plugin="streak",version="1.0.0"} 0
plugin_eval_seconds_bucket{plugin="streak",version="1.0.0",le="0.001"} 3
plugin_eval_seconds_bucket{plugin="streak",version="1.0.0",le="0.01"} 4
plugin_eval_seconds_bucket{plugin="streak",version="1.0.0",le="+Inf"} 4
plugin_eval_seconds_sum{plugin="streak",version="1.0.0"} 0.008
plugin_eval_seconds_count{plugin="streak",version="1.0.0"} 4
"#;

    #[test]
    fn versions_collect_calls_errors_latency_and_activity() {
        let metrics = plugin_metrics(EXPOSITION, "streak");
        assert_eq!(metrics.keys().collect::<Vec<_>>(), ["1.0.0", "1.1.0"]);
        let old = &metrics["1.0.0"];
        assert_eq!((old.calls, old.active), (4, false));
        assert_eq!(old.errors, BTreeMap::from([("trap".to_owned(), 1)]));
        assert_eq!(old.latency.count, 4);
        assert_eq!(old.latency.mean_seconds, 0.002);
        assert_eq!((old.latency.p50_seconds, old.latency.p99_seconds), (0.001, 0.01));
        let new = &metrics["1.1.0"];
        assert_eq!((new.calls, new.active, new.latency.count), (2, true, 0));
    }

    #[test]
    fn labels_with_escapes_parse() {
        let (name, labels, value) = parse_sample(r#"m{a="x\"y",b="z"} 1.5"#).unwrap();
        assert_eq!((name, value), ("m", 1.5));
        assert_eq!(labels["a"], "x\"y");
        assert_eq!(labels["b"], "z");
        assert!(parse_sample("garbage").is_none());
    }
}
