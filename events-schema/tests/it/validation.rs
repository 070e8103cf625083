//! Validation of arbitrary JSON against the catalogue: the first violation, with its path.

use events_schema::{
    EventType, UserLoggedIn, UserSignedUp, Violation, validate_envelope, validate_received,
};
use serde_json::Value;

use crate::fixture;

type Validate = fn(&Value) -> Result<&'static EventType, Violation>;

/// Applies `edit` to a valid event read from `fixture_name` and checks the verdict of
/// `validate`.
#[track_caller]
fn check_with(validate: Validate, fixture_name: &str, edit: impl FnOnce(&mut Value), expect: &str) {
    let mut event: Value = serde_json::from_str(&fixture(fixture_name)).unwrap();
    edit(&mut event);
    let verdict = match validate(&event) {
        Ok(event_type) => format!("ok {}", event_type.detail_type()),
        Err(violation) => format!("invalid: {violation}"),
    };
    assert_eq!(verdict, expect);
}

/// Checks the verdict of the producers' validation ([`validate_envelope`]).
#[track_caller]
fn check(fixture_name: &str, edit: impl FnOnce(&mut Value), expect: &str) {
    check_with(validate_envelope, fixture_name, edit, expect);
}

/// Checks the verdict as a consumer reads the event ([`validate_received`]).
#[track_caller]
fn check_received(fixture_name: &str, edit: impl FnOnce(&mut Value), expect: &str) {
    check_with(validate_received, fixture_name, edit, expect);
}

const SIGNUP: &str = "user-signed-up.json";
const LOGIN: &str = "user-logged-in.json";

#[test]
fn valid_events_name_their_type() {
    check(SIGNUP, |_| {}, "ok UserSignedUp");
    check(LOGIN, |_| {}, "ok UserLoggedIn");
    check(
        LOGIN,
        |e| e["detail"]["ip_address"] = "192.0.2.10".into(),
        "ok UserLoggedIn",
    );
    check(
        SIGNUP,
        |e| {
            e.as_object_mut().unwrap().remove("resources");
        },
        "ok UserSignedUp",
    );
}

#[test]
fn envelope_violations() {
    check(
        SIGNUP,
        |e| *e = Value::from(3),
        "invalid: $: expected object, found integer",
    );
    check(
        SIGNUP,
        |e| {
            e.as_object_mut().unwrap().remove("detail");
        },
        "invalid: $.detail: missing required field",
    );
    check(
        SIGNUP,
        |e| e["detail-type"] = "UserDeleted".into(),
        "invalid: $.detail-type: unknown detail-type \"UserDeleted\" (known: UserSignedUp, UserLoggedIn)",
    );
    check(
        SIGNUP,
        |e| e["source"] = "com.example.other".into(),
        "invalid: $.source: UserSignedUp events come from \"com.eventfork.users\", found \"com.example.other\"",
    );
    check(
        SIGNUP,
        |e| e["time"] = "27/11/2026T00:00:00Z".into(),
        "invalid: $.time: invalid RFC 3339 timestamp \"27/11/2026T00:00:00Z\": expected YYYY-MM-DD",
    );
    check(
        SIGNUP,
        |e| e["resources"] = serde_json::json!(["arn:a", 7]),
        "invalid: $.resources[1]: expected string, found integer",
    );
    check(
        SIGNUP,
        |e| e["id"] = "".into(),
        "invalid: $.id: must not be empty",
    );
}

#[test]
fn detail_violations() {
    // An id of white space breaks the schema itself, at the id's path.
    check(
        SIGNUP,
        |e| e["detail"]["user_id"] = " \u{3000} ".into(),
        "invalid: $.detail.user_id: must not be only white space",
    );
    check(
        SIGNUP,
        |e| {
            e["detail"].as_object_mut().unwrap().remove("email");
        },
        "invalid: $.detail.email: missing required field",
    );
    check(
        SIGNUP,
        |e| e["detail"]["email"] = "ada@@example.com".into(),
        "invalid: $.detail.email: invalid email address: invalid character in the local part",
    );
    check(
        SIGNUP,
        |e| e["detail"]["user_id"] = "".into(),
        "invalid: $.detail.user_id: must not be empty",
    );
    check(
        SIGNUP,
        |e| e["detail"]["marketing_consent"] = "yes".into(),
        "invalid: $.detail.marketing_consent: expected boolean, found string",
    );
    check(
        SIGNUP,
        |e| e["detail"]["plan"] = "platinum".into(),
        "invalid: $.detail.plan: expected one of \"free\", \"pro\", \"team\", \"enterprise\", found \"platinum\"",
    );
    check(
        SIGNUP,
        |e| e["detail"]["favourite colour"] = "blue".into(),
        "invalid: $.detail[\"favourite colour\"]: unknown field",
    );
    check(
        LOGIN,
        |e| e["detail"]["ip_address"] = "300.1.1.1".into(),
        "invalid: $.detail.ip_address: not an IPv4 or IPv6 address, found \"300.1.1.1\"",
    );
    check(
        LOGIN,
        |e| e["detail"]["logged_in_at"] = Value::Null,
        "invalid: $.detail.logged_in_at: expected string, found null",
    );
}

#[test]
fn consumers_skip_unknown_detail_fields_and_check_the_rest() {
    check_received(
        SIGNUP,
        |e| e["detail"]["referrer"] = serde_json::json!({"campaign": "spring"}),
        "ok UserSignedUp",
    );
    check_received(
        LOGIN,
        |e| e["detail"]["device"] = "phone".into(),
        "ok UserLoggedIn",
    );
    // Everything the consumer knows is still checked: types, formats, enum values.
    check_received(
        SIGNUP,
        |e| {
            e["detail"]["referrer"] = "newsletter".into();
            e["detail"]["plan"] = "platinum".into();
        },
        "invalid: $.detail.plan: expected one of \"free\", \"pro\", \"team\", \"enterprise\", found \"platinum\"",
    );
    check_received(
        LOGIN,
        |e| {
            e["detail"].as_object_mut().unwrap().remove("login_id");
        },
        "invalid: $.detail.login_id: missing required field",
    );
    check_received(
        SIGNUP,
        |e| e["detail"]["email"] = 7.into(),
        "invalid: $.detail.email: expected string, found integer",
    );
}

/// Only a detail-type outside the catalogue is flagged as unknown to this version: every
/// other violation, an unknown enum value included, is the event's own.
#[test]
fn an_unknown_detail_type_is_told_apart() {
    let signup: Value = serde_json::from_str(&fixture(SIGNUP)).unwrap();
    let violation = |edit: fn(&mut Value)| {
        let mut event = signup.clone();
        edit(&mut event);
        validate_received(&event).unwrap_err()
    };
    let unknown = violation(|e| e["detail-type"] = "UserDeleted".into());
    assert!(unknown.is_unknown_type(), "{unknown}");
    assert!(unknown.redacted().is_unknown_type());
    for edit in [
        (|e: &mut Value| e["detail-type"] = 7.into()) as fn(&mut Value),
        |e| e["source"] = "com.example.other".into(),
        |e| e["detail"]["plan"] = "platinum".into(),
        |e| e["detail"]["email"] = 7.into(),
    ] {
        let known = violation(edit);
        assert!(!known.is_unknown_type(), "{known}");
    }
}

/// An event in a log line (`{:?}`) names the user by id: no email, name, IP address or
/// user agent.
#[test]
fn debug_output_leaves_personal_data_out() {
    let signup = UserSignedUp::builder("user-1", "ada@example.com")
        .unwrap()
        .display_name("Ada Lovelace")
        .build();
    let login = UserLoggedIn::builder("user-1", "203.0.113.9".parse().unwrap())
        .unwrap()
        .user_agent("Mozilla/5.0 (Ada's laptop)")
        .build();
    let raw: events_schema::RawEnvelope = serde_json::from_value(serde_json::json!({
        "version": "0", "id": "e-1", "detail-type": "UserSignedUp",
        "source": "com.eventfork.users", "account": "111122223333",
        "time": "2026-11-27T09:00:00Z", "region": "us-east-1", "resources": [],
        "detail": serde_json::to_value(&signup).unwrap(),
    }))
    .unwrap();
    let raw = format!("{raw:?} user-1");
    for shown in [format!("{signup:?}"), format!("{login:?}"), raw] {
        assert!(shown.contains("user-1"), "{shown}");
        for personal in [
            "ada@example.com",
            "Ada Lovelace",
            "203.0.113.9",
            "Ada's laptop",
        ] {
            assert!(!shown.contains(personal), "{shown}");
        }
    }
}
