//! Durability of acknowledged events: a crash (kill -9) right after acknowledgements, and a database outage.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use challenge_proto::challenge::events::v1 as batch;
use challenge_storage::{Store, StoreOptions};
use chrono::Utc;
use common::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tonic::Code;

type BatchClient = batch::event_ingestion_service_client::EventIngestionServiceClient<tonic::transport::Channel>;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn kill_event(id: String, user: &str, value: f64) -> batch::Event {
    batch::Event {
        id,
        user_id: user.into(),
        namespace: NAMESPACE.into(),
        timestamp: String::new(),
        kind: Some(batch::event::Kind::Stat(batch::StatEvent {
            stat_code: "kills".into(),
            latest_value: value,
            inc: 1.0,
        })),
    }
}

async fn open(url: &str) -> Arc<dyn Store> {
    let options = StoreOptions { database_url: Some(url.to_owned()), ..StoreOptions::default() };
    challenge_storage::open_store(&options).await.unwrap()
}

async fn assign_kills(store: &dyn Store, users: &[String]) {
    let rows: Vec<_> = users.iter().map(|user| assignment(user, "kills-100", "grind")).collect();
    store.insert_missing_assignments(&rows, Utc::now()).await.unwrap();
}

async fn kills_stored(store: &dyn Store, user: &str) -> i64 {
    store.user_stats(user).await.unwrap().iter().find(|s| s.stat_code == "kills").map_or(0, |s| s.event_count)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn acknowledged_events_survive_kill_9() {
    let database = TestDatabase::create().await;
    let store = open(&database.url).await;
    store.migrate().await.unwrap();
    let users: Vec<String> = (0..8).map(|i| format!("crash-{i}")).collect();
    assign_kills(store.as_ref(), &users).await;

    let data_dir = tempfile::tempdir().unwrap();
    let (http, grpc, metrics) = (free_port(), free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_host"))
        .env("DATABASE_URL", &database.url)
        .env("CHALLENGES_PATH", fixture("challenges.json"))
        .env("AB_NAMESPACE", NAMESPACE)
        .env("CHALLENGE_DATA_DIR", data_dir.path())
        .env("CHALLENGE_AUTH__MODE", "hs256")
        .env("CHALLENGE_AUTH__HS256_SECRET", TEST_SECRET)
        .env("CHALLENGE_HTTP__LISTEN", format!("127.0.0.1:{http}"))
        .env("CHALLENGE_GRPC__LISTEN", format!("127.0.0.1:{grpc}"))
        .env("CHALLENGE_METRICS__LISTEN", format!("127.0.0.1:{metrics}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let endpoint = format!("http://127.0.0.1:{grpc}");
    let channel = eventually(Duration::from_secs(60), || {
        let endpoint = endpoint.clone();
        async move { tonic::transport::Endpoint::from_shared(endpoint).unwrap().connect().await.ok() }
    })
    .await;

    // Producers send batches as fast as they are acknowledged; the process is killed mid-stream.
    let acknowledged = Arc::new(Mutex::new(vec![0i64; users.len()]));
    let mut producers = Vec::new();
    for (u, user) in users.iter().enumerate() {
        let mut client = BatchClient::new(channel.clone());
        let (user, acknowledged) = (user.clone(), acknowledged.clone());
        producers.push(tokio::spawn(async move {
            for round in 0.. {
                let events: Vec<batch::Event> = (0..20)
                    .map(|i| kill_event(format!("{user}-{round}-{i}"), &user, f64::from(round * 20 + i)))
                    .collect();
                match client.submit_events(batch::SubmitEventsRequest { events }).await {
                    Ok(response) => acknowledged.lock().await[u] += i64::from(response.into_inner().accepted),
                    Err(_) => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    child.0.kill().unwrap(); // SIGKILL: no shutdown hook runs.
    child.0.wait().unwrap();
    for producer in producers {
        producer.await.unwrap();
    }

    let acknowledged = acknowledged.lock().await.clone();
    assert!(acknowledged.iter().sum::<i64>() > 0, "some events were acknowledged before the kill");
    for (user, acked) in users.iter().zip(acknowledged) {
        let stored = kills_stored(store.as_ref(), user).await;
        // An unacknowledged in-flight batch may also have committed; an acknowledged one must be there.
        assert!(stored >= acked, "{user}: {acked} acknowledged but only {stored} stored");
        assert!(stored <= acked + 20, "{user}: at most the one batch in flight may be extra");
    }

    // A restarted server serves on the same data.
    let restarted =
        TestServer::start(TestOptions { database: Some(database.url.clone()), ..TestOptions::default() }).await;
    assert_eq!(
        restarted.state().store.user_stats(&users[0]).await.unwrap()[0].event_count,
        kills_stored(store.as_ref(), &users[0]).await
    );
}

/// A TCP proxy in front of PostgreSQL that the test can cut and restore, to simulate an outage.
struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = Self { addr, upstream, tasks: Arc::default() };
        proxy.serve(listener).await;
        proxy
    }

    async fn serve(&self, listener: TcpListener) {
        let (upstream, tasks) = (self.upstream, self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let connection = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().await.push(connection);
            }
        });
        self.tasks.lock().await.push(accept);
    }

    /// Drops the listener and every open connection.
    async fn cut(&self) {
        for task in self.tasks.lock().await.drain(..) {
            task.abort();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    async fn restore(&self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener).await;
    }
}

#[tokio::test]
async fn database_outage_refuses_events_then_recovers_by_itself() {
    let database = TestDatabase::create().await;
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let via_proxy = database.url.replacen("127.0.0.1:5432", &proxy.addr.to_string(), 1);
    assert_ne!(via_proxy, database.url, "the test database URL points at 127.0.0.1:5432");
    let server = TestServer::start(TestOptions { database: Some(via_proxy), ..TestOptions::default() }).await;
    let store = server.state().store.clone();
    let user = "outage".to_owned();
    assign_kills(store.as_ref(), std::slice::from_ref(&user)).await;
    let mut client = BatchClient::new(server.grpc_channel().await);
    let send = |client: &mut BatchClient, id: &str| {
        let events = vec![kill_event(id.to_owned(), "outage", 1.0)];
        let mut client = client.clone();
        async move { client.submit_events(batch::SubmitEventsRequest { events }).await }
    };

    send(&mut client, "before").await.unwrap();
    proxy.cut().await;
    let started = Instant::now();
    let during = tokio::spawn(send(&mut client, "during"));
    // A producer that gives up while the flush worker is stuck: its events must not be stored later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut abandoned = tonic::Request::new(batch::SubmitEventsRequest {
        events: vec![kill_event("abandoned".into(), "outage", 100.0)],
    });
    abandoned.set_timeout(Duration::from_millis(300));
    let gave_up = client.clone().submit_events(abandoned).await.unwrap_err();
    assert!(matches!(gave_up.code(), Code::Cancelled | Code::DeadlineExceeded), "{gave_up:?}");
    let status = during.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "a bounded wait, not a hang: {:?}", started.elapsed());
    let health = reqwest::get(format!("{}/readyz", server.http)).await.unwrap();
    assert_eq!(health.status(), 503, "not ready while the database is away");

    proxy.restore().await;
    // The producer retries the refused event; the pipeline recovers without a restart.
    eventually(Duration::from_secs(20), || {
        let mut client = client.clone();
        async move {
            client
                .submit_events(batch::SubmitEventsRequest { events: vec![kill_event("during".into(), "outage", 2.0)] })
                .await
                .ok()
        }
    })
    .await;
    send(&mut client, "after").await.unwrap();
    let direct = open(&database.url).await;
    assert_eq!(
        kills_stored(direct.as_ref(), &user).await,
        3,
        "before + during (retried once it was refused) + after; the abandoned call was shed, not stored"
    );
}
