//! One PutEvents entry, its size as EventBridge counts it, and how a request is filled.

use events_schema::{Event, Timestamp};
use serde_json::Value;

use super::PublishError;

/// The most entries one PutEvents request may carry.
pub const MAX_ENTRIES_PER_REQUEST: usize = 10;

/// One event ready for PutEvents: source, detail-type and the detail as JSON text, with
/// the optional resources, time and X-Ray trace header.
///
/// Made from a typed event with [`Entry::new`] (the catalogue's types are valid by
/// construction; an [`Event`] type of your own is sent as it serializes, unchecked), or
/// from JSON checked against the catalogue with [`Entry::from_json`].
///
/// Its `Debug` shows the detail's size, not the detail, which holds personal data (an
/// email address, an IP address).
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    source: &'static str,
    detail_type: &'static str,
    detail: String,
    resources: Vec<String>,
    time: Option<Timestamp>,
    trace_header: Option<String>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("source", &self.source)
            .field("detail_type", &self.detail_type)
            .field("detail_bytes", &self.detail.len())
            .field("resources", &self.resources.len())
            .field("time", &self.time)
            .field("trace_header", &self.trace_header.is_some())
            .finish()
    }
}

impl Entry {
    /// The entry for `event`: source and detail-type from its type, detail its JSON.
    ///
    /// Fails only if the event's `Serialize` implementation fails, which the events of
    /// `events_schema` never do.
    pub fn new<E: Event>(event: &E) -> Result<Entry, PublishError> {
        let detail = serde_json::to_string(event).map_err(|e| PublishError::Serialize {
            detail_type: E::DETAIL_TYPE.to_owned(),
            message: e.to_string(),
        })?;
        Ok(Entry::raw(E::SOURCE, E::DETAIL_TYPE, detail))
    }

    /// The entry for an event known only as a detail-type and a JSON detail, as the CLI
    /// reads them: the detail-type must be in the catalogue and the detail valid for it.
    pub fn from_json(detail_type: &str, detail: &Value) -> Result<Entry, PublishError> {
        let Some(event_type) = events_schema::find(detail_type) else {
            let known: Vec<&str> = events_schema::catalogue()
                .iter()
                .map(|t| t.detail_type())
                .collect();
            return Err(PublishError::UnknownDetailType {
                detail_type: detail_type.to_owned(),
                known: known.join(", "),
            });
        };
        event_type
            .validate_detail(detail)
            .map_err(|violation| PublishError::InvalidDetail {
                detail_type: event_type.detail_type().to_owned(),
                violation,
            })?;
        Ok(Entry::raw(
            event_type.source(),
            event_type.detail_type(),
            detail.to_string(),
        ))
    }

    fn raw(source: &'static str, detail_type: &'static str, detail: String) -> Entry {
        Entry {
            source,
            detail_type,
            detail,
            resources: Vec::new(),
            time: None,
            trace_header: None,
        }
    }

    /// Sets the ARNs of the resources the event is about.
    pub fn with_resources<I, S>(mut self, resources: I) -> Entry
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.resources = resources.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the event's time; without it EventBridge uses the time it accepted the event.
    pub fn with_time(mut self, time: Timestamp) -> Entry {
        self.time = Some(time);
        self
    }

    /// Sets the AWS X-Ray trace header (`Root=1-…;Parent=…;Sampled=1`).
    pub fn with_trace_header(mut self, trace_header: impl Into<String>) -> Entry {
        self.trace_header = Some(trace_header.into());
        self
    }

    /// The `source`, e.g. `com.eventfork.users`.
    pub fn source(&self) -> &str {
        self.source
    }

    /// The `detail-type`, e.g. `UserSignedUp`.
    pub fn detail_type(&self) -> &str {
        self.detail_type
    }

    /// The detail as the JSON text that is sent.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The resource ARNs; often empty.
    pub fn resources(&self) -> &[String] {
        &self.resources
    }

    /// The event's time, if set.
    pub fn time(&self) -> Option<&Timestamp> {
        self.time.as_ref()
    }

    /// The X-Ray trace header, if set.
    pub fn trace_header(&self) -> Option<&str> {
        self.trace_header.as_deref()
    }

    /// The entry's size as EventBridge counts it against the request size limit: 14 bytes
    /// for `Time` when set, plus the UTF-8 bytes of `Source`, `DetailType`, `Detail` and
    /// each of `Resources`. The trace header does not count.
    ///
    /// This is the formula of the EventBridge user guide, "Calculating PutEvents event
    /// entry size"; the JSON that goes over the wire is larger, and does not matter.
    pub fn size(&self) -> usize {
        let time = if self.time.is_some() { 14 } else { 0 };
        time + self.source.len()
            + self.detail_type.len()
            + self.detail.len()
            + self.resources.iter().map(String::len).sum::<usize>()
    }
}

/// How a list of entries is split into PutEvents requests: in input order, each request
/// holding at most [`MAX_ENTRIES_PER_REQUEST`] entries whose sizes add up to at most the
/// limit. An entry larger than the limit on its own goes in no request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    batches: Vec<Batch>,
    oversize: Vec<Oversize>,
}

/// One planned PutEvents request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    indices: Vec<usize>,
    size: usize,
}

/// An entry that exceeds the request size limit on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversize {
    /// Its index in the input.
    pub entry_idx: usize,
    /// Its size, per [`Entry::size`].
    pub size: usize,
}

impl BatchPlan {
    /// Plans the requests for `entries` under `max_request_size` bytes (inclusive: a
    /// request of exactly the limit is allowed).
    pub fn new(entries: &[Entry], max_request_size: usize) -> BatchPlan {
        BatchPlan::from_sizes(entries.iter().map(Entry::size), max_request_size)
    }

    /// Plans the requests for entries of the given sizes.
    pub fn from_sizes(
        sizes: impl IntoIterator<Item = usize>,
        max_request_size: usize,
    ) -> BatchPlan {
        let mut batches = Vec::new();
        let mut oversize = Vec::new();
        let mut current = Batch {
            indices: Vec::with_capacity(MAX_ENTRIES_PER_REQUEST),
            size: 0,
        };
        for (entry_idx, size) in sizes.into_iter().enumerate() {
            if size > max_request_size {
                oversize.push(Oversize { entry_idx, size });
                continue;
            }
            let full = current.indices.len() == MAX_ENTRIES_PER_REQUEST;
            if full || current.size + size > max_request_size {
                let next = Batch {
                    indices: Vec::with_capacity(MAX_ENTRIES_PER_REQUEST),
                    size: 0,
                };
                batches.push(std::mem::replace(&mut current, next));
            }
            current.indices.push(entry_idx);
            current.size += size;
        }
        if !current.indices.is_empty() {
            batches.push(current);
        }
        BatchPlan { batches, oversize }
    }

    /// The requests, in input order.
    pub fn batches(&self) -> &[Batch] {
        &self.batches
    }

    /// The entries that fit in no request, in input order.
    pub fn oversize(&self) -> &[Oversize] {
        &self.oversize
    }

    /// Hands the requests over.
    pub(crate) fn into_parts(self) -> (Vec<Batch>, Vec<Oversize>) {
        (self.batches, self.oversize)
    }
}

impl Batch {
    /// The input indices of the entries of this request, ascending.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// The request's size: the sum of its entries' sizes.
    pub fn size(&self) -> usize {
        self.size
    }

    pub(crate) fn into_indices(self) -> Vec<usize> {
        self.indices
    }
}

#[cfg(test)]
mod tests {
    use events_schema::UserSignedUp;
    use serde_json::json;

    use super::*;

    fn signup() -> UserSignedUp {
        UserSignedUp::builder("user-1", "ada@example.com")
            .unwrap()
            .build()
    }

    #[test]
    fn size_follows_the_documented_formula() {
        let entry = Entry::new(&signup()).unwrap();
        let base = "com.eventfork.users".len() + "UserSignedUp".len() + entry.detail().len();
        assert_eq!(entry.size(), base);
        let entry = entry
            .with_time(Timestamp::parse("2026-11-27T09:00:00Z").unwrap())
            .with_resources(["arn:aws:x:é"])
            .with_trace_header("Root=1-5759e988-bd862e3fe1be46a994272793");
        // Time counts 14 bytes whatever its text; the resource counts its UTF-8 bytes:
        // 10 ASCII and 2 for "é". The trace header does not count.
        assert_eq!(entry.size(), base + 14 + 12);
    }

    /// A log line with an entry in it never holds the detail's personal data.
    #[test]
    fn debug_leaves_the_detail_out() {
        let entry = Entry::new(&signup()).unwrap();
        let shown = format!("{entry:?}");
        assert!(!shown.contains("ada@example.com"), "{shown}");
        assert_eq!(
            shown,
            format!(
                "Entry {{ source: \"com.eventfork.users\", detail_type: \"UserSignedUp\", detail_bytes: {}, resources: 0, time: None, trace_header: false }}",
                entry.detail().len()
            )
        );
    }

    #[test]
    fn from_json_checks_the_catalogue() {
        let detail = serde_json::to_value(signup()).unwrap();
        let entry = Entry::from_json("UserSignedUp", &detail).unwrap();
        assert_eq!(entry, Entry::new(&signup()).unwrap());

        let error = Entry::from_json("UserDeleted", &detail).unwrap_err();
        assert_eq!(error.code(), "UnknownDetailType");
        assert_eq!(
            error.to_string(),
            "unknown detail-type \"UserDeleted\" (known: UserSignedUp, UserLoggedIn)"
        );

        let error = Entry::from_json("UserLoggedIn", &json!({"user_id": "u"})).unwrap_err();
        assert_eq!(error.code(), "InvalidDetail");
        assert_eq!(error.to_string(), "invalid UserLoggedIn detail");
        let source = std::error::Error::source(&error).unwrap().to_string();
        assert!(source.starts_with("$.detail"), "{source}");

        // A producer is held to the schema: a field it does not name is a mistake here,
        // even though consumers would skip it.
        let mut typo = detail.clone();
        typo["marketing_consnt"] = json!(true);
        let error = Entry::from_json("UserSignedUp", &typo).unwrap_err();
        assert_eq!(error.code(), "InvalidDetail");
        let source = std::error::Error::source(&error).unwrap().to_string();
        assert_eq!(source, "$.detail.marketing_consnt: unknown field");
    }

    fn plan(sizes: &[usize], limit: usize) -> (Vec<Vec<usize>>, Vec<usize>) {
        let plan = BatchPlan::from_sizes(sizes.iter().copied(), limit);
        let batches = plan
            .batches()
            .iter()
            .map(|b| b.indices().to_vec())
            .collect();
        let oversize = plan.oversize().iter().map(|o| o.entry_idx).collect();
        (batches, oversize)
    }

    #[test]
    fn ten_entries_fill_one_request_and_the_eleventh_starts_another() {
        let (batches, _) = plan(&[1; 10], 1000);
        assert_eq!(batches, vec![(0..10).collect::<Vec<_>>()]);
        let (batches, _) = plan(&[1; 11], 1000);
        assert_eq!(batches, vec![(0..10).collect::<Vec<_>>(), vec![10]]);
        let (batches, _) = plan(&[1; 25], 1000);
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            [10, 10, 5]
        );
    }

    #[test]
    fn requests_fill_up_to_the_size_limit_inclusive() {
        // Exactly at the limit: one request.
        assert_eq!(plan(&[60, 40], 100).0, vec![vec![0, 1]]);
        // One byte over: two requests.
        assert_eq!(plan(&[60, 41], 100).0, vec![vec![0], vec![1]]);
    }

    #[test]
    fn an_entry_over_the_limit_goes_in_no_request_and_the_others_still_go() {
        assert_eq!(plan(&[100], 100), (vec![vec![0]], vec![]));
        assert_eq!(plan(&[5, 101, 5], 100), (vec![vec![0, 2]], vec![1]));
    }

    #[test]
    fn empty_input_plans_no_request() {
        assert_eq!(plan(&[], 100), (vec![], vec![]));
    }
}
