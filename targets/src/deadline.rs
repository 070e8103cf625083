//! [`Deadline`]: when the current invocation must have answered.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// The time a request is given at the least: an attempt, or a record, that could not
/// start with this much left is not started. One cut off by the deadline may have reached
/// the service, and its record's redelivery would repeat the side effect.
pub(crate) const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(500);

/// The moment by which the current invocation must be done, retries included.
///
/// On Lambda it comes from the invocation's `Lambda-Runtime-Deadline-Ms`; elsewhere it is
/// a fixed time from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    instant: Instant,
    wall_clock: SystemTime,
}

impl Deadline {
    /// The deadline `duration` from now.
    pub fn after(duration: Duration) -> Deadline {
        Deadline {
            instant: Instant::now() + duration,
            wall_clock: SystemTime::now() + duration,
        }
    }

    /// The deadline at `wall_clock`; a time in the past is a deadline that has passed.
    pub fn at(wall_clock: SystemTime) -> Deadline {
        let remaining = wall_clock
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Deadline {
            instant: Instant::now() + remaining,
            wall_clock,
        }
    }

    /// The deadline of a Lambda invocation.
    pub fn of_invocation(context: &lambda_runtime::Context) -> Deadline {
        Deadline::at(context.deadline())
    }

    /// The time left, zero once passed.
    pub fn remaining(&self) -> Duration {
        self.instant.saturating_duration_since(Instant::now())
    }

    /// Whether `wait` from now ends before the deadline.
    pub fn allows(&self, wait: Duration) -> bool {
        Instant::now() + wait < self.instant
    }

    /// The deadline `margin` earlier.
    pub fn earlier_by(&self, margin: Duration) -> Deadline {
        Deadline {
            instant: self
                .instant
                .checked_sub(margin)
                .unwrap_or_else(Instant::now),
            wall_clock: self
                .wall_clock
                .checked_sub(margin)
                .unwrap_or(SystemTime::UNIX_EPOCH),
        }
    }

    /// The deadline on the monotonic clock, for timers.
    pub fn instant(&self) -> Instant {
        self.instant
    }

    /// The deadline on the wall clock, for records shared with other processes.
    pub fn wall_clock(&self) -> SystemTime {
        self.wall_clock
    }
}
