//! The AWS SDK's HTTP client: the SDK's requests go through reqwest, with the one TLS
//! configuration of the process ([`tls_config`]).
//!
//! The SDK's default client (hyper and rustls) loads the system's root certificates and
//! parses them again each time it builds a connector: once while `aws_config` loads, once
//! per client it validates, and once for the first request (issue #5). This client builds
//! no root store of its own; it behaves as the default one otherwise: no proxy, no
//! redirects, the connect and read timeouts the SDK asks for, HTTP/2 or HTTP/1.1 by ALPN,
//! and errors classified as the SDK's retry strategy expects (timeouts and I/O errors are
//! transient, a request that cannot be built is the caller's).

use std::sync::Mutex;

use aws_smithy_runtime_api::client::{
    connector_metadata::ConnectorMetadata,
    http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
        SharedHttpConnector,
    },
    orchestrator::{HttpRequest, HttpResponse},
    result::ConnectorError,
    runtime_components::RuntimeComponents,
};
use aws_smithy_types::body::SdkBody;

use crate::http::tls_config;

/// The HTTP client to give the SDK's configuration.
pub(crate) fn sdk_http_client() -> SharedHttpClient {
    SharedHttpClient::new(ReqwestHttpClient::default())
}

/// The connect and read timeouts of a connector.
type Timeouts = (Option<std::time::Duration>, Option<std::time::Duration>);

/// Hands out one connector, with its own connection pool, per distinct timeouts. The SDK
/// asks for a connector on every attempt, so they are kept; in practice there is one.
#[derive(Debug, Default)]
struct ReqwestHttpClient {
    connectors: Mutex<Vec<(Timeouts, SharedHttpConnector)>>,
}

impl HttpClient for ReqwestHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let timeouts = (settings.connect_timeout(), settings.read_timeout());
        // A panic while holding the lock cannot leave the list half-updated.
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, connector)) = connectors.iter().find(|(t, _)| *t == timeouts) {
            return connector.clone();
        }
        let connector = SharedHttpConnector::new(ReqwestConnector::new(timeouts));
        connectors.push((timeouts, connector.clone()));
        connector
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("reqwest", None))
    }
}

/// One reqwest client: a connection pool with the given timeouts.
#[derive(Debug, Clone)]
struct ReqwestConnector {
    client: reqwest::Client,
}

impl ReqwestConnector {
    fn new((connect_timeout, read_timeout): Timeouts) -> ReqwestConnector {
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config())
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none());
        if let Some(timeout) = connect_timeout {
            builder = builder.connect_timeout(timeout);
        }
        if let Some(timeout) = read_timeout {
            builder = builder.read_timeout(timeout);
        }
        let client = builder
            .build()
            .expect("reqwest builds a client from a preconfigured rustls configuration");
        ReqwestConnector { client }
    }
}

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request.map(reqwest::Body::wrap),
            Err(error) => {
                return HttpConnectorFuture::ready(Err(ConnectorError::user(error.into())));
            }
        };
        let request = match reqwest::Request::try_from(request) {
            Ok(request) => request,
            Err(error) => {
                return HttpConnectorFuture::ready(Err(ConnectorError::user(error.into())));
            }
        };
        let client = self.client.clone();
        HttpConnectorFuture::new(async move {
            let response = client.execute(request).await.map_err(connector_error)?;
            let response = http::Response::from(response).map(SdkBody::from_body_1_x);
            HttpResponse::try_from(response)
                .map_err(|error| ConnectorError::other(error.into(), None))
        })
    }
}

/// Classifies a reqwest error for the SDK's retry strategy, as the default client
/// classifies hyper's: a timeout, an I/O failure (connecting, sending, reading; retried), a
/// request that could not be built, or something else.
fn connector_error(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() {
        ConnectorError::timeout(error.into())
    } else if error.is_builder() {
        ConnectorError::user(error.into())
    } else if error.is_connect() || error.is_request() || error.is_body() {
        ConnectorError::io(error.into())
    } else {
        ConnectorError::other(error.into(), None)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::{
        Router,
        http::{HeaderMap, StatusCode, header::LOCATION},
        routing::{get, post},
    };

    use aws_smithy_types::byte_stream::ByteStream;

    use super::*;

    /// A local server: `/echo` answers 201 with the request's body and its `x-amz-target`
    /// header, `/moved` redirects, `/slow` answers after 2 s.
    async fn server() -> String {
        let app = Router::new()
            .route(
                "/echo",
                post(|headers: HeaderMap, body: String| async move {
                    let target = headers["x-amz-target"].to_str().unwrap().to_owned();
                    (StatusCode::CREATED, [("x-echo", target)], body)
                }),
            )
            .route(
                "/moved",
                get(|| async { (StatusCode::FOUND, [(LOCATION, "/echo")]) }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    "late"
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    async fn send(method: &str, url: &str, body: &str) -> Result<HttpResponse, ConnectorError> {
        let connector = ReqwestConnector::new((
            Some(Duration::from_millis(500)),
            Some(Duration::from_millis(300)),
        ));
        let request = http::Request::builder()
            .method(method)
            .uri(url)
            .header("x-amz-target", "DynamoDB_20120810.PutItem")
            .body(SdkBody::from(body))
            .unwrap();
        connector
            .call(HttpRequest::try_from(request).unwrap())
            .await
    }

    #[tokio::test]
    async fn requests_and_responses_go_through_unchanged() {
        let base = server().await;
        let response = send("POST", &format!("{base}/echo"), r#"{"TableName":"t"}"#)
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201);
        assert_eq!(
            response.headers().get("x-echo"),
            Some("DynamoDB_20120810.PutItem")
        );
        assert_eq!(response.body().bytes(), None, "the body streams");
        let body = ByteStream::new(response.into_body())
            .collect()
            .await
            .unwrap();
        assert_eq!(&body.into_bytes()[..], br#"{"TableName":"t"}"#);
    }

    #[tokio::test]
    async fn redirects_are_the_sdks_to_handle() {
        let base = server().await;
        let response = send("GET", &format!("{base}/moved"), "").await.unwrap();
        assert_eq!(response.status().as_u16(), 302);
    }

    #[tokio::test]
    async fn errors_are_classified_for_retries() {
        let base = server().await;
        let error = send("GET", &format!("{base}/slow"), "").await.unwrap_err();
        assert!(error.is_timeout(), "{error:?}");
        // Nothing listens on port 9 (discard) of the loopback address.
        let error = send("GET", "http://127.0.0.1:9/", "").await.unwrap_err();
        assert!(error.is_io(), "{error:?}");
    }
}
