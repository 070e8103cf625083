//! Replaying archived events on AWS: `StartReplay` from the bus's archive back onto the
//! bus, optionally only to some rules, and waiting for it to finish.
//!
//! Replayed events carry `replay-name`; our targets process them like live ones, and the
//! idempotency store, keyed by each event's occurrence, keeps them from posting twice. A [`ReplayPlan`] is
//! resolved and checked before anything starts, so `--dry-run` shows exactly what would be
//! replayed.
//!
//! ```no_run
//! # async fn example(sdk_config: &aws_config::SdkConfig) -> Result<(), router::replay::ReplayError> {
//! use std::time::Duration;
//! use router::replay::{ReplayRequest, Replayer, parse_time};
//!
//! let replayer = Replayer::new(sdk_config);
//! let request = ReplayRequest::new(
//!     "eventfork-archive",
//!     parse_time("2026-11-27T09:00:00Z")?,
//!     parse_time("2026-11-27T10:00:00Z")?,
//! )
//! .rule("eventfork-slack");
//! let plan = replayer.plan(&request).await?;
//! replayer.start(&plan).await?;
//! let status = replayer.wait(plan.name(), Duration::from_secs(5), Duration::from_secs(3600)).await?;
//! println!("{}: {:?}", plan.name(), status.state());
//! # Ok(())
//! # }
//! ```

use std::{
    fmt,
    time::{Duration, SystemTime},
};

use aws_sdk_eventbridge::{
    error::{ProvideErrorMetadata, SdkError},
    primitives::{DateTime, DateTimeFormat},
    types::{ReplayDestination, ReplayState},
};

/// A replay could not be planned, started or followed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// A time was not RFC 3339.
    #[error("invalid time {text:?}: {reason} (RFC 3339, e.g. 2026-11-27T09:00:00Z)")]
    BadTime {
        /// The text given.
        text: String,
        /// What is wrong with it, e.g. `day out of range for month`.
        reason: String,
    },
    /// The window is empty or reaches into the future.
    #[error("invalid window: {0}")]
    BadWindow(String),
    /// The replay name breaks EventBridge's rules.
    #[error("invalid replay name {0:?}: 1 to 64 characters of A-Z a-z 0-9 . - _")]
    BadName(String),
    /// EventBridge refused a call or could not be reached.
    #[error("{operation} failed: {code}: {message}")]
    Aws {
        /// The API operation, e.g. `StartReplay`.
        operation: &'static str,
        /// The error code, e.g. `ResourceNotFoundException`.
        code: String,
        /// The service's message, with its causes.
        message: String,
    },
    /// A replay of this name exists already: names are unique in an account's region, and
    /// kept after the replay ends.
    #[error("a replay named {name:?} exists already ({state})")]
    NameTaken {
        /// The name.
        name: String,
        /// That replay's state.
        state: String,
    },
    /// An archive or rule given by ARN is not where this configuration looks: another
    /// region or account for the archive, another bus for a rule.
    #[error("{given} is not {expected}: {hint}")]
    Elsewhere {
        /// The ARN given.
        given: String,
        /// What it should have been.
        expected: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// The replay did not finish in time; it goes on in EventBridge.
    #[error(
        "replay {name} is still {state} after {} s; it goes on in EventBridge (stop it with `aws events cancel-replay --replay-name {name}{}`)",
        waited.as_secs(),
        region.as_ref().map(|region| format!(" --region {region}")).unwrap_or_default()
    )]
    StillRunning {
        /// The replay's name.
        name: String,
        /// Its last state.
        state: String,
        /// How long we waited.
        waited: Duration,
        /// The region of the replay, for the command that cancels it.
        region: Option<String>,
    },
}

fn aws_error<E>(operation: &'static str, error: SdkError<E>) -> ReplayError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = error
        .as_service_error()
        .and_then(|e| e.code())
        .unwrap_or("RequestError")
        .to_owned();
    // The service's own message when it sent one ("Replay r1 already exists."); else the
    // causes ("dispatch failure: … Connection refused").
    let message = match error.as_service_error().and_then(|e| e.message()) {
        Some(message) => message.to_owned(),
        None => crate::publish::error_causes(&error),
    };
    ReplayError::Aws {
        operation,
        code,
        message,
    }
}

/// How long events may take to reach an archive: a replay whose window ends later than
/// this before now may miss the latest (EventBridge's advice is to wait).
pub const ARCHIVE_DELAY: Duration = Duration::from_secs(600);

/// Parses an RFC 3339 time such as `2026-11-27T09:00:00Z` or `2026-11-27T10:00:00+01:00`.
pub fn parse_time(text: &str) -> Result<SystemTime, ReplayError> {
    DateTime::from_str(text, DateTimeFormat::DateTimeWithOffset)
        .ok()
        .and_then(|t| SystemTime::try_from(t).ok())
        .ok_or_else(|| ReplayError::BadTime {
            text: text.to_owned(),
            // The catalogue's own reading of event times says what is wrong.
            reason: match events_schema::Timestamp::parse(text) {
                Err(events_schema::FieldError::InvalidTimestamp { reason, .. }) => {
                    reason.to_owned()
                }
                Err(error) => error.to_string(),
                Ok(_) => "not a time AWS takes".to_owned(),
            },
        })
}

/// `time` as RFC 3339 in UTC, as the replay's window and messages write it.
pub fn format_time(time: SystemTime) -> String {
    DateTime::from(time)
        .fmt(DateTimeFormat::DateTime)
        .unwrap_or_else(|_| format!("{time:?}"))
}

/// What to replay: an archive (name or ARN), a time window of event times, and optionally
/// the rules (names or ARNs on the archive's bus) to replay to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRequest {
    archive: String,
    from: SystemTime,
    to: SystemTime,
    rules: Vec<String>,
    name: Option<String>,
}

impl ReplayRequest {
    /// Replays the events of `archive` whose time is in `[from, to)` to every rule.
    pub fn new(archive: impl Into<String>, from: SystemTime, to: SystemTime) -> ReplayRequest {
        ReplayRequest {
            archive: archive.into(),
            from,
            to,
            rules: Vec::new(),
            name: None,
        }
    }

    /// Replays only to this rule (name or ARN); may be given several times.
    pub fn rule(mut self, rule: impl Into<String>) -> ReplayRequest {
        self.rules.push(rule.into());
        self
    }

    /// Names the replay (default: `eventfork-<start time>`).
    pub fn name(mut self, name: impl Into<String>) -> ReplayRequest {
        self.name = Some(name.into());
        self
    }
}

/// A checked replay, with every name resolved to an ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayPlan {
    name: String,
    archive_arn: String,
    bus_arn: String,
    from: SystemTime,
    to: SystemTime,
    rule_arns: Vec<String>,
    n_archived_events: i64,
}

/// The region of an ARN (`arn:aws:events:eu-west-1:…`), if `text` is one that names it.
fn arn_region(text: &str) -> Option<&str> {
    let mut parts = text.strip_prefix("arn:")?.split(':');
    let region = parts.nth(2)?;
    (!region.is_empty()).then_some(region)
}

/// The bus name in a bus ARN: all after `:event-bus/`, slashes included, as a partner
/// bus's name has them (`aws.partner/saas.com/abc`).
fn bus_name_of(bus_arn: &str) -> &str {
    bus_arn
        .split_once(":event-bus/")
        .map_or(bus_arn, |(_, name)| name)
}

impl ReplayPlan {
    /// The replay's name; replayed events carry it as `replay-name`.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The archive's ARN.
    pub fn archive_arn(&self) -> &str {
        &self.archive_arn
    }
    /// The bus the events go back to: the archive's own (EventBridge replays to it only).
    pub fn bus_arn(&self) -> &str {
        &self.bus_arn
    }
    /// The start of the window (event time, included).
    pub fn from(&self) -> SystemTime {
        self.from
    }
    /// The end of the window (event time, excluded).
    pub fn to(&self) -> SystemTime {
        self.to
    }
    /// How far a replay that has reached `last_replayed` is through the window, in percent.
    pub fn percent_done(&self, last_replayed: SystemTime) -> u32 {
        let whole = self.to.duration_since(self.from).unwrap_or_default();
        let done = last_replayed.duration_since(self.from).unwrap_or_default();
        if whole.is_zero() {
            return 100;
        }
        ((done.as_secs_f64() / whole.as_secs_f64()) * 100.0).clamp(0.0, 100.0) as u32
    }
    /// The rules replayed to; empty means every rule on the bus.
    pub fn rule_arns(&self) -> &[String] {
        &self.rule_arns
    }
    /// How many events the whole archive holds (not only the window; EventBridge updates
    /// the count about daily).
    pub fn n_archived_events(&self) -> i64 {
        self.n_archived_events
    }
    /// Whether the window ends less than [`ARCHIVE_DELAY`] ago: events from its last
    /// minutes may not have reached the archive yet, and would be missed.
    pub fn ends_too_recently(&self) -> bool {
        self.to + ARCHIVE_DELAY > SystemTime::now()
    }
}

impl fmt::Display for ReplayPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "replay {} of {} ({} archived events) from {} to {} onto {}",
            self.name,
            self.archive_arn,
            self.n_archived_events,
            format_time(self.from),
            format_time(self.to),
            self.bus_arn
        )?;
        if self.rule_arns.is_empty() {
            write!(f, ", every rule")
        } else {
            write!(f, ", rules {}", self.rule_arns.join(", "))
        }
    }
}

/// Where a replay stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayStatus {
    state: String,
    reason: Option<String>,
    last_replayed: Option<SystemTime>,
}

impl ReplayStatus {
    fn new(
        state: Option<&ReplayState>,
        reason: Option<&str>,
        last_replayed: Option<&DateTime>,
    ) -> ReplayStatus {
        ReplayStatus {
            state: state.map_or("STARTING", ReplayState::as_str).to_owned(),
            reason: reason.map(str::to_owned),
            last_replayed: last_replayed.and_then(|t| SystemTime::try_from(*t).ok()),
        }
    }

    /// `STARTING`, `RUNNING`, `CANCELLING`, `COMPLETED`, `CANCELLED` or `FAILED`.
    pub fn state(&self) -> &str {
        &self.state
    }
    /// Why it is in that state, when EventBridge says.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }
    /// The event time the replay has reached.
    pub fn last_replayed(&self) -> Option<SystemTime> {
        self.last_replayed
    }
    /// True once the replay can change no more.
    pub fn is_final(&self) -> bool {
        matches!(self.state.as_str(), "COMPLETED" | "CANCELLED" | "FAILED")
    }
    /// True when it completed.
    pub fn is_completed(&self) -> bool {
        self.state == "COMPLETED"
    }
}

/// How many status checks in a row may fail before [`Replayer::wait_with`] gives up.
pub const MAX_FAILED_POLLS: u32 = 3;

/// Starts and follows replays.
#[derive(Debug, Clone)]
pub struct Replayer {
    client: aws_sdk_eventbridge::Client,
}

impl Replayer {
    /// A replayer using the SDK configuration (credentials, region, `AWS_ENDPOINT_URL`).
    pub fn new(sdk_config: &aws_config::SdkConfig) -> Replayer {
        Replayer {
            client: aws_sdk_eventbridge::Client::new(sdk_config),
        }
    }

    /// Resolves and checks `request` without starting anything.
    pub async fn plan(&self, request: &ReplayRequest) -> Result<ReplayPlan, ReplayError> {
        if request.from >= request.to {
            return Err(ReplayError::BadWindow(format!(
                "its start {} is not before its end {}",
                format_time(request.from),
                format_time(request.to)
            )));
        }
        if request.to > SystemTime::now() + Duration::from_secs(60) {
            return Err(ReplayError::BadWindow(format!(
                "its end {} is in the future",
                format_time(request.to)
            )));
        }
        let name = match &request.name {
            Some(name) => name.clone(),
            None => format!(
                "eventfork-{}",
                format_time(SystemTime::now()).replace([':', '-'], "")
            ),
        };
        let valid_name = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid_name {
            return Err(ReplayError::BadName(name));
        }
        // An ARN of another region cannot be found from this one: say so before asking.
        if let Some(arn_region) = arn_region(&request.archive)
            && let Some(region) = self.client.config().region()
            && arn_region != region.as_ref()
        {
            return Err(ReplayError::Elsewhere {
                given: request.archive.clone(),
                expected: format!("in this configuration's region {region}"),
                hint: "set AWS_REGION to the ARN's region",
            });
        }
        // Found now, not by StartReplay after the plan was shown as valid.
        match self
            .client
            .describe_replay()
            .replay_name(&name)
            .send()
            .await
        {
            Ok(existing) => {
                return Err(ReplayError::NameTaken {
                    name,
                    state: existing
                        .state()
                        .map_or("state unknown", ReplayState::as_str)
                        .to_owned(),
                });
            }
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) => {}
            Err(error) => return Err(aws_error("DescribeReplay", error)),
        }
        let archive_name = request
            .archive
            .rsplit('/')
            .next()
            .unwrap_or(&request.archive);
        let archive = self
            .client
            .describe_archive()
            .archive_name(archive_name)
            .send()
            .await
            .map_err(|e| aws_error("DescribeArchive", e))?;
        let archive_arn = archive.archive_arn().unwrap_or_default().to_owned();
        // DescribeArchive takes a name: an ARN's region and account must be this client's.
        if request.archive.starts_with("arn:") && request.archive != archive_arn {
            return Err(ReplayError::Elsewhere {
                given: request.archive.clone(),
                expected: format!("the archive of that name here, {archive_arn}"),
                hint: "use the region and account of the ARN (AWS_REGION, credentials)",
            });
        }
        let bus_arn = archive.event_source_arn().unwrap_or_default().to_owned();
        let bus_name = bus_name_of(&bus_arn).to_owned();
        let mut rule_arns = Vec::new();
        for rule in &request.rules {
            // A rule ARN reads `…:rule/<bus>/<name>`, or `…:rule/<name>` on the default bus;
            // it must be on the archive's bus, and exist.
            let name = match rule.split_once(":rule/") {
                None => rule.as_str(),
                Some((_, path)) => {
                    let (bus, name) = path.rsplit_once('/').unwrap_or(("default", path));
                    if bus != bus_name {
                        return Err(ReplayError::Elsewhere {
                            given: rule.clone(),
                            expected: format!("a rule on the archive's bus {bus_name}"),
                            hint: "an archive replays onto its own bus only",
                        });
                    }
                    name
                }
            };
            let described = self
                .client
                .describe_rule()
                .name(name)
                .event_bus_name(&bus_name)
                .send()
                .await
                .map_err(|e| aws_error("DescribeRule", e))?;
            let arn = described.arn().unwrap_or_default().to_owned();
            if rule.starts_with("arn:") && *rule != arn {
                return Err(ReplayError::Elsewhere {
                    given: rule.clone(),
                    expected: format!("the rule of that name here, {arn}"),
                    hint: "use the region and account of the ARN (AWS_REGION, credentials)",
                });
            }
            // A rule given twice (by name and by ARN) is one filter.
            if !rule_arns.contains(&arn) {
                rule_arns.push(arn);
            }
        }
        Ok(ReplayPlan {
            name,
            archive_arn,
            bus_arn,
            from: request.from,
            to: request.to,
            rule_arns,
            n_archived_events: archive.event_count(),
        })
    }

    /// Starts the replay.
    pub async fn start(&self, plan: &ReplayPlan) -> Result<ReplayStatus, ReplayError> {
        let mut destination = ReplayDestination::builder().arn(&plan.bus_arn);
        for rule in &plan.rule_arns {
            destination = destination.filter_arns(rule);
        }
        let destination = destination.build().map_err(|e| ReplayError::Aws {
            operation: "StartReplay",
            code: "InvalidDestination".to_owned(),
            message: e.to_string(),
        })?;
        let output = self
            .client
            .start_replay()
            .replay_name(&plan.name)
            .description("started by eventfork replay")
            .event_source_arn(&plan.archive_arn)
            .event_start_time(DateTime::from(plan.from))
            .event_end_time(DateTime::from(plan.to))
            .destination(destination)
            .send()
            .await
            .map_err(|e| aws_error("StartReplay", e))?;
        Ok(ReplayStatus::new(
            output.state(),
            output.state_reason(),
            None,
        ))
    }

    /// The replay's current status.
    pub async fn status(&self, name: &str) -> Result<ReplayStatus, ReplayError> {
        let output = self
            .client
            .describe_replay()
            .replay_name(name)
            .send()
            .await
            .map_err(|e| aws_error("DescribeReplay", e))?;
        Ok(ReplayStatus::new(
            output.state(),
            output.state_reason(),
            output.event_last_replayed_time(),
        ))
    }

    /// Polls every `poll` until the replay ends or `timeout` passes.
    pub async fn wait(
        &self,
        name: &str,
        poll: Duration,
        timeout: Duration,
    ) -> Result<ReplayStatus, ReplayError> {
        self.wait_with(name, poll, timeout, |_| {}).await
    }

    /// As [`Replayer::wait`], showing each status that is not final to `progress`. A failed
    /// status check is tried again at the next poll; only [`MAX_FAILED_POLLS`] in a row end
    /// the wait (the replay goes on in EventBridge either way).
    pub async fn wait_with(
        &self,
        name: &str,
        poll: Duration,
        timeout: Duration,
        mut progress: impl FnMut(&ReplayStatus),
    ) -> Result<ReplayStatus, ReplayError> {
        let started = tokio::time::Instant::now();
        let mut n_failed = 0;
        loop {
            let status = match self.status(name).await {
                Ok(status) => {
                    n_failed = 0;
                    status
                }
                Err(error) => {
                    n_failed += 1;
                    let left = timeout.saturating_sub(started.elapsed());
                    if n_failed >= MAX_FAILED_POLLS || left.is_zero() {
                        return Err(error);
                    }
                    tokio::time::sleep(poll.min(left)).await;
                    continue;
                }
            };
            if status.is_final() {
                return Ok(status);
            }
            progress(&status);
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(ReplayError::StillRunning {
                    name: name.to_owned(),
                    state: status.state,
                    waited: started.elapsed(),
                    region: self.client.config().region().map(ToString::to_string),
                });
            }
            tokio::time::sleep(poll.min(left)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_regions() {
        assert_eq!(
            arn_region("arn:aws:events:eu-west-1:123456789012:archive/prod"),
            Some("eu-west-1")
        );
        assert_eq!(arn_region("prod"), None);
        assert_eq!(arn_region("arn:aws:iam::123456789012:role/x"), None);
    }

    /// A partner bus's name has slashes: the rule checks compared the archive's bus with
    /// its last part only, and refused the bus's own rules (an audit).
    #[test]
    fn bus_names_keep_their_slashes() {
        assert_eq!(
            bus_name_of("arn:aws:events:us-east-1:123456789012:event-bus/aws.partner/saas.com/abc"),
            "aws.partner/saas.com/abc"
        );
        assert_eq!(
            bus_name_of("arn:aws:events:us-east-1:123456789012:event-bus/eventfork"),
            "eventfork"
        );
    }

    #[test]
    fn progress_is_the_share_of_the_window_replayed() {
        let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let plan = ReplayPlan {
            name: "r".into(),
            archive_arn: String::new(),
            bus_arn: String::new(),
            rule_arns: Vec::new(),
            n_archived_events: 0,
            from: at(1_000),
            to: at(2_000),
        };
        assert_eq!(plan.percent_done(at(1_250)), 25);
        assert_eq!(plan.percent_done(at(500)), 0);
        assert_eq!(plan.percent_done(at(9_000)), 100);
    }

    #[test]
    fn times_parse_as_rfc3339() {
        let time = parse_time("2026-11-27T09:00:00Z").unwrap();
        assert_eq!(format_time(time), "2026-11-27T09:00:00Z");
        let offset = parse_time("2026-11-27T10:00:00+01:00").unwrap();
        assert_eq!(format_time(offset), "2026-11-27T09:00:00Z");
        let error = parse_time("yesterday").unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid time \"yesterday\": expected YYYY-MM-DDTHH:MM:SS then Z or an offset \
             (RFC 3339, e.g. 2026-11-27T09:00:00Z)"
        );
        // What is wrong is said, as the catalogue's own reading of times says it.
        for (text, reason) in [
            ("2026-02-30T00:00:00Z", "day out of range"),
            ("2026-11-27T24:00:00Z", "time of day out of range"),
        ] {
            let error = parse_time(text).unwrap_err().to_string();
            assert!(error.contains(&format!(": {reason} (RFC 3339")), "{error}");
        }
    }
}
