//! The AWS configuration of the commands that call AWS (`publish`, `replay`): the SDK's
//! usual sources (environment, profiles, instance roles), checked before any request so
//! that a missing region or credentials is said plainly instead of surfacing as a failed
//! request.

use std::time::Duration;

use anyhow::{Result, bail};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::{Credentials, provider::ProvideCredentials};

/// The region a loopback endpoint gets when none is configured.
const LOCAL_REGION: &str = "us-east-1";

/// How long the credential chain may take (an instance-metadata lookup off EC2 can hang).
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(5);

/// Loads the SDK configuration. For an `AWS_ENDPOINT_URL` on this machine (the local bus,
/// moto), which accepts any credentials, a missing region defaults to `us-east-1` and
/// missing credentials to placeholders; for AWS, either missing is an error that says what
/// to set.
pub(crate) async fn sdk_config() -> Result<SdkConfig> {
    for name in ENDPOINT_VARIABLES {
        if let Ok(url) = std::env::var(name) {
            check_endpoint(name, &url)?;
        }
    }
    let endpoint = std::env::var("AWS_ENDPOINT_URL").ok();
    let local = endpoint.as_deref().is_some_and(is_loopback);
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let has_region = config.region().is_some();
    let credentials = match config.credentials_provider() {
        None => Err("no credential source".to_owned()),
        Some(provider) => {
            match tokio::time::timeout(CREDENTIALS_TIMEOUT, provider.provide_credentials()).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(error)) => Err(router::publish::error_causes(&error)),
                Err(_) => Err(format!(
                    "the credential sources gave no answer within {CREDENTIALS_TIMEOUT:?}"
                )),
            }
        }
    };
    if local {
        if has_region && credentials.is_ok() {
            return Ok(config);
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if !has_region {
            loader = loader.region(Region::new(LOCAL_REGION));
        }
        if credentials.is_err() {
            loader = loader.credentials_provider(Credentials::new(
                "local",
                "local",
                None,
                None,
                "eventfork-loopback",
            ));
        }
        return Ok(loader.load().await);
    }
    if !has_region {
        bail!(
            "no AWS region: set AWS_REGION (or a region in the AWS profile); \
             for the local bus, set AWS_ENDPOINT_URL=http://127.0.0.1:4010"
        );
    }
    if let Err(why) = credentials {
        match std::env::var("AWS_PROFILE") {
            Ok(profile) => bail!(
                "no AWS credentials from profile {profile}: {why} (an SSO profile needs \
                 `aws sso login --profile {profile}` first)"
            ),
            Err(_) => bail!(
                "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or \
                 AWS_PROFILE; for the local bus, set AWS_ENDPOINT_URL=http://127.0.0.1:4010 \
                 ({why})"
            ),
        }
    }
    Ok(config)
}

/// The variables the SDK takes an endpoint URL from, for the services these commands call.
const ENDPOINT_VARIABLES: [&str; 2] = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EVENTBRIDGE"];

/// Refuses an endpoint URL the SDK cannot use, naming the variable: without a scheme the
/// SDK fails each request with its own request's debug dump ("endpoint must contain
/// scheme"), and without a host after the scheme with a failed connection.
fn check_endpoint(name: &str, url: &str) -> Result<()> {
    let url = url.trim();
    if url.is_empty() {
        return Ok(());
    }
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        let hint = if url.contains("://") {
            String::new()
        } else {
            format!(": use http://{url}")
        };
        bail!("{name} {url:?} is not an http:// or https:// URL{hint}");
    };
    if rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .is_empty()
    {
        bail!("{name} {url:?} names no host");
    }
    Ok(())
}

/// Whether an endpoint URL names this machine.
fn is_loopback(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        // [::1]:4010
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_the_sdk_cannot_use_are_named() {
        let check = |url: &str| {
            check_endpoint("AWS_ENDPOINT_URL", url)
                .map_err(|e| e.to_string())
                .err()
        };
        assert_eq!(check("http://127.0.0.1:4010"), None);
        assert_eq!(check("https://events.eu-west-1.amazonaws.com/"), None);
        assert_eq!(check(""), None);
        assert_eq!(
            check("127.0.0.1:5401").as_deref(),
            Some(
                "AWS_ENDPOINT_URL \"127.0.0.1:5401\" is not an http:// or https:// URL: use http://127.0.0.1:5401"
            )
        );
        assert_eq!(
            check("ftp://example.com").as_deref(),
            Some("AWS_ENDPOINT_URL \"ftp://example.com\" is not an http:// or https:// URL")
        );
        assert_eq!(
            check("http:///path").as_deref(),
            Some("AWS_ENDPOINT_URL \"http:///path\" names no host")
        );
    }

    #[test]
    fn loopback_endpoints() {
        for url in [
            "http://127.0.0.1:4010",
            "http://localhost:5000/",
            "http://[::1]:4010",
            "127.0.0.2:9",
            "https://LOCALHOST",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "https://events.us-east-1.amazonaws.com",
            "http://10.0.0.1:4010",
            "http://localhost.example.com",
            "http://[2001:db8::1]:80",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }
}
