//! Configuration from the environment: the only module that reads environment variables.
//!
//! A binary reads its environment once, at start-up, into an [`Env`], and each handler's
//! config ([`AnalyticsConfig`](crate::AnalyticsConfig),
//! [`MailingListConfig`](crate::MailingListConfig), [`SlackConfig`](crate::SlackConfig))
//! and the [`RuntimeConfig`] take their values from it. A secret `NAME` may instead be
//! stored in AWS Secrets Manager and named by `NAME_SECRET_ARN`; it is fetched once, at
//! start-up. Secrets are [`Secret`]s, whose `Debug` form hides them.

use std::{collections::HashMap, fmt, sync::Arc, time::Duration};

use tokio::sync::OnceCell;
use tracing::warn;

use crate::{
    aws_http::sdk_http_client,
    idempotency::{DynamoDbStore, IdempotencyStore, MemoryStore},
    visibility::Backoff,
};

/// A secret value: an API key, a write key, a webhook URL. `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, to put into a request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_owned())
    }
}

/// A configuration value is missing or wrong. The message names the variable and never
/// repeats its value, which may be a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required variable is not set (or is empty).
    #[error("{name} is not set")]
    Missing {
        /// The variable, e.g. `MAILCHIMP_LIST_ID`.
        name: String,
    },
    /// A variable's value is not valid.
    #[error("{name} is malformed: {reason}")]
    Malformed {
        /// The variable.
        name: String,
        /// What is wrong with the value.
        reason: String,
    },
    /// Both a secret and its `_SECRET_ARN` are set.
    #[error("set only one of {name} and {name}_SECRET_ARN")]
    Ambiguous {
        /// The secret's variable.
        name: String,
    },
    /// A secret could not be read from Secrets Manager.
    #[error("could not read {name} from the secret named by {name}_SECRET_ARN")]
    SecretsManager {
        /// The secret's variable.
        name: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ConfigError {
    /// A malformed-value error for `name`.
    pub(crate) fn malformed(name: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Malformed {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Parses the endpoint URL `text` given in `name`: `http` or `https`, with a host. Any other
/// URL would start the target, then fail every record into the dead-letter queue. The
/// errors never repeat the URL, which may be a secret (a Slack webhook).
pub(crate) fn endpoint_url(name: &str, text: &str) -> Result<reqwest::Url, ConfigError> {
    let url = reqwest::Url::parse(text).map_err(|e| ConfigError::malformed(name, e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::malformed(
            name,
            format!(
                "expected an https:// (or http://) URL, found the scheme {:?}",
                url.scheme()
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::malformed(name, "the URL has no host"));
    }
    Ok(url)
}

/// A snapshot of environment variables, and the AWS configuration loaded on first need.
pub struct Env {
    vars: HashMap<String, Result<String, ()>>,
    aws: OnceCell<aws_config::SdkConfig>,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets: only the names are shown.
        let mut names: Vec<&String> = self.vars.keys().collect();
        names.sort();
        f.debug_struct("Env").field("names", &names).finish()
    }
}

impl Env {
    /// Reads this process's environment, once.
    pub fn from_process() -> Env {
        let vars = std::env::vars_os()
            .filter_map(|(name, value)| {
                let name = name.into_string().ok()?;
                Some((name, value.into_string().map_err(|_| ())))
            })
            .collect();
        Env {
            vars,
            aws: OnceCell::new(),
        }
    }

    /// An environment with exactly these variables, for tests and embedding.
    pub fn from_pairs<I, K, V>(pairs: I) -> Env
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Env {
            vars: pairs
                .into_iter()
                .map(|(name, value)| (name.into(), Ok(value.into())))
                .collect(),
            aws: OnceCell::new(),
        }
    }

    /// The value of `name`, `None` when unset or empty.
    pub(crate) fn optional(&self, name: &str) -> Result<Option<&str>, ConfigError> {
        match self.vars.get(name) {
            None => Ok(None),
            Some(Err(())) => Err(ConfigError::malformed(name, "not valid UTF-8")),
            Some(Ok(value)) if value.trim().is_empty() => Ok(None),
            Some(Ok(value)) => Ok(Some(value.trim())),
        }
    }

    /// The value of `name`, which must be set.
    pub(crate) fn required(&self, name: &str) -> Result<&str, ConfigError> {
        self.optional(name)?.ok_or_else(|| ConfigError::Missing {
            name: name.to_owned(),
        })
    }

    /// The secret `name`, from `name` itself or from the Secrets Manager secret named by
    /// `name_SECRET_ARN` (its `SecretString`, trimmed).
    pub(crate) async fn secret(&self, name: &str) -> Result<Secret, ConfigError> {
        let arn_name = format!("{name}_SECRET_ARN");
        match (self.optional(name)?, self.optional(&arn_name)?) {
            (Some(_), Some(_)) => Err(ConfigError::Ambiguous {
                name: name.to_owned(),
            }),
            (Some(value), None) => Ok(Secret::new(value)),
            (None, Some(arn)) => self.fetch_secret(name, arn).await,
            (None, None) => Err(ConfigError::Missing {
                name: format!("{name} (or {arn_name})"),
            }),
        }
    }

    async fn fetch_secret(&self, name: &str, arn: &str) -> Result<Secret, ConfigError> {
        let error =
            |source: Box<dyn std::error::Error + Send + Sync>| ConfigError::SecretsManager {
                name: name.to_owned(),
                source,
            };
        let client = aws_sdk_secretsmanager::Client::new(self.aws().await);
        let output = client
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| {
                error(
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                        .to_string()
                        .into(),
                )
            })?;
        match output.secret_string() {
            Some(value) if !value.trim().is_empty() => Ok(Secret::new(value.trim())),
            _ => Err(error("the secret has no SecretString".into())),
        }
    }

    /// The AWS configuration from the standard environment (region, credentials,
    /// `AWS_ENDPOINT_URL`), loaded once, with the targets' HTTP client and its compiled-in
    /// root certificates (see [`crate::aws_http`]).
    ///
    /// Lambda puts the function's credentials and region into the environment, where the
    /// SDK's default chains look first. When they are there, the chains' other sources
    /// (profile files, web identity with its STS client, the container and instance
    /// metadata clients) could never answer, so they are not built: about a third of the
    /// SDK's start-up. The credentials still come from the SDK's own environment provider.
    pub(crate) async fn aws(&self) -> &aws_config::SdkConfig {
        self.aws
            .get_or_init(|| {
                // Bounded calls: an idempotency-store request that stalls must fail within
                // the invocation, not run the Lambda into its timeout.
                let timeouts = aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(1))
                    .operation_attempt_timeout(Duration::from_secs(2))
                    .operation_timeout(Duration::from_secs(4))
                    .build();
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .http_client(sdk_http_client())
                    .timeout_config(timeouts);
                let has = |name| matches!(self.optional(name), Ok(Some(_)));
                if has("AWS_ACCESS_KEY_ID") && has("AWS_SECRET_ACCESS_KEY") {
                    loader = loader.credentials_provider(
                        aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
                    );
                }
                if let Ok(Some(region)) = self.optional("AWS_REGION") {
                    loader = loader.region(aws_config::Region::new(region.to_owned()));
                }
                loader.load()
            })
            .await
    }
}

/// The most records one invocation may handle at a time (a batch holds at most 10,000).
const MAX_RECORD_CONCURRENCY: usize = 64;

/// What every target binary reads besides its handler's config.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    idempotency_table: Option<String>,
    idempotency_ttl: Duration,
    archive_retention_days: Option<u64>,
    record_concurrency: Option<std::num::NonZeroUsize>,
    backoff: Backoff,
}

impl RuntimeConfig {
    /// Reads `IDEMPOTENCY_TABLE` (optional: without it the store is in memory) and how
    /// long idempotency records live: `IDEMPOTENCY_TTL_SECONDS` if set, else a day longer
    /// than `ARCHIVE_RETENTION_DAYS` (the archive's retention, so that a replay of its
    /// oldest event still finds the record), else 31 days (a day past the default
    /// retention of 30).
    ///
    /// Both numbers are at most ten years (3,650 days), far beyond any useful retention:
    /// much larger ones would overflow the clock when a record's expiry is computed.
    pub fn from_env(env: &Env) -> Result<RuntimeConfig, ConfigError> {
        const DAY: u64 = 24 * 3600;
        const MAX_DAYS: u64 = 3650;
        // `what` names the unit and, where it helps, what the bound means.
        let within = |name: &'static str, what: &str, max: u64| match env.optional(name)? {
            None => Ok(None),
            Some(text) => match text.trim().parse::<u64>() {
                Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
                _ => Err(ConfigError::malformed(
                    name,
                    format!("expected a whole number of {what}"),
                )),
            },
        };
        let ten_years = |unit: &str, max: u64| format!("{unit} from 1 to {max} (10 years)");
        let idempotency_table = env.optional("IDEMPOTENCY_TABLE")?.map(str::to_owned);
        let ttl_seconds = within(
            "IDEMPOTENCY_TTL_SECONDS",
            &ten_years("seconds", MAX_DAYS * DAY),
            MAX_DAYS * DAY,
        )?;
        let retention_days = within(
            "ARCHIVE_RETENTION_DAYS",
            &ten_years("days", MAX_DAYS),
            MAX_DAYS,
        )?;
        let max_records = MAX_RECORD_CONCURRENCY as u64;
        let record_concurrency = within(
            "RECORD_CONCURRENCY",
            &format!("records from 1 to {max_records}"),
            max_records,
        )?
        .and_then(|n| std::num::NonZeroUsize::new(n as usize));
        // SQS holds a message back at most 12 hours from its receive; see MAX_DELAY.
        let max_delay = Backoff::MAX_DELAY.as_secs();
        let delay = |name| {
            within(
                name,
                &format!("seconds from 1 to {max_delay} (11 h 40 min)"),
                max_delay,
            )
        };
        let defaults = Backoff::default();
        let base =
            delay("RETRY_BACKOFF_BASE_SECONDS")?.map_or(defaults.base(), Duration::from_secs);
        let max = delay("RETRY_BACKOFF_MAX_SECONDS")?.map_or(defaults.max(), Duration::from_secs);
        // Both are within SQS's range, so only their order can be wrong.
        let backoff = Backoff::new(base, max).map_err(|_| {
            ConfigError::malformed(
                "RETRY_BACKOFF_BASE_SECONDS",
                format!(
                    "the first retry delay ({} s) is longer than RETRY_BACKOFF_MAX_SECONDS ({} s)",
                    base.as_secs(),
                    max.as_secs()
                ),
            )
        })?;
        let idempotency_ttl = Duration::from_secs(match (ttl_seconds, retention_days) {
            (Some(seconds), _) => seconds,
            (None, Some(days)) => (days + 1) * DAY,
            (None, None) => 31 * DAY,
        });
        Ok(RuntimeConfig {
            idempotency_table,
            idempotency_ttl,
            archive_retention_days: retention_days,
            record_concurrency,
            backoff,
        })
    }

    /// How long a retryable failure waits before its next receive:
    /// `RETRY_BACKOFF_BASE_SECONDS` (default 30) doubling with each receive up to
    /// `RETRY_BACKOFF_MAX_SECONDS` (default 900), each from 1 to 42,000.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// `RECORD_CONCURRENCY` (1 to 64), how many records of a batch one invocation handles
    /// at a time, if set: the third party's limit divided by the event source's
    /// `MaximumConcurrency` (Mailchimp takes 10 connections per account).
    pub fn record_concurrency(&self) -> Option<std::num::NonZeroUsize> {
        self.record_concurrency
    }

    /// What is wrong with an `IDEMPOTENCY_TTL_SECONDS` that ends before the archive's
    /// retention does (plus the day a replay may take): events replayed from the archive's
    /// older part find no record and are handled again. Said at start-up, not refused: a
    /// team that never replays that far back may want the cheaper table.
    pub fn ttl_warning(&self) -> Option<String> {
        let days = self.archive_retention_days?;
        let covered = Duration::from_secs((days + 1) * 24 * 3600);
        (self.idempotency_ttl < covered).then(|| {
            format!(
                "IDEMPOTENCY_TTL_SECONDS ({} s) ends before ARCHIVE_RETENTION_DAYS ({days}) \
                 plus a day ({} s): a replay of older archived events handles them again",
                self.idempotency_ttl.as_secs(),
                covered.as_secs()
            )
        })
    }

    /// The DynamoDB table of the idempotency store, if any.
    pub fn idempotency_table(&self) -> Option<&str> {
        self.idempotency_table.as_deref()
    }

    /// How long completed idempotency records are kept.
    pub fn idempotency_ttl(&self) -> Duration {
        self.idempotency_ttl
    }

    /// The idempotency store: DynamoDB when `IDEMPOTENCY_TABLE` is set, otherwise in
    /// memory, with a warning, since each Lambda instance then has its own.
    pub async fn idempotency_store(&self, env: &Env) -> Arc<dyn IdempotencyStore> {
        match &self.idempotency_table {
            Some(table) => {
                let client = aws_sdk_dynamodb::Client::new(env.aws().await);
                Arc::new(DynamoDbStore::new(client, table))
            }
            None => {
                warn!(
                    "IDEMPOTENCY_TABLE is not set: idempotency records are kept in memory, \
                     so duplicates reaching another instance or a later cold start are \
                     processed again"
                );
                Arc::new(MemoryStore::default())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_backoff_from_the_environment() {
        let backoff = |pairs: &[(&str, &str)]| {
            RuntimeConfig::from_env(&Env::from_pairs(pairs.iter().copied()))
                .map(|c| (c.backoff().base().as_secs(), c.backoff().max().as_secs()))
                .map_err(|e| e.to_string())
        };
        assert_eq!(backoff(&[]), Ok((30, 900)));
        assert_eq!(
            backoff(&[
                ("RETRY_BACKOFF_BASE_SECONDS", "5"),
                ("RETRY_BACKOFF_MAX_SECONDS", "42000")
            ]),
            Ok((5, 42_000))
        );
        assert_eq!(
            backoff(&[("RETRY_BACKOFF_BASE_SECONDS", "1000")]),
            Err("RETRY_BACKOFF_BASE_SECONDS is malformed: the first retry delay (1000 s) is longer than RETRY_BACKOFF_MAX_SECONDS (900 s)".to_owned())
        );
        assert_eq!(
            backoff(&[("RETRY_BACKOFF_MAX_SECONDS", "42001")]),
            Err("RETRY_BACKOFF_MAX_SECONDS is malformed: expected a whole number of seconds from 1 to 42000 (11 h 40 min)".to_owned())
        );
        assert!(backoff(&[("RETRY_BACKOFF_BASE_SECONDS", "0")]).is_err());
    }

    #[tokio::test]
    async fn secret_from_value_and_errors() {
        let env = Env::from_pairs([
            ("A", "value"),
            ("B", "x"),
            ("B_SECRET_ARN", "arn"),
            ("E", " "),
        ]);
        assert_eq!(env.secret("A").await.unwrap().expose(), "value");
        assert_eq!(
            env.secret("B").await.unwrap_err().to_string(),
            "set only one of B and B_SECRET_ARN"
        );
        assert_eq!(
            env.secret("E").await.unwrap_err().to_string(),
            "E (or E_SECRET_ARN) is not set"
        );
    }

    #[tokio::test]
    async fn aws_takes_region_and_credentials_from_the_environment() {
        let env = Env::from_pairs([
            ("AWS_REGION", "eu-west-3"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "example"),
        ]);
        let config = env.aws().await;
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-3"));
        let provider = format!("{:?}", config.credentials_provider().unwrap());
        assert!(
            provider.contains("EnvironmentVariableCredentialsProvider"),
            "{provider}"
        );
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(
            format!("{:?}", Secret::new("hunter2")),
            "Secret(<redacted>)"
        );
    }

    #[test]
    fn runtime_config() {
        let config =
            RuntimeConfig::from_env(&Env::from_pairs([("IDEMPOTENCY_TABLE", "t")])).unwrap();
        assert_eq!(config.idempotency_table(), Some("t"));
        assert_eq!(
            config.idempotency_ttl(),
            Duration::from_secs(31 * 24 * 3600)
        );
        let config =
            RuntimeConfig::from_env(&Env::from_pairs([("ARCHIVE_RETENTION_DAYS", "365")])).unwrap();
        assert_eq!(
            config.idempotency_ttl(),
            Duration::from_secs(366 * 24 * 3600)
        );
        assert_eq!(
            config.ttl_warning(),
            None,
            "the derived TTL covers the archive"
        );
        let config = RuntimeConfig::from_env(&Env::from_pairs([
            ("ARCHIVE_RETENTION_DAYS", "365"),
            ("IDEMPOTENCY_TTL_SECONDS", "60"),
        ]))
        .unwrap();
        assert_eq!(config.idempotency_ttl(), Duration::from_secs(60));
        assert_eq!(
            config.ttl_warning().as_deref(),
            Some(
                "IDEMPOTENCY_TTL_SECONDS (60 s) ends before ARCHIVE_RETENTION_DAYS (365) plus a \
                 day (31622400 s): a replay of older archived events handles them again"
            )
        );
        let config = RuntimeConfig::from_env(&Env::from_pairs([
            ("ARCHIVE_RETENTION_DAYS", "3650"),
            ("IDEMPOTENCY_TTL_SECONDS", "315360000"),
        ]))
        .unwrap();
        assert_eq!(
            config.idempotency_ttl(),
            Duration::from_secs(3650 * 24 * 3600)
        );
        assert!(
            config.ttl_warning().is_some(),
            "the retention, but not the day after"
        );
        let config = RuntimeConfig::from_env(&Env::from_pairs([
            ("ARCHIVE_RETENTION_DAYS", "30"),
            ("IDEMPOTENCY_TTL_SECONDS", "2678400"),
        ]))
        .unwrap();
        assert_eq!(config.ttl_warning(), None, "31 days cover 30 and a day");
    }

    #[test]
    fn endpoint_urls_are_web_urls_with_a_host() {
        let error = |text: &str| endpoint_url("X_URL", text).unwrap_err().to_string();
        assert_eq!(
            error("ftp://example.com/v1/track"),
            "X_URL is malformed: expected an https:// (or http://) URL, found the scheme \"ftp\""
        );
        assert_eq!(
            error("mailto:ops@example.com"),
            "X_URL is malformed: expected an https:// (or http://) URL, found the scheme \"mailto\""
        );
        assert_eq!(
            error("example.com/v1"),
            "X_URL is malformed: relative URL without a base"
        );
        assert!(endpoint_url("X_URL", "https://api.segment.io/v1/track").is_ok());
        assert!(endpoint_url("X_URL", "http://127.0.0.1:8080/").is_ok());
    }

    #[test]
    fn record_concurrency_from_the_environment() {
        let read = |value: &str| {
            RuntimeConfig::from_env(&Env::from_pairs([("RECORD_CONCURRENCY", value)]))
                .map(|config| config.record_concurrency().map(|n| n.get()))
                .map_err(|error| error.to_string())
        };
        assert_eq!(read("4"), Ok(Some(4)));
        assert_eq!(read(" 64 "), Ok(Some(64)));
        let malformed = Err(
            "RECORD_CONCURRENCY is malformed: expected a whole number of records from 1 to 64"
                .to_owned(),
        );
        assert_eq!(read("0"), malformed);
        assert_eq!(read("65"), malformed);
        assert_eq!(read("four"), malformed);
        let config = RuntimeConfig::from_env(&Env::from_pairs([("X", "1")])).unwrap();
        assert_eq!(config.record_concurrency(), None);
    }

    #[test]
    fn runtime_config_errors() {
        let check = |name: &str, value: &str, expected: &str| {
            let error = RuntimeConfig::from_env(&Env::from_pairs([(name, value)])).unwrap_err();
            assert_eq!(error.to_string(), expected, "{name}={value}");
        };
        let days = "ARCHIVE_RETENTION_DAYS is malformed: expected a whole number of days from \
                    1 to 3650 (10 years)";
        let seconds = "IDEMPOTENCY_TTL_SECONDS is malformed: expected a whole number of seconds \
                       from 1 to 315360000 (10 years)";
        check("ARCHIVE_RETENTION_DAYS", "0", days);
        check("ARCHIVE_RETENTION_DAYS", "3651", days);
        check("ARCHIVE_RETENTION_DAYS", "-1", days);
        // Both overflowed the clock in every record: `SystemTime::now() + ttl` panicked.
        check("ARCHIVE_RETENTION_DAYS", "213503982334601", days);
        check("IDEMPOTENCY_TTL_SECONDS", "18446744073709551615", seconds);
        check("IDEMPOTENCY_TTL_SECONDS", "315360001", seconds);
        check("IDEMPOTENCY_TTL_SECONDS", "soon", seconds);
    }
}
