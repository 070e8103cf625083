//! The mailing-list handler against a wiremock server standing in for Mailchimp.

use serde_json::json;
use targets::{
    Decode, Handler, HandlerError, MailingList, MailingListConfig, NewMemberStatus, Outcome,
    UserEvent,
};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_json, header, method, path, query_param},
};

use crate::support::*;

const API_KEY: &str = "0123456789abcdef-us21";
/// Base64 of `eventfork:0123456789abcdef-us21`.
const BASIC_AUTH: &str = "Basic ZXZlbnRmb3JrOjAxMjM0NTY3ODlhYmNkZWYtdXMyMQ==";
/// MD5 of `ada.lovelace@example.com` (the fixture's address, lower-cased), computed with
/// Python's hashlib.
const ADA_HASH: &str = "2b9150605ac374d671a306b5fcee60a0";

async fn mailchimp(status: NewMemberStatus) -> (MockServer, MailingList) {
    let server = MockServer::start().await;
    let config =
        MailingListConfig::with_api_base(&format!("{}/3.0", server.uri()), API_KEY, "a1b2c3d4e5")
            .unwrap()
            .with_status_if_new(status);
    (server, MailingList::new(config, fast_http()))
}

fn put_ada() -> wiremock::MockBuilder {
    Mock::given(method("PUT"))
        .and(path(format!("/3.0/lists/a1b2c3d4e5/members/{ADA_HASH}")))
        .and(query_param("skip_merge_validation", "true"))
        .and(header("authorization", BASIC_AUTH))
}

/// Ada's add-or-update answer, with her status.
fn ada_with_status(status: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": ADA_HASH,
        "email_address": "ada.lovelace@example.com",
        "status": status,
    }))
}

fn patch_ada() -> wiremock::MockBuilder {
    Mock::given(method("PATCH"))
        .and(path(format!("/3.0/lists/a1b2c3d4e5/members/{ADA_HASH}")))
        .and(header("authorization", BASIC_AUTH))
}

/// The fixture's first sign-up: Ada, who consented.
fn ada_signs_up() -> UserEvent {
    let records = fixture_batch().records;
    UserEvent::decode(records[0].body.as_deref().unwrap()).unwrap()
}

/// `status_if_new` leaves an existing transactional contact off the marketing list: she
/// consented, so her status is set.
#[tokio::test]
async fn a_transactional_contact_who_consents_is_subscribed() {
    for (configured, status) in [
        (NewMemberStatus::Subscribed, "subscribed"),
        (NewMemberStatus::Pending, "pending"),
    ] {
        let (server, mailing_list) = mailchimp(configured).await;
        put_ada()
            .respond_with(ada_with_status("transactional"))
            .expect(1)
            .mount(&server)
            .await;
        patch_ada()
            .and(body_json(json!({ "status": status })))
            .respond_with(ada_with_status(status))
            .expect(1)
            .mount(&server)
            .await;
        mailing_list
            .handle(&ada_signs_up(), deadline())
            .await
            .unwrap();
    }
}

/// A member who unsubscribed or bounced is left as she is, and so is a new subscriber.
#[tokio::test]
async fn other_members_get_no_second_call() {
    for status in ["unsubscribed", "cleaned", "subscribed", "pending"] {
        let (server, mailing_list) = mailchimp(NewMemberStatus::Subscribed).await;
        put_ada()
            .respond_with(ada_with_status(status))
            .expect(1)
            .mount(&server)
            .await;
        patch_ada()
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;
        mailing_list
            .handle(&ada_signs_up(), deadline())
            .await
            .unwrap();
    }
}

/// Mailchimp throttles an address that signed up to many lists with a 400: it is
/// retried later, not dead-lettered.
#[tokio::test]
async fn a_throttled_address_is_retried_later() {
    let (server, mailing_list) = mailchimp(NewMemberStatus::Subscribed).await;
    put_ada()
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "title": "Invalid Resource",
            "status": 400,
            "detail": "ada.lovelace@example.com has signed up to a lot of lists very recently; we're not allowing more signups for now",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let error = mailing_list
        .handle(&ada_signs_up(), deadline())
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert_eq!(
        error.to_string(),
        "mailchimp still failing after 1 attempt(s): HTTP 400: Invalid Resource: <redacted> has \
         signed up to a lot of lists very recently; we're not allowing more signups for now"
    );
}

#[tokio::test]
async fn fixture_batch_adds_the_consenting_user_and_fails_the_misrouted_login() {
    let (server, mailing_list) = mailchimp(NewMemberStatus::Subscribed).await;
    put_ada()
        .and(body_json(json!({
            "email_address": SIGNUP_EMAIL,
            "status_if_new": "subscribed",
            "merge_fields": { "FNAME": "Ada", "LNAME": "Lovelace" },
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "status": "subscribed" })))
        .expect(1)
        .mount(&server)
        .await;

    let report = driver(mailing_list)
        .process(fixture_batch(), deadline())
        .await;
    let failed: Vec<&str> = report
        .records()
        .iter()
        .filter(|(_, result)| result.is_err())
        .map(|(message_id, _)| message_id.as_str())
        .collect();
    // The login is a misrouting; the replayed sign-up has no consent and is skipped.
    assert_eq!(failed, [LOGIN_MESSAGE, MALFORMED_MESSAGE]);
    let (_, login) = &report.records()[1];
    assert_eq!(
        targets::error_chain(login.as_ref().unwrap_err()),
        "the handler failed: the mailing-list target does not handle UserLoggedIn events; \
         check the rule that routes them to its queue"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn pending_status_for_double_opt_in() {
    let (server, mailing_list) = mailchimp(NewMemberStatus::Pending).await;
    Mock::given(method("PUT"))
        .and(body_json(json!({
            "email_address": "u9@example.com",
            "status_if_new": "pending",
            "merge_fields": { "FNAME": "Ada", "LNAME": "Lovelace" },
        })))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let event = UserEvent::decode(&signed_up("e-1", "u9", true)).unwrap();
    mailing_list.handle(&event, deadline()).await.unwrap();
}

/// Handles the sign-up `body` against a Mailchimp that must not be called at all; the
/// record must succeed.
async fn handled_without_a_call(body: &str) {
    let (server, mailing_list) = mailchimp(NewMemberStatus::Subscribed).await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let event = UserEvent::decode(body).unwrap();
    mailing_list.handle(&event, deadline()).await.unwrap();
}

#[tokio::test]
async fn a_user_without_consent_is_not_sent() {
    handled_without_a_call(&signed_up("e-2", "u2", false)).await;
}

/// Mailchimp refuses letters beyond ASCII before the @ on every try (an audit): such an
/// address is not sent, and the record succeeds, instead of reaching the dead-letter queue.
#[tokio::test]
async fn an_address_mailchimp_cannot_take_is_not_sent() {
    // The user id makes the address: josé@example.com, which events-schema takes.
    handled_without_a_call(&signed_up("e-3", "josé", true)).await;
}

/// A list id of the right shape that names no list: Mailchimp answers 404, which the
/// add-or-update call never gives for a member. Every sign-up would fail alike until the
/// configuration is fixed, so the record is retried with backoff, not given up on.
#[tokio::test]
async fn a_list_that_does_not_exist_is_a_configuration_fault() {
    let (server, mailing_list) = mailchimp(NewMemberStatus::Subscribed).await;
    put_ada()
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "type": "https://mailchimp.com/developer/marketing/docs/errors/",
            "title": "Resource Not Found",
            "status": 404,
            "detail": "The requested resource could not be found.",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let records = fixture_batch().records;
    let event = UserEvent::decode(records[0].body.as_deref().unwrap()).unwrap();
    let error = mailing_list.handle(&event, deadline()).await.unwrap_err();
    assert!(
        matches!(error, HandlerError::Misconfigured { status: 404, .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert_eq!(
        error.to_string(),
        "mailchimp refused the request with HTTP 404: Resource Not Found: The requested \
         resource could not be found. (check the target's configuration; the record is retried)"
    );
}

#[tokio::test]
async fn a_400_is_permanent_and_its_message_hides_the_address() {
    let (server, mailing_list) = mailchimp(NewMemberStatus::Subscribed).await;
    put_ada()
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "type": "https://mailchimp.com/developer/marketing/docs/errors/",
            "title": "Invalid Resource",
            "status": 400,
            "detail": "ada.lovelace@example.com looks fake or invalid, please enter a real email address.",
            "instance": "2f5f2a2e-1b8c-4f3a-9a1e-0c3a4b5c6d7e",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let records = fixture_batch().records;
    let event = UserEvent::decode(records[0].body.as_deref().unwrap()).unwrap();
    let error = mailing_list.handle(&event, deadline()).await.unwrap_err();
    assert!(matches!(error, HandlerError::Rejected { status: 400, .. }));
    assert_eq!(
        error.to_string(),
        "mailchimp rejected the request with HTTP 400: Invalid Resource: <redacted> looks \
         fake or invalid, please enter a real email address."
    );
}

/// Mailchimp refuses these for good (the person was permanently deleted, or unsubscribed);
/// only they can come back, through a form. Five attempts and a dead letter paged someone
/// for an event no redrive could deliver.
#[tokio::test]
async fn an_address_mailchimp_keeps_off_the_list_is_not_a_failure() {
    for (title, detail) in [
        (
            "Forgotten Email Not Subscribed",
            "ada.lovelace@example.com was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list.",
        ),
        (
            "Member In Compliance State",
            "ada.lovelace@example.com is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.",
        ),
    ] {
        let (server, mailing_list) = mailchimp(NewMemberStatus::Subscribed).await;
        put_ada()
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({
                "title": title,
                "status": 400,
                "detail": detail,
            })))
            .expect(1)
            .mount(&server)
            .await;
        // Through the batch driver: the record succeeds and is marked done, so that a
        // redelivery does not ask again (the mock takes one call only).
        let driver = driver(mailing_list);
        let report = driver.process(fixture_batch(), deadline()).await;
        assert!(
            matches!(report.records()[0].1, Ok(Outcome::Delivered)),
            "{title}: {:?}",
            report.records()[0]
        );
        let again = driver.process(fixture_batch(), deadline()).await;
        assert!(
            matches!(again.records()[0].1, Ok(Outcome::Duplicate)),
            "{title}: {:?}",
            again.records()[0]
        );
    }
}

#[tokio::test]
async fn retries_503() {
    let (server, mailing_list) = mailchimp(NewMemberStatus::Subscribed).await;
    put_ada()
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    put_ada()
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let records = fixture_batch().records;
    let event = UserEvent::decode(records[0].body.as_deref().unwrap()).unwrap();
    mailing_list.handle(&event, deadline()).await.unwrap();
}

/// The status update of a transactional contact meets the add-or-update's refusals for
/// good as they are met there: logged, not dead-lettered.
#[tokio::test]
async fn a_refused_status_update_is_not_a_failure() {
    let (server, mailing_list) = mailchimp(NewMemberStatus::Subscribed).await;
    put_ada()
        .respond_with(ada_with_status("transactional"))
        .expect(1)
        .mount(&server)
        .await;
    patch_ada()
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "title": "Member In Compliance State",
            "status": 400,
            "detail": "ada.lovelace@example.com is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.",
        })))
        .expect(1)
        .mount(&server)
        .await;
    mailing_list
        .handle(&ada_signs_up(), deadline())
        .await
        .unwrap();
}
