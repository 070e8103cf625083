//! A sign-up service that publishes `UserSignedUp` to EventBridge in the background.
//!
//! `POST /signup` registers the user and answers `201 Created` at once; the event goes to
//! a background publisher through a bounded queue. The answer never waits on EventBridge,
//! and a publish failure never fails the sign-up: it is logged and counted (`GET /stats`).
//! See README.md for what this loses and how a transactional outbox loses nothing.
//!
//! Run it against the local bus (`eventfork local up` in another terminal; for AWS itself,
//! drop the endpoint and the dummy keys):
//!
//! ```text
//! AWS_ENDPOINT_URL=http://127.0.0.1:4010 AWS_REGION=us-east-1 \
//!     AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local EVENTFORK_BUS=eventfork \
//!     cargo run -p example-signup-service
//! curl -i http://127.0.0.1:3000/signup -H 'content-type: application/json' \
//!     -d '{"email": "ada@example.com", "display_name": "Ada", "marketing_consent": true}'
//! curl http://127.0.0.1:3000/stats
//! ```

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    routing::{get, post},
};
use events_schema::{Plan, SignupMethod, UserId, UserSignedUp};
use router::{PublishError, Publisher, PublisherBuilder};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};

/// Sign-ups waiting for the background publisher; beyond this, events are dropped (and
/// counted) rather than slowing sign-ups down.
const QUEUE_CAPACITY: usize = 10_000;

/// How long a stopping service keeps publishing what is queued: orchestrators kill a
/// process some time after SIGTERM (ECS and Kubernetes after 30 s by default).
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// How long the connections still open at the stop signal may take to finish: the drain
/// counts from the signal, so a client that never finishes its request must not hold it.
const CONNECTIONS_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How long one batch may be retried, and how long one attempt may take: together well
/// under [`DRAIN_TIMEOUT`], so that the batch in flight when the service stops gets its
/// answer before the drain ends.
const RETRY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(8);
const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4);

/// PutEvents requests in flight at once, and the most sign-ups published together: one
/// request each (10 events of usual size), so that a batch's requests all start at once
/// and its retry deadlines run side by side, not one after another while requests wait
/// for a slot.
const MAX_IN_FLIGHT: usize = 4;
const BATCH_EVENTS: usize = 10 * MAX_IN_FLIGHT;

/// How long the background publisher waits before sending again the events EventBridge
/// did not take (an outage, throttling past the retry deadline), at first and at most:
/// the pause doubles while they keep failing. Meanwhile the queue fills, and once it is
/// full new sign-ups are dropped and counted, rather than every queued event being tried
/// once against a bus that is down and lost.
const RESEND_FIRST: std::time::Duration = std::time::Duration::from_secs(1);
const RESEND_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// The service's configuration, read from the environment once at start-up.
struct Config {
    bus: String,
    listen: SocketAddr,
}

impl Config {
    fn from_env() -> Result<Config, String> {
        let bus = std::env::var("EVENTFORK_BUS")
            .map_err(|_| "EVENTFORK_BUS must name the event bus".to_owned())?;
        let listen = match std::env::var("EVENTFORK_LISTEN") {
            Ok(text) => text
                .parse()
                .map_err(|e| format!("EVENTFORK_LISTEN {text:?} is not host:port: {e}"))?,
            Err(_) => SocketAddr::from(([127, 0, 0, 1], 3000)),
        };
        Ok(Config { bus, listen })
    }
}

/// What happened to the events, for `GET /stats` and the logs.
#[derive(Debug, Default)]
struct Stats {
    published: AtomicU64,
    /// Sent, but EventBridge's answer never came: the event may well be on the bus. Kept
    /// apart from `failed`, since publishing it again may deliver it twice.
    unconfirmed: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    /// Not taken by EventBridge, held to be sent again after a pause (a gauge).
    held: AtomicU64,
}

#[derive(Clone)]
struct AppState {
    /// The user store: user id by lower-case email. A real service has a database.
    users: Arc<Mutex<HashMap<String, UserId>>>,
    events: mpsc::Sender<UserSignedUp>,
    stats: Arc<Stats>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignupRequest {
    email: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    marketing_consent: bool,
}

/// The HTTP routes, over a queue to the background publisher.
fn app(events: mpsc::Sender<UserSignedUp>, stats: Arc<Stats>) -> Router {
    let state = AppState {
        users: Arc::default(),
        events,
        stats,
    };
    Router::new()
        .route("/signup", post(signup))
        .route("/stats", get(show_stats))
        .with_state(state)
}

async fn signup(
    State(state): State<AppState>,
    Json(request): Json<SignupRequest>,
) -> (StatusCode, Json<Value>) {
    // Mailchimp's merge fields take 255 characters, and EventBridge 256 KiB an event: a
    // longer name is the form's error, told now, not an event lost after the sign-up.
    let n_chars = request.display_name.chars().count();
    if n_chars > MAX_DISPLAY_NAME_CHARS {
        let body = json!({
            "error": format!(
                "display_name: {n_chars} characters, over the {MAX_DISPLAY_NAME_CHARS} allowed"
            ),
        });
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(body));
    }
    let event = {
        let mut users = state.users.lock().expect("no panic while holding the lock");
        // Unique across restarts: the consumers' idempotency records outlive this process,
        // and a counter starting again at 1 would make a new user a duplicate of an old one.
        let user_id = format!("user-{}", uuid::Uuid::new_v4());
        let event = match UserSignedUp::builder(user_id, &request.email) {
            Ok(builder) => builder
                .display_name(request.display_name)
                .plan(Plan::Free)
                .signup_method(SignupMethod::EmailPassword)
                .marketing_consent(request.marketing_consent)
                .build(),
            Err(error) => {
                let body = json!({ "error": error.to_string() });
                return (StatusCode::UNPROCESSABLE_ENTITY, Json(body));
            }
        };
        let key = event.email.to_lowercase();
        if users.contains_key(&key) {
            let body = json!({ "error": "this email address already has an account" });
            return (StatusCode::CONFLICT, Json(body));
        }
        // The sign-up is committed here; the event only reports it.
        users.insert(key, event.user_id.clone());
        event
    };
    let user_id = event.user_id.to_string();
    // Never waits: a full queue drops the event (logged and counted), not the sign-up.
    if let Err(error) = state.events.try_send(event) {
        state.stats.dropped.fetch_add(1, Ordering::Relaxed);
        tracing::error!(%user_id, %error, "UserSignedUp not queued for publishing");
    }
    (StatusCode::CREATED, Json(json!({ "user_id": user_id })))
}

/// The longest display name taken.
const MAX_DISPLAY_NAME_CHARS: usize = 255;

async fn show_stats(State(state): State<AppState>) -> Json<Value> {
    let stats = &state.stats;
    Json(json!({
        "published": stats.published.load(Ordering::Relaxed),
        "unconfirmed": stats.unconfirmed.load(Ordering::Relaxed),
        "failed": stats.failed.load(Ordering::Relaxed),
        "dropped": stats.dropped.load(Ordering::Relaxed),
        "held": stats.held.load(Ordering::Relaxed),
    }))
}

/// The Publisher's settings, for the drain's promise: a batch retried for at most
/// [`RETRY_DEADLINE`], [`MAX_IN_FLIGHT`] requests at once.
fn publisher_builder(bus: &str) -> PublisherBuilder {
    Publisher::builder(bus)
        .retry_deadline(RETRY_DEADLINE)
        .attempt_timeout(ATTEMPT_TIMEOUT)
        .max_in_flight(MAX_IN_FLIGHT)
}

/// Publishes queued sign-ups in batches of what has accumulated, until the queue closes or,
/// once `stop` is set, until what was queued before it is published (a connection left
/// open after the shutdown may hold a sender, and would keep the queue open for ever).
/// Events that EventBridge did not take are held apart and sent again after a pause
/// ([`RESEND_FIRST`], doubling while they keep failing), while new sign-ups go on being
/// published; at most [`QUEUE_CAPACITY`] are held, and beyond that the queue fills and
/// new sign-ups are dropped. The stop signal ends the pause: a stopping service tries what
/// it holds at once, then as before until its drain ends.
async fn publish_in_background(
    publisher: Publisher,
    mut events: mpsc::Receiver<UserSignedUp>,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<Option<Instant>>,
) {
    let mut batch = Vec::with_capacity(BATCH_EVENTS);
    let mut held: Vec<UserSignedUp> = Vec::new();
    // When the held events are sent again, and the pause before the next time.
    let mut resend_at: Option<Instant> = None;
    let mut pause = RESEND_FIRST;
    // Until the signal has closed the queue, or no signal can come any more.
    let mut listening = true;
    let mut queue_open = true;
    loop {
        let resending = tokio::select! {
            n_events = events.recv_many(&mut batch, BATCH_EVENTS),
                if queue_open && held.len() < QUEUE_CAPACITY =>
            {
                if n_events == 0 {
                    queue_open = false;
                }
                false
            }
            () = sleep_until(resend_at), if resend_at.is_some() => {
                resend_at = None;
                let n = held.len().min(BATCH_EVENTS);
                batch.extend(held.drain(..n));
                true
            }
            signal = stop.wait_for(Option::is_some), if listening => {
                if signal.is_ok() {
                    events.close();
                }
                listening = false;
                if !held.is_empty() {
                    resend_at = Some(Instant::now());
                }
                continue;
            }
            else => break,
        };
        if batch.is_empty() {
            if !queue_open && held.is_empty() {
                break;
            }
            continue;
        }
        let report = publisher.publish_all(&batch).await;
        let mut n_held = 0;
        for (event, outcome) in batch.drain(..).zip(report.outcomes()) {
            match outcome {
                // Not published, and it may be taken later: tried again after a pause.
                Err(error) if error.is_retryable() => {
                    tracing::debug!(user_id = %event.user_id, code = error.code(), "UserSignedUp held");
                    held.push(event);
                    n_held += 1;
                }
                Ok(event_id) => {
                    stats.published.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(user_id = %event.user_id, %event_id, "UserSignedUp published");
                }
                Err(error @ PublishError::Unconfirmed { .. }) => {
                    stats.unconfirmed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        user_id = %event.user_id,
                        code = error.code(),
                        attempts = error.attempts(),
                        %error,
                        "UserSignedUp may have been published: EventBridge's answer never came"
                    );
                }
                Err(error) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        user_id = %event.user_id,
                        code = error.code(),
                        attempts = error.attempts(),
                        %error,
                        "UserSignedUp not published"
                    );
                }
            }
        }
        if n_held > 0 {
            // A resend that failed again waits longer; a first failure starts the pause
            // unless one runs already.
            if resending {
                pause = (pause * 2).min(RESEND_MAX);
            }
            let at = *resend_at.get_or_insert_with(|| Instant::now() + pause);
            tracing::warn!(
                n_events = n_held,
                n_held = held.len(),
                "EventBridge did not take {n_held} sign-up(s): sending them again in {:?}",
                at.saturating_duration_since(Instant::now())
            );
        } else if resending {
            pause = RESEND_FIRST;
            // What is still held goes next, without a pause.
            if !held.is_empty() {
                resend_at = Some(Instant::now());
            }
        }
        stats.held.store(held.len() as u64, Ordering::Relaxed);
    }
}

/// Sleeps until `at`, or for ever when there is none.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = Config::from_env()?;
    let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let publisher = publisher_builder(&config.bus).build(&sdk_config);
    publisher.verify_bus().await?;

    let stats = Arc::new(Stats::default());
    let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
    // When the stop signal came (the drain's time counts from there), and the word for the
    // publisher to close its queue, given once the server is done with its connections.
    let (stopping, stopped) = watch::channel(None);
    let (closing, closed) = watch::channel(None);
    let background = tokio::spawn(publish_in_background(
        publisher,
        receiver,
        Arc::clone(&stats),
        closed,
    ));
    let mut background = background;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!(listen = %config.listen, bus = %config.bus, "signing users up");
    let server = axum::serve(listener, app(sender, Arc::clone(&stats)))
        .with_graceful_shutdown(async move {
            stop_signal().await;
            let _ = stopping.send(Some(Instant::now()));
        })
        .into_future();
    // The server ends once its connections have; those still open CONNECTIONS_GRACE after
    // the signal are left behind.
    let mut signal = stopped.clone();
    let server = async move {
        tokio::select! {
            served = server => served,
            _ = async {
                let _ = signal.wait_for(Option::is_some).await;
                tokio::time::sleep(CONNECTIONS_GRACE).await;
            } => {
                tracing::warn!("connections still open {CONNECTIONS_GRACE:?} after the stop signal: closing without them");
                Ok(())
            }
        }
    };
    tokio::select! {
        served = server => served?,
        // The publisher ends only when the queue closes: earlier, it died, and every
        // later event would be dropped. Stop, so that the orchestrator restarts us.
        ended = &mut background => {
            tracing::error!(?ended, "the background publisher stopped; shutting down");
            return Err("the background publisher stopped".into());
        }
    }
    // The server is done: the sign-ups of the connections it finished are queued, and
    // those left behind may queue no more. Publish what is left, until DRAIN_TIMEOUT after
    // the signal (as long as the orchestrator is likely to wait).
    let signalled = stopped.borrow().unwrap_or_else(Instant::now);
    let _ = closing.send(Some(signalled));
    match tokio::time::timeout_at(signalled + DRAIN_TIMEOUT, background).await {
        Ok(joined) => joined?,
        Err(_) => {
            tracing::error!(
                published = stats.published.load(Ordering::Relaxed),
                held = stats.held.load(Ordering::Relaxed),
                "still publishing after {DRAIN_TIMEOUT:?}: the events still queued or held are \
                 lost, and those of the batch in flight may or may not have been published \
                 (README: a transactional outbox loses none)"
            );
            return Err("stopped before every accepted sign-up was published".into());
        }
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM: what ECS, Kubernetes and systemd send to stop a service.
async fn stop_signal() {
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use router::publish::{BoxFuture, Entry, EntryResult, RequestError, Transport};
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpListener, TcpStream},
    };

    use super::*;

    /// An EventBridge that refuses every entry, never answers at all, takes every entry
    /// after a delay, or fails every request with a 500 until the instant given.
    enum Fake {
        Refuse,
        Hang,
        Slow(Duration),
        DownUntil(Instant),
    }

    impl Transport for Fake {
        fn put_events<'a>(
            &'a self,
            _bus: &'a str,
            entries: &'a [&'a Entry],
        ) -> BoxFuture<'a, Result<Vec<EntryResult>, RequestError>> {
            Box::pin(async move {
                match self {
                    Fake::Refuse => Ok(entries
                        .iter()
                        .map(|_| EntryResult::Failed {
                            code: "AccessDeniedException".to_owned(),
                            message: "not allowed".to_owned(),
                        })
                        .collect()),
                    Fake::Hang => std::future::pending().await,
                    Fake::DownUntil(until) if Instant::now() < *until => Err(RequestError::new(
                        "InternalException",
                        "service unavailable",
                        true,
                    )),
                    Fake::DownUntil(_) => Ok(entries
                        .iter()
                        .map(|_| EntryResult::Published {
                            event_id: "6a7e8feb-b491-4cf7-a9f1-bf3703467718".to_owned(),
                        })
                        .collect()),
                    Fake::Slow(delay) => {
                        tokio::time::sleep(*delay).await;
                        Ok(entries
                            .iter()
                            .map(|_| EntryResult::Published {
                                event_id: "6a7e8feb-b491-4cf7-a9f1-bf3703467718".to_owned(),
                            })
                            .collect())
                    }
                }
            })
        }

        fn describe_event_bus<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), RequestError>> {
            Box::pin(async { Ok(()) })
        }
    }

    /// The background publisher started over a fake EventBridge, and its handles.
    struct Background {
        sender: mpsc::Sender<UserSignedUp>,
        stats: Arc<Stats>,
        stopping: watch::Sender<Option<Instant>>,
        task: tokio::task::JoinHandle<()>,
    }

    fn start(publisher: Publisher) -> Background {
        let stats = Arc::new(Stats::default());
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let (stopping, stopped) = watch::channel(None);
        let task = tokio::spawn(publish_in_background(
            publisher,
            receiver,
            Arc::clone(&stats),
            stopped,
        ));
        Background {
            sender,
            stats,
            stopping,
            task,
        }
    }

    fn sign_up(i: usize) -> UserSignedUp {
        UserSignedUp::builder(format!("user-{i}"), "ada@example.com")
            .unwrap()
            .build()
    }

    /// Serves the app with `fake` behind the Publisher; answers its address and stats.
    async fn serve(fake: Fake) -> (SocketAddr, Arc<Stats>) {
        let publisher = Publisher::builder("test-bus")
            .attempt_timeout(Duration::from_secs(3600))
            .build_with(fake);
        let Background {
            sender,
            stats,
            stopping: _stopping,
            task: _background,
        } = start(publisher);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = app(sender, Arc::clone(&stats));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (address, stats)
    }

    /// POSTs `body` to /signup; answers the status code and the body.
    async fn post_signup(address: SocketAddr, body: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(address).await.unwrap();
        let request = format!(
            "POST /signup HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        (status, body.to_owned())
    }

    const ADA: &str = r#"{"email": "ada@example.com", "display_name": "Ada"}"#;

    #[tokio::test]
    async fn signup_succeeds_when_publishing_fails_and_the_failure_is_counted() {
        let (address, stats) = serve(Fake::Refuse).await;
        let (status, body) = post_signup(address, ADA).await;
        assert_eq!(status, 201, "{body}");
        assert!(body.starts_with(r#"{"user_id":"user-"#), "{body}");
        for _ in 0..100 {
            if stats.failed.load(Ordering::Relaxed) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(stats.failed.load(Ordering::Relaxed), 1);
        assert_eq!(stats.published.load(Ordering::Relaxed), 0);
    }

    /// A name too long for Mailchimp (and, much longer, for EventBridge) is refused with
    /// the form, not published into a failure after the account exists.
    #[tokio::test]
    async fn a_display_name_too_long_is_refused() {
        let (address, _) = serve(Fake::Refuse).await;
        let body = json!({ "email": "ada@example.com", "display_name": "a".repeat(256) });
        let (status, answer) = post_signup(address, &body.to_string()).await;
        assert_eq!(status, 422, "{answer}");
        assert!(answer.contains("over the 255 allowed"), "{answer}");
    }

    /// The first sign-up after a restart was user-1 again: the handlers' idempotency
    /// records, which outlive the process, then took it for the old user-1's and skipped
    /// it (an audit).
    #[tokio::test]
    async fn user_ids_stay_unique_across_restarts() {
        let (before, _) = serve(Fake::Refuse).await;
        let (_, first) = post_signup(before, ADA).await;
        let (after_restart, _) = serve(Fake::Refuse).await;
        let (_, second) = post_signup(after_restart, ADA).await;
        assert_ne!(first, second);
    }

    /// An event whose requests were never answered may be on the bus: it is counted as
    /// unconfirmed, not as failed.
    #[tokio::test(start_paused = true)]
    async fn an_unanswered_publish_is_unconfirmed_not_failed() {
        let publisher = Publisher::builder("test-bus")
            .attempt_timeout(Duration::from_secs(1))
            .retry_deadline(Duration::from_secs(3))
            .build_with(Fake::Hang);
        let Background {
            sender,
            stats,
            stopping: _stopping,
            task: background,
        } = start(publisher);
        sender.try_send(sign_up(1)).unwrap();
        drop(sender);
        background.await.unwrap();
        assert_eq!(stats.unconfirmed.load(Ordering::Relaxed), 1);
        assert_eq!(stats.failed.load(Ordering::Relaxed), 0);
        assert_eq!(stats.published.load(Ordering::Relaxed), 0);
    }

    /// An outage longer than the retry deadline: the events are held and sent again once
    /// it ends, not counted as failed and lost (an audit: once the Publisher found
    /// EventBridge unavailable, every queued event failed at once and was dropped).
    #[tokio::test(start_paused = true)]
    async fn events_outlive_an_outage_longer_than_the_retry_deadline() {
        let down_for = Duration::from_secs(40);
        let publisher =
            publisher_builder("test-bus").build_with(Fake::DownUntil(Instant::now() + down_for));
        let Background {
            sender,
            stats,
            stopping: _stopping,
            task: _background,
        } = start(publisher);
        for i in 0..100 {
            sender.try_send(sign_up(i)).unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(stats.held.load(Ordering::Relaxed) > 0, "{stats:?}");
        assert_eq!(stats.published.load(Ordering::Relaxed), 0);
        // The outage ends at 40 s; the pause before a resend is 30 s at most.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(stats.published.load(Ordering::Relaxed), 100, "{stats:?}");
        assert_eq!(stats.failed.load(Ordering::Relaxed), 0);
        assert_eq!(stats.held.load(Ordering::Relaxed), 0);
    }

    /// The stop signal ends the pause before a resend: events held through an outage that
    /// ended during a long pause are published at once, within the drain (found by a
    /// review: the pause ran on, past the drain's end, and they were lost).
    #[tokio::test(start_paused = true)]
    async fn the_stop_signal_sends_held_events_at_once() {
        let publisher = publisher_builder("test-bus")
            .build_with(Fake::DownUntil(Instant::now() + Duration::from_secs(40)));
        let Background {
            sender,
            stats,
            stopping,
            task: background,
        } = start(publisher);
        for i in 0..10 {
            sender.try_send(sign_up(i)).unwrap();
        }
        // Resends at about 9, 11, 15, 23 and 39 s fail; the next would come 30 s later.
        tokio::time::sleep(Duration::from_secs(45)).await;
        assert_eq!(stats.held.load(Ordering::Relaxed), 10, "{stats:?}");
        stopping.send(Some(Instant::now())).unwrap();
        tokio::time::timeout(Duration::from_secs(1), background)
            .await
            .expect("the held events are sent at the stop signal")
            .unwrap();
        assert_eq!(stats.published.load(Ordering::Relaxed), 10);
        assert_eq!(stats.held.load(Ordering::Relaxed), 0);
    }

    /// Events held for a resend do not hold up new ones: sign-ups that EventBridge takes
    /// are published while earlier ones wait out their pause.
    #[tokio::test(start_paused = true)]
    async fn new_events_are_published_while_others_are_held() {
        let publisher = publisher_builder("test-bus")
            .build_with(Fake::DownUntil(Instant::now() + Duration::from_secs(30)));
        let Background {
            sender,
            stats,
            stopping: _stopping,
            task: _background,
        } = start(publisher);
        sender.try_send(sign_up(0)).unwrap();
        // Down for the first 30 s: the first sign-up is held, and its resends at about 9,
        // 11, 15 and 23 s fail; the next comes near 39 s.
        tokio::time::sleep(Duration::from_secs(32)).await;
        assert_eq!(stats.held.load(Ordering::Relaxed), 1, "{stats:?}");
        sender.try_send(sign_up(1)).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(stats.published.load(Ordering::Relaxed), 1, "{stats:?}");
        assert_eq!(stats.held.load(Ordering::Relaxed), 1);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(stats.published.load(Ordering::Relaxed), 2, "{stats:?}");
        assert_eq!(stats.held.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn signup_never_waits_on_eventbridge() {
        let (address, _) = serve(Fake::Hang).await;
        let answer = tokio::time::timeout(Duration::from_secs(5), post_signup(address, ADA));
        let (status, _) = answer.await.expect("answered while EventBridge hangs");
        assert_eq!(status, 201);
    }

    /// A batch's requests all start together, so that the one in flight at shutdown is
    /// answered within one retry deadline: with 100 sign-ups queued and requests that take
    /// 2 s, the first 40 are published after 2 s, not all 100 after three rounds of slots.
    #[tokio::test(start_paused = true)]
    async fn a_batch_starts_all_its_requests_at_once() {
        let publisher =
            publisher_builder("test-bus").build_with(Fake::Slow(Duration::from_secs(2)));
        let stats = Arc::new(Stats::default());
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        for i in 0..100 {
            sender.try_send(sign_up(i)).unwrap();
        }
        tokio::spawn(publish_in_background(
            publisher,
            receiver,
            Arc::clone(&stats),
            watch::channel(None).1,
        ));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(stats.published.load(Ordering::Relaxed), 40);
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(stats.published.load(Ordering::Relaxed), 100);
    }

    /// A connection still open at shutdown holds a sender, so the queue never closed and
    /// the drain waited out its whole time (an audit). Once the server is done (its grace
    /// for open connections over), the queue is closed: what was queued is published, and
    /// the publisher ends.
    #[tokio::test]
    async fn the_stop_signal_ends_the_publisher_after_what_was_queued() {
        let publisher = publisher_builder("test-bus").build_with(Fake::Slow(Duration::ZERO));
        let Background {
            sender,
            stats,
            stopping,
            task: background,
        } = start(publisher);
        for i in 0..3 {
            sender.try_send(sign_up(i)).unwrap();
        }
        stopping.send(Some(Instant::now())).unwrap();
        tokio::time::timeout(Duration::from_secs(5), background)
            .await
            .expect("the publisher ends although a sender is alive")
            .unwrap();
        assert_eq!(stats.published.load(Ordering::Relaxed), 3);
        // Nothing new is taken once stopping.
        assert!(
            sender
                .try_send(
                    UserSignedUp::builder("late", "ada@example.com")
                        .unwrap()
                        .build()
                )
                .is_err()
        );
    }

    #[tokio::test]
    async fn bad_and_duplicate_signups_are_refused() {
        let (address, _) = serve(Fake::Refuse).await;
        let (status, body) = post_signup(address, r#"{"email": "not-an-address"}"#).await;
        assert_eq!(status, 422);
        assert_eq!(body, r#"{"error":"invalid email address: no '@'"}"#);
        assert_eq!(post_signup(address, ADA).await.0, 201);
        let (status, _) = post_signup(address, r#"{"email": "ADA@example.com"}"#).await;
        assert_eq!(status, 409);
    }
}
