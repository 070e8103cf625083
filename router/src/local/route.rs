//! The routing step: event JSON bytes in, the matching rules out.
//!
//! This is the one seam between the local bus and the pattern engine. `RuleMatcher` wraps
//! the engine's `Matcher`; everything else in `local` only calls `Routes::route` and
//! `test_pattern`.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::topology::Topology;

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
}

/// Where one event goes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) rules: Vec<String>,
    /// One entry per matching rule target: two rules that send the same event to one queue
    /// put two messages in it, as EventBridge does.
    pub(crate) queues: Vec<String>,
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
            let matcher = RuleMatcher::new(rules.iter().map(|(name, pattern, _)| (name, pattern)))
                .map_err(|error| format!("bus {bus}: {error}"))?;
            let queues = rules
                .into_iter()
                .map(|(name, _, queues)| (name, queues))
                .collect();
            buses.insert(bus, BusRoutes { matcher, queues });
        }
        Ok(Routes { buses })
    }

    /// The rules of `bus` that match `event` (a full EventBridge event as JSON bytes).
    pub(crate) fn route(&self, bus: &str, event: &[u8]) -> Result<Route, String> {
        let Some(routes) = self.buses.get(bus) else {
            return Ok(Route::default());
        };
        let mut route = Route::default();
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
    let pattern: Json = serde_json::from_str(pattern)
        .map_err(|e| PatternProblem::Pattern(format!("pattern is not valid JSON: {e}")))?;
    let name = String::from("TestEventPattern");
    let matcher = RuleMatcher::new([(&name, &pattern)]).map_err(PatternProblem::Pattern)?;
    let hits = matcher.matches(event).map_err(PatternProblem::Event)?;
    Ok(!hits.is_empty())
}

/// Why TestEventPattern could not answer.
#[derive(Debug)]
pub(crate) enum PatternProblem {
    Pattern(String),
    Event(String),
}

// TEMPORARY (issue #7): a naive matcher standing in for `router::pattern::Matcher` until
// the engine lands in main. It supports exact values, `prefix`, `exists` and
// `anything-but` on scalars, which is all the local tests use. Swapping in the engine means
// replacing the body of `RuleMatcher` with:
//     let mut builder = Matcher::builder();
//     builder.add(RuleId::from(name), Pattern::from_value(pattern)?); ... builder.build()?
//     matcher.matches(event)?.into_iter().map(RuleId::as_str)
#[derive(Debug)]
struct RuleMatcher {
    rules: Vec<(String, Json)>,
}

impl RuleMatcher {
    fn new<'a>(rules: impl IntoIterator<Item = (&'a String, &'a Json)>) -> Result<Self, String> {
        let mut compiled = Vec::new();
        for (name, pattern) in rules {
            if !pattern.is_object() {
                return Err(format!("rule {name}: the pattern must be a JSON object"));
            }
            compiled.push((name.clone(), pattern.clone()));
        }
        Ok(RuleMatcher { rules: compiled })
    }

    fn matches(&self, event: &[u8]) -> Result<Vec<&str>, String> {
        let event: Json =
            serde_json::from_slice(event).map_err(|e| format!("event is not valid JSON: {e}"))?;
        if !event.is_object() {
            return Err("event must be a JSON object".to_owned());
        }
        Ok(self
            .rules
            .iter()
            .filter(|(_, pattern)| naive_match(pattern, Some(&event)))
            .map(|(name, _)| name.as_str())
            .collect())
    }
}

fn naive_match(pattern: &Json, event: Option<&Json>) -> bool {
    match pattern {
        Json::Object(fields) => fields.iter().all(|(key, sub)| {
            let value = event.and_then(|e| e.get(key));
            match sub {
                Json::Object(_) => value.is_some_and(|v| naive_match(sub, Some(v))),
                Json::Array(allowed) => allowed.iter().any(|a| naive_leaf(a, value)),
                _ => false,
            }
        }),
        _ => false,
    }
}

fn naive_leaf(allowed: &Json, value: Option<&Json>) -> bool {
    let values: Vec<&Json> = match value {
        Some(Json::Array(items)) => items.iter().collect(),
        Some(v) => vec![v],
        None => vec![],
    };
    match allowed {
        Json::Object(op) => {
            if let Some(exists) = op.get("exists").and_then(Json::as_bool) {
                return exists == value.is_some();
            }
            if let Some(prefix) = op.get("prefix").and_then(Json::as_str) {
                return values
                    .iter()
                    .any(|v| v.as_str().is_some_and(|s| s.starts_with(prefix)));
            }
            if let Some(but) = op.get("anything-but") {
                let excluded: Vec<&Json> = match but {
                    Json::Array(items) => items.iter().collect(),
                    other => vec![other],
                };
                return !values.is_empty() && values.iter().all(|v| !excluded.contains(v));
            }
            false
        }
        scalar => values.contains(&scalar),
    }
}
