//! The routing step: event JSON bytes in, the matching rules out.
//!
//! This is the one seam between the local bus and the pattern engine: `RuleMatcher` wraps
//! the engine's [`Matcher`]; everything else in `local` only calls `Routes::route` and
//! `test_pattern`. The rules of each bus are compiled into one matcher when the bus opens,
//! so an invalid pattern in the template stops `local up` with the engine's error.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::topology::Topology;
use crate::pattern::{Matcher, Pattern, RuleId};

/// The enabled rules of every bus, compiled.
#[derive(Debug)]
pub(crate) struct Routes {
    buses: BTreeMap<String, BusRoutes>,
}

#[derive(Debug)]
struct BusRoutes {
    matcher: RuleMatcher,
    /// Rule name → the queues it sends to.
    queues: BTreeMap<String, Vec<String>>,
    archive: Archive,
}

/// Which events of a bus its archives keep.
#[derive(Debug)]
enum Archive {
    /// No archive has the bus as its source.
    Nothing,
    /// An archive without an event pattern keeps them all.
    Everything,
    /// The events that match one of the archives' patterns.
    Matching(Box<RuleMatcher>),
}

/// Where one event goes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) rules: Vec<String>,
    /// One entry per matching rule target: two rules that send the same event to one queue
    /// put two messages in it, as EventBridge does.
    pub(crate) queues: Vec<String>,
    /// Whether an archive of the bus keeps the event.
    pub(crate) archived: bool,
}

impl Routes {
    pub(crate) fn new(topology: &Topology) -> Result<Routes, String> {
        let mut by_bus: BTreeMap<String, Vec<(String, Json, Vec<String>)>> = BTreeMap::new();
        for bus in [super::topology::DEFAULT_BUS, topology.bus_name()] {
            by_bus.entry(bus.to_owned()).or_default();
        }
        for rule in topology.rules().iter().filter(|r| r.is_enabled()) {
            by_bus.entry(rule.bus().to_owned()).or_default().push((
                rule.name().to_owned(),
                rule.pattern().clone(),
                rule.queues().to_vec(),
            ));
        }
        let mut buses = BTreeMap::new();
        for (bus, rules) in by_bus {
            let matcher = RuleMatcher::new(
                "rule",
                rules.iter().map(|(name, pattern, _)| (name, pattern)),
            )
            .map_err(|error| format!("bus {bus}: {error}"))?;
            let queues = rules
                .into_iter()
                .map(|(name, _, queues)| (name, queues))
                .collect();
            let archive = Routes::archive(topology, &bus)?;
            buses.insert(
                bus,
                BusRoutes {
                    matcher,
                    queues,
                    archive,
                },
            );
        }
        Ok(Routes { buses })
    }

    /// What the archives of `bus` keep.
    fn archive(topology: &Topology, bus: &str) -> Result<Archive, String> {
        let archives: Vec<_> = topology
            .archives()
            .iter()
            .filter(|archive| archive.bus == bus)
            .collect();
        if archives.is_empty() {
            return Ok(Archive::Nothing);
        }
        let mut patterns = Vec::new();
        for archive in archives {
            match &archive.pattern {
                None => return Ok(Archive::Everything),
                Some(pattern) => patterns.push((&archive.name, pattern)),
            }
        }
        let matcher =
            RuleMatcher::new("archive", patterns).map_err(|error| format!("bus {bus}: {error}"))?;
        Ok(Archive::Matching(Box::new(matcher)))
    }

    /// The rules of `bus` that match `event` (a full EventBridge event as JSON bytes).
    pub(crate) fn route(&self, bus: &str, event: &[u8]) -> Result<Route, String> {
        let Some(routes) = self.buses.get(bus) else {
            return Ok(Route::default());
        };
        let mut route = Route {
            archived: match &routes.archive {
                Archive::Nothing => false,
                Archive::Everything => true,
                Archive::Matching(matcher) => !matcher.matches(event)?.is_empty(),
            },
            ..Route::default()
        };
        for rule in routes.matcher.matches(event)? {
            route.rules.push(rule.to_owned());
            route
                .queues
                .extend(routes.queues.get(rule).into_iter().flatten().cloned());
        }
        Ok(route)
    }
}

/// Whether `pattern` (JSON text) matches `event` (JSON text), for TestEventPattern. The
/// error is the pattern's error message.
pub(crate) fn test_pattern(pattern: &str, event: &[u8]) -> Result<bool, PatternProblem> {
    let pattern =
        Pattern::parse(pattern).map_err(|error| PatternProblem::Pattern(error.to_string()))?;
    let matcher = RuleMatcher::from_pattern(pattern).map_err(PatternProblem::Pattern)?;
    // EventBridge tests patterns against whole events: the envelope's fields must be there.
    let envelope: serde_json::Map<String, Json> = serde_json::from_slice(event)
        .map_err(|_| PatternProblem::Event("the event is not a JSON object".to_owned()))?;
    let missing: Vec<&str> = [
        "id",
        "account",
        "source",
        "time",
        "region",
        "resources",
        "detail-type",
    ]
    .into_iter()
    .filter(|field| !envelope.contains_key(*field))
    .collect();
    if !missing.is_empty() {
        return Err(PatternProblem::Event(format!(
            "the event lacks {}",
            missing.join(", ")
        )));
    }
    let hits = matcher.matches(event).map_err(PatternProblem::Event)?;
    Ok(!hits.is_empty())
}

/// Why TestEventPattern could not answer.
#[derive(Debug)]
pub(crate) enum PatternProblem {
    Pattern(String),
    Event(String),
}

/// The engine's [`Matcher`] over one bus's rules, with errors as text for the HTTP layer.
#[derive(Debug)]
struct RuleMatcher {
    matcher: Matcher,
}

impl RuleMatcher {
    /// The matcher of `patterns`, each named by a `kind` (rule, archive) and a name.
    fn new<'a>(
        kind: &str,
        patterns: impl IntoIterator<Item = (&'a String, &'a Json)>,
    ) -> Result<Self, String> {
        let mut builder = Matcher::builder();
        for (name, pattern) in patterns {
            let pattern =
                Pattern::from_value(pattern).map_err(|error| format!("{kind} {name}: {error}"))?;
            builder.add(RuleId::from(name.as_str()), pattern);
        }
        let matcher = builder.build().map_err(|error| error.to_string())?;
        Ok(RuleMatcher { matcher })
    }

    fn from_pattern(pattern: Pattern) -> Result<Self, String> {
        let mut builder = Matcher::builder();
        builder.add(RuleId::from("TestEventPattern"), pattern);
        let matcher = builder.build().map_err(|error| error.to_string())?;
        Ok(RuleMatcher { matcher })
    }

    fn matches(&self, event: &[u8]) -> Result<Vec<&str>, String> {
        let hits = self
            .matcher
            .matches(event)
            .map_err(|error| error.to_string())?;
        Ok(hits.into_iter().map(RuleId::as_str).collect())
    }
}
