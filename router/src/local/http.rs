//! The EventBridge API over HTTP: AWS JSON 1.1 (`POST /`, `X-Amz-Target:
//! AWSEvents.<Operation>`, `Content-Type: application/x-amz-json-1.1`), so that any AWS SDK,
//! the aws CLI and boto3 publish to the local bus by setting `AWS_ENDPOINT_URL`.
//!
//! Operations: PutEvents, TestEventPattern, DescribeEventBus, ListRules. SigV4 signatures
//! are accepted without being checked. Every error, including a body over the size cap or
//! a request that is not JSON, is answered with an AWS-shaped body (`__type`, `message`)
//! and the `x-amzn-ErrorType` header; the connection is never dropped.

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::{
    DEFAULT_BUS, EntryResult, LocalBus, PutEventsEntry, PutEventsError, clock,
    route::{self, PatternProblem},
};

const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

pub(crate) async fn serve(
    bus: LocalBus,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let max_body = bus.config().max_body_bytes;
    let app = Router::new()
        .route("/", post(handle).fallback(unsupported))
        .fallback(unsupported)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(bus);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// An AWS JSON 1.1 error.
struct AwsError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl AwsError {
    fn new(kind: &'static str, message: impl Into<String>) -> AwsError {
        AwsError {
            status: StatusCode::BAD_REQUEST,
            kind,
            message: message.into(),
        }
    }
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        let body = json!({ "__type": self.kind, "message": self.message }).to_string();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        headers.insert("x-amzn-ErrorType", HeaderValue::from_static(self.kind));
        insert_request_id(headers);
        response
    }
}

fn insert_request_id(headers: &mut HeaderMap) {
    if let Ok(id) = HeaderValue::from_str(&clock::uuid_v4()) {
        headers.insert("x-amzn-RequestId", id);
    }
}

fn ok(body: Json) -> Response {
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    insert_request_id(headers);
    response
}

async fn unsupported() -> AwsError {
    AwsError {
        status: StatusCode::NOT_FOUND,
        kind: "UnknownOperationException",
        message:
            "the local EventBridge endpoint answers POST / with X-Amz-Target: AWSEvents.<Operation>"
                .into(),
    }
}

async fn handle(
    State(bus): State<LocalBus>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match dispatch(&bus, &headers, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn dispatch(
    bus: &LocalBus,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AwsError> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            AwsError {
                status,
                kind: "RequestEntityTooLargeException",
                message: format!(
                    "the request body is larger than the local endpoint's limit of {} bytes",
                    bus.config().max_body_bytes
                ),
            }
        } else {
            AwsError::new(
                "SerializationException",
                format!("cannot read the request body: {rejection}"),
            )
        }
    })?;
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let operation = target.strip_prefix("AWSEvents.").unwrap_or_default();
    match operation {
        "PutEvents" => put_events(bus, &parse(&body)?).await,
        "TestEventPattern" => test_event_pattern(&parse(&body)?),
        "DescribeEventBus" => describe_event_bus(bus, &parse(&body)?),
        "ListRules" => list_rules(bus, &parse(&body)?),
        _ => Err(AwsError::new(
            "UnknownOperationException",
            if target.is_empty() {
                "missing X-Amz-Target header; the local bus supports AWSEvents.PutEvents, TestEventPattern, DescribeEventBus and ListRules".to_owned()
            } else {
                format!(
                    "operation {target} is not supported by the local bus (supported: PutEvents, TestEventPattern, DescribeEventBus, ListRules)"
                )
            },
        )),
    }
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, AwsError> {
    // An empty body is an empty input structure, as the SDKs send for no-argument calls.
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|error| AwsError::new("SerializationException", format!("{error}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutEventsRequest {
    entries: Option<Vec<WireEntry>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireEntry {
    source: Option<String>,
    detail_type: Option<String>,
    detail: Option<String>,
    resources: Option<Vec<String>>,
    time: Option<Json>,
    event_bus_name: Option<String>,
}

/// AWS JSON 1.1 sends timestamps as epoch seconds (a number, maybe fractional); an RFC
/// 3339 string is accepted too. Only the years 1 to 9999, which an event's RFC 3339 `time`
/// can hold: milliseconds given for seconds (`Date.now()`) land far beyond.
fn time_ms(time: &Json) -> Option<i64> {
    let seconds = |s: f64| {
        (-62_135_596_800.0..=253_402_300_799.0)
            .contains(&s)
            .then(|| (s * 1000.0).round() as i64)
    };
    match time {
        Json::Number(n) => n.as_f64().and_then(seconds),
        Json::String(text) => text
            .parse::<f64>()
            .ok()
            .and_then(seconds)
            .or_else(|| clock::parse_rfc3339(text)),
        _ => None,
    }
}

async fn put_events(bus: &LocalBus, request: &PutEventsRequest) -> Result<Response, AwsError> {
    let Some(wire) = &request.entries else {
        return Err(AwsError::new(
            "ValidationException",
            "1 validation error detected: Value null at 'entries' failed to satisfy constraint: Member must not be null",
        ));
    };
    let mut entries = Vec::with_capacity(wire.len());
    for (entry_idx, entry) in wire.iter().enumerate() {
        let time_ms = match &entry.time {
            None | Some(Json::Null) => None,
            Some(time) => Some(time_ms(time).ok_or_else(|| {
                AwsError::new(
                    "SerializationException",
                    format!(
                        "Entries[{entry_idx}].Time: expected epoch seconds of the years 1 to 9999, found {time}"
                    ),
                )
            })?),
        };
        entries.push(PutEventsEntry {
            source: entry.source.clone(),
            detail_type: entry.detail_type.clone(),
            detail: entry.detail.clone(),
            resources: entry.resources.clone().unwrap_or_default(),
            time_ms,
            event_bus_name: entry.event_bus_name.clone(),
        });
    }
    let results = bus.put_events(entries).await.map_err(|error| match error {
        PutEventsError::Validation(message) => AwsError::new("ValidationException", message),
        PutEventsError::ResourceNotFound(message) => {
            AwsError::new("ResourceNotFoundException", message)
        }
        PutEventsError::Internal(message) => AwsError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "InternalException",
            message,
        },
    })?;
    let failed = results
        .iter()
        .filter(|r| matches!(r, EntryResult::Failed { .. }))
        .count();
    let entries: Vec<Json> = results
        .into_iter()
        .map(|result| match result {
            EntryResult::Accepted(event_id) => json!({ "EventId": event_id }),
            EntryResult::Failed { code, message } => {
                json!({ "ErrorCode": code, "ErrorMessage": message })
            }
        })
        .collect();
    Ok(ok(
        json!({ "FailedEntryCount": failed, "Entries": entries }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TestEventPatternRequest {
    event_pattern: Option<String>,
    event: Option<String>,
}

fn test_event_pattern(request: &TestEventPatternRequest) -> Result<Response, AwsError> {
    let (Some(pattern), Some(event)) = (&request.event_pattern, &request.event) else {
        return Err(AwsError::new(
            "ValidationException",
            "EventPattern and Event are required",
        ));
    };
    match route::test_pattern(pattern, event.as_bytes()) {
        Ok(result) => Ok(ok(json!({ "Result": result }))),
        Err(PatternProblem::Pattern(reason)) => Err(AwsError::new(
            "InvalidEventPatternException",
            format!("Event pattern is not valid. Reason: {reason}"),
        )),
        Err(PatternProblem::Event(reason)) => Err(AwsError::new(
            "ValidationException",
            format!("Parameter Event is not valid. Reason: {reason}"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeEventBusRequest {
    name: Option<String>,
}

fn bus_arn(bus: &LocalBus, name: &str) -> String {
    let config = bus.config();
    format!(
        "arn:aws:events:{}:{}:event-bus/{name}",
        config.region, config.account
    )
}

fn known_bus(bus: &LocalBus, name: Option<&str>) -> Result<String, AwsError> {
    let name = name.unwrap_or(DEFAULT_BUS);
    let short = crate::template::bus_name(name);
    if bus.topology().has_bus(short) {
        Ok(short.to_owned())
    } else {
        Err(AwsError::new(
            "ResourceNotFoundException",
            format!("Event bus {name} does not exist."),
        ))
    }
}

fn describe_event_bus(
    bus: &LocalBus,
    request: &DescribeEventBusRequest,
) -> Result<Response, AwsError> {
    let name = known_bus(bus, request.name.as_deref())?;
    Ok(ok(json!({ "Name": name, "Arn": bus_arn(bus, &name) })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListRulesRequest {
    event_bus_name: Option<String>,
    name_prefix: Option<String>,
    limit: Option<i64>,
    next_token: Option<String>,
}

fn list_rules(bus: &LocalBus, request: &ListRulesRequest) -> Result<Response, AwsError> {
    let bus_name = known_bus(bus, request.event_bus_name.as_deref())?;
    let prefix = request.name_prefix.as_deref().unwrap_or_default();
    // A page of `Limit` rules (1 to 100; all without it); the token is where the next
    // page starts.
    let limit = match request.limit {
        None => usize::MAX,
        Some(n @ 1..=100) => n as usize,
        Some(n) => {
            return Err(AwsError::new(
                "ValidationException",
                format!(
                    "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value between 1 and 100"
                ),
            ));
        }
    };
    let start = match request.next_token.as_deref() {
        None => 0,
        Some(token) => token.parse::<usize>().map_err(|_| {
            AwsError::new(
                "ValidationException",
                format!("the NextToken {token:?} is not one this bus gave"),
            )
        })?,
    };
    let config = bus.config();
    let matching: Vec<_> = bus
        .topology()
        .rules()
        .iter()
        .filter(|rule| rule.bus() == bus_name && rule.name().starts_with(prefix))
        .collect();
    if start > matching.len() {
        return Err(AwsError::new(
            "ValidationException",
            format!("the NextToken \"{start}\" is not one this bus gave"),
        ));
    }
    let end = start.saturating_add(limit).min(matching.len());
    let rules: Vec<Json> = matching[start..end]
        .iter()
        .map(|rule| {
            let path = if bus_name == DEFAULT_BUS {
                rule.name().to_owned()
            } else {
                format!("{bus_name}/{}", rule.name())
            };
            json!({
                "Name": rule.name(),
                "Arn": format!("arn:aws:events:{}:{}:rule/{path}", config.region, config.account),
                "EventPattern": rule.pattern().to_string(),
                "State": if rule.is_enabled() { "ENABLED" } else { "DISABLED" },
                "EventBusName": bus_name,
            })
        })
        .collect();
    Ok(ok(if end < matching.len() {
        json!({ "Rules": rules, "NextToken": end.to_string() })
    } else {
        json!({ "Rules": rules })
    }))
}
