//! template.yaml routes as the mission says — sign-ups to analytics, the mailing list (with
//! marketing consent) and Slack; logins to analytics only — judged by our engine and by
//! moto's own rule routing, with the rules deployed from the template's patterns.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use events_schema::{Envelope, Event, Plan, Timestamp, UserLoggedIn, UserSignedUp};
use router::{Entry, Matcher, Pattern, Publisher, RuleId, template::Template};
use serde_json::{Value, json};

use test_support::{is_drained, moto_url, queue, receive_json, rule_to_queue, sdk_config, unique};

fn template() -> Template {
    let text = include_str!("../../../template.yaml");
    Template::parse(text).expect("template.yaml parses")
}

/// The three sample events and the rules each must reach.
fn samples() -> Vec<(&'static str, Entry, BTreeSet<&'static str>)> {
    let at = Timestamp::parse("2026-11-27T09:00:00Z").unwrap();
    let consenting = UserSignedUp::builder("user-1", "ada@example.com")
        .unwrap()
        .plan(Plan::Pro)
        .marketing_consent(true)
        .signed_up_at(at.clone())
        .build();
    let silent = UserSignedUp::builder("user-2", "bob@example.com")
        .unwrap()
        .marketing_consent(false)
        .signed_up_at(at.clone())
        .build();
    let login = UserLoggedIn::builder("user-1", "192.0.2.7".parse().unwrap())
        .unwrap()
        .logged_in_at(at)
        .build();
    vec![
        (
            "sign-up with consent",
            Entry::new(&consenting).unwrap(),
            BTreeSet::from(["AnalyticsRule", "MailingListRule", "SlackRule"]),
        ),
        (
            "sign-up without consent",
            Entry::new(&silent).unwrap(),
            BTreeSet::from(["AnalyticsRule", "SlackRule"]),
        ),
        (
            "login",
            Entry::new(&login).unwrap(),
            BTreeSet::from(["AnalyticsRule"]),
        ),
    ]
}

/// The event EventBridge would deliver for `entry`.
fn envelope(entry: &Entry) -> Value {
    json!({
        "version": "0", "id": "00000000-0000-4000-8000-000000000000",
        "detail-type": entry.detail_type(), "source": entry.source(),
        "account": "123456789012", "time": "2026-11-27T09:00:00Z", "region": "us-east-1",
        "resources": [], "detail": serde_json::from_str::<Value>(entry.detail()).unwrap(),
    })
}

#[test]
fn template_rules_route_the_samples_in_our_engine() {
    let template = template();
    let mut builder = Matcher::builder();
    for rule in template.rules() {
        let pattern = Pattern::from_value(rule.pattern()).expect("a valid pattern");
        builder.add(RuleId::from(rule.logical_id()), pattern);
    }
    let matcher = builder.build().unwrap();
    for (name, entry, expected) in samples() {
        let event = envelope(&entry).to_string();
        let hits: BTreeSet<&str> = matcher
            .matches(event.as_bytes())
            .unwrap()
            .into_iter()
            .map(RuleId::as_str)
            .collect();
        assert_eq!(hits, expected, "{name}");
    }
}

/// The deploy path: the bus, one queue per rule target and the rules are created in moto
/// from template.yaml's patterns with the SDK; the samples are published through the
/// Publisher; each queue receives exactly the events its rule should route.
#[tokio::test]
async fn template_rules_route_the_samples_in_moto() {
    let test = "deploy::template_rules_route_the_samples_in_moto";
    let Some(moto_url) = moto_url(test) else {
        return;
    };
    let sdk_config = sdk_config(&moto_url).await;
    let eventbridge = aws_sdk_eventbridge::Client::new(&sdk_config);
    let sqs = aws_sdk_sqs::Client::new(&sdk_config);
    let bus = unique("deploy");
    eventbridge
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .unwrap();

    let template = template();
    let mut queue_of_rule = BTreeMap::new();
    for rule in template.rules() {
        let target = &rule.targets()[0];
        let queue_id = target
            .queue()
            .expect("the target is a queue of the template");
        let (queue_url, queue_arn) = queue(&sqs, &format!("{bus}-{queue_id}")).await;
        let rule_name = format!("{bus}-{}", rule.logical_id());
        let pattern = rule.pattern().to_string();
        rule_to_queue(
            &eventbridge,
            &bus,
            &rule_name,
            &pattern,
            target.id(),
            &queue_arn,
        )
        .await;
        queue_of_rule.insert(rule.logical_id().to_owned(), queue_url);
    }
    assert_eq!(queue_of_rule.len(), 3, "one rule per target");

    let publisher = Publisher::new(&sdk_config, &bus);
    publisher.verify_bus().await.unwrap();
    let samples = samples();
    let report = publisher
        .publish_entries(samples.iter().map(|(_, entry, _)| Ok(entry.clone())))
        .await;
    assert!(report.is_all_published(), "{:?}", report.outcomes());
    let mut expected: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for ((_, _, rules), outcome) in samples.iter().zip(report.outcomes()) {
        let event_id = outcome.as_ref().unwrap().as_str().to_owned();
        for rule in rules {
            expected.entry(rule).or_default().insert(event_id.clone());
        }
    }

    for (rule, queue_url) in &queue_of_rule {
        let wanted = &expected[rule.as_str()];
        let mut received = BTreeSet::new();
        for body in receive_json(&sqs, queue_url, wanted.len(), Duration::from_secs(10)).await {
            if body["detail-type"] == UserSignedUp::DETAIL_TYPE {
                let mut body = body.clone();
                // FIXME(#4): moto leaves `account` out of delivered events.
                body.as_object_mut()
                    .unwrap()
                    .entry("account")
                    .or_insert(json!("1"));
                let typed: Envelope<UserSignedUp> = serde_json::from_value(body).unwrap();
                assert!(
                    rule != "MailingListRule" || typed.detail.marketing_consent,
                    "the mailing list only gets consenting sign-ups"
                );
            }
            received.insert(body["id"].as_str().unwrap().to_owned());
        }
        assert_eq!(&received, wanted, "events in the queue of {rule}");
        assert!(
            is_drained(&sqs, queue_url).await,
            "unexpected events for {rule}"
        );
    }
}
