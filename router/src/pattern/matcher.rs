//! The compiled [`Matcher`]: many rules, one pass per event.
//!
//! Each event is flattened once ([`flatten`](super::flatten)), keeping only the leaves of
//! paths some rule names. Each leaf is looked up in its path's value index, which yields the
//! sub-rules whose anchor it may satisfy; only those candidates (plus the rare sub-rules made
//! only of `exists: false`) are then checked in full, array consistency included. The cost
//! per event follows the number of candidates, not the number of rules.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::{self, Write};

use super::compile::{self, BuildError, Constraint, FieldIndex, IndexKey, Limits, Test, composite};
use super::flatten::{self, EventError, Flat, FxMap, PathTrie};
use super::parse::Pattern;

/// The name of a rule, chosen by the caller.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleId(String);

impl RuleId {
    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for RuleId {
    fn from(s: &str) -> RuleId {
        RuleId(s.to_owned())
    }
}

impl From<String> for RuleId {
    fn from(s: String) -> RuleId {
        RuleId(s)
    }
}

/// Collects rules and limits, then compiles them into a [`Matcher`].
///
/// The limits default to EventBridge's: 2,048 characters per pattern (the service quota can
/// raise it to 4,096), 1,000 `$or` combinations, and a wildcard complexity of 8.
///
/// ```
/// use router::pattern::{Matcher, Pattern, RuleId};
///
/// let mut builder = Matcher::builder();
/// builder.max_pattern_chars(4096);
/// builder.add(RuleId::from("signups"), Pattern::parse(r#"{"detail-type": ["UserSignedUp"]}"#)?);
/// let matcher = builder.build()?;
/// assert_eq!(matcher.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MatcherBuilder {
    limits: Limits,
    rules: Vec<(RuleId, Pattern)>,
}

impl MatcherBuilder {
    /// Adds a rule. A rule with the same id replaces the earlier one.
    pub fn add(&mut self, id: RuleId, pattern: Pattern) -> &mut MatcherBuilder {
        self.rules.push((id, pattern));
        self
    }

    /// The longest pattern text, in characters (default 2,048; EventBridge allows up to
    /// 4,096 through a quota increase).
    pub fn max_pattern_chars(&mut self, n: usize) -> &mut MatcherBuilder {
        self.limits.max_pattern_chars = n;
        self
    }

    /// The most `$or` combinations in one pattern: the product of the sizes of all its
    /// `$or` arrays (default 1,000, EventBridge's documented limit).
    pub fn max_or_combinations(&mut self, n: u64) -> &mut MatcherBuilder {
        self.limits.max_or_combinations = n;
        self
    }

    /// The largest wildcard complexity: how many wildcard positions can be live at once on
    /// a worst-case input (default 8; AWS rejects `*:*:*:*:*:event-bus/*`, which is 13).
    pub fn max_wildcard_complexity(&mut self, n: usize) -> &mut MatcherBuilder {
        self.limits.max_wildcard_complexity = n;
        self
    }

    /// The deepest object nesting in a pattern, the root counting as 1 (default 32).
    pub fn max_nesting(&mut self, n: usize) -> &mut MatcherBuilder {
        self.limits.max_nesting = n;
        self
    }

    /// The deepest object/array nesting in an event (default 128, at most 1,024 to keep
    /// the stack safe); deeper events get an [`EventError`].
    pub fn max_event_depth(&mut self, n: usize) -> &mut MatcherBuilder {
        self.limits.max_event_depth = n.min(1024);
        self
    }

    /// Checks every rule against the limits and compiles them.
    pub fn build(&self) -> Result<Matcher, BuildError> {
        let mut matcher = Matcher {
            limits: self.limits,
            ..Matcher::default()
        };
        for (id, pattern) in &self.rules {
            self.limits.check(id.as_str(), pattern)?;
        }
        // Count the keys first so that anchors are chosen knowing the whole rule set.
        let mut staged = Vec::with_capacity(self.rules.len());
        for (id, pattern) in &self.rules {
            if let Some(old) = matcher.by_id.get(id).copied() {
                matcher.remove_rule(old);
            }
            let rule = matcher.stage(id.clone(), pattern.clone());
            staged.push(rule);
        }
        for rule in staged {
            if matcher.rules[rule as usize].is_some() {
                matcher.index_rule(rule);
            }
        }
        Ok(matcher)
    }
}

/// Many patterns compiled together; see the [module docs](super).
///
/// ```
/// use router::pattern::{Matcher, Pattern, RuleId};
///
/// let mut builder = Matcher::builder();
/// builder.add(RuleId::from("pro-signups"), Pattern::parse(
///     r#"{"detail-type": ["UserSignedUp"], "detail": {"plan": ["pro"]}}"#)?);
/// builder.add(RuleId::from("all-logins"), Pattern::parse(r#"{"detail-type": ["UserLoggedIn"]}"#)?);
/// let mut matcher = builder.build()?;
///
/// let event = br#"{"detail-type": "UserSignedUp", "detail": {"plan": "pro"}}"#;
/// assert_eq!(matcher.matches(event)?, [&RuleId::from("pro-signups")]);
///
/// matcher.remove(&RuleId::from("pro-signups"));
/// assert!(matcher.matches(event)?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    limits: Limits,
    rules: Vec<Option<Rule>>,
    free_rules: Vec<u32>,
    by_id: HashMap<RuleId, u32>,
    subrules: Vec<Option<SubRule>>,
    free_subrules: Vec<u32>,
    paths: PathTrie,
    path_ids: FxMap<String, u32>,
    path_names: Vec<String>,
    fields: Vec<FieldIndex>,
    /// Sub-rules that can match with no leaf at all (only `exists: false` constraints).
    always: Vec<u32>,
    /// How many tests of all sub-rules use each index key, for choosing anchors.
    key_counts: FxMap<(u32, IndexKey), u32>,
    /// Composite anchors by their sorted paths.
    composites: Vec<Composite>,
    composite_ids: FxMap<Vec<u32>, u32>,
    /// How many sub-rules could use each composite key, for choosing anchors.
    composite_counts: FxMap<(Vec<u32>, u64), u32>,
}

/// The index of the composite anchors over one set of paths.
#[derive(Debug, Clone, Default)]
struct Composite {
    paths: Vec<u32>,
    index: FxMap<u64, Vec<u32>>,
    n_entries: usize,
}

/// How a sub-rule is found.
#[derive(Debug, Clone, PartialEq)]
enum Anchor {
    /// Checked on every event: it can match with no leaf at all.
    Always,
    /// Through one constraint's tests in its path's value index.
    Single(usize),
    /// Through the combined values of several exact constraints.
    Composite {
        composite: u32,
        constraints: Vec<usize>,
        keys: Vec<u64>,
    },
}

#[derive(Debug, Clone)]
struct Rule {
    id: RuleId,
    pattern: Pattern,
    subrules: Vec<u32>,
}

#[derive(Debug, Clone)]
struct SubRule {
    rule: u32,
    constraints: Vec<Constraint>,
    /// How the index finds it.
    anchor: Anchor,
}

/// Per-thread scratch space, reused across events and matchers.
#[derive(Default)]
struct Scratch {
    flat: Flat,
    candidates: Vec<u32>,
    /// Leaf indices grouped by path, and each path's range in it, valid when its stamp
    /// equals `epoch`.
    by_path: Vec<u32>,
    path_range: Vec<(u32, u32)>,
    path_stamp: Vec<u32>,
    epoch: u32,
    hits: Vec<u32>,
    hit_ranges: Vec<(u32, u32)>,
    chosen: Vec<u32>,
    rules: Vec<u32>,
    leaf_hashes: Vec<u64>,
    odometer: Vec<usize>,
    fold_buf: String,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Matcher {
    /// A builder with EventBridge's default limits.
    pub fn builder() -> MatcherBuilder {
        MatcherBuilder::default()
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The pattern of a rule.
    pub fn pattern(&self, id: &RuleId) -> Option<&Pattern> {
        let rule = *self.by_id.get(id)?;
        self.rules[rule as usize].as_ref().map(|r| &r.pattern)
    }

    /// Adds (or replaces) a rule after the build, under the same limits.
    pub fn add(&mut self, id: RuleId, pattern: Pattern) -> Result<(), BuildError> {
        self.limits.check(id.as_str(), &pattern)?;
        if let Some(old) = self.by_id.get(&id).copied() {
            self.remove_rule(old);
        }
        let rule = self.stage(id, pattern);
        self.index_rule(rule);
        Ok(())
    }

    /// Removes a rule; returns whether it was there.
    pub fn remove(&mut self, id: &RuleId) -> bool {
        match self.by_id.get(id).copied() {
            Some(rule) => {
                self.remove_rule(rule);
                true
            }
            None => false,
        }
    }

    /// The rules that match an event, sorted by id, each once.
    ///
    /// The event is JSON text; anything but a JSON object (truncated text, a non-object,
    /// nesting deeper than the builder's `max_event_depth`) is an [`EventError`].
    pub fn matches(&self, event: &[u8]) -> Result<Vec<&RuleId>, EventError> {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            self.matches_with(event, &mut scratch)
        })
    }

    fn matches_with<'m>(
        &'m self,
        event: &[u8],
        scratch: &mut Scratch,
    ) -> Result<Vec<&'m RuleId>, EventError> {
        let Scratch {
            flat,
            candidates,
            by_path,
            path_range,
            path_stamp,
            epoch,
            hits,
            hit_ranges,
            chosen,
            rules,
            leaf_hashes,
            odometer,
            fold_buf,
        } = scratch;
        flat.read(event, &self.paths, self.limits.max_event_depth)?;
        if self.by_id.is_empty() {
            return Ok(Vec::new());
        }

        // Group the leaves by path.
        *epoch = epoch.wrapping_add(1);
        if *epoch == 0 || path_stamp.len() < self.path_names.len() {
            path_stamp.clear();
            path_stamp.resize(self.path_names.len(), 0);
            path_range.resize(self.path_names.len(), (0, 0));
            *epoch = 1;
        }
        by_path.clear();
        by_path.extend(0..flat.leaves.len() as u32);
        by_path.sort_by_key(|&i| flat.leaves[i as usize].path);
        let mut start = 0;
        while start < by_path.len() {
            let path = flat.leaves[by_path[start] as usize].path;
            let mut end = start + 1;
            while end < by_path.len() && flat.leaves[by_path[end] as usize].path == path {
                end += 1;
            }
            path_stamp[path as usize] = *epoch;
            path_range[path as usize] = (start as u32, end as u32);
            start = end;
        }

        // Collect candidates from the value indexes.
        candidates.clear();
        candidates.extend_from_slice(&self.always);
        for leaf in &flat.leaves {
            let field = &self.fields[leaf.path as usize];
            field.candidates(flat.value(event, leaf), fold_buf, &mut |s| {
                candidates.push(s)
            });
        }
        if !self.composites.is_empty() {
            leaf_hashes.clear();
            leaf_hashes.extend(
                flat.leaves
                    .iter()
                    .map(|leaf| composite::value_hash(flat.value(event, leaf))),
            );
            for c in &self.composites {
                if c.n_entries == 0 {
                    continue;
                }
                let present = c.paths.iter().all(|&p| path_stamp[p as usize] == *epoch);
                if !present {
                    continue;
                }
                let ranges = c.paths.iter().map(|&p| path_range[p as usize]);
                let n_combinations: usize = ranges.clone().map(|(s, e)| (e - s) as usize).product();
                if n_combinations > 256 {
                    // Long arrays: rather than enumerate, take every sub-rule of this index.
                    for list in c.index.values() {
                        candidates.extend_from_slice(list);
                    }
                    continue;
                }
                odometer.clear();
                odometer.resize(c.paths.len(), 0);
                'combinations: loop {
                    let key =
                        composite::combine(c.paths.iter().zip(odometer.iter()).map(|(&p, &i)| {
                            let (start, _) = path_range[p as usize];
                            leaf_hashes[by_path[start as usize + i] as usize]
                        }));
                    if let Some(list) = c.index.get(&key) {
                        candidates.extend_from_slice(list);
                    }
                    for (slot, &p) in odometer.iter_mut().zip(&c.paths) {
                        let (start, end) = path_range[p as usize];
                        *slot += 1;
                        if *slot < (end - start) as usize {
                            continue 'combinations;
                        }
                        *slot = 0;
                    }
                    break;
                }
            }
        }
        candidates.sort_unstable();
        candidates.dedup();

        // Check each candidate in full.
        rules.clear();
        let leaves_at = |path: u32| -> &[u32] {
            if path_stamp[path as usize] == *epoch {
                let (s, e) = path_range[path as usize];
                &by_path[s as usize..e as usize]
            } else {
                &[]
            }
        };
        for &candidate in candidates.iter() {
            let Some(sub) = &self.subrules[candidate as usize] else {
                continue;
            };
            if rules.contains(&sub.rule) {
                continue;
            }
            if check_subrule(sub, event, flat, &leaves_at, hits, hit_ranges, chosen) {
                rules.push(sub.rule);
            }
        }
        let mut out: Vec<&RuleId> = rules
            .iter()
            .filter_map(|&r| self.rules[r as usize].as_ref().map(|rule| &rule.id))
            .collect();
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// A readable dump of the compiled matcher: the value index of every path, then every
    /// rule's sub-rules with their anchors.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        let n_subrules = self.subrules.iter().flatten().count();
        let _ = writeln!(
            out,
            "matcher: {} rules, {} sub-rules after $or expansion, {} field paths",
            self.len(),
            n_subrules,
            self.path_names.len()
        );
        let _ = writeln!(out, "\nfield index (anchors by path):");
        for (path_id, name) in self.path_names.iter().enumerate() {
            let described = self.fields[path_id].describe();
            let described = if described.is_empty() {
                "(checked only)".to_owned()
            } else {
                described
            };
            let _ = writeln!(out, "  {name}: {described}");
        }
        for c in self.composites.iter().filter(|c| c.n_entries > 0) {
            let paths: Vec<&str> = c
                .paths
                .iter()
                .map(|&p| self.path_names[p as usize].as_str())
                .collect();
            let _ = writeln!(
                out,
                "  {} (combined): {} value combinations",
                paths.join(" + "),
                c.n_entries
            );
        }
        if !self.always.is_empty() {
            let _ = writeln!(
                out,
                "  (checked on every event: {} sub-rules made only of exists:false)",
                self.always.len()
            );
        }
        let mut ids: Vec<(&RuleId, u32)> = self.by_id.iter().map(|(id, &r)| (id, r)).collect();
        ids.sort();
        for (id, rule) in ids {
            let rule = self.rules[rule as usize]
                .as_ref()
                .expect("indexed rules exist");
            let _ = writeln!(out, "\nrule {id}: {}", rule.pattern);
            for (n, &sub) in rule.subrules.iter().enumerate() {
                let sub = self.subrules[sub as usize].as_ref().expect("live sub-rule");
                let _ = writeln!(out, "  sub-rule {n}:");
                for (i, constraint) in sub.constraints.iter().enumerate() {
                    let anchored = match &sub.anchor {
                        Anchor::Single(a) => *a == i,
                        Anchor::Composite { constraints, .. } => constraints.contains(&i),
                        Anchor::Always => false,
                    };
                    let mark = if anchored { "anchor" } else { "check " };
                    let mut tests: Vec<String> =
                        constraint.tests.iter().map(|t| t.to_string()).collect();
                    if constraint.allow_absent {
                        tests.push("absent".to_owned());
                    }
                    let _ = writeln!(
                        out,
                        "    {mark} {}: {}",
                        self.path_names[constraint.path as usize],
                        tests.join(" | ")
                    );
                }
            }
        }
        out
    }

    fn path_id(&mut self, path: &str) -> u32 {
        if let Some(&id) = self.path_ids.get(path) {
            return id;
        }
        let id = self.path_names.len() as u32;
        self.path_names.push(path.to_owned());
        self.path_ids.insert(path.to_owned(), id);
        self.paths.insert(path, id);
        self.fields.push(FieldIndex::default());
        id
    }

    /// Registers a rule and its sub-rules and counts their keys, without indexing them.
    fn stage(&mut self, id: RuleId, pattern: Pattern) -> u32 {
        let rule = match self.free_rules.pop() {
            Some(r) => r,
            None => {
                self.rules.push(None);
                (self.rules.len() - 1) as u32
            }
        };
        let mut subrule_ids = Vec::new();
        for conjunction in compile::expand(&pattern) {
            let mut constraints: Vec<Constraint> = conjunction
                .constraints
                .iter()
                .map(|(path, conditions)| Constraint {
                    path: self.path_id(path),
                    tests: conditions.iter().filter_map(Test::compile).collect(),
                    allow_absent: conditions
                        .iter()
                        .any(|c| matches!(c, super::parse::Condition::Exists(false))),
                })
                .collect();
            // Cheap and selective checks first: most candidates fail one of them.
            constraints.sort_by_key(check_rank);
            for constraint in &constraints {
                for test in &constraint.tests {
                    *self
                        .key_counts
                        .entry((constraint.path, IndexKey::of(test)))
                        .or_default() += 1;
                }
            }
            for option in composite::options(&constraints) {
                for key in option.keys {
                    *self
                        .composite_counts
                        .entry((option.paths.clone(), key))
                        .or_default() += 1;
                }
            }
            let sub = SubRule {
                rule,
                constraints,
                anchor: Anchor::Always,
            };
            let sub_id = match self.free_subrules.pop() {
                Some(s) => {
                    self.subrules[s as usize] = Some(sub);
                    s
                }
                None => {
                    self.subrules.push(Some(sub));
                    (self.subrules.len() - 1) as u32
                }
            };
            subrule_ids.push(sub_id);
        }
        self.by_id.insert(id.clone(), rule);
        self.rules[rule as usize] = Some(Rule {
            id,
            pattern,
            subrules: subrule_ids,
        });
        rule
    }

    /// Chooses each sub-rule's anchor and enters it in the index.
    fn index_rule(&mut self, rule: u32) {
        let subrules = self.rules[rule as usize]
            .as_ref()
            .expect("staged rule")
            .subrules
            .clone();
        for sub_id in subrules {
            let sub = self.subrules[sub_id as usize]
                .as_ref()
                .expect("staged sub-rule");
            let mut best: Option<(u64, Anchor)> = None;
            for (i, constraint) in sub.constraints.iter().enumerate() {
                if constraint.allow_absent {
                    continue;
                }
                let cost: u64 = constraint
                    .tests
                    .iter()
                    .map(|t| {
                        let key = IndexKey::of(t);
                        let sharing = self
                            .key_counts
                            .get(&(constraint.path, key.clone()))
                            .copied()
                            .unwrap_or(0);
                        key.cost(sharing)
                    })
                    .sum();
                if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                    best = Some((cost, Anchor::Single(i)));
                }
            }
            // A composite anchor must beat the best single one clearly: it costs a lookup
            // per event for its set of paths.
            if best.as_ref().is_some_and(|(c, _)| *c > 8) {
                for option in composite::options(&sub.constraints) {
                    let cost: u64 = 4 + option
                        .keys
                        .iter()
                        .map(|&key| {
                            u64::from(
                                self.composite_counts
                                    .get(&(option.paths.clone(), key))
                                    .copied()
                                    .unwrap_or(0),
                            ) + 1
                        })
                        .sum::<u64>();
                    if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                        let composite = match self.composite_ids.get(&option.paths) {
                            Some(&id) => id,
                            None => {
                                let id = self.composites.len() as u32;
                                self.composites.push(Composite {
                                    paths: option.paths.clone(),
                                    ..Composite::default()
                                });
                                self.composite_ids.insert(option.paths.clone(), id);
                                id
                            }
                        };
                        best = Some((
                            cost,
                            Anchor::Composite {
                                composite,
                                constraints: option.constraints,
                                keys: option.keys,
                            },
                        ));
                    }
                }
            }
            let anchor = best.map_or(Anchor::Always, |(_, anchor)| anchor);
            match &anchor {
                Anchor::Single(i) => {
                    let constraint = &sub.constraints[*i];
                    for test in &constraint.tests {
                        self.fields[constraint.path as usize].insert(test, sub_id);
                    }
                }
                Anchor::Composite {
                    composite, keys, ..
                } => {
                    let c = &mut self.composites[*composite as usize];
                    for &key in keys {
                        c.index.entry(key).or_default().push(sub_id);
                        c.n_entries += 1;
                    }
                }
                Anchor::Always => self.always.push(sub_id),
            }
            self.subrules[sub_id as usize]
                .as_mut()
                .expect("staged sub-rule")
                .anchor = anchor;
        }
    }

    fn remove_rule(&mut self, rule: u32) {
        let Some(removed) = self.rules[rule as usize].take() else {
            return;
        };
        self.by_id.remove(&removed.id);
        for sub_id in removed.subrules {
            let Some(sub) = self.subrules[sub_id as usize].take() else {
                continue;
            };
            for constraint in &sub.constraints {
                for test in &constraint.tests {
                    let key = (constraint.path, IndexKey::of(test));
                    if let Some(count) = self.key_counts.get_mut(&key) {
                        *count -= 1;
                        if *count == 0 {
                            self.key_counts.remove(&key);
                        }
                    }
                }
            }
            for option in composite::options(&sub.constraints) {
                for key in option.keys {
                    let key = (option.paths.clone(), key);
                    if let Some(count) = self.composite_counts.get_mut(&key) {
                        *count -= 1;
                        if *count == 0 {
                            self.composite_counts.remove(&key);
                        }
                    }
                }
            }
            match &sub.anchor {
                Anchor::Single(i) => {
                    let constraint = &sub.constraints[*i];
                    for test in &constraint.tests {
                        self.fields[constraint.path as usize].remove(test, sub_id);
                    }
                }
                Anchor::Composite {
                    composite, keys, ..
                } => {
                    let c = &mut self.composites[*composite as usize];
                    for key in keys {
                        if let Some(list) = c.index.get_mut(key)
                            && let Some(at) = list.iter().position(|&s| s == sub_id)
                        {
                            list.swap_remove(at);
                            c.n_entries -= 1;
                            if list.is_empty() {
                                c.index.remove(key);
                            }
                        }
                    }
                }
                Anchor::Always => self.always.retain(|&s| s != sub_id),
            }
            self.free_subrules.push(sub_id);
        }
        self.free_rules.push(rule);
    }
}

/// Orders a sub-rule's constraints for checking: exact values first, negations last.
fn check_rank(constraint: &Constraint) -> u8 {
    if constraint.allow_absent {
        return 9;
    }
    constraint
        .tests
        .iter()
        .map(|test| match test {
            Test::String(_) | Test::Number(_) | Test::Bool(_) | Test::Null => 0,
            Test::Prefix(_) | Test::Suffix(_) => 1,
            Test::PrefixIgnoreCase(_) | Test::SuffixIgnoreCase(_) | Test::EqualsIgnoreCase(_) => 2,
            Test::Numeric(_) => 3,
            Test::Exists => 4,
            Test::Ip(_) | Test::Cidr(_) => 5,
            Test::Wildcard(_) => 6,
            Test::AnythingBut(_) => 7,
        })
        .max()
        .unwrap_or(0)
}

/// Whether every constraint of a sub-rule holds with leaves from consistent array elements.
fn check_subrule<'a>(
    sub: &SubRule,
    event: &[u8],
    flat: &Flat,
    leaves_at: &impl Fn(u32) -> &'a [u32],
    hits: &mut Vec<u32>,
    hit_ranges: &mut Vec<(u32, u32)>,
    chosen: &mut Vec<u32>,
) -> bool {
    hits.clear();
    hit_ranges.clear();
    let mut any_in_array = false;
    for constraint in &sub.constraints {
        let leaves = leaves_at(constraint.path);
        let start = hits.len();
        for &leaf_idx in leaves {
            let leaf = &flat.leaves[leaf_idx as usize];
            let value = flat.value(event, leaf);
            if constraint.tests.iter().any(|t| t.matches(value)) {
                hits.push(leaf_idx);
                any_in_array |= !flat.chain(leaf).is_empty();
            }
        }
        if hits.len() == start {
            if constraint.allow_absent && leaves.is_empty() {
                continue;
            }
            return false;
        }
        hit_ranges.push((start as u32, hits.len() as u32));
    }
    if !any_in_array || hit_ranges.len() <= 1 {
        return true;
    }
    chosen.clear();
    consistent(flat, hits, hit_ranges, chosen)
}

/// Backtracking search for one hit per constraint, pairwise compatible.
fn consistent(flat: &Flat, hits: &[u32], ranges: &[(u32, u32)], chosen: &mut Vec<u32>) -> bool {
    let depth = chosen.len();
    let Some(&(start, end)) = ranges.get(depth) else {
        return true;
    };
    for &candidate in &hits[start as usize..end as usize] {
        let chain = flat.chain(&flat.leaves[candidate as usize]);
        let fits = chosen
            .iter()
            .all(|&c| flatten::compatible(flat.chain(&flat.leaves[c as usize]), chain));
        if fits {
            chosen.push(candidate);
            if consistent(flat, hits, ranges, chosen) {
                return true;
            }
            chosen.pop();
        }
    }
    false
}
