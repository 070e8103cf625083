//! The whole fan-out in one test: `eventfork local up` runs template.yaml with the real
//! handlers pointed at wiremock stand-ins for Segment, Mailchimp and Slack; the Publisher
//! publishes through the AWS SDK over HTTP; every sign-up reaches the three services (the
//! mailing list only with consent) and every login only analytics.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use aws_sdk_eventbridge::config::{BehaviorVersion, Credentials, Region};
use events_schema::{UserLoggedIn, UserSignedUp};
use router::{Entry, Publisher};
use serde_json::Value;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers::any};

use crate::support::workspace_root;

/// `local up` as a child process; killed on drop.
struct LocalUp(Child);

impl Drop for LocalUp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn service(status: u16, body: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(status).set_body_string(body))
        .mount(&server)
        .await;
    server
}

async fn requests(server: &MockServer) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn signups_reach_three_services_and_logins_one() {
    let segment = service(200, r#"{"success":true}"#).await;
    let mailchimp = service(200, r#"{"status":"subscribed"}"#).await;
    let slack = service(200, "ok").await;
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventfork"))
        .args(["local", "up", "--addr", "127.0.0.1:0", "--template"])
        .arg(workspace_root().join("template.yaml"))
        .arg("--data")
        .arg(data.path())
        .env("ANALYTICS_ENDPOINT", format!("{}/v1/track", segment.uri()))
        .env("ANALYTICS_WRITE_KEY", "segment-write-key")
        .env("MAILCHIMP_API_BASE", format!("{}/3.0", mailchimp.uri()))
        .env("MAILCHIMP_API_KEY", "mailchimp-key-us21")
        .env("MAILCHIMP_LIST_ID", "audience-1")
        .env(
            "SLACK_WEBHOOK_URL",
            format!("{}/services/T0/B0/secret", slack.uri()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let up = LocalUp(child);
    let (address, addr_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = address.send(addr.to_owned());
            }
        }
    });
    let endpoint = addr_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("local up printed its address");

    let sdk_config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "test"))
        .load()
        .await;
    let publisher = Publisher::new(&sdk_config, "eventfork");
    publisher.verify_bus().await.unwrap();
    let consenting = UserSignedUp::builder("u-1", "Ada@Example.com")
        .unwrap()
        .marketing_consent(true)
        .build();
    let silent = UserSignedUp::builder("u-2", "bob@example.com")
        .unwrap()
        .build();
    let login = UserLoggedIn::builder("u-1", "192.0.2.1".parse().unwrap())
        .unwrap()
        .build();
    let report = publisher
        .publish_entries([
            Entry::new(&consenting),
            Entry::new(&silent),
            Entry::new(&login),
        ])
        .await;
    assert!(report.is_all_published(), "{:?}", report.outcomes());

    let give_up = Instant::now() + Duration::from_secs(30);
    while Instant::now() < give_up
        && (requests(&segment).await.len() < 3
            || requests(&mailchimp).await.is_empty()
            || requests(&slack).await.len() < 2)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Anything extra would have arrived by now.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let analytics = requests(&segment).await;
    let mut tracked: Vec<(String, String)> = analytics
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(r.url.path(), "/v1/track");
            // Basic auth with the write key as user name and no password.
            assert_eq!(
                r.headers.get("authorization").unwrap().to_str().unwrap(),
                "Basic c2VnbWVudC13cml0ZS1rZXk6"
            );
            (
                body["userId"].as_str().unwrap().to_owned(),
                body["event"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    tracked.sort();
    let expected = [
        ("u-1", "User Logged In"),
        ("u-1", "User Signed Up"),
        ("u-2", "User Signed Up"),
    ]
    .map(|(user, event)| (user.to_owned(), event.to_owned()));
    assert_eq!(tracked, expected, "analytics counts every event once");

    let mailing = requests(&mailchimp).await;
    assert_eq!(
        mailing.len(),
        1,
        "only the consenting sign-up joins the list"
    );
    assert_eq!(mailing[0].method.as_str(), "PUT");
    // md5("ada@example.com"): the member id Mailchimp derives from the lower-cased address.
    assert_eq!(
        mailing[0].url.path(),
        "/3.0/lists/audience-1/members/3e3417d7ef77d5932a6734b916515ed5"
    );

    let posts = requests(&slack).await;
    assert_eq!(
        posts.len(),
        2,
        "both sign-ups are announced, the login is not"
    );
    for post in &posts {
        let body: Value = serde_json::from_slice(&post.body).unwrap();
        assert!(body["text"].as_str().unwrap().contains("sign-up"), "{body}");
        assert!(body["blocks"].is_array(), "{body}");
    }
    drop(up);
}
