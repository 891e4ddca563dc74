//! Helpers for the plugin lifecycle tests: the admin REST API as a client, real guest components, and new
//! releases of them.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use challenge_host::AppState;
use challenge_proto::challenge::events::v1 as batch;
use serde_json::Value;

/// The admin token the test harness configures.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A compiled guest component from `plugins/` (for example "streak", "trap", "builtin-rules").
pub fn guest(name: &str) -> Vec<u8> {
    let path = challenge_plugin_runtime::guest_artifact(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("guest {} not built: {err}", path.display()))
}

/// `component` with one string constant of its data replaced by another of the same length. The needle must occur
/// exactly once, so this never touches the component's type information by accident.
///
/// This is how the tests get a second release of a plugin without a second source tree: rewriting the version
/// in `describe()` gives the same code under a new version (what a designer does when they bump it), rewriting a
/// word its `validate-params` looks for gives a release that refuses goals the previous one accepted.
pub fn rewrite(component: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len(), "a rewrite keeps the length");
    let needle = from.as_bytes();
    let at: Vec<usize> =
        component.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| i).collect();
    assert_eq!(at.len(), 1, "'{from}' must occur exactly once in the component (found {})", at.len());
    let mut out = component.to_vec();
    out[at[0]..at[0] + needle.len()].copy_from_slice(to.as_bytes());
    out
}

/// The built-in rules plugin released again as `version` (same code; "1.0.0" is its version today).
pub fn builtin_release(version: &str) -> Vec<u8> {
    rewrite(challenge_plugin_runtime::BUILTIN_RULES_WASM, "1.0.0", version)
}

/// A JSON client for the admin API of one server.
#[derive(Clone)]
pub struct Admin {
    pub base: String,
    pub token: Option<String>,
    http: reqwest::Client,
}

impl Admin {
    pub fn new(base: &str) -> Self {
        Self::with_token(base, Some(format!("Bearer {ADMIN_TOKEN}")))
    }

    /// `authorization` is the whole header value, or none.
    pub fn with_token(base: &str, authorization: Option<String>) -> Self {
        Admin { base: base.trim_end_matches('/').to_owned(), token: authorization, http: reqwest::Client::new() }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let request = match &self.token {
            Some(token) => request.header("authorization", token),
            None => request,
        };
        let response = request.send().await.expect("admin request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.http.put(format!("{}{path}", self.base)).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.http.delete(format!("{}{path}", self.base))).await
    }

    /// `POST /admin/v1/plugins` with the component; `query` like `"?fuelPerCall=2000000"` or `""`.
    pub async fn upload(&self, component: Vec<u8>, query: &str) -> (u16, Value) {
        let request = self
            .http
            .post(format!("{}/admin/v1/plugins{query}", self.base))
            .header("content-type", "application/wasm")
            .body(component);
        self.send(request).await
    }

    pub async fn activate(&self, name: &str, version: &str) -> (u16, Value) {
        self.post(&format!("/admin/v1/plugins/{name}/versions/{version}/activate"), Value::Null).await
    }

    pub async fn rollback(&self, name: &str) -> (u16, Value) {
        self.post(&format!("/admin/v1/plugins/{name}/rollback"), Value::Null).await
    }

    /// The version the answering instance evaluates `name` with.
    pub async fn serving_version(&self, name: &str) -> Option<String> {
        let (status, body) = self.get(&format!("/admin/v1/plugins/{name}")).await;
        (status == 200).then(|| body["servingVersion"].as_str().map(str::to_owned)).flatten()
    }

    /// Whether the answering instance has `name@version` loaded.
    pub async fn is_loaded(&self, name: &str, version: &str) -> bool {
        let (status, body) = self.get(&format!("/admin/v1/plugins/{name}/versions/{version}")).await;
        status == 200 && body["loaded"] == Value::Bool(true)
    }
}

/// Asserts an error answer: status and `errorCode`, and that the message contains `needle`.
#[track_caller]
pub fn assert_error(answer: &(u16, Value), status: u16, code: &str, needle: &str) {
    let (actual, body) = answer;
    assert_eq!(*actual, status, "{body}");
    assert_eq!(body["errorCode"], code, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "message {message:?} should contain {needle:?}");
}

pub fn stat_event(id: &str, user: &str, code: &str, value: f64, namespace: &str) -> batch::Event {
    batch::Event {
        id: id.into(),
        user_id: user.into(),
        namespace: namespace.into(),
        timestamp: String::new(),
        kind: Some(batch::event::Kind::Stat(batch::StatEvent {
            stat_code: code.into(),
            latest_value: value,
            inc: 1.0,
        })),
    }
}

/// Event counts per user of one stat code, as stored.
pub async fn event_counts(state: &AppState, users: &[String], code: &str) -> HashMap<String, i64> {
    let mut counts = HashMap::new();
    for user in users {
        let stats = state.store.user_stats(user).await.unwrap();
        counts.insert(user.clone(), stats.iter().find(|s| s.stat_code == code).map_or(0, |s| s.event_count));
    }
    counts
}

/// A copy of a fixture in a temporary directory (for tests that rewrite it and reload).
pub fn fixture_copy(dir: &Path, name: &str) -> std::path::PathBuf {
    let target = dir.join(name);
    std::fs::copy(crate::common::fixture(name), &target).unwrap();
    target
}
