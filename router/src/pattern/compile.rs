//! Compilation: a [`Pattern`] becomes sub-rules (its `$or` alternatives multiplied out),
//! each a list of constraints on field paths; one constraint per sub-rule, the most
//! selective, is entered in its path's value index so that an event only ever looks at the
//! sub-rules one of its values can trigger.

use std::fmt;

use super::check::{self, Op, ValueId};
use super::flatten::{FxMap, Value};
use super::number::{Number, NumberKey};
use super::parse::{
    AnythingBut, AnythingButKind, Comparison, Condition, FieldValue, Literal, Member, Object,
    Pattern,
};
use super::text::{self, COMPLEXITY_STATES, Glob, Ip, IpRange};

/// Size and complexity budgets, set on [`MatcherBuilder`](super::MatcherBuilder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) max_pattern_chars: usize,
    pub(crate) max_or_combinations: u64,
    pub(crate) max_wildcard_complexity: usize,
    pub(crate) max_nesting: usize,
    pub(crate) max_event_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_pattern_chars: 2048,
            max_or_combinations: 1000,
            max_wildcard_complexity: DEFAULT_WILDCARD_COMPLEXITY,
            max_nesting: 32,
            max_event_depth: 128,
        }
    }
}

/// AWS accepts `/Users/*/dir/dir/dir/dir/dir/doc.txt` (8 by our measure) and rejects
/// `*:*:*:*:*:event-bus/*` (13); see corpus §4.9.
pub(crate) const DEFAULT_WILDCARD_COMPLEXITY: usize = 8;

/// EventBridge's words for a wildcard above the complexity limit.
const TOO_COMPLEX: &str = "Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences after a wildcard character";

/// A rule that a matcher cannot take, naming the limit and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    rule: String,
    path: String,
    limit: &'static str,
    max: u64,
    actual: u64,
}

impl BuildError {
    /// The rule that broke the limit.
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// Always true today: every build error is a broken limit. Kept as a predicate so that
    /// new kinds of errors can come without breaking callers.
    pub fn is_limit(&self) -> bool {
        true
    }

    /// The name of the builder setting that was exceeded, e.g. `max_pattern_chars`.
    pub fn limit(&self) -> &'static str {
        self.limit
    }

    /// The JSONPath of the part over the limit: the wildcard that is too complex, the
    /// object nested too deep, or `$` for limits on the whole pattern (its length, its
    /// `$or` combinations).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong, naming the limit and its value (without the rule and the path).
    pub fn message(&self) -> String {
        let (max, actual) = (self.max, self.actual);
        match self.limit {
            "max_pattern_chars" => {
                format!("the pattern has {actual} characters, more than max_pattern_chars = {max}")
            }
            "max_or_combinations" => format!(
                "the pattern has {actual} $or combinations, more than max_or_combinations = {max}"
            ),
            "max_wildcard_complexity" if actual == u64::MAX => format!(
                "{TOO_COMPLEX} (the complexity search gave up after {COMPLEXITY_STATES} sets of positions; max_wildcard_complexity = {max})"
            ),
            "max_wildcard_complexity" => format!(
                "{TOO_COMPLEX} (complexity at least {actual}, more than max_wildcard_complexity = {max})"
            ),
            _ => format!(
                "the pattern nests {actual} objects deep, more than {} = {max}",
                self.limit
            ),
        }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule {} at {}: {}", self.rule, self.path, self.message())
    }
}

impl std::error::Error for BuildError {}

impl Limits {
    pub(crate) fn check(&self, rule: &str, pattern: &Pattern) -> Result<(), BuildError> {
        let error = |limit, path: String, max: u64, actual: u64| BuildError {
            rule: rule.to_owned(),
            path,
            limit,
            max,
            actual,
        };
        let chars = pattern.source_chars();
        if chars > self.max_pattern_chars {
            return Err(error(
                "max_pattern_chars",
                "$".to_owned(),
                self.max_pattern_chars as u64,
                chars as u64,
            ));
        }
        let (nesting, deepest) = pattern.nesting();
        if nesting > self.max_nesting {
            return Err(error(
                "max_nesting",
                deepest,
                self.max_nesting as u64,
                nesting as u64,
            ));
        }
        let combinations = pattern.or_combinations();
        if combinations > self.max_or_combinations {
            return Err(error(
                "max_or_combinations",
                "$".to_owned(),
                self.max_or_combinations,
                combinations,
            ));
        }
        let (complexity, wildcard) = pattern.wildcard_complexity(self.max_wildcard_complexity);
        if complexity > self.max_wildcard_complexity {
            return Err(error(
                "max_wildcard_complexity",
                wildcard,
                self.max_wildcard_complexity as u64,
                complexity.min(u64::MAX as usize) as u64,
            ));
        }
        Ok(())
    }
}

/// One conjunction of constraints: a pattern with its `$or`s resolved one way.
#[derive(Debug, Clone)]
pub(crate) struct Conjunction<'p> {
    pub(crate) constraints: Vec<(&'p str, &'p [Condition])>,
}

/// Multiplies out the `$or`s of a pattern (bounded by the `$or` limit, checked first).
pub(crate) fn expand(pattern: &Pattern) -> Vec<Conjunction<'_>> {
    fn object(level: &Object) -> Vec<Vec<(&str, &[Condition])>> {
        let mut acc: Vec<Vec<(&str, &[Condition])>> = vec![Vec::new()];
        for member in &level.members {
            let options: Vec<Vec<(&str, &[Condition])>> = match member {
                Member::Field {
                    path,
                    value: FieldValue::Leaf(conditions),
                    ..
                } => vec![vec![(path.as_str(), conditions.as_slice())]],
                Member::Field {
                    value: FieldValue::Object(inner),
                    ..
                } => object(inner),
                Member::Or(alternatives) => alternatives.iter().flat_map(object).collect(),
            };
            let mut next = Vec::with_capacity(acc.len() * options.len());
            for base in &acc {
                for option in &options {
                    let mut combined = base.clone();
                    for &(path, conditions) in option {
                        // A path named again later overrides the earlier one, as in
                        // event-ruler (corpus: JsonRuleCompilerTest.testWithRuleOverride).
                        combined.retain(|(p, _)| *p != path);
                        combined.push((path, conditions));
                    }
                    next.push(combined);
                }
            }
            acc = next;
        }
        acc
    }
    object(&pattern.root)
        .into_iter()
        .map(|constraints| Conjunction { constraints })
        .collect()
}

/// A compiled condition: a test on one leaf value. `exists: false` has no test; it is the
/// `allow_absent` flag of its constraint.
#[derive(Debug, Clone)]
pub(crate) enum Test {
    String(Box<[u8]>),
    Ip(Ip),
    Number(NumberKey),
    Bool(bool),
    Null,
    Prefix(Box<[u8]>),
    PrefixIgnoreCase(String),
    Suffix(Box<[u8]>),
    SuffixIgnoreCase(String),
    EqualsIgnoreCase(String),
    Wildcard(Glob),
    AnythingBut(AnythingButTest),
    Numeric(super::parse::Numeric),
    Exists,
    Cidr(IpRange),
}

/// `anything-but`, ready to test: the value is excluded when any of these say so.
#[derive(Debug, Clone)]
pub(crate) enum AnythingButTest {
    Strings(Vec<Box<[u8]>>),
    Numbers(Vec<NumberKey>),
    Prefixes(Vec<Box<[u8]>>),
    Suffixes(Vec<Box<[u8]>>),
    IgnoreCase(Vec<String>),
    Wildcards(Vec<Glob>),
}

impl Test {
    pub(crate) fn compile(condition: &Condition) -> Option<Test> {
        Some(match condition {
            Condition::Exact(Literal::String(s)) => match text::parse_ip(s) {
                // An IP literal matches any spelling of the same address (corpus §4.1).
                Some(ip) => Test::Ip(ip),
                None => Test::String(s.as_bytes().into()),
            },
            Condition::Exact(Literal::Number(n)) => Test::Number(n.key()),
            Condition::Exact(Literal::Bool(b)) => Test::Bool(*b),
            Condition::Exact(Literal::Null) => Test::Null,
            Condition::Prefix(s) => Test::Prefix(s.as_bytes().into()),
            Condition::PrefixIgnoreCase(s) => Test::PrefixIgnoreCase(text::fold(s)),
            Condition::Suffix(s) => Test::Suffix(s.as_bytes().into()),
            Condition::SuffixIgnoreCase(s) => Test::SuffixIgnoreCase(text::fold(s)),
            Condition::EqualsIgnoreCase(s) => Test::EqualsIgnoreCase(text::fold(s)),
            Condition::Wildcard(w) => Test::Wildcard(w.glob.clone()),
            Condition::AnythingBut(a) => Test::AnythingBut(compile_anything_but(a)),
            Condition::Numeric(n) => Test::Numeric(n.clone()),
            Condition::Exists(true) => Test::Exists,
            Condition::Exists(false) => return None,
            Condition::Cidr(c) => Test::Cidr(c.range.clone()),
        })
    }

    /// What an event leaf must have worked out before this test can run on it.
    pub(crate) fn needs(&self) -> Needs {
        match self {
            Test::String(_) | Test::Number(_) | Test::Bool(_) | Test::Null => Needs::VALUE,
            Test::Ip(_) | Test::Cidr(_) => Needs::IP,
            Test::PrefixIgnoreCase(_) | Test::SuffixIgnoreCase(_) | Test::EqualsIgnoreCase(_) => {
                Needs::FOLD
            }
            Test::AnythingBut(AnythingButTest::IgnoreCase(_)) => Needs::FOLD,
            _ => Needs::NONE,
        }
    }

    /// Whether the leaf passes. (Check programs compare exact values and folds by their
    /// interned ids; those arms serve everything else.)
    #[inline]
    pub(crate) fn matches(&self, leaf: &Probe<'_>) -> bool {
        match (self, leaf.value) {
            (Test::String(s), Value::String(v)) => **s == *v,
            (Test::Number(k), Value::Number { text, exact }) => {
                *k == NumberKey::of_ascii(text, exact)
            }
            (Test::Ip(ip), Value::String(_)) => leaf.ip == Some(ip),
            (Test::Bool(b), Value::Bool(v)) => *b == v,
            (Test::Null, Value::Null) => true,
            (Test::Prefix(p), Value::String(v)) => v.starts_with(p),
            (Test::Suffix(p), Value::String(v)) => v.ends_with(p),
            (Test::PrefixIgnoreCase(p), Value::String(_)) => {
                leaf.folded.is_some_and(|f| f.starts_with(p.as_str()))
            }
            (Test::SuffixIgnoreCase(p), Value::String(_)) => {
                leaf.folded.is_some_and(|f| f.ends_with(p.as_str()))
            }
            (Test::EqualsIgnoreCase(p), Value::String(_)) => leaf.folded == Some(p.as_str()),
            (Test::Wildcard(glob), Value::String(v)) => glob.is_match(v),
            (Test::AnythingBut(a), _) => !a.excludes(leaf),
            (Test::Numeric(n), Value::Number { exact: Some(x), .. }) => n.contains(x),
            (Test::Exists, _) => true,
            (Test::Cidr(range), Value::String(_)) => leaf.ip.is_some_and(|&ip| range.contains(ip)),
            _ => false,
        }
    }
}

/// What the matcher works out once per event leaf for the tests of its path, so that no
/// test hashes, folds or parses a value again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Needs(u8);

impl Needs {
    pub(crate) const NONE: Needs = Needs(0);
    /// The interned value id (exact tests, guards and composite anchors compare it).
    pub(crate) const VALUE: Needs = Needs(1);
    /// The case fold of a string.
    pub(crate) const FOLD: Needs = Needs(2);
    /// The IP address a string spells.
    pub(crate) const IP: Needs = Needs(4);

    pub(crate) fn contains(self, other: Needs) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Needs {
    type Output = Needs;

    fn bitor(self, other: Needs) -> Needs {
        Needs(self.0 | other.0)
    }
}

impl std::ops::BitOrAssign for Needs {
    fn bitor_assign(&mut self, other: Needs) {
        self.0 |= other.0;
    }
}

/// An event leaf as the tests see it: the value, and what its path [`Needs`] (no fold and
/// no IP when the path does not need them).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe<'a> {
    pub(crate) value: Value<'a>,
    pub(crate) folded: Option<&'a str>,
    pub(crate) ip: Option<&'a Ip>,
}

fn compile_anything_but(a: &AnythingBut) -> AnythingButTest {
    let bytes = || a.strings().map(|s| s.as_bytes().into()).collect();
    match a.kind() {
        AnythingButKind::Values => match a.values().first() {
            Some(Literal::Number(_)) => AnythingButTest::Numbers(
                a.values()
                    .iter()
                    .filter_map(|v| match v {
                        Literal::Number(n) => Some(Number::key(n)),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => AnythingButTest::Strings(bytes()),
        },
        AnythingButKind::Prefix => AnythingButTest::Prefixes(bytes()),
        AnythingButKind::Suffix => AnythingButTest::Suffixes(bytes()),
        AnythingButKind::EqualsIgnoreCase => {
            AnythingButTest::IgnoreCase(a.strings().map(text::fold).collect())
        }
        AnythingButKind::Wildcard => AnythingButTest::Wildcards(a.globs.clone()),
    }
}

impl AnythingButTest {
    /// Whether the value is one of the excluded ones. Types are strict: only strings are
    /// excluded by string forms and only numbers by numbers (corpus §4.5).
    fn excludes(&self, leaf: &Probe<'_>) -> bool {
        match (self, leaf.value) {
            (AnythingButTest::Strings(list), Value::String(v)) => list.iter().any(|s| **s == *v),
            (AnythingButTest::Numbers(list), Value::Number { text, exact }) => {
                let key = NumberKey::of_ascii(text, exact);
                list.contains(&key)
            }
            (AnythingButTest::Prefixes(list), Value::String(v)) => {
                list.iter().any(|p| v.starts_with(p))
            }
            (AnythingButTest::Suffixes(list), Value::String(v)) => {
                list.iter().any(|p| v.ends_with(p))
            }
            (AnythingButTest::IgnoreCase(list), Value::String(_)) => {
                leaf.folded.is_some_and(|f| list.iter().any(|s| s == f))
            }
            (AnythingButTest::Wildcards(list), Value::String(v)) => {
                list.iter().any(|g| g.is_match(v))
            }
            _ => false,
        }
    }
}

/// A string operand as `explain` writes it: quoted, with hidden characters escaped.
fn show(bytes: &[u8]) -> String {
    let mut out = String::new();
    super::json::write_visible_string(&mut out, &String::from_utf8_lossy(bytes));
    out
}

impl fmt::Display for Test {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |items: Vec<String>| items.join(", ");
        match self {
            Test::String(s) => f.write_str(&show(s)),
            Test::Ip(ip) => write!(f, "ip {ip}"),
            Test::Number(n) => write!(f, "{n}"),
            Test::Bool(b) => write!(f, "{b}"),
            Test::Null => f.write_str("null"),
            Test::Prefix(p) => write!(f, "prefix {}", show(p)),
            Test::PrefixIgnoreCase(p) => write!(f, "prefix ignoring case {}", show(p.as_bytes())),
            Test::Suffix(p) => write!(f, "suffix {}", show(p)),
            Test::SuffixIgnoreCase(p) => write!(f, "suffix ignoring case {}", show(p.as_bytes())),
            Test::EqualsIgnoreCase(p) => write!(f, "equals ignoring case {}", show(p.as_bytes())),
            // In its pattern form: the segments alone would print the literal star of `a\*`
            // like the wildcard of `a*`.
            Test::Wildcard(g) => write!(f, "wildcard {}", show(g.source().as_bytes())),
            Test::Numeric(n) => {
                let terms: Vec<String> = n
                    .terms()
                    .iter()
                    .map(|(op, v)| format!("{} {v}", op.as_str()))
                    .collect();
                write!(f, "numeric {}", terms.join(" and "))
            }
            Test::Exists => f.write_str("exists"),
            Test::Cidr(range) => write!(f, "cidr {range}"),
            Test::AnythingBut(a) => match a {
                AnythingButTest::Strings(v) => {
                    write!(
                        f,
                        "anything but {}",
                        list(v.iter().map(|s| show(s)).collect())
                    )
                }
                AnythingButTest::Numbers(v) => write!(
                    f,
                    "anything but {}",
                    list(v.iter().map(NumberKey::to_string).collect())
                ),
                AnythingButTest::Prefixes(v) => write!(
                    f,
                    "anything but prefix {}",
                    list(v.iter().map(|s| show(s)).collect())
                ),
                AnythingButTest::Suffixes(v) => write!(
                    f,
                    "anything but suffix {}",
                    list(v.iter().map(|s| show(s)).collect())
                ),
                AnythingButTest::IgnoreCase(v) => write!(
                    f,
                    "anything but ignoring case {}",
                    list(v.iter().map(|s| show(s.as_bytes())).collect())
                ),
                AnythingButTest::Wildcards(v) => write!(
                    f,
                    "anything but wildcard {}",
                    list(v.iter().map(|g| show(g.source().as_bytes())).collect())
                ),
            },
        }
    }
}

/// A constraint of a sub-rule: some leaf at `path` passes one of `tests`, or, when
/// `allow_absent` (an `exists: false` alternative), the path has no leaf at all.
#[derive(Debug, Clone)]
pub(crate) struct Constraint {
    pub(crate) path: u32,
    pub(crate) tests: Box<[Test]>,
    pub(crate) allow_absent: bool,
}

/// A byte trie that reports the entries whose key is a prefix of the input.
///
/// Chains of nodes with one child and no entry are merged (a radix tree): each node holds
/// the bytes of the edge that leads to it, so a walk visits a node per branch or entry,
/// not per byte.
#[derive(Debug, Clone, Default)]
pub(crate) struct Trie {
    nodes: Vec<TrieNode>,
    len: usize,
}

#[derive(Debug, Clone, Default)]
struct TrieNode {
    /// The bytes from the parent to this node; the first is the edge's byte in the
    /// parent's `edges`. Empty for the root.
    label: Box<[u8]>,
    /// By first byte, sorted.
    edges: Vec<(u8, u32)>,
    entries: Vec<u32>,
}

impl Trie {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The child of `node` whose label starts with `b`.
    #[inline]
    fn edge(&self, node: usize, b: u8) -> Option<usize> {
        let edges = &self.nodes[node].edges;
        let found = if edges.len() <= 8 {
            edges.iter().find(|e| e.0 == b).map(|e| e.1)
        } else {
            edges
                .binary_search_by_key(&b, |e| e.0)
                .ok()
                .map(|i| edges[i].1)
        };
        found.map(|n| n as usize)
    }

    pub(crate) fn insert(&mut self, key: impl IntoIterator<Item = u8>, entry: u32) {
        let key: Vec<u8> = key.into_iter().collect();
        if self.nodes.is_empty() {
            self.nodes.push(TrieNode::default());
        }
        let (mut node, mut at) = (0usize, 0usize);
        while at < key.len() {
            let rest = &key[at..];
            let Some(child) = self.edge(node, rest[0]) else {
                let next = self.nodes.len();
                self.nodes.push(TrieNode {
                    label: rest.into(),
                    ..TrieNode::default()
                });
                self.add_edge(node, rest[0], next);
                node = next;
                break;
            };
            let label = &self.nodes[child].label;
            let common = label.iter().zip(rest).take_while(|(a, b)| a == b).count();
            if common < label.len() {
                // Split the edge: a new node for the shared bytes, the old child below it.
                let mid = self.nodes.len();
                let (shared, below) = label.split_at(common);
                let (shared, below): (Box<[u8]>, Box<[u8]>) = (shared.into(), below.into());
                self.nodes.push(TrieNode {
                    label: shared,
                    edges: vec![(below[0], child as u32)],
                    entries: Vec::new(),
                });
                self.nodes[child].label = below;
                let edges = &mut self.nodes[node].edges;
                let i = edges
                    .binary_search_by_key(&rest[0], |e| e.0)
                    .expect("the edge just followed");
                edges[i].1 = mid as u32;
                node = mid;
            } else {
                node = child;
            }
            at += common;
        }
        self.nodes[node].entries.push(entry);
        self.len += 1;
    }

    fn add_edge(&mut self, node: usize, b: u8, child: usize) {
        let edges = &mut self.nodes[node].edges;
        let i = edges.partition_point(|e| e.0 < b);
        edges.insert(i, (b, child as u32));
    }

    pub(crate) fn remove(&mut self, key: impl IntoIterator<Item = u8>, entry: u32) {
        if self.nodes.is_empty() {
            return;
        }
        let key: Vec<u8> = key.into_iter().collect();
        let (mut node, mut at) = (0usize, 0usize);
        while at < key.len() {
            let Some(child) = self.edge(node, key[at]) else {
                return;
            };
            let label = &self.nodes[child].label;
            if !key[at..].starts_with(label) {
                return;
            }
            at += label.len();
            node = child;
        }
        let entries = &mut self.nodes[node].entries;
        if let Some(i) = entries.iter().position(|&e| e == entry) {
            entries.swap_remove(i);
            self.len -= 1;
        }
    }

    /// Calls `found` with every entry whose key is a prefix of `input`.
    #[inline]
    pub(crate) fn walk(&self, input: impl IntoIterator<Item = u8>, found: &mut impl FnMut(u32)) {
        if self.nodes.is_empty() {
            return;
        }
        let mut input = input.into_iter();
        let mut node = 0usize;
        self.nodes[0].entries.iter().for_each(|&e| found(e));
        while let Some(b) = input.next() {
            let Some(child) = self.edge(node, b) else {
                return;
            };
            for &expected in &self.nodes[child].label[1..] {
                if input.next() != Some(expected) {
                    return;
                }
            }
            node = child;
            self.nodes[node].entries.iter().for_each(|&e| found(e));
        }
    }
}

/// Where an anchor test is entered in its path's index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum IndexKey {
    String(Box<[u8]>),
    Ip(Ip),
    Number(NumberKey),
    Bool(bool),
    Null,
    IgnoreCase(String),
    Prefix(Box<[u8]>),
    PrefixIgnoreCase(String),
    Suffix(Box<[u8]>),
    SuffixIgnoreCase(String),
    /// A numeric range bounded on both sides, or `=`.
    NumberRange,
    /// A numeric range open on one side.
    NumberOpen,
    /// Only IP strings can pass (cidr).
    AnyIp,
    /// Any string can pass (a wildcard with no literal prefix or suffix).
    AnyString,
    /// Any leaf can pass (exists, anything-but).
    AnyValue,
}

impl IndexKey {
    pub(crate) fn of(test: &Test) -> IndexKey {
        match test {
            Test::String(s) => IndexKey::String(s.clone()),
            Test::Ip(ip) => IndexKey::Ip(*ip),
            Test::Number(key) => IndexKey::Number(key.clone()),
            Test::Bool(b) => IndexKey::Bool(*b),
            Test::Null => IndexKey::Null,
            Test::EqualsIgnoreCase(s) => IndexKey::IgnoreCase(s.clone()),
            Test::Prefix(p) => IndexKey::Prefix(p.clone()),
            Test::PrefixIgnoreCase(p) => IndexKey::PrefixIgnoreCase(p.clone()),
            Test::Suffix(p) => IndexKey::Suffix(p.clone()),
            Test::SuffixIgnoreCase(p) => IndexKey::SuffixIgnoreCase(p.clone()),
            Test::Wildcard(glob) => {
                let first = &glob.segments[0];
                let last = &glob.segments[glob.segments.len() - 1];
                if glob.segments.len() == 1 {
                    IndexKey::String(first.as_bytes().into())
                } else if first.len() >= last.len() && !first.is_empty() {
                    IndexKey::Prefix(first.as_bytes().into())
                } else if !last.is_empty() {
                    IndexKey::Suffix(last.as_bytes().into())
                } else {
                    IndexKey::AnyString
                }
            }
            Test::Numeric(n) if n.terms().len() == 2 || n.terms()[0].0 == Comparison::Eq => {
                IndexKey::NumberRange
            }
            Test::Numeric(_) => IndexKey::NumberOpen,
            Test::Cidr(_) => IndexKey::AnyIp,
            Test::AnythingBut(_) | Test::Exists => IndexKey::AnyValue,
        }
    }

    /// Relative cost of anchoring a sub-rule here: how broad the key is, times how many
    /// sub-rules already share it.
    pub(crate) fn cost(&self, sharing: u32) -> u64 {
        if *self == IndexKey::NumberRange {
            // Ranges are looked up by value: few of them contain any one number.
            return 4 * (1 + u64::from(sharing) / 8);
        }
        let sharing = u64::from(sharing) + 1;
        let weight = match self {
            IndexKey::String(_)
            | IndexKey::Ip(_)
            | IndexKey::Number(_)
            | IndexKey::IgnoreCase(_) => 1,
            IndexKey::Bool(_) | IndexKey::Null => 4,
            IndexKey::Prefix(p) | IndexKey::Suffix(p) => 2 + 8 / (p.len() as u64 + 1),
            IndexKey::PrefixIgnoreCase(p) | IndexKey::SuffixIgnoreCase(p) => {
                3 + 8 / (p.len() as u64 + 1)
            }
            IndexKey::NumberRange | IndexKey::NumberOpen => 1,
            IndexKey::AnyIp => 20,
            IndexKey::AnyString => 200,
            IndexKey::AnyValue => 400,
        };
        weight * sharing
    }
}

/// Numeric anchors, looked up by value. Every lookup returns a superset of the ranges that
/// contain the value (bounds are compared inclusively); the full check decides.
#[derive(Debug, Clone, Default)]
pub(crate) struct NumericIndex {
    /// `> lo` / `>= lo`, sorted by `lo`.
    above: Vec<(f64, u32)>,
    /// `< hi` / `<= hi`, sorted by `hi`.
    below: Vec<(f64, u32)>,
    /// Two-sided ranges and `=` (as `[v, v]`), by width class.
    ranges: Vec<RangeClass>,
}

/// The two-sided ranges whose widths share a binary exponent (so one wide range does not
/// make every lookup scan all the narrow ones), sorted by `lo`.
#[derive(Debug, Clone, Default)]
struct RangeClass {
    /// The biased exponent of the widths (0 for zero and subnormal widths, 2047 for
    /// infinite ones).
    exponent: u16,
    /// The widest range ever entered here, rounded up (its width computed in float64 can
    /// fall short of the true one), to bound the scan.
    max_width: f64,
    ranges: Vec<(f64, f64, u32)>,
}

/// The width class of a range `[lo, hi]`.
fn width_class(lo: f64, hi: f64) -> u16 {
    (((hi - lo).to_bits() >> 52) & 0x7ff) as u16
}

fn bounds(n: &super::parse::Numeric) -> (Option<f64>, Option<f64>) {
    let (mut lo, mut hi) = (None, None);
    for (op, number) in n.terms() {
        let v = number.as_f64().expect("numeric bounds are exact");
        match op {
            Comparison::Gt | Comparison::Ge => lo = Some(v),
            Comparison::Lt | Comparison::Le => hi = Some(v),
            Comparison::Eq => (lo, hi) = (Some(v), Some(v)),
        }
    }
    (lo, hi)
}

impl NumericIndex {
    fn len(&self) -> usize {
        self.above.len()
            + self.below.len()
            + self.ranges.iter().map(|c| c.ranges.len()).sum::<usize>()
    }

    fn insert(&mut self, n: &super::parse::Numeric, entry: u32) {
        match bounds(n) {
            (Some(lo), None) => {
                let at = self.above.partition_point(|e| e.0 <= lo);
                self.above.insert(at, (lo, entry));
            }
            (None, Some(hi)) => {
                let at = self.below.partition_point(|e| e.0 <= hi);
                self.below.insert(at, (hi, entry));
            }
            (Some(lo), Some(hi)) => {
                let exponent = width_class(lo, hi);
                let at = self.ranges.partition_point(|c| c.exponent < exponent);
                if self.ranges.get(at).is_none_or(|c| c.exponent != exponent) {
                    self.ranges.insert(
                        at,
                        RangeClass {
                            exponent,
                            ..RangeClass::default()
                        },
                    );
                }
                let class = &mut self.ranges[at];
                let place = class.ranges.partition_point(|e| e.0 <= lo);
                class.ranges.insert(place, (lo, hi, entry));
                class.max_width = class.max_width.max((hi - lo).next_up());
            }
            (None, None) => unreachable!("a numeric condition has a bound"),
        }
    }

    fn remove(&mut self, n: &super::parse::Numeric, entry: u32) {
        match bounds(n) {
            (Some(_), None) => self.above.retain(|e| e.1 != entry),
            (None, Some(_)) => self.below.retain(|e| e.1 != entry),
            (Some(lo), Some(hi)) => {
                let exponent = width_class(lo, hi);
                if let Some(at) = self.ranges.iter().position(|c| c.exponent == exponent) {
                    self.ranges[at].ranges.retain(|e| e.2 != entry);
                    if self.ranges[at].ranges.is_empty() {
                        self.ranges.remove(at);
                    }
                }
            }
            (None, None) => {}
        }
    }

    #[inline]
    fn candidates(&self, x: f64, found: &mut impl FnMut(u32)) {
        let n_above = self.above.partition_point(|e| e.0 <= x);
        self.above[..n_above].iter().for_each(|e| found(e.1));
        let first_below = self.below.partition_point(|e| e.0 < x);
        self.below[first_below..].iter().for_each(|e| found(e.1));
        for class in &self.ranges {
            // `lo + max_width`, rounded, is at least `x` for every range holding `x`
            // (`x - max_width` could round above the `lo` of such a range).
            let start = class.ranges.partition_point(|e| e.0 + class.max_width < x);
            let end = class.ranges.partition_point(|e| e.0 <= x);
            for e in &class.ranges[start..end] {
                if e.1 >= x {
                    found(e.2);
                }
            }
        }
    }
}

/// The value index of one field path: anchor tests by key, each entry a sub-rule id.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldIndex {
    /// Exact values (strings, numbers, `true`/`false`/`null`) by interned id.
    pub(crate) values: FxMap<ValueId, Vec<u32>>,
    /// `equals-ignore-case` by the interned id of the fold.
    pub(crate) folds: FxMap<ValueId, Vec<u32>>,
    /// Wildcards without a star: exact strings that are not interned.
    pub(crate) strings: FxMap<Box<[u8]>, Vec<u32>>,
    pub(crate) ips: FxMap<Ip, Vec<u32>>,
    pub(crate) prefixes: Trie,
    pub(crate) prefixes_ignore_case: Trie,
    pub(crate) suffixes: Trie,
    pub(crate) suffixes_ignore_case: Trie,
    pub(crate) numeric: NumericIndex,
    pub(crate) any_ip: Vec<u32>,
    pub(crate) any_string: Vec<u32>,
    pub(crate) any_value: Vec<u32>,
    /// How many entries sit anywhere but in `values`: while none do, a leaf needs only its
    /// value id looked up.
    others: u32,
}

fn remove_from(list: &mut Vec<u32>, entry: u32) {
    if let Some(i) = list.iter().position(|&e| e == entry) {
        list.swap_remove(i);
    }
}

fn remove_from_map<K: std::hash::Hash + Eq>(map: &mut FxMap<K, Vec<u32>>, key: &K, entry: u32) {
    if let Some(list) = map.get_mut(key) {
        remove_from(list, entry);
        if list.is_empty() {
            map.remove(key);
        }
    }
}

impl FieldIndex {
    /// Calls `f` with each list of entries, the lists of one key together.
    pub(crate) fn lists(&self, f: &mut impl FnMut(&[u32])) {
        self.values.values().for_each(|l| f(l));
        self.folds.values().for_each(|l| f(l));
        self.strings.values().for_each(|l| f(l));
        self.ips.values().for_each(|l| f(l));
        for trie in [
            &self.prefixes,
            &self.prefixes_ignore_case,
            &self.suffixes,
            &self.suffixes_ignore_case,
        ] {
            trie.nodes.iter().for_each(|n| f(&n.entries));
        }
        self.numeric.above.iter().for_each(|e| f(&[e.1]));
        self.numeric.below.iter().for_each(|e| f(&[e.1]));
        self.numeric
            .ranges
            .iter()
            .flat_map(|c| &c.ranges)
            .for_each(|e| f(&[e.2]));
        f(&self.any_ip);
        f(&self.any_string);
        f(&self.any_value);
    }

    /// Enters `entry` under `test`; `interned` is the test's op in a check program, which
    /// carries the interned id of an exact value or fold.
    pub(crate) fn insert(&mut self, test: &Test, interned: Op, entry: u32) {
        if let Op::Value(id) = interned {
            return self.values.entry(id).or_default().push(entry);
        }
        self.others += 1;
        if let Op::Fold(id) = interned {
            return self.folds.entry(id).or_default().push(entry);
        }
        if let Test::Numeric(n) = test {
            return self.numeric.insert(n, entry);
        }
        match &IndexKey::of(test) {
            IndexKey::String(s) => self.strings.entry(s.clone()).or_default().push(entry),
            IndexKey::Ip(ip) => self.ips.entry(*ip).or_default().push(entry),
            // Exact values and folds are interned and entered above; were one not, taking
            // it on every leaf would still be correct.
            IndexKey::Number(_) | IndexKey::Bool(_) | IndexKey::Null | IndexKey::IgnoreCase(_) => {
                self.any_value.push(entry)
            }
            IndexKey::Prefix(p) => self.prefixes.insert(p.iter().copied(), entry),
            IndexKey::PrefixIgnoreCase(p) => self.prefixes_ignore_case.insert(p.bytes(), entry),
            IndexKey::Suffix(p) => self.suffixes.insert(p.iter().rev().copied(), entry),
            IndexKey::SuffixIgnoreCase(p) => {
                self.suffixes_ignore_case.insert(p.bytes().rev(), entry)
            }
            IndexKey::NumberRange | IndexKey::NumberOpen => {
                unreachable!("numeric tests are inserted above")
            }
            IndexKey::AnyIp => self.any_ip.push(entry),
            IndexKey::AnyString => self.any_string.push(entry),
            IndexKey::AnyValue => self.any_value.push(entry),
        }
    }

    pub(crate) fn remove(&mut self, test: &Test, interned: Op, entry: u32) {
        if let Op::Value(id) = interned {
            return remove_from_map(&mut self.values, &id, entry);
        }
        self.others -= 1;
        if let Op::Fold(id) = interned {
            return remove_from_map(&mut self.folds, &id, entry);
        }
        if let Test::Numeric(n) = test {
            return self.numeric.remove(n, entry);
        }
        match &IndexKey::of(test) {
            IndexKey::String(s) => remove_from_map(&mut self.strings, s, entry),
            IndexKey::Ip(ip) => remove_from_map(&mut self.ips, ip, entry),
            IndexKey::Number(_) | IndexKey::Bool(_) | IndexKey::Null | IndexKey::IgnoreCase(_) => {
                remove_from(&mut self.any_value, entry)
            }
            IndexKey::Prefix(p) => self.prefixes.remove(p.iter().copied(), entry),
            IndexKey::PrefixIgnoreCase(p) => self.prefixes_ignore_case.remove(p.bytes(), entry),
            IndexKey::Suffix(p) => self.suffixes.remove(p.iter().rev().copied(), entry),
            IndexKey::SuffixIgnoreCase(p) => {
                self.suffixes_ignore_case.remove(p.bytes().rev(), entry)
            }
            IndexKey::NumberRange | IndexKey::NumberOpen => {
                unreachable!("numeric tests are removed above")
            }
            IndexKey::AnyIp => remove_from(&mut self.any_ip, entry),
            IndexKey::AnyString => remove_from(&mut self.any_string, entry),
            IndexKey::AnyValue => remove_from(&mut self.any_value, entry),
        }
    }

    /// Calls `found` with every sub-rule whose anchor this leaf may satisfy, but for exact
    /// values (the matcher reads those by value); `fold` is the leaf's interned fold.
    #[inline]
    pub(crate) fn candidates<'a>(
        &self,
        leaf: impl FnOnce() -> Probe<'a>,
        fold: ValueId,
        found: &mut impl FnMut(u32),
    ) {
        let mut all = |list: &[u32]| list.iter().for_each(|&e| found(e));
        if self.others == 0 {
            return;
        }
        all(&self.any_value);
        let leaf = leaf();
        match leaf.value {
            Value::String(s) => {
                if !self.strings.is_empty()
                    && let Some(list) = self.strings.get(s)
                {
                    all(list);
                }
                all(&self.any_string);
                if let Some(ip) = leaf.ip {
                    if let Some(list) = self.ips.get(ip) {
                        all(list);
                    }
                    all(&self.any_ip);
                }
                if let Some(folded) = leaf.folded {
                    if fold != check::NONE
                        && let Some(list) = self.folds.get(&fold)
                    {
                        all(list);
                    }
                    self.prefixes_ignore_case.walk(folded.bytes(), found);
                    self.suffixes_ignore_case.walk(folded.bytes().rev(), found);
                }
                self.prefixes.walk(s.iter().copied(), found);
                self.suffixes.walk(s.iter().rev().copied(), found);
            }
            Value::Number { exact: Some(x), .. } => self.numeric.candidates(x, found),
            _ => {}
        }
    }

    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        // Each count is of anchored tests: "2 exact values", "1 prefix".
        let mut add = |n: usize, one: &str, many: &str| match n {
            0 => {}
            1 => parts.push(format!("1 {one}")),
            n => parts.push(format!("{n} {many}")),
        };
        add(
            self.values.values().map(Vec::len).sum::<usize>()
                + self.strings.values().map(Vec::len).sum::<usize>(),
            "exact value",
            "exact values",
        );
        add(
            self.ips.values().map(Vec::len).sum(),
            "IP address",
            "IP addresses",
        );
        add(
            self.folds.values().map(Vec::len).sum(),
            "equals-ignore-case",
            "equals-ignore-case",
        );
        add(self.prefixes.len(), "prefix", "prefixes");
        add(
            self.prefixes_ignore_case.len(),
            "prefix ignoring case",
            "prefixes ignoring case",
        );
        add(self.suffixes.len(), "suffix", "suffixes");
        add(
            self.suffixes_ignore_case.len(),
            "suffix ignoring case",
            "suffixes ignoring case",
        );
        add(self.numeric.len(), "numeric range", "numeric ranges");
        add(self.any_ip.len(), "cidr (any IP)", "cidrs (any IP)");
        add(
            self.any_string.len(),
            "wildcard (any string)",
            "wildcards (any string)",
        );
        add(
            self.any_value.len(),
            "exists/anything-but (any value)",
            "exists/anything-but (any value)",
        );
        parts.join(", ")
    }
}

/// Composite anchors: a sub-rule can be indexed on the combination of two or three of its
/// exact-value constraints (`country = DE` *and* `plan = pro`), when each alone is shared by
/// many sub-rules. A key packs the interned ids of the values, in path order, so that a
/// key found in the index means each part holds.
pub(crate) mod composite {
    use super::Constraint;
    use crate::pattern::check::{Op, ValueId};

    /// The most value combinations one composite anchor may enter in the index.
    const MAX_POSTINGS: usize = 16;
    /// Only the first few exact constraints of a sub-rule are combined.
    const MAX_PARTS: usize = 6;

    /// The interned values of two or three parts, in path order.
    pub(crate) type Key = u128;

    /// The key of these values, in path order.
    #[inline]
    pub(crate) fn key(ids: impl IntoIterator<Item = ValueId>) -> Key {
        ids.into_iter()
            .fold(0, |key, id| (key << 32) | Key::from(id))
    }

    /// The lead of a composite: a value at a path.
    #[inline]
    pub(crate) fn lead(path: u32, id: ValueId) -> u64 {
        (u64::from(path) << 32) | u64::from(id)
    }

    /// The path and value of a lead.
    #[inline]
    pub(crate) fn split_lead(lead: u64) -> (u32, ValueId) {
        ((lead >> 32) as u32, lead as ValueId)
    }

    /// A possible composite anchor of a sub-rule: which constraints, their paths (sorted)
    /// and the keys it would enter.
    #[derive(Debug, Clone)]
    pub(crate) struct CompositeOption {
        pub(crate) constraints: Vec<usize>,
        pub(crate) paths: Vec<u32>,
        pub(crate) keys: Vec<Key>,
        /// Per key, the value of each part, in path order.
        pub(crate) parts: Vec<Vec<ValueId>>,
    }

    /// Every pair and triple of exact constraints of a sub-rule, with their keys;
    /// `program` is the sub-rule's check program, which holds the interned values.
    pub(crate) fn options(constraints: &[Constraint], program: &[Op]) -> Vec<CompositeOption> {
        let mut parts: Vec<(usize, u32, Vec<ValueId>)> = Vec::new();
        let mut at = 0;
        for (i, constraint) in constraints.iter().enumerate() {
            let Some(&Op::Field { tests, .. }) = program.get(at) else {
                break;
            };
            let ops = program.get(at + 1..at + 1 + tests as usize).unwrap_or(&[]);
            at += 1 + tests as usize;
            if constraint.allow_absent || ops.is_empty() || parts.len() == MAX_PARTS {
                continue;
            }
            let ids: Option<Vec<ValueId>> = ops
                .iter()
                .map(|op| match *op {
                    Op::Value(id) => Some(id),
                    _ => None,
                })
                .collect();
            if let Some(mut ids) = ids {
                ids.sort_unstable();
                ids.dedup();
                parts.push((i, constraint.path, ids));
            }
        }
        let mut out = Vec::new();
        let n = parts.len();
        let mut subsets: Vec<Vec<usize>> = Vec::new();
        for a in 0..n {
            for b in a + 1..n {
                subsets.push(vec![a, b]);
                for c in b + 1..n {
                    subsets.push(vec![a, b, c]);
                }
            }
        }
        for subset in subsets {
            let mut chosen: Vec<&(usize, u32, Vec<ValueId>)> =
                subset.iter().map(|&i| &parts[i]).collect();
            chosen.sort_by_key(|p| p.1);
            if chosen.windows(2).any(|w| w[0].1 == w[1].1) {
                continue;
            }
            let n_postings = chosen
                .iter()
                .try_fold(1usize, |n, p| n.checked_mul(p.2.len()))
                .unwrap_or(usize::MAX);
            if n_postings > MAX_POSTINGS {
                continue;
            }
            let mut combinations: Vec<Vec<ValueId>> = vec![Vec::new()];
            for part in &chosen {
                combinations = combinations
                    .iter()
                    .flat_map(|prefix| {
                        part.2.iter().map(move |&id| {
                            let mut next = prefix.clone();
                            next.push(id);
                            next
                        })
                    })
                    .collect();
            }
            out.push(CompositeOption {
                constraints: chosen.iter().map(|p| p.0).collect(),
                paths: chosen.iter().map(|p| p.1).collect(),
                keys: combinations
                    .iter()
                    .map(|ids| key(ids.iter().copied()))
                    .collect(),
                parts: combinations,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The radix trie reports exactly the entries whose key is a prefix of the input,
        /// through insertions that split edges and removals in any order.
        #[test]
        fn trie_walks_find_every_prefix(
            keys in prop::collection::vec(prop::collection::vec(0u8..3, 0..7), 0..40),
            removed in prop::collection::vec(any::<bool>(), 40),
            inputs in prop::collection::vec(prop::collection::vec(0u8..3, 0..9), 1..20),
        ) {
            let mut trie = Trie::default();
            let mut live = Vec::new();
            for (entry, key) in keys.iter().enumerate() {
                trie.insert(key.iter().copied(), entry as u32);
                live.push((key, entry as u32));
            }
            for (entry, key) in keys.iter().enumerate() {
                if removed[entry] {
                    trie.remove(key.iter().copied(), entry as u32);
                    live.retain(|&(_, e)| e != entry as u32);
                }
            }
            // Removing what is not there changes nothing.
            trie.remove([0, 1, 2, 0, 1, 2, 0, 1].into_iter(), u32::MAX);
            prop_assert_eq!(trie.len(), live.len());
            for input in &inputs {
                let mut found = Vec::new();
                trie.walk(input.iter().copied(), &mut |e| found.push(e));
                found.sort_unstable();
                let mut expected: Vec<u32> = live
                    .iter()
                    .filter(|(key, _)| input.starts_with(key))
                    .map(|&(_, e)| e)
                    .collect();
                expected.sort_unstable();
                prop_assert_eq!(found, expected, "input {:?}", input);
            }
        }
    }
}
