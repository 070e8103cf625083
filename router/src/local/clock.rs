//! Time for the local bus: the system clock, or a manual clock that tests move forward, plus
//! the two small formats the wire needs (RFC 3339 times and UUID v4 ids).

use std::{
    hash::{BuildHasher, Hasher, RandomState},
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::sync::watch;

/// The time source of a bus: visibility timeouts, batching windows, retry delays, archive
/// ingestion times and idempotency TTLs all read it.
///
/// [`Clock::system`] is wall time. [`Clock::manual`] stands still until [`Clock::advance`]
/// moves it, which makes retries and visibility timeouts deterministic in tests. Clones
/// share the same time.
#[derive(Clone, Debug)]
pub struct Clock {
    inner: Arc<ClockInner>,
}

#[derive(Debug)]
enum ClockInner {
    System,
    Manual {
        now_ms: AtomicI64,
        changed: watch::Sender<i64>,
    },
}

impl Clock {
    /// Wall-clock time.
    pub fn system() -> Clock {
        Clock {
            inner: Arc::new(ClockInner::System),
        }
    }

    /// A clock that starts at `start_ms` (milliseconds since the Unix epoch) and only moves
    /// when [`Clock::advance`] is called.
    pub fn manual(start_ms: i64) -> Clock {
        let (changed, _) = watch::channel(start_ms);
        Clock {
            inner: Arc::new(ClockInner::Manual {
                now_ms: AtomicI64::new(start_ms),
                changed,
            }),
        }
    }

    /// True for a [`Clock::manual`] clock.
    pub fn is_manual(&self) -> bool {
        matches!(*self.inner, ClockInner::Manual { .. })
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match &*self.inner {
            ClockInner::System => system_now_ms(),
            ClockInner::Manual { now_ms, .. } => now_ms.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock forward and wakes everything waiting on it. On the system clock
    /// this does nothing: wall time cannot be moved.
    pub fn advance(&self, by: Duration) {
        if let ClockInner::Manual { now_ms, changed } = &*self.inner {
            let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
            let now = now_ms.fetch_add(by, Ordering::SeqCst).saturating_add(by);
            changed.send_replace(now);
        }
    }

    /// Waits until the clock reads at least `deadline_ms`.
    pub async fn sleep_until(&self, deadline_ms: i64) {
        match &*self.inner {
            ClockInner::System => {
                let wait = deadline_ms.saturating_sub(system_now_ms());
                if wait > 0 {
                    tokio::time::sleep(Duration::from_millis(wait as u64)).await;
                }
            }
            ClockInner::Manual { changed, .. } => {
                let mut changes = changed.subscribe();
                // The watch holds the latest time, so an advance between the check and the
                // wait is never missed.
                let _ = changes.wait_for(|now| *now >= deadline_ms).await;
            }
        }
    }
}

fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Formats milliseconds since the epoch as EventBridge writes `time`: RFC 3339 in UTC, whole
/// seconds (`2026-11-27T09:00:00Z`).
pub(crate) fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Parses the RFC 3339 forms EventBridge writes and accepts (`2026-11-27T09:00:00Z`,
/// optional fraction, `Z` or `+00:00`) into milliseconds since the epoch.
pub(crate) fn parse_rfc3339(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' {
        return None;
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') || bytes[16] != b':' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = padded.parse::<i64>().ok()?;
        rest = &fraction[digits..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            if rest.get(3..4)? != ":" || rest.len() != 6 {
                return None;
            }
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(secs * 1000 + millis)
}

// Howard Hinnant's `civil_from_days` and `days_from_civil` (public-domain algorithms,
// http://howardhinnant.github.io/date_algorithms.html), written out for i64.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A random UUID v4 in its canonical lowercase form, for event and message ids.
///
/// The 122 random bits come from std's randomly keyed SipHash (`RandomState`, seeded from the
/// OS once per process) over a process-wide counter and the time: unique and unpredictable
/// enough for ids, without a dependency. They are not for secrets.
pub(crate) fn uuid_v4() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static KEYS: RandomState = RandomState::new();
    }
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let (high, low) = KEYS.with(|keys| {
        let mut first = keys.build_hasher();
        first.write_u64(count);
        first.write_u64(nanos);
        let high = first.finish();
        let mut second = keys.build_hasher();
        second.write_u64(high);
        second.write_u64(count ^ 0x9e37_79b9_7f4a_7c15);
        (high, second.finish())
    });
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // Version 4.
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant.
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn formats_and_parses_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_770_000_999), "2026-11-27T09:00:00Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(
            parse_rfc3339("2026-11-27T09:00:00Z"),
            Some(1_795_770_000_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-27T10:00:00.5+01:00"),
            Some(1_795_770_000_500)
        );
        assert_eq!(parse_rfc3339("2026-13-27T09:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2026-11-27T09:00:00"), None);
    }

    #[test]
    fn uuids_are_v4_and_distinct() {
        let ids: HashSet<String> = (0..10_000).map(|_| uuid_v4()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            let parts: Vec<&str> = id.split('-').collect();
            let lengths: Vec<usize> = parts.iter().map(|p| p.len()).collect();
            assert_eq!(lengths, [8, 4, 4, 4, 12], "{id}");
            assert!(parts[2].starts_with('4'), "{id}");
            assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{id}");
            assert!(id.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()));
        }
    }

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_on_advance() {
        let clock = Clock::manual(1_000);
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move {
                clock.sleep_until(6_000).await;
                clock.now_ms()
            }
        });
        clock.advance(Duration::from_secs(2));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(3));
        assert_eq!(sleeper.await.unwrap(), 6_000);
    }
}
