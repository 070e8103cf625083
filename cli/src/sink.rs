//! The recording sink of local mode: an HTTP server on 127.0.0.1 that stands in for the
//! third-party APIs (Segment, Mailchimp, Slack) when a target has no endpoint configured.
//! The handlers post to it exactly as they would to the real service; it records each
//! request (method, path, JSON body — never the authorization header): with a log folder,
//! appended to `<folder>/<service>.jsonl`, and in memory only when asked to keep them (as
//! `local demo` does, to print them).

use std::{
    collections::HashSet,
    fs::OpenOptions,
    io::Write,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use anyhow::{Context, Result};
use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

/// One request the sink received.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SinkRequest {
    /// The first path segment: `analytics`, `mailchimp` or `slack`.
    pub(crate) service: String,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) body: Value,
}

#[derive(Default)]
struct SinkState {
    /// Every request, when the sink keeps them (the demo, which reads them back); `local
    /// up` only logs them, since it runs for days.
    requests: Option<Mutex<Vec<SinkRequest>>>,
    /// Email domains Mailchimp-the-sink refuses, as Mailchimp refuses addresses that "look
    /// fake or invalid" (400): a permanent failure the handler must not retry.
    refused_domains: Mutex<HashSet<String>>,
    log_dir: Option<PathBuf>,
    /// Held while a line is appended: each call's line is written whole, never between
    /// the pieces of another's.
    log_lock: Mutex<()>,
}

/// A running sink; dropping it stops the server.
pub(crate) struct Sink {
    url: String,
    state: Arc<SinkState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    /// Starts a sink on a free port of 127.0.0.1, logging to `log_dir` if given and
    /// keeping every request in memory for [`Sink::requests`] if `keep`.
    pub(crate) async fn start(log_dir: Option<PathBuf>, keep: bool) -> Result<Sink> {
        if let Some(dir) = &log_dir {
            crate::output::create_folder(dir, "the sink folder")?;
            // A crash may have cut a log's last line: the next call starts a line of its own.
            for entry in std::fs::read_dir(dir)
                .with_context(|| format!("cannot read the sink folder {}", dir.display()))?
            {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "jsonl") {
                    router::local::end_torn_line(&path)
                        .with_context(|| format!("cannot repair {}", path.display()))?;
                }
            }
        }
        let state = Arc::new(SinkState {
            log_dir,
            requests: keep.then(Mutex::default),
            ..SinkState::default()
        });
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .context("cannot start the recording sink")?;
        let addr = listener
            .local_addr()
            .context("cannot read the sink's address")?;
        let app = Router::new().fallback(record).with_state(state.clone());
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "the recording sink stopped");
            }
        });
        Ok(Sink {
            url: format!("http://{addr}"),
            state,
            task,
        })
    }

    /// The sink's base URL, e.g. `http://127.0.0.1:40123`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Everything received so far, in arrival order (nothing unless the sink keeps them).
    pub(crate) fn requests(&self) -> Vec<SinkRequest> {
        self.state
            .requests
            .as_ref()
            .map_or_else(Vec::new, |requests| {
                requests
                    .lock()
                    .expect("the sink lock is never held across a panic")
                    .clone()
            })
    }

    /// Makes the Mailchimp stand-in refuse (or, with `false`, accept again) addresses at
    /// `domain`.
    pub(crate) fn refuse_domain(&self, domain: &str, refuse: bool) {
        let mut domains = self
            .state
            .refused_domains
            .lock()
            .expect("the sink lock is never held across a panic");
        if refuse {
            domains.insert(domain.to_owned());
        } else {
            domains.remove(domain);
        }
    }
}

async fn record(
    State(state): State<Arc<SinkState>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let service = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let body: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    if service == "mailchimp" {
        let email = body["email_address"].as_str().unwrap_or_default();
        let domain = email.rsplit('@').next().unwrap_or_default();
        let refused = state
            .refused_domains
            .lock()
            .expect("the sink lock is never held across a panic")
            .contains(domain);
        if refused {
            let problem = json!({
                "type": "https://mailchimp.com/developer/marketing/docs/errors/",
                "title": "Invalid Resource",
                "status": 400,
                "detail": "The address looks fake or invalid, please enter a real email address.",
            });
            return (StatusCode::BAD_REQUEST, axum::Json(problem)).into_response();
        }
    }
    let request = SinkRequest {
        service: service.clone(),
        method: method.to_string(),
        path,
        body,
    };
    if let Some(dir) = &state.log_dir {
        let line = json!({
            "method": request.method, "path": request.path, "body": request.body,
        });
        let path = dir.join(format!("{service}.jsonl"));
        let mut text = line.to_string();
        text.push('\n');
        let _writing = state
            .log_lock
            .lock()
            .expect("the sink lock is never held across a panic");
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| {
                // A line cut short (a full disk) is taken back, so that the retry's line
                // starts a line of its own.
                let before = file.metadata()?.len();
                file.write_all(text.as_bytes()).inspect_err(|_| {
                    let _ = file.set_len(before);
                })
            });
        if let Err(error) = written {
            // Not recorded means not received: the handler retries.
            tracing::error!(%error, path = %path.display(), "the recording sink cannot write");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    let answer = match service.as_str() {
        "slack" => ([(header::CONTENT_TYPE, "text/plain")], "ok").into_response(),
        "mailchimp" => axum::Json(json!({
            "email_address": request.body["email_address"],
            "status": request.body["status_if_new"],
        }))
        .into_response(),
        _ => axum::Json(json!({ "success": true })).into_response(),
    };
    if let Some(requests) = &state.requests {
        requests
            .lock()
            .expect("the sink lock is never held across a panic")
            .push(request);
    }
    answer
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Concurrent calls each leave one whole line in the log, however their writes
    /// overlap (found by an audit: 176 of 6,000 lines were interleaved fragments). As in
    /// `local up`, they are logged and not kept: kept, they grew its memory by about 3 KB
    /// a call, 838 MB after 260,000 (found by an audit).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_calls_are_logged_as_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Sink::start(Some(dir.path().to_owned()), false)
            .await
            .unwrap();
        let addr = sink.url().trim_start_matches("http://").to_owned();
        let n_calls = 200;
        let calls: Vec<_> = (0..n_calls)
            .map(|n| {
                let addr = addr.clone();
                tokio::spawn(async move {
                    let words: Vec<String> = (0..300).map(|w| format!("w{w}")).collect();
                    let body = json!({ "n": n, "words": words }).to_string();
                    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
                    let request = format!(
                        "POST /slack/hook HTTP/1.1\r\nHost: sink\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    stream.write_all(request.as_bytes()).await.unwrap();
                    let mut answer = String::new();
                    stream.read_to_string(&mut answer).await.unwrap();
                    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
                })
            })
            .collect();
        for call in calls {
            call.await.unwrap();
        }
        let log = std::fs::read_to_string(dir.path().join("slack.jsonl")).unwrap();
        let mut seen: Vec<i64> = log
            .lines()
            .map(|line| {
                let record: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("a torn line ({e}): {line:.120}"));
                record["body"]["n"].as_i64().unwrap()
            })
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..n_calls).collect::<Vec<i64>>());
        assert!(sink.requests().is_empty());
    }
}
