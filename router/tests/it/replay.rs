//! Replaying an archive through moto: the replayed events reach the rules again, marked
//! with `replay-name`.

use std::time::{Duration, SystemTime};

use events_schema::UserSignedUp;
use router::{
    Entry, Publisher,
    replay::{ReplayError, ReplayRequest, Replayer},
};
use serde_json::json;

use test_support::{moto_url, queue, receive_json, rule_to_queue, sdk_config, unique};

#[tokio::test]
async fn replayed_events_reach_the_rules_again_with_their_replay_name() {
    let test = "replay::replayed_events_reach_the_rules_again_with_their_replay_name";
    let Some(moto_url) = moto_url(test) else {
        return;
    };
    let sdk_config = sdk_config(&moto_url).await;
    let eventbridge = aws_sdk_eventbridge::Client::new(&sdk_config);
    let sqs = aws_sdk_sqs::Client::new(&sdk_config);
    let bus = unique("replay");
    let bus_arn = eventbridge
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .unwrap()
        .event_bus_arn
        .unwrap();
    let archive = format!("{bus}-archive");
    eventbridge
        .create_archive()
        .archive_name(&archive)
        .event_source_arn(&bus_arn)
        .send()
        .await
        .unwrap();
    let (queue_url, queue_arn) = queue(&sqs, &format!("{bus}-q")).await;
    let rule = format!("{bus}-signups");
    let pattern = json!({"detail-type": ["UserSignedUp"]}).to_string();
    rule_to_queue(&eventbridge, &bus, &rule, &pattern, "q", &queue_arn).await;

    let start = SystemTime::now() - Duration::from_secs(60);
    let publisher = Publisher::new(&sdk_config, &bus);
    let signups: Vec<UserSignedUp> = (0..2)
        .map(|i| {
            UserSignedUp::builder(format!("user-{i}"), format!("u{i}@example.com"))
                .unwrap()
                .build()
        })
        .collect();
    let report = publisher
        .publish_entries(signups.iter().map(Entry::new))
        .await;
    assert!(report.is_all_published(), "{:?}", report.outcomes());

    let replayer = Replayer::new(&sdk_config);
    let request = ReplayRequest::new(&archive, start, SystemTime::now())
        .rule(&rule)
        .name(format!("{bus}-r1"));
    let plan = replayer.plan(&request).await.unwrap();
    assert_eq!(plan.bus_arn(), bus_arn);
    assert_eq!(plan.rule_arns().len(), 1);
    assert!(plan.rule_arns()[0].ends_with(&rule), "{plan}");
    // The window ends now: events may still be on their way to the archive.
    assert!(plan.ends_too_recently());
    // By ARN: the archive's and the rule's own ARNs plan the same replay; an archive ARN
    // of another region, or a rule on another bus, is refused before anything starts.
    let by_arn = ReplayRequest::new(plan.archive_arn(), start, SystemTime::now())
        .rule(&plan.rule_arns()[0])
        .name(format!("{bus}-r0"));
    let planned = replayer.plan(&by_arn).await.unwrap();
    assert_eq!(planned.rule_arns(), plan.rule_arns());
    let other_region = plan.archive_arn().replace(":us-east-1:", ":eu-west-1:");
    let elsewhere = ReplayRequest::new(&other_region, start, SystemTime::now());
    assert!(matches!(
        replayer.plan(&elsewhere).await,
        Err(ReplayError::Elsewhere { .. })
    ));
    let other_bus = plan.rule_arns()[0].replace(&format!("rule/{bus}/"), "rule/other-bus/");
    let elsewhere = ReplayRequest::new(&archive, start, SystemTime::now()).rule(&other_bus);
    assert!(matches!(
        replayer.plan(&elsewhere).await,
        Err(ReplayError::Elsewhere { .. })
    ));
    replayer.start(&plan).await.unwrap();
    let status = replayer
        .wait(
            plan.name(),
            Duration::from_millis(100),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert!(status.is_completed(), "{status:?}");
    // Its name is taken now: a second plan of it is refused before StartReplay would.
    match replayer.plan(&request).await {
        Err(ReplayError::NameTaken { name, state }) => {
            assert_eq!((name.as_str(), state.as_str()), (plan.name(), "COMPLETED"));
        }
        other => panic!("{other:?}"),
    }

    let bodies = receive_json(&sqs, &queue_url, 4, Duration::from_secs(20)).await;
    let mut replay_names: Vec<Option<&str>> =
        bodies.iter().map(|b| b["replay-name"].as_str()).collect();
    replay_names.sort();
    assert_eq!(
        replay_names,
        [None, None, Some(plan.name()), Some(plan.name())],
        "two live and two replayed deliveries"
    );
}

#[tokio::test]
async fn plans_are_checked_before_anything_starts() {
    let test = "replay::plans_are_checked_before_anything_starts";
    let Some(moto_url) = moto_url(test) else {
        return;
    };
    let replayer = Replayer::new(&sdk_config(&moto_url).await);
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let backwards = ReplayRequest::new("any", now - hour, now - 2 * hour);
    assert!(matches!(
        replayer.plan(&backwards).await,
        Err(ReplayError::BadWindow(_))
    ));
    let future = ReplayRequest::new("any", now - hour, now + hour);
    assert!(matches!(
        replayer.plan(&future).await,
        Err(ReplayError::BadWindow(_))
    ));
    let bad_name = ReplayRequest::new("any", now - hour, now).name("no spaces allowed");
    assert!(matches!(
        replayer.plan(&bad_name).await,
        Err(ReplayError::BadName(_))
    ));
    let missing = ReplayRequest::new(unique("missing"), now - hour, now);
    match replayer.plan(&missing).await {
        Err(ReplayError::Aws {
            operation, code, ..
        }) => {
            assert_eq!(
                (operation, code.as_str()),
                ("DescribeArchive", "ResourceNotFoundException")
            );
        }
        other => panic!("expected DescribeArchive to fail, got {other:?}"),
    }
}

/// What the wait makes of DescribeReplay's answers, from a fake EventBridge (moto finishes
/// a replay inside StartReplay, so it never shows one running): a failed check is tried
/// again, a running replay's progress is shown, and three failures in a row end the wait.
#[tokio::test]
async fn the_wait_shows_progress_and_rides_out_a_failed_check() {
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers::header};
    let refused = || {
        ResponseTemplate::new(400).set_body_raw(
            r#"{"__type":"ValidationException","message":"not now"}"#,
            "application/x-amz-json-1.1",
        )
    };
    let state = |state: &str| {
        ResponseTemplate::new(200).set_body_raw(
            format!(r#"{{"ReplayName":"r","State":"{state}","EventLastReplayedTime":1795770060}}"#),
            "application/x-amz-json-1.1",
        )
    };
    let describe = || Mock::given(header("x-amz-target", "AWSEvents.DescribeReplay"));
    let server = MockServer::start().await;
    describe()
        .respond_with(refused())
        .up_to_n_times(2)
        .mount(&server)
        .await;
    describe()
        .respond_with(state("RUNNING"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    describe()
        .respond_with(state("COMPLETED"))
        .mount(&server)
        .await;
    let replayer = Replayer::new(&sdk_config(&server.uri()).await);
    let mut seen = Vec::new();
    let status = replayer
        .wait_with(
            "r",
            Duration::from_millis(10),
            Duration::from_secs(10),
            |s| {
                seen.push((s.state().to_owned(), s.last_replayed()));
            },
        )
        .await
        .unwrap();
    assert!(status.is_completed());
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_770_060);
    assert_eq!(seen, [("RUNNING".to_owned(), Some(at))]);

    let failing = MockServer::start().await;
    describe().respond_with(refused()).mount(&failing).await;
    let replayer = Replayer::new(&sdk_config(&failing.uri()).await);
    let error = replayer
        .wait("r", Duration::from_millis(10), Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("not now"), "{error}");
    assert_eq!(failing.received_requests().await.unwrap().len(), 3);

    // Still running at the timeout: the message says how to cancel it, region included.
    let running = MockServer::start().await;
    describe()
        .respond_with(state("RUNNING"))
        .mount(&running)
        .await;
    let replayer = Replayer::new(&sdk_config(&running.uri()).await);
    let error = replayer
        .wait("r", Duration::from_millis(10), Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(
        error.to_string().ends_with(
            "(stop it with `aws events cancel-replay --replay-name r --region us-east-1`)"
        ),
        "{error}"
    );
}
