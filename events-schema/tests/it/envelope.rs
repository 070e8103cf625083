//! The envelope round-trips real EventBridge JSON, and typed events round-trip through it.

use events_schema::{
    Envelope, Event, LoginId, LoginMethod, Plan, RawEnvelope, SignupMethod, Timestamp,
    UserLoggedIn, UserSignedUp,
};
use proptest::prelude::*;
use serde_json::Value;

use crate::fixture;

/// Parses a fixture into `Envelope<T>` and checks that it serializes back to the same JSON.
#[track_caller]
fn check_round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(name: &str) -> Envelope<T> {
    let text = fixture(name);
    let original: Value = serde_json::from_str(&text).unwrap();
    let envelope: Envelope<T> = serde_json::from_str(&text).unwrap();
    let back = serde_json::to_value(&envelope).unwrap();
    assert_eq!(back, original, "{name} did not round-trip");
    envelope
}

// Fixtures from the EventBridge User Guide, "Event structure reference" and "Events from
// AWS services".
#[test]
fn aws_service_events_round_trip() {
    let ec2: RawEnvelope = check_round_trip("ec2-state-change.json");
    assert_eq!(ec2.detail_type, "EC2 Instance State-change Notification");
    assert!(!ec2.is_replay());
    let cfn: RawEnvelope = check_round_trip("cloudformation-stack-status.json");
    assert_eq!(cfn.detail["status-details"]["status"], "CREATE_COMPLETE");
    let scheduled: RawEnvelope = check_round_trip("scheduled-event.json");
    assert_eq!(scheduled.detail, serde_json::json!({}));
}

#[test]
fn replayed_events_keep_their_replay_name() {
    let replayed: RawEnvelope = check_round_trip("ec2-state-change-replayed.json");
    assert!(replayed.is_replay());
    assert_eq!(replayed.replay_name.as_deref(), Some("replay_archive"));
}

#[test]
fn missing_resources_default_to_empty() {
    let mut event: Value = serde_json::from_str(&fixture("scheduled-event.json")).unwrap();
    event.as_object_mut().unwrap().remove("resources");
    let envelope: RawEnvelope = serde_json::from_value(event).unwrap();
    assert!(envelope.resources.is_empty());
}

#[test]
fn typed_user_events_round_trip() {
    let signed_up: Envelope<UserSignedUp> = check_round_trip("user-signed-up.json");
    assert_eq!(signed_up.detail.user_id.as_str(), "user-42");
    assert_eq!(signed_up.detail.plan, Plan::Pro);
    assert!(signed_up.detail.marketing_consent);
    let logged_in: Envelope<UserLoggedIn> = check_round_trip("user-logged-in.json");
    assert_eq!(logged_in.detail.login_method, LoginMethod::Passkey);
    assert_eq!(logged_in.detail.ip_address.to_string(), "2001:db8::7");
    assert_eq!(logged_in.detail.login_id.as_str(), "login-7f3a");
}

#[test]
fn idempotency_keys_name_the_occurrence() {
    let signed_up = UserSignedUp::builder("user-42", "ada@example.com")
        .unwrap()
        .build();
    assert_eq!(signed_up.idempotency_key(), "user-42");
    let ip = "192.0.2.1".parse().unwrap();
    let login = UserLoggedIn::builder("user-42", ip).unwrap().build();
    // The builder gives each login its own id, and the same value keeps it.
    let other = UserLoggedIn::builder("user-42", ip).unwrap().build();
    assert_ne!(login.idempotency_key(), other.idempotency_key());
    let published = serde_json::to_value(&login).unwrap();
    let received: UserLoggedIn = serde_json::from_value(published).unwrap();
    assert_eq!(received.idempotency_key(), login.idempotency_key());
    // A version 4 UUID, in its canonical form.
    let id = login.login_id.as_str();
    let groups: Vec<usize> = id.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
    assert!(
        id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(&id[14..15], "4", "{id}");
    assert!("89ab".contains(&id[19..20]), "{id}");
    let chosen = UserLoggedIn::builder("user-42", ip)
        .unwrap()
        .login_id(LoginId::new("audit-991").unwrap())
        .build();
    assert_eq!(chosen.idempotency_key(), "audit-991");
    assert_eq!(
        LoginId::new(" ").unwrap_err().to_string(),
        "login id must not be empty or only white space"
    );
    assert_eq!(
        LoginId::new("x".repeat(129)).unwrap_err().to_string(),
        "login id is 129 characters long, the limit is 128"
    );
}

#[test]
fn fields_that_a_newer_producer_added_are_skipped() {
    let mut event: Value = serde_json::from_str(&fixture("user-signed-up.json")).unwrap();
    event["detail"]["referrer"] = "newsletter".into();
    let envelope: Envelope<UserSignedUp> = serde_json::from_value(event).unwrap();
    assert_eq!(envelope.detail.user_id.as_str(), "user-42");
}

#[test]
fn a_detail_of_the_wrong_type_does_not_deserialize() {
    let text = fixture("user-logged-in.json");
    let error = serde_json::from_str::<Envelope<UserSignedUp>>(&text).unwrap_err();
    assert!(
        error.to_string().contains("missing field `email`"),
        "{error}"
    );
}

#[test]
fn invalid_fields_are_refused_at_construction() {
    let empty = UserSignedUp::builder("  ", "ada@example.com").unwrap_err();
    assert_eq!(
        empty.to_string(),
        "user id must not be empty or only white space"
    );
    let bad_email = UserSignedUp::builder("user-1", "ada@example").unwrap_err();
    assert_eq!(
        bad_email.to_string(),
        "invalid email address: domain has no '.'"
    );
    let login = UserLoggedIn::builder("", "10.0.0.1".parse().unwrap()).unwrap_err();
    assert_eq!(
        login.to_string(),
        "user id must not be empty or only white space"
    );
    let time = Timestamp::parse("yesterday").unwrap_err();
    assert_eq!(
        time.to_string(),
        "invalid RFC 3339 timestamp \"yesterday\": expected YYYY-MM-DDTHH:MM:SS then Z or an offset"
    );
}

#[test]
fn invalid_fields_are_refused_when_deserializing() {
    let mut event: Value = serde_json::from_str(&fixture("user-signed-up.json")).unwrap();
    event["detail"]["email"] = "not-an-email".into();
    let error = serde_json::from_value::<Envelope<UserSignedUp>>(event).unwrap_err();
    assert_eq!(error.to_string(), "invalid email address: no '@'");
}

#[test]
fn events_know_their_source_and_detail_type() {
    assert_eq!(
        (UserSignedUp::SOURCE, UserSignedUp::DETAIL_TYPE),
        ("com.eventfork.users", "UserSignedUp")
    );
    assert_eq!(
        (UserLoggedIn::SOURCE, UserLoggedIn::DETAIL_TYPE),
        ("com.eventfork.users", "UserLoggedIn")
    );
}

fn plan() -> impl Strategy<Value = Plan> {
    prop_oneof![
        Just(Plan::Free),
        Just(Plan::Pro),
        Just(Plan::Team),
        Just(Plan::Enterprise)
    ]
}

fn signup_method() -> impl Strategy<Value = SignupMethod> {
    prop_oneof![
        Just(SignupMethod::EmailPassword),
        Just(SignupMethod::Google),
        Just(SignupMethod::Github),
        Just(SignupMethod::Sso),
        Just(SignupMethod::MagicLink),
        Just(SignupMethod::Invitation),
    ]
}

proptest! {
    #[test]
    fn signed_up_envelopes_round_trip(
        user_id in "[a-zA-Z0-9_-]{1,40}",
        local in "[a-z0-9]{1,10}(\\.[a-z0-9+]{1,5})?",
        domain in "[a-z]{1,10}\\.(com|org|example)",
        display_name in "\\PC{0,30}",
        plan in plan(),
        signup_method in signup_method(),
        marketing_consent: bool,
        secs in 0u64..4_102_444_800,
        replay in proptest::option::of("[a-z-]{1,20}"),
    ) {
        let detail = UserSignedUp::builder(user_id, format!("{local}@{domain}"))
            .unwrap()
            .display_name(display_name)
            .plan(plan)
            .signup_method(signup_method)
            .marketing_consent(marketing_consent)
            .signed_up_at(Timestamp::from_unix_seconds(secs).unwrap())
            .build();
        let envelope = Envelope {
            version: "0".to_owned(),
            id: "0d3a4c5e-8f1b-4a7c-9e2d-3b6f8a1c5d7e".to_owned(),
            detail_type: UserSignedUp::DETAIL_TYPE.to_owned(),
            source: UserSignedUp::SOURCE.to_owned(),
            account: "111122223333".to_owned(),
            time: Timestamp::from_unix_seconds(secs).unwrap().to_string(),
            region: "eu-west-1".to_owned(),
            resources: vec![],
            detail,
            replay_name: replay,
        };
        let text = serde_json::to_string(&envelope).unwrap();
        let back: Envelope<UserSignedUp> = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&back, &envelope);
        // What we publish is also what the catalogue accepts.
        let value: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(events_schema::validate_envelope(&value).unwrap().detail_type(), "UserSignedUp");
    }
}
