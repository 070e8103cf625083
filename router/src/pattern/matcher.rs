//! The compiled [`Matcher`]: many rules, one pass per event.
//!
//! Each event is flattened once ([`super::flatten`]), keeping only the leaves of
//! paths some rule names. Each leaf is then worked out once, as far as the tests of its
//! path need: its interned value id (one lookup in the [`Dictionary`] all rules share), its
//! case fold and its IP address. Each path gets a slot telling whether it has one leaf
//! outside arrays and, if so, which leaf and value. The leaf's value id leads, through one
//! per-value table, to the sub-rules anchored on that value at that path and to the
//! composite anchors it leads; paths with other kinds of anchor are also looked up in
//! their value index. That yields the sub-rules whose anchor the leaf may satisfy; only
//! those candidates (plus the rare sub-rules made only of `exists: false`) are checked. A
//! candidate is first tried against its guard (one exact value on another path), in a
//! pass without a branch per candidate, then against the leading one-value exact
//! constraints of its program, compared without a branch each; only then is the rest of
//! its check program ([`super::check`]) run: exact values and folds compare as integers,
//! other tests are predicates evaluated at most once per leaf, and array consistency is
//! searched only among constraints met inside arrays. The cost per event follows the
//! number of candidates, not the number of rules.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write};
use std::sync::{Arc, OnceLock};

use super::check::{self, Dictionary, Op, PredId, ValueId};
use super::compile::{
    self, BuildError, Constraint, FieldIndex, IndexKey, Limits, Needs, Probe, Test, composite,
};
use super::consistency::{SEARCH_WORK, Search};
use super::flatten::{EventError, Flat, FxMap, PathTrie, Value};
use super::json;
use super::parse::{Pattern, display_field_path};
use super::text::{self, Ip};

/// The name of a rule, chosen by the caller.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleId(Arc<str>);

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
        RuleId(s.into())
    }
}

impl From<String> for RuleId {
    fn from(s: String) -> RuleId {
        RuleId(s.into())
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
    /// The measure is a search over sets of live positions; a wildcard whose search passes
    /// 4,096 sets is refused under any value but `usize::MAX`, which turns the check off.
    pub fn max_wildcard_complexity(&mut self, n: usize) -> &mut MatcherBuilder {
        self.limits.max_wildcard_complexity = n;
        self
    }

    /// The deepest object nesting in a pattern, the root counting as 1 (default 32).
    /// [`Pattern::parse`] reads at most 256 levels of JSON nesting, whatever this allows.
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
        // A later rule with the same id replaces an earlier one: only the last is staged.
        let mut last: HashMap<&RuleId, usize> = HashMap::with_capacity(self.rules.len());
        for (i, (id, _)) in self.rules.iter().enumerate() {
            last.insert(id, i);
        }
        // Count the keys first so that anchors are chosen knowing the whole rule set.
        let mut staged = Vec::with_capacity(last.len());
        for (i, (id, pattern)) in self.rules.iter().enumerate() {
            if last[id] == i {
                staged.push(matcher.stage(id.clone(), pattern.clone()));
            }
        }
        for rule in staged {
            matcher.index_rule(rule);
        }
        matcher.compact_code();
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
    /// What each path's leaves need worked out, for all the tests on that path.
    needs: Vec<Needs>,
    /// The exact values, case folds and other tests that rules name.
    dictionary: Dictionary,
    /// The check programs of all sub-rules, back to back, and how many ops in it belong
    /// to removed sub-rules.
    code: Vec<Op>,
    garbage: usize,
    /// Per sub-rule id: its rule and its program's range in `code` (rule `u32::MAX` when
    /// the id is free). Dense, so that checking a candidate touches little memory.
    entries: Vec<Entry>,
    /// Each rule's place in id order, so that matches are sorted without comparing names;
    /// worked out on the first match after a change.
    ranks: OnceLock<Ranks>,
    /// The exact-value index and composite leads, by value: worked out on the first match
    /// after a change.
    exact: OnceLock<ExactIndex>,
    /// Sub-rules that can match with no leaf at all (only `exists: false` constraints).
    always: Vec<u32>,
    /// How many tests of all sub-rules use each index key, for choosing anchors.
    key_counts: FxMap<(u32, IndexKey), u32>,
    /// Per path, how many tests name each exact string, in order: a prefix anchor also
    /// fires on every value that rules name under it.
    exact_strings: Vec<BTreeMap<Box<[u8]>, u32>>,
    /// Composite anchors by their sorted paths.
    composites: Vec<Composite>,
    composite_ids: FxMap<Vec<u32>, u32>,
    /// The composites to look at when a leaf holds a value at a path
    /// ([`composite::lead`]), each with the number of its keys that this value leads.
    composite_leads: FxMap<u64, Vec<(u32, u32)>>,
    /// Per set of paths, how many sub-rules could use a composite anchor on it and each
    /// of its keys, for choosing anchors.
    composite_counts: FxMap<Vec<u32>, CompositeCounts>,
}

/// How many sub-rules could use a set of paths as a composite anchor.
#[derive(Debug, Clone, Default)]
struct CompositeCounts {
    /// How many could be anchored on the set: a composite costs every event that holds one
    /// of its leads a lookup, which pays off only when many sub-rules share it.
    users: u32,
    /// How many could use each key.
    keys: FxMap<composite::Key, u32>,
}

/// The rules in id order, so that matches are sorted by comparing integers.
#[derive(Debug, Clone, Default)]
struct Ranks {
    /// Per rule slot, its place in id order (`u32::MAX` for free slots).
    of_rule: Vec<u32>,
    /// The ids, in order. Each is a copy of the rule's id, made in this order so that the
    /// texts sit side by side: the names of an event's matches, read in this order, then
    /// come from one compact region rather than from wherever each rule's id was made (at
    /// 10,000 rules, `eventfork rules match` ran 2–5 % faster in paired runs).
    ids: Vec<RuleId>,
}

/// Where each interned value leads, read through one array per leaf: the sub-rules
/// anchored on the value at a path (the paths' `values` indexes, copied) and the composites
/// that the value at that path leads.
#[derive(Debug, Clone, Default)]
struct ExactIndex {
    /// Per value id, its range in `homes`.
    by_value: Vec<(u32, u32)>,
    homes: Vec<Home>,
    /// The sub-rules and composites of all homes, back to back.
    postings: Vec<u32>,
    leads: Vec<u32>,
}

/// One value at one path.
#[derive(Debug, Clone, Copy)]
struct Home {
    path: u32,
    postings: (u32, u32),
    leads: (u32, u32),
}

impl ExactIndex {
    /// The home of a value at a path, if any rule names the value there.
    #[inline]
    fn home(&self, path: u32, value: ValueId) -> Option<&Home> {
        let &(start, end) = self.by_value.get(value as usize)?;
        let homes = &self.homes[start as usize..end as usize];
        if homes.len() <= 8 {
            homes.iter().find(|h| h.path == path)
        } else {
            // Values named on many paths (`true`, `false`, `null`, common words): the
            // homes are in path order.
            let i = homes.binary_search_by_key(&path, |h| h.path).ok()?;
            Some(&homes[i])
        }
    }
}

/// The index of the composite anchors over one set of paths.
#[derive(Debug, Clone, Default)]
struct Composite {
    paths: Vec<u32>,
    index: FxMap<composite::Key, Vec<u32>>,
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
        keys: Vec<composite::Key>,
        /// Per key, the path and value of its least shared part ([`composite::lead`]): an
        /// event only looks at the composite when one of its leaves is such a lead.
        leads: Vec<u64>,
    },
}

#[derive(Debug, Clone)]
struct Rule {
    id: RuleId,
    pattern: Pattern,
    subrules: Vec<u32>,
}

/// A sub-rule as the check loop sees it.
#[derive(Debug, Clone, Copy)]
struct Entry {
    rule: u32,
    start: u32,
    len: u32,
    /// A cheap first test, tried before the program: an exact value that a path other
    /// than the anchor's must hold (`NO_GUARD` for none). Most candidates that an anchor
    /// yields for nothing fail here, without reading their program.
    guard_path: u32,
    guard_value: ValueId,
    /// How many ops at the start of the program are one-value exact constraints (a
    /// `Field` and a `Value` each), checked without branching when their paths hold one
    /// leaf outside arrays.
    fast: u32,
}

const NO_GUARD: u32 = u32::MAX;

const FREE_ENTRY: Entry = Entry {
    rule: u32::MAX,
    start: 0,
    len: 0,
    guard_path: NO_GUARD,
    guard_value: check::NONE,
    fast: 0,
};

/// A sub-rule's constraints are not kept: [`Matcher::constraints_of`] works them out from
/// the rule's pattern when they are needed (indexing, removal, explain), so that a rule
/// whose `$or`s give 1,000 sub-rules does not keep 1,000 copies of its shared constraints.
#[derive(Debug, Clone)]
struct SubRule {
    /// How the index finds it.
    anchor: Anchor,
}

/// Per-thread scratch space, reused across events and matchers.
#[derive(Default)]
struct Scratch {
    flat: Flat,
    candidates: Vec<u32>,
    /// Leaf indices grouped by path, and each path's range in it, valid when the path's
    /// slot carries `epoch`.
    by_path: Vec<u32>,
    path_range: Vec<(u32, u32)>,
    /// The paths that have leaves in this event.
    present: Vec<u32>,
    /// Per path, what the check loop needs to know first: the epoch in the high half when
    /// the event has the path and, in the low half, the path's one leaf when it has a
    /// single leaf outside arrays, or [`SEVERAL`].
    slots: Vec<u64>,
    /// Per path, the epoch in the high half and, in the low half, the interned value of
    /// its one leaf outside arrays, or [`SEVERAL`].
    path_values: Vec<u64>,
    /// Sub-rules already taken as candidates (the bits of `candidates`) and composites
    /// already looked at (the bits of `composites_seen`) for this event: bit sets, small
    /// enough to stay in the first-level cache, cleared through their lists.
    taken: BitSet,
    composites_seen: Vec<u32>,
    composite_seen: BitSet,
    /// Predicate results on single-leaf paths for this event: which are known, their
    /// values, and the list of known ones for clearing.
    pred_known: BitSet,
    pred_value: BitSet,
    preds_known: Vec<u32>,
    /// Predicate results on paths with several leaves for this event: per predicate, the
    /// epoch and the start of its cells in `pred_cells`, one cell per leaf of its path.
    pred_cells_at: Vec<(u32, usize)>,
    pred_cells: Vec<u8>,
    epoch: u32,
    hits: Vec<u32>,
    hit_ranges: Vec<(u32, u32)>,
    search: Search,
    rules: Vec<u32>,
    /// Per leaf: its interned value and fold ids, its case fold (a range of `folds`) and
    /// its IP address, each worked out when the leaf's path needs it.
    leaf_values: Vec<ValueId>,
    leaf_fold_ids: Vec<ValueId>,
    leaf_folds: Vec<(u32, u32)>,
    leaf_ips: Vec<Option<Ip>>,
    /// The composite leads of this event's leaves, as ranges of the exact index's `leads`.
    leaf_homes: Vec<(u32, u32)>,
    /// The candidates that pass their guards.
    passed: Vec<u32>,
    folds: String,
    odometer: Vec<usize>,
}

/// In a path's slot: the path has several leaves, or one inside an array.
const SEVERAL: u32 = u32::MAX;

/// Where the leaves of each path are, for the check loop.
struct Paths<'a> {
    epoch: u32,
    slots: &'a [u64],
    values: &'a [u64],
    by_path: &'a [u32],
    range: &'a [(u32, u32)],
}

impl Paths<'_> {
    /// Whether a guard fails: the path (`NO_GUARD` for none) holds one leaf outside arrays
    /// and another value, or none at all. Branch-free.
    #[inline]
    fn refutes(&self, path: u32, value: ValueId) -> bool {
        let word = self.values.get(path as usize).copied().unwrap_or(0);
        let seen = u64::from(self.epoch) << 32;
        (path != NO_GUARD) & (word != seen | u64::from(SEVERAL)) & (word != seen | u64::from(value))
    }

    /// The leaves of a path (none when the event lacks it).
    #[inline]
    fn leaves(&self, path: u32) -> &[u32] {
        let slot = self.slots[path as usize];
        if (slot >> 32) as u32 != self.epoch {
            return &[];
        }
        let (start, end) = self.range[path as usize];
        &self.by_path[start as usize..end as usize]
    }
}

/// No case fold for this leaf.
const NO_FOLD: (u32, u32) = (u32::MAX, 0);

/// The views of one flattened event that the checks share.
struct Leaves<'a> {
    event: &'a [u8],
    flat: &'a Flat,
    values: &'a [ValueId],
    fold_ids: &'a [ValueId],
    folds: &'a [(u32, u32)],
    ips: &'a [Option<Ip>],
    fold_text: &'a str,
}

impl<'a> Leaves<'a> {
    #[inline]
    fn probe(&self, leaf: u32) -> Probe<'a> {
        let i = leaf as usize;
        let (start, end) = self.folds[i];
        Probe {
            value: self.flat.value(self.event, &self.flat.leaves[i]),
            folded: (start != u32::MAX).then(|| &self.fold_text[start as usize..end as usize]),
            ip: self.ips[i].as_ref(),
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Past this many leaves' room, a thread's scratch is dropped after the event (about 50
/// bytes per leaf across its vectors; EventBridge events of 256 KB stay under it); so it is
/// past this many frames or arrays in the consistency search, or sixteen times as many
/// predicate results.
const KEEP_LEAVES: usize = 1 << 16;

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

    /// How many values and tests the rules have interned (for tests of removal).
    #[cfg(test)]
    pub(crate) fn interned(&self) -> usize {
        self.dictionary.len()
    }

    /// How many entries the indexes hold, all kinds together (for tests of removal).
    #[cfg(test)]
    pub(crate) fn indexed(&self) -> usize {
        let mut n = self.always.len();
        for field in &self.fields {
            field.lists(&mut |list: &[u32]| n += list.len());
        }
        for c in &self.composites {
            n += c.index.values().map(Vec::len).sum::<usize>();
        }
        n
    }

    /// How many sets of paths and composite keys the anchor counts hold (for tests of
    /// removal).
    #[cfg(test)]
    pub(crate) fn composite_counted(&self) -> usize {
        self.composite_counts
            .values()
            .map(|counts| 1 + counts.keys.len())
            .sum()
    }

    /// The pattern of a rule.
    pub fn pattern(&self, id: &RuleId) -> Option<&Pattern> {
        let rule = *self.by_id.get(id)?;
        self.rules[rule as usize].as_ref().map(|r| &r.pattern)
    }

    /// Adds (or replaces) a rule after the build, under the same limits.
    ///
    /// The first match after any number of changes works out the rules' order and the
    /// per-value table again, in time about linear in the number of rules (1.4 ms at
    /// 10,000 on our machine): make many changes between matches, not one each.
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
    /// nesting deeper than the builder's `max_event_depth`) is an [`EventError`], and so is
    /// an event that names a field twice around arrays (a repeated key, or a dotted key
    /// beside the nested one) so that array consistency is too costly to decide (a budget
    /// of 1,000,000 search steps per event; see docs/PATTERNS.md).
    pub fn matches(&self, event: &[u8]) -> Result<Vec<&RuleId>, EventError> {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let result = self.matches_with(event, &mut scratch);
            if scratch.flat.leaves.capacity() > KEEP_LEAVES
                || scratch.pred_cells.capacity() > KEEP_LEAVES * 16
                || scratch.search.capacity() > KEEP_LEAVES
            {
                // An outsized event: give its memory back rather than keep it for the
                // thread's life.
                *scratch = Scratch::default();
            }
            result
        })
    }

    /// The capacity, in leaves, of this thread's scratch (for tests of its release).
    #[cfg(test)]
    pub(crate) fn scratch_leaves() -> usize {
        SCRATCH.with(|scratch| scratch.borrow().flat.leaves.capacity())
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
            present,
            slots,
            path_values,
            taken,
            composites_seen,
            composite_seen,
            pred_known,
            pred_value,
            preds_known,
            pred_cells_at,
            pred_cells,
            epoch,
            hits,
            hit_ranges,
            search,
            rules,
            leaf_values,
            leaf_fold_ids,
            leaf_folds,
            leaf_ips,
            leaf_homes,
            passed,
            folds,
            odometer,
        } = scratch;
        flat.read(event, &self.paths, self.limits.max_event_depth)?;
        if self.by_id.is_empty() {
            return Ok(Vec::new());
        }

        *epoch = epoch.wrapping_add(1);
        if *epoch == 0
            || slots.len() < self.path_names.len()
            || path_values.len() < self.path_names.len()
        {
            slots.clear();
            slots.resize(self.path_names.len(), 0);
            path_values.clear();
            path_values.resize(self.path_names.len(), 0);
            path_range.resize(self.path_names.len(), (0, 0));
            pred_cells_at.clear();
            *epoch = 1;
        }
        let epoch = *epoch;
        // Clear what the last event set, then make room for this matcher's ids.
        candidates.iter().for_each(|&s| taken.remove(s));
        composites_seen
            .iter()
            .for_each(|&c| composite_seen.remove(c));
        for &p in preds_known.iter() {
            pred_known.remove(p);
            pred_value.remove(p);
        }
        candidates.clear();
        composites_seen.clear();
        preds_known.clear();
        pred_cells.clear();
        if pred_cells_at.len() < self.dictionary.pred_capacity() {
            pred_cells_at.resize(self.dictionary.pred_capacity(), (0, 0));
        }
        taken.fit(self.subrules.len());
        composite_seen.fit(self.composites.len());
        pred_known.fit(self.dictionary.pred_capacity());
        pred_value.fit(self.dictionary.pred_capacity());

        // Work out, once per leaf, what the tests of its path need.
        leaf_values.clear();
        leaf_fold_ids.clear();
        leaf_folds.clear();
        leaf_ips.clear();
        folds.clear();
        for leaf in &flat.leaves {
            let needs = self.needs[leaf.path as usize];
            let value = flat.value(event, leaf);
            let wants_value = needs.contains(Needs::VALUE);
            leaf_values.push(if wants_value {
                self.dictionary.value_id(value)
            } else {
                check::NONE
            });
            let string = match value {
                Value::String(s) if needs.contains(Needs::FOLD) || needs.contains(Needs::IP) => {
                    std::str::from_utf8(s).ok()
                }
                _ => None,
            };
            let (fold, fold_id) = match string {
                Some(s) if needs.contains(Needs::FOLD) => {
                    let start = folds.len();
                    text::fold_into(s, folds);
                    let id = self.dictionary.fold_id(&folds[start..]);
                    ((start as u32, folds.len() as u32), id)
                }
                _ => (NO_FOLD, check::NONE),
            };
            leaf_folds.push(fold);
            leaf_fold_ids.push(fold_id);
            leaf_ips.push(match string {
                Some(s) if needs.contains(Needs::IP) => text::parse_ip(s),
                _ => None,
            });
        }
        let leaves = Leaves {
            event,
            flat,
            values: leaf_values,
            fold_ids: leaf_fold_ids,
            folds: leaf_folds,
            ips: leaf_ips,
            fold_text: folds,
        };

        // Group the leaves by path. Usually each path's leaves are one run (a path's array
        // elements follow each other), and the leaves stay in their order.
        by_path.clear();
        present.clear();
        let seen = u64::from(epoch) << 32;
        let several = seen | u64::from(SEVERAL);
        let mut scattered = false;
        let mut last = u32::MAX;
        for (i, leaf) in flat.leaves.iter().enumerate() {
            let p = leaf.path as usize;
            if slots[p] & !u64::from(u32::MAX) != seen {
                let one = !leaf.in_array();
                slots[p] = if one { seen | i as u64 } else { several };
                path_values[p] = if one {
                    seen | u64::from(leaf_values[i])
                } else {
                    several
                };
                path_range[p] = (i as u32, i as u32 + 1);
                present.push(leaf.path);
            } else if last == leaf.path {
                slots[p] = several;
                path_values[p] = several;
                path_range[p].1 += 1;
            } else {
                scattered = true;
            }
            last = leaf.path;
        }
        by_path.extend(0..flat.leaves.len() as u32);
        if scattered {
            // A counting sort: count, place each path's range, fill.
            for &p in present.iter() {
                path_range[p as usize] = (0, 0);
            }
            for leaf in &flat.leaves {
                path_range[leaf.path as usize].1 += 1;
            }
            let mut at = 0;
            for &p in present.iter() {
                let n = path_range[p as usize].1;
                path_range[p as usize] = (at, at);
                at += n;
            }
            for (i, leaf) in flat.leaves.iter().enumerate() {
                let range = &mut path_range[leaf.path as usize];
                by_path[range.1 as usize] = i as u32;
                range.1 += 1;
            }
            for &p in present.iter() {
                let (start, end) = path_range[p as usize];
                if end - start > 1 {
                    slots[p as usize] = several;
                    path_values[p as usize] = several;
                }
            }
        }

        // Collect candidates from the value indexes, each sub-rule once.
        let mut take = |s: u32| {
            if taken.insert(s) {
                candidates.push(s);
            }
        };
        self.always.iter().for_each(|&s| take(s));
        let exact = self.exact.get_or_init(|| self.exact_index());
        leaf_homes.clear();
        for (i, leaf) in flat.leaves.iter().enumerate() {
            let id = leaf_values[i];
            if id != check::NONE
                && let Some(home) = exact.home(leaf.path, id)
            {
                let (start, end) = home.postings;
                exact.postings[start as usize..end as usize]
                    .iter()
                    .for_each(|&s| take(s));
                if home.leads.0 != home.leads.1 {
                    leaf_homes.push(home.leads);
                }
            }
            let field = &self.fields[leaf.path as usize];
            field.candidates(|| leaves.probe(i as u32), leaf_fold_ids[i], &mut take);
        }
        for &(start, end) in leaf_homes.iter() {
            for &composite in &exact.leads[start as usize..end as usize] {
                if !composite_seen.insert(composite) {
                    continue;
                }
                composites_seen.push(composite);
                let c = &self.composites[composite as usize];
                // The usual case: one leaf outside arrays on each path.
                let mut single = true;
                let mut present = true;
                let mut named = true;
                let mut key: composite::Key = 0;
                for &p in &c.paths {
                    let value = path_values[p as usize];
                    if (value >> 32) as u32 != epoch {
                        present = false;
                        break;
                    }
                    let value = value as u32;
                    single &= value != SEVERAL;
                    named &= value != check::NONE;
                    key = (key << 32) | composite::Key::from(value);
                }
                if !present {
                    continue;
                }
                if single {
                    // A value that no rule names leads nowhere.
                    if named && let Some(list) = c.index.get(&key) {
                        list.iter().for_each(|&s| take(s));
                    }
                    continue;
                }
                let ranges = c.paths.iter().map(|&p| path_range[p as usize]);
                // Checked: long arrays on three paths could overflow the product.
                let n_combinations = ranges
                    .clone()
                    .try_fold(1usize, |n, (s, e)| n.checked_mul((e - s) as usize))
                    .unwrap_or(usize::MAX);
                if n_combinations > 256 {
                    // Long arrays: rather than enumerate, take every sub-rule of this
                    // index.
                    for list in c.index.values() {
                        list.iter().for_each(|&s| take(s));
                    }
                    continue;
                }
                odometer.clear();
                odometer.resize(c.paths.len(), 0);
                'combinations: loop {
                    let key =
                        composite::key(c.paths.iter().zip(odometer.iter()).map(|(&p, &i)| {
                            let (start, _) = path_range[p as usize];
                            leaf_values[by_path[start as usize + i] as usize]
                        }));
                    if let Some(list) = c.index.get(&key) {
                        list.iter().for_each(|&s| take(s));
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

        // Check each candidate in full.
        let ranks = self.ranks.get_or_init(|| self.rank_rules());
        rules.clear();
        let paths = Paths {
            epoch,
            slots,
            values: path_values,
            by_path,
            range: path_range,
        };
        let mut memo = Memo {
            dictionary: &self.dictionary,
            known: pred_known,
            value: pred_value,
            list: preds_known,
            epoch,
            cells_at: pred_cells_at,
            cells: pred_cells,
        };
        // First the guards, without a branch each, so that the loads of many entries
        // overlap; the survivors are packed at the front of `passed`.
        search.start_event();
        passed.clear();
        passed.resize(candidates.len(), 0);
        let mut n_passed = 0;
        for &candidate in candidates.iter() {
            let entry = self.entries[candidate as usize];
            let live = entry.rule != u32::MAX;
            let guarded = paths.refutes(entry.guard_path, entry.guard_value);
            passed[n_passed] = candidate;
            n_passed += usize::from(live & !guarded);
        }
        for &candidate in &passed[..n_passed] {
            let entry = self.entries[candidate as usize];
            let program = &self.code[entry.start as usize..(entry.start + entry.len) as usize];
            let program = match fast_check(program, entry.fast as usize, &paths) {
                Fast::Failed => continue,
                Fast::Passed(rest) => rest,
                Fast::Undecided => program,
            };
            if check_program(
                program, &leaves, &paths, &mut memo, hits, hit_ranges, search,
            ) {
                rules.push(ranks.of_rule[entry.rule as usize]);
            } else if search.gave_up {
                let rule = &ranks.ids[ranks.of_rule[entry.rule as usize] as usize];
                return Err(EventError::new(format!(
                    "rule {rule}: the event names a field twice around arrays (a repeated key, or a dotted key beside the nested one), and finding the rule's fields in one element of each array ran past the budget of {SEARCH_WORK} steps for one event"
                )));
            }
        }
        // A rule whose `$or` gives several sub-rules may match through more than one.
        rules.sort_unstable();
        rules.dedup();
        Ok(rules
            .iter()
            .map(|&rank| &ranks.ids[rank as usize])
            .collect())
    }

    /// Each rule slot's place in id order, and the ids in that order.
    fn rank_rules(&self) -> Ranks {
        let mut order: Vec<(&RuleId, u32)> = self.by_id.iter().map(|(id, &r)| (id, r)).collect();
        order.sort_unstable();
        let mut of_rule = vec![u32::MAX; self.rules.len()];
        for (rank, &(_, rule)) in order.iter().enumerate() {
            of_rule[rule as usize] = rank as u32;
        }
        Ranks {
            of_rule,
            ids: order
                .into_iter()
                .map(|(id, _)| RuleId(Arc::from(id.as_str())))
                .collect(),
        }
    }

    /// The per-value copy of the paths' exact-value indexes and of the composite leads.
    fn exact_index(&self) -> ExactIndex {
        let mut by_pair: BTreeMap<(ValueId, u32), (Vec<u32>, Vec<u32>)> = BTreeMap::new();
        for (path, field) in self.fields.iter().enumerate() {
            for (&value, list) in &field.values {
                by_pair.entry((value, path as u32)).or_default().0 = list.clone();
            }
        }
        for (&lead, list) in &self.composite_leads {
            let (path, value) = composite::split_lead(lead);
            let leads = &mut by_pair.entry((value, path)).or_default().1;
            leads.extend(list.iter().map(|&(composite, _)| composite));
        }
        let mut index = ExactIndex::default();
        for ((value, path), (postings, leads)) in by_pair {
            let value = value as usize;
            if index.by_value.len() <= value {
                index.by_value.resize(value + 1, (0, 0));
            }
            let at = index.homes.len() as u32;
            let range = &mut index.by_value[value];
            if range.1 == range.0 {
                *range = (at, at);
            }
            range.1 += 1;
            let p = index.postings.len() as u32;
            index.postings.extend(postings);
            let l = index.leads.len() as u32;
            index.leads.extend(leads);
            index.homes.push(Home {
                path,
                postings: (p, index.postings.len() as u32),
                leads: (l, index.leads.len() as u32),
            });
        }
        index
    }

    /// A readable dump of the compiled matcher: the value index of every path, then every
    /// rule's sub-rules with their anchors. Strings and wildcards are quoted as in the
    /// pattern, a path's unusual keys as in error paths (`detail["a\nb"]`), with control,
    /// bidirectional and line-separator characters escaped everywhere.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        let n_subrules = self.subrules.iter().flatten().count();
        let count = |n: usize, one: &str, many: &str| match n {
            1 => format!("1 {one}"),
            n => format!("{n} {many}"),
        };
        let _ = writeln!(
            out,
            "matcher: {}, {} after $or expansion, {}",
            count(self.len(), "rule", "rules"),
            count(n_subrules, "sub-rule", "sub-rules"),
            count(self.path_names.len(), "field path", "field paths")
        );
        let _ = writeln!(out, "\nfield index (anchors by path):");
        // Paths, values and rule ids come from whoever wrote the rules: they are written
        // escaped, so that none of them can break a line, forge one or send terminal codes.
        let path_name = |path: u32| display_field_path(&self.path_names[path as usize]);
        for (path_id, name) in self.path_names.iter().enumerate() {
            let name = display_field_path(name);
            let described = self.fields[path_id].describe();
            let described = if described.is_empty() {
                "(checked only)".to_owned()
            } else {
                described
            };
            let _ = writeln!(out, "  {name}: {described}");
        }
        for c in self.composites.iter().filter(|c| c.n_entries > 0) {
            let paths: Vec<String> = c.paths.iter().map(|&p| path_name(p)).collect();
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
            let id = if id.as_str().contains(json::is_hidden) {
                let mut quoted = String::new();
                json::write_visible_string(&mut quoted, id.as_str());
                quoted
            } else {
                id.to_string()
            };
            let _ = writeln!(
                out,
                "\nrule {id}: {}",
                json::unhide(&rule.pattern.to_json())
            );
            let all = self.constraints_of(&rule.pattern);
            for (n, (&sub, constraints)) in rule.subrules.iter().zip(&all).enumerate() {
                let sub = self.subrules[sub as usize].as_ref().expect("live sub-rule");
                let _ = writeln!(out, "  sub-rule {n}:");
                for (i, constraint) in constraints.iter().enumerate() {
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
                        path_name(constraint.path),
                        tests.join(" | ")
                    );
                }
            }
        }
        out
    }

    /// The constraints of each sub-rule of `pattern`, in the order of their programs
    /// (cheap and selective checks first: most candidates fail one of them). The pattern's
    /// paths must have ids.
    fn constraints_of(&self, pattern: &Pattern) -> Vec<Vec<Constraint>> {
        compile::expand(pattern)
            .iter()
            .map(|conjunction| {
                let mut constraints: Vec<Constraint> = conjunction
                    .constraints
                    .iter()
                    .map(|(path, conditions)| Constraint {
                        path: self.path_ids[*path],
                        tests: conditions.iter().filter_map(Test::compile).collect(),
                        allow_absent: conditions
                            .iter()
                            .any(|c| matches!(c, super::parse::Condition::Exists(false))),
                    })
                    .collect();
                constraints.sort_by_key(check_rank);
                constraints
            })
            .collect()
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
        self.needs.push(Needs::NONE);
        self.exact_strings.push(BTreeMap::new());
        id
    }

    /// Registers a rule and its sub-rules and counts their keys, without indexing them.
    fn stage(&mut self, id: RuleId, pattern: Pattern) -> u32 {
        self.ranks = OnceLock::new();
        self.exact = OnceLock::new();
        let rule = match self.free_rules.pop() {
            Some(r) => r,
            None => {
                self.rules.push(None);
                (self.rules.len() - 1) as u32
            }
        };
        let mut subrule_ids = Vec::new();
        for conjunction in compile::expand(&pattern) {
            for (path, _) in &conjunction.constraints {
                self.path_id(path);
            }
        }
        for constraints in self.constraints_of(&pattern) {
            for constraint in &constraints {
                for test in &constraint.tests {
                    self.needs[constraint.path as usize] |= test.needs();
                }
            }
            for constraint in &constraints {
                for test in &constraint.tests {
                    let key = IndexKey::of(test);
                    if let IndexKey::String(s) = &key {
                        *self.exact_strings[constraint.path as usize]
                            .entry(s.clone())
                            .or_default() += 1;
                    }
                    *self.key_counts.entry((constraint.path, key)).or_default() += 1;
                }
            }
            let start = self.code.len();
            self.dictionary.program(&constraints, &mut self.code);
            for option in composite::options(&constraints, &self.code[start..]) {
                let counts = self.composite_counts.entry(option.paths).or_default();
                counts.users += 1;
                for key in option.keys {
                    *counts.keys.entry(key).or_default() += 1;
                }
            }
            let entry = Entry {
                rule,
                start: start as u32,
                len: (self.code.len() - start) as u32,
                guard_path: NO_GUARD,
                guard_value: check::NONE,
                fast: 2 * constraints
                    .iter()
                    .take_while(|c| check_rank(c) == 0)
                    .count() as u32,
            };
            let sub = SubRule {
                anchor: Anchor::Always,
            };
            let sub_id = match self.free_subrules.pop() {
                Some(s) => {
                    self.subrules[s as usize] = Some(sub);
                    self.entries[s as usize] = entry;
                    s
                }
                None => {
                    self.subrules.push(Some(sub));
                    self.entries.push(entry);
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
        let staged = self.rules[rule as usize].as_ref().expect("staged rule");
        let subrules = staged.subrules.clone();
        let all = self.constraints_of(&staged.pattern);
        for (sub_id, constraints) in subrules.into_iter().zip(&all) {
            let mut best: Option<(u64, Anchor)> = None;
            for (i, constraint) in constraints.iter().enumerate() {
                if constraint.allow_absent {
                    continue;
                }
                let cost: u64 = constraint
                    .tests
                    .iter()
                    .map(|t| {
                        let key = IndexKey::of(t);
                        let mut sharing = self
                            .key_counts
                            .get(&(constraint.path, key.clone()))
                            .copied()
                            .unwrap_or(0);
                        if let IndexKey::Prefix(p) = &key {
                            sharing += self.covered(constraint.path, p);
                        }
                        key.cost(sharing)
                    })
                    .sum();
                if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                    best = Some((cost, Anchor::Single(i)));
                }
            }
            // A composite anchor must beat the best single one clearly: it costs a lookup
            // per event for its set of paths.
            let mut best_paths = Vec::new();
            if best.as_ref().is_some_and(|(c, _)| *c > 8) {
                for option in composite::options(constraints, self.program(sub_id)) {
                    let counts = self.composite_counts.get(&option.paths);
                    let users = counts.map_or(1, |c| c.users);
                    let share = COMPOSITE_LOOKUP * self.live_subrules() / u64::from(users.max(1));
                    let cost: u64 = 4
                        + share
                        + option
                            .keys
                            .iter()
                            .map(|key| {
                                u64::from(
                                    counts.and_then(|c| c.keys.get(key)).copied().unwrap_or(0),
                                ) + 1
                            })
                            .sum::<u64>();
                    if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                        // Lead with the part whose values the fewest tests share.
                        let lead = (0..option.paths.len())
                            .min_by_key(|&j| {
                                let constraint = &constraints[option.constraints[j]];
                                constraint
                                    .tests
                                    .iter()
                                    .map(|t| {
                                        let key = (constraint.path, IndexKey::of(t));
                                        u64::from(self.key_counts.get(&key).copied().unwrap_or(0))
                                    })
                                    .sum::<u64>()
                            })
                            .unwrap_or(0);
                        let leads = option
                            .parts
                            .iter()
                            .map(|parts| composite::lead(option.paths[lead], parts[lead]))
                            .collect();
                        // The composite's id is settled once the best option is known.
                        best = Some((
                            cost,
                            Anchor::Composite {
                                composite: u32::MAX,
                                constraints: option.constraints,
                                keys: option.keys,
                                leads,
                            },
                        ));
                        best_paths = option.paths;
                    }
                }
            }
            let mut anchor = best.map_or(Anchor::Always, |(_, anchor)| anchor);
            if let Anchor::Composite { composite, .. } = &mut anchor {
                *composite = match self.composite_ids.get(&best_paths) {
                    Some(&id) => id,
                    None => {
                        let id = self.composites.len() as u32;
                        self.composites.push(Composite {
                            paths: best_paths.clone(),
                            ..Composite::default()
                        });
                        self.composite_ids.insert(best_paths, id);
                        id
                    }
                };
            }
            // The guard: of the exact one-value constraints outside the anchor, the one
            // whose value the fewest tests name (likely the rarest in events too).
            let anchored = |i: usize| match &anchor {
                Anchor::Single(a) => *a == i,
                Anchor::Composite { constraints, .. } => constraints.contains(&i),
                Anchor::Always => false,
            };
            let guard = constraints
                .iter()
                .enumerate()
                .filter(|&(i, c)| !anchored(i) && !c.allow_absent && c.tests.len() == 1)
                .filter_map(
                    |(i, c)| match Dictionary::op_at(self.program(sub_id), i, 0) {
                        Op::Value(id) => {
                            let key = (c.path, IndexKey::of(&c.tests[0]));
                            let sharing = self.key_counts.get(&key).copied().unwrap_or(0);
                            Some((sharing, c.path, id))
                        }
                        _ => None,
                    },
                )
                .min();
            if let Some((_, path, value)) = guard {
                let entry = &mut self.entries[sub_id as usize];
                entry.guard_path = path;
                entry.guard_value = value;
            }
            match &anchor {
                Anchor::Single(i) => {
                    let constraint = &constraints[*i];
                    for (t, test) in constraint.tests.iter().enumerate() {
                        let op = Dictionary::op_at(self.program(sub_id), *i, t);
                        self.fields[constraint.path as usize].insert(test, op, sub_id);
                    }
                }
                Anchor::Composite {
                    composite,
                    keys,
                    leads,
                    ..
                } => {
                    let c = &mut self.composites[*composite as usize];
                    for &key in keys {
                        c.index.entry(key).or_default().push(sub_id);
                        c.n_entries += 1;
                    }
                    for &lead in leads {
                        let list = self.composite_leads.entry(lead).or_default();
                        match list.iter_mut().find(|(c, _)| c == composite) {
                            Some((_, count)) => *count += 1,
                            None => list.push((*composite, 1)),
                        }
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
        self.ranks = OnceLock::new();
        self.exact = OnceLock::new();
        self.by_id.remove(&removed.id);
        let all = self.constraints_of(&removed.pattern);
        for (sub_id, constraints) in removed.subrules.into_iter().zip(&all) {
            let Some(sub) = self.subrules[sub_id as usize].take() else {
                continue;
            };
            let options = composite::options(constraints, self.program(sub_id));
            self.dictionary.release_program(constraints);
            for constraint in constraints {
                for test in &constraint.tests {
                    let key = (constraint.path, IndexKey::of(test));
                    if let IndexKey::String(s) = &key.1 {
                        let strings = &mut self.exact_strings[constraint.path as usize];
                        if let Some(count) = strings.get_mut(s) {
                            *count -= 1;
                            if *count == 0 {
                                strings.remove(s);
                            }
                        }
                    }
                    if let Some(count) = self.key_counts.get_mut(&key) {
                        *count -= 1;
                        if *count == 0 {
                            self.key_counts.remove(&key);
                        }
                    }
                }
            }
            for option in options {
                let Some(counts) = self.composite_counts.get_mut(&option.paths) else {
                    continue;
                };
                for key in &option.keys {
                    if let Some(count) = counts.keys.get_mut(key) {
                        *count -= 1;
                        if *count == 0 {
                            counts.keys.remove(key);
                        }
                    }
                }
                counts.users -= 1;
                // No sub-rule left with these paths has any key on them either.
                if counts.users == 0 {
                    self.composite_counts.remove(&option.paths);
                }
            }
            match &sub.anchor {
                Anchor::Single(i) => {
                    let constraint = &constraints[*i];
                    for (t, test) in constraint.tests.iter().enumerate() {
                        let op = Dictionary::op_at(self.program(sub_id), *i, t);
                        self.fields[constraint.path as usize].remove(test, op, sub_id);
                    }
                }
                Anchor::Composite {
                    composite,
                    keys,
                    leads,
                    ..
                } => {
                    let c = &mut self.composites[*composite as usize];
                    for &key in leads {
                        if let Some(list) = self.composite_leads.get_mut(&key) {
                            if let Some(at) = list.iter().position(|(c, _)| c == composite) {
                                list[at].1 -= 1;
                                if list[at].1 == 0 {
                                    list.swap_remove(at);
                                }
                            }
                            if list.is_empty() {
                                self.composite_leads.remove(&key);
                            }
                        }
                    }
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
            self.garbage += self.entries[sub_id as usize].len as usize;
            self.entries[sub_id as usize] = FREE_ENTRY;
            self.free_subrules.push(sub_id);
        }
        self.free_rules.push(rule);
        if self.garbage > 4096 && self.garbage > self.code.len() / 2 {
            self.compact_code();
        }
    }

    /// How many tests name exact strings on `path` that start with `prefix` (counting at
    /// most 256 strings): a prefix anchor fires on all of them.
    fn covered(&self, path: u32, prefix: &[u8]) -> u32 {
        self.exact_strings[path as usize]
            .range::<[u8], _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(s, _)| s.starts_with(prefix))
            .take(256)
            .map(|(_, &n)| n)
            .sum()
    }

    /// How many sub-rules are live.
    fn live_subrules(&self) -> u64 {
        (self.subrules.len() - self.free_subrules.len()) as u64
    }

    /// The check program of a live sub-rule.
    fn program(&self, sub_id: u32) -> &[Op] {
        let entry = self.entries[sub_id as usize];
        &self.code[entry.start as usize..(entry.start + entry.len) as usize]
    }

    /// Lays `code` out again without the programs of removed sub-rules, the programs
    /// that one index key yields side by side, so that checking the candidates of a key
    /// reads memory in order.
    fn compact_code(&mut self) {
        let mut order = Vec::with_capacity(self.entries.len());
        let mut placed = vec![false; self.entries.len()];
        let mut visit = |list: &[u32]| {
            for &sub in list {
                if !std::mem::replace(&mut placed[sub as usize], true) {
                    order.push(sub);
                }
            }
        };
        for c in &self.composites {
            c.index.values().for_each(|list| visit(list));
        }
        for field in &self.fields {
            field.lists(&mut visit);
        }
        visit(&self.always);
        // Only sub-rules in no list are left (there should be none).
        order.extend((0..self.entries.len() as u32).filter(|&s| !placed[s as usize]));
        let mut code = Vec::with_capacity(self.code.len() - self.garbage);
        for sub in order {
            let entry = &mut self.entries[sub as usize];
            if entry.rule == u32::MAX {
                continue;
            }
            let start = code.len() as u32;
            code.extend_from_slice(
                &self.code[entry.start as usize..(entry.start + entry.len) as usize],
            );
            entry.start = start;
        }
        self.code = code;
        self.garbage = 0;
    }
}

/// What a composite index costs, in the units of anchor costs, for each sub-rule that
/// could use its set of paths: every event holding one of its leads pays a lookup, so a
/// set that only a small share of the sub-rules can use is charged in inverse proportion
/// to that share (three times the number of sub-rules over the number of users). Without
/// the charge, 10,000 rules of the benchmark workload open hundreds of rarely shared
/// composites and each event visits about 60 of them; with it, the 10,000-rule sets run
/// 12–20 % faster.
const COMPOSITE_LOOKUP: u64 = 3;

/// Orders a sub-rule's constraints for checking: one exact value first (rank 0: the
/// program's fast prefix), then lists of exact values, negations last.
fn check_rank(constraint: &Constraint) -> u8 {
    if constraint.allow_absent {
        return 9;
    }
    let rank = constraint
        .tests
        .iter()
        .map(|test| match test {
            Test::String(_) | Test::Number(_) | Test::Bool(_) | Test::Null => 1,
            Test::Prefix(_) | Test::Suffix(_) => 2,
            Test::PrefixIgnoreCase(_) | Test::SuffixIgnoreCase(_) | Test::EqualsIgnoreCase(_) => 3,
            Test::Numeric(_) => 4,
            Test::Exists => 5,
            Test::Ip(_) | Test::Cidr(_) => 6,
            Test::Wildcard(_) => 7,
            Test::AnythingBut(_) => 8,
        })
        .max()
        .unwrap_or(1);
    if rank == 1 && constraint.tests.len() == 1 {
        0
    } else {
        rank
    }
}

/// Predicate results of the current event: for paths with a single leaf a bit per
/// predicate, for paths with several a cell per predicate and leaf, filled as asked (so
/// that a thousand sub-rules of one `$or` sharing a wildcard on an array evaluate it once
/// per element, not a thousand times).
struct Memo<'a> {
    dictionary: &'a Dictionary,
    known: &'a mut BitSet,
    value: &'a mut BitSet,
    list: &'a mut Vec<u32>,
    epoch: u32,
    cells_at: &'a mut Vec<(u32, usize)>,
    cells: &'a mut Vec<u8>,
}

/// Where a leaf sits among its path's leaves.
#[derive(Clone, Copy)]
enum Among {
    /// The path's only leaf.
    Alone,
    /// Leaf `index` of the path's `count`.
    Several { index: u32, count: u32 },
}

/// A cell of `Memo::cells` not filled yet.
const UNKNOWN: u8 = 2;

impl Memo<'_> {
    #[inline]
    fn pred(&mut self, pred: PredId, leaves: &Leaves<'_>, leaf: u32, among: Among) -> bool {
        match among {
            Among::Alone => {
                if !self.known.contains(pred) {
                    self.known.insert(pred);
                    self.list.push(pred);
                    if self.evaluate(pred, leaves, leaf) {
                        self.value.insert(pred);
                    }
                }
                self.value.contains(pred)
            }
            Among::Several { index, count } => {
                let (epoch, at) = self.cells_at[pred as usize];
                let start = if epoch == self.epoch {
                    at
                } else {
                    let start = self.cells.len();
                    self.cells.resize(start + count as usize, UNKNOWN);
                    self.cells_at[pred as usize] = (self.epoch, start);
                    start
                };
                let cell = start + index as usize;
                match self.cells[cell] {
                    UNKNOWN => {
                        let passes = self.evaluate(pred, leaves, leaf);
                        self.cells[cell] = u8::from(passes);
                        passes
                    }
                    known => known == 1,
                }
            }
        }
    }

    /// Evaluates a predicate the memo does not hold.
    #[inline(never)]
    fn evaluate(&self, pred: PredId, leaves: &Leaves<'_>, leaf: u32) -> bool {
        self.dictionary
            .pred(pred)
            .is_some_and(|test| test.matches(&leaves.probe(leaf)))
    }
}

/// A set of small integers, one bit each.
#[derive(Debug, Clone, Default)]
struct BitSet(Vec<u64>);

impl BitSet {
    /// Makes room for `0..n`.
    fn fit(&mut self, n: usize) {
        let words = n.div_ceil(64);
        if self.0.len() < words {
            self.0.resize(words, 0);
        }
    }

    /// Adds `i`; returns whether it was absent.
    #[inline]
    fn insert(&mut self, i: u32) -> bool {
        let (word, bit) = ((i / 64) as usize, 1u64 << (i % 64));
        let absent = self.0[word] & bit == 0;
        self.0[word] |= bit;
        absent
    }

    #[inline]
    fn remove(&mut self, i: u32) {
        if let Some(word) = self.0.get_mut((i / 64) as usize) {
            *word &= !(1u64 << (i % 64));
        }
    }

    #[inline]
    fn contains(&self, i: u32) -> bool {
        self.0[(i / 64) as usize] & (1u64 << (i % 64)) != 0
    }
}

/// Whether every constraint of a sub-rule's program holds with leaves from consistent
/// array elements.
///
/// Only constraints met solely by leaves inside arrays take part in the consistency
/// search: a leaf outside every array is compatible with any other.
fn check_program(
    program: &[Op],
    leaves: &Leaves<'_>,
    paths: &Paths<'_>,
    memo: &mut Memo<'_>,
    hits: &mut Vec<u32>,
    hit_ranges: &mut Vec<(u32, u32)>,
    search: &mut Search,
) -> bool {
    hits.clear();
    hit_ranges.clear();
    let flat = leaves.flat;
    let passes = |tests: &[Op], leaf: u32, among: Among, memo: &mut Memo<'_>| {
        let i = leaf as usize;
        for op in tests {
            let passed = match *op {
                Op::Value(id) => leaves.values[i] == id,
                Op::Fold(id) => leaves.fold_ids[i] == id,
                Op::Exists => true,
                Op::Pred(pred) => memo.pred(pred, leaves, leaf, among),
                // Never among a constraint's tests: programs are built that way.
                Op::Field { .. } => false,
            };
            if passed {
                return true;
            }
        }
        false
    };
    let mut at = 0;
    while let Some(&Op::Field {
        path,
        tests,
        allow_absent,
    }) = program.get(at)
    {
        let Some(tests) = program.get(at + 1..at + 1 + tests as usize) else {
            return false;
        };
        at += 1 + tests.len();
        let slot = paths.slots[path as usize];
        if (slot >> 32) as u32 != paths.epoch {
            if allow_absent {
                continue;
            }
            return false;
        }
        let leaf = slot as u32;
        if leaf != SEVERAL {
            // The usual case: one leaf, outside every array.
            if !passes(tests, leaf, Among::Alone, memo) {
                return false;
            }
            continue;
        }
        match *paths.leaves(path) {
            [leaf] => {
                // One leaf, inside an array.
                if !passes(tests, leaf, Among::Alone, memo) {
                    return false;
                }
                let at = hits.len() as u32;
                hits.push(leaf);
                hit_ranges.push((at, at + 1));
            }
            ref several => {
                let start = hits.len();
                let mut anywhere = false;
                let count = several.len() as u32;
                for (index, &leaf) in several.iter().enumerate() {
                    let among = Among::Several {
                        index: index as u32,
                        count,
                    };
                    if passes(tests, leaf, among, memo) {
                        if !flat.leaves[leaf as usize].in_array() {
                            anywhere = true;
                            break;
                        }
                        hits.push(leaf);
                    }
                }
                if anywhere {
                    hits.truncate(start);
                } else if hits.len() == start {
                    return false;
                } else {
                    hit_ranges.push((start as u32, hits.len() as u32));
                }
            }
        }
    }
    if hit_ranges.len() <= 1 {
        return true;
    }
    search.consistent(flat, hits, hit_ranges)
}

/// What the fast prefix of a program says.
enum Fast<'p> {
    /// A constraint of the prefix fails.
    Failed,
    /// The prefix holds; the rest of the program is to be checked.
    Passed(&'p [Op]),
    /// A path of the prefix has several leaves or one inside an array: check it all.
    Undecided,
}

/// Checks the one-value exact constraints at the start of a program at once: each is a
/// comparison of its path's value with the constraint's, with no branch per constraint.
#[inline]
fn fast_check<'p>(program: &'p [Op], fast: usize, paths: &Paths<'_>) -> Fast<'p> {
    let Some((prefix, rest)) = program.split_at_checked(fast) else {
        return Fast::Undecided;
    };
    let epoch = u64::from(paths.epoch) << 32;
    let several = epoch | u64::from(SEVERAL);
    let mut failed = false;
    let mut any_several = false;
    for pair in prefix.chunks_exact(2) {
        let (Op::Field { path, .. }, Op::Value(id)) = (pair[0], pair[1]) else {
            return Fast::Undecided;
        };
        let value = paths.values[path as usize];
        let is_several = value == several;
        failed |= value != epoch | u64::from(id) && !is_several;
        any_several |= is_several;
    }
    if failed {
        Fast::Failed
    } else if any_several {
        Fast::Undecided
    } else {
        Fast::Passed(rest)
    }
}
