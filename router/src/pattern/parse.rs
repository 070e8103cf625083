//! Parsing and validation: pattern text → [`Pattern`]. A `Pattern` exists only once every
//! part of it has been checked, and it renders back to JSON ([`Pattern::to_json`]).

use std::fmt;
use std::sync::Arc;

use super::json::{self, Json};
use super::number::Number;
use super::text::{self, Glob, IpRange};

/// The deepest JSON nesting a pattern may have before parsing stops; it protects the stack.
/// The configurable nesting limit is [`MatcherBuilder::max_nesting`](super::MatcherBuilder::max_nesting).
const MAX_JSON_DEPTH: usize = 256;

/// A valid EventBridge event pattern.
///
/// ```
/// use router::pattern::{Condition, Pattern};
///
/// let pattern = Pattern::parse(r#"{"detail": {"plan": ["pro", {"prefix": "ent"}]}}"#)?;
/// let (path, conditions) = pattern.fields().next().unwrap();
/// assert_eq!(path, "detail.plan");
/// assert!(matches!(conditions[1], Condition::Prefix(_)));
/// assert_eq!(pattern.to_json(), r#"{"detail":{"plan":["pro",{"prefix":"ent"}]}}"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Pattern {
    /// Shared, so that a clone (a builder hands every pattern to the matcher it builds)
    /// costs a count rather than a copy of the tree.
    pub(crate) root: Arc<Object>,
    /// The length in characters of the text the pattern was read from.
    source_chars: usize,
}

/// Patterns are equal when they have the same structure, whatever their spacing.
impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.root == other.root
    }
}

/// One object level of a pattern: fields and `$or` groups, ANDed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Object {
    pub(crate) members: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Member {
    Field {
        key: String,
        /// The dotted path from the pattern root, e.g. `detail.user.plan`.
        path: String,
        value: FieldValue,
    },
    /// `"$or": [alternatives]`, at least two.
    Or(Vec<Object>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldValue {
    Object(Object),
    /// The alternatives of a leaf array, ORed; never empty.
    Leaf(Vec<Condition>),
}

/// One element of a leaf array: an exact value or an operator.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Condition {
    /// An exact string, number, boolean or `null`.
    Exact(Literal),
    /// `{"prefix": "s"}`.
    Prefix(String),
    /// `{"prefix": {"equals-ignore-case": "s"}}`.
    PrefixIgnoreCase(String),
    /// `{"suffix": "s"}`.
    Suffix(String),
    /// `{"suffix": {"equals-ignore-case": "s"}}`.
    SuffixIgnoreCase(String),
    /// `{"equals-ignore-case": "s"}`.
    EqualsIgnoreCase(String),
    /// `{"wildcard": "a*b"}`.
    Wildcard(Wildcard),
    /// `{"anything-but": …}` in any of its forms.
    AnythingBut(AnythingBut),
    /// `{"numeric": [op, n, …]}`.
    Numeric(Numeric),
    /// `{"exists": true|false}`.
    Exists(bool),
    /// `{"cidr": "10.0.0.0/8"}`.
    Cidr(Cidr),
}

/// An exact value in a pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A string, matched byte for byte.
    String(String),
    /// A number, matched by value (corpus §4.1).
    Number(Number),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

/// A validated wildcard pattern (`*` matches any run of characters; `\*` and `\\` escape).
#[derive(Debug, Clone, PartialEq)]
pub struct Wildcard {
    source: String,
    pub(crate) glob: Glob,
}

impl Wildcard {
    fn parse(source: &str) -> Result<Wildcard, String> {
        Ok(Wildcard {
            source: source.to_owned(),
            glob: text::parse_glob(source)?,
        })
    }

    /// The pattern as written, escapes included.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// The form of an `anything-but` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnythingButKind {
    /// `{"anything-but": "x"}`, a number, or a list of either.
    Values,
    /// `{"anything-but": {"prefix": …}}`.
    Prefix,
    /// `{"anything-but": {"suffix": …}}`.
    Suffix,
    /// `{"anything-but": {"equals-ignore-case": …}}`.
    EqualsIgnoreCase,
    /// `{"anything-but": {"wildcard": …}}`.
    Wildcard,
}

/// `{"anything-but": …}`: matches a leaf value that none of its values exclude.
#[derive(Debug, Clone, PartialEq)]
pub struct AnythingBut {
    kind: AnythingButKind,
    /// Strings or numbers for `Values`, strings for the other kinds.
    values: Vec<Literal>,
    /// Parsed globs, for the `Wildcard` kind.
    pub(crate) globs: Vec<Glob>,
    /// Whether the values were written as a list.
    list: bool,
}

impl AnythingBut {
    /// Which form this is.
    pub fn kind(&self) -> AnythingButKind {
        self.kind
    }

    /// The excluded values (strings, or for [`AnythingButKind::Values`] strings or numbers).
    pub fn values(&self) -> &[Literal] {
        &self.values
    }

    pub(crate) fn strings(&self) -> impl Iterator<Item = &str> {
        self.values.iter().filter_map(|v| match v {
            Literal::String(s) => Some(s.as_str()),
            _ => None,
        })
    }
}

/// A comparison in a `numeric` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `=`
    Eq,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Comparison {
    fn parse(s: &str) -> Option<Comparison> {
        Some(match s {
            "=" => Comparison::Eq,
            "<" => Comparison::Lt,
            "<=" => Comparison::Le,
            ">" => Comparison::Gt,
            ">=" => Comparison::Ge,
            _ => return None,
        })
    }

    /// The operator as written in a pattern.
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Eq => "=",
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
        }
    }

    fn holds(self, value: f64, bound: f64) -> bool {
        match self {
            Comparison::Eq => value == bound,
            Comparison::Lt => value < bound,
            Comparison::Le => value <= bound,
            Comparison::Gt => value > bound,
            Comparison::Ge => value >= bound,
        }
    }
}

/// `{"numeric": […]}`: one comparison, or a lower bound followed by an upper bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Numeric {
    terms: Vec<(Comparison, Number)>,
    /// The bounds as float64, parallel to `terms` (every bound is exact).
    bounds: Vec<f64>,
}

impl Numeric {
    /// The comparisons, in pattern order: one, or two for a range (lower bound first).
    pub fn terms(&self) -> &[(Comparison, Number)] {
        &self.terms
    }

    /// Whether an event number with this exact value satisfies every comparison.
    pub fn contains(&self, value: f64) -> bool {
        self.terms
            .iter()
            .zip(&self.bounds)
            .all(|((op, _), bound)| op.holds(value, *bound))
    }
}

/// `{"cidr": "addr/bits"}`: an IPv4 or IPv6 range.
#[derive(Debug, Clone, PartialEq)]
pub struct Cidr {
    source: String,
    pub(crate) range: IpRange,
}

impl Cidr {
    /// The range as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// Why a pattern is invalid, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    path: String,
    message: String,
    syntax: bool,
}

impl PatternError {
    fn new(path: &JsonPath, message: impl Into<String>) -> PatternError {
        PatternError {
            path: path.render(),
            message: message.into(),
            syntax: false,
        }
    }

    /// The JSONPath of the offending part, e.g. `$.detail.state[0].anything-but`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong, in EventBridge's words where it has them ("Empty arrays are not
    /// allowed").
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the text is not well-formed JSON at all.
    pub fn is_syntax(&self) -> bool {
        self.syntax
    }
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for PatternError {}

/// A JSONPath under construction, for error messages.
#[derive(Debug, Clone, Default)]
struct JsonPath(Vec<PathStep>);

#[derive(Debug, Clone)]
enum PathStep {
    Key(String),
    Index(usize),
}

impl JsonPath {
    fn key(&self, key: &str) -> JsonPath {
        let mut next = self.clone();
        next.0.push(PathStep::Key(key.to_owned()));
        next
    }

    fn index(&self, index: usize) -> JsonPath {
        let mut next = self.clone();
        next.0.push(PathStep::Index(index));
        next
    }

    fn render(&self) -> String {
        let mut out = String::from("$");
        for step in &self.0 {
            match step {
                PathStep::Key(k) if is_plain_key(k) => {
                    out.push('.');
                    out.push_str(k);
                }
                PathStep::Key(k) => {
                    out.push('[');
                    json::write_string(&mut out, k);
                    out.push(']');
                }
                PathStep::Index(i) => {
                    use fmt::Write;
                    let _ = write!(out, "[{i}]");
                }
            }
        }
        out
    }
}

/// Whether a path writes `key` after a dot; any other key goes in brackets, quoted.
fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '$'))
}

/// A dotted field path (`detail.plan`) written for people to read, the way error paths
/// write keys but without the leading `$`: plain keys after dots, any other key in
/// brackets and quoted with its hidden characters escaped (`detail["a\nb"]`), so that a
/// key can neither break the line it is printed on nor pass for another.
pub(crate) fn display_field_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for (i, key) in path.split('.').enumerate() {
        if is_plain_key(key) {
            if i > 0 {
                out.push('.');
            }
            out.push_str(key);
        } else {
            out.push('[');
            json::write_visible_string(&mut out, key);
            out.push(']');
        }
    }
    out
}

/// Names that may not be field names inside `$or` (corpus §4.10).
const RESERVED: &[&str] = &[
    "anything-but",
    "cidr",
    "equals-ignore-case",
    "exactly",
    "exists",
    "numeric",
    "prefix",
    "suffix",
    "wildcard",
    "=",
    "<",
    "<=",
    ">",
    ">=",
    // Names event-ruler keeps for operators it may add (corpus §4.10).
    "regex",
    "not-wildcard",
    "not-equals-ignore-case",
    "date-after",
    "date-on-or-after",
    "date-before",
    "date-on-or-before",
    "in-date-range",
    "ip-address-in-range",
    "ip-address-not-in-range",
];

impl Pattern {
    /// Parses and validates pattern text.
    ///
    /// ```
    /// use router::pattern::Pattern;
    ///
    /// let error = Pattern::parse(r#"{"detail": {"plan": []}}"#).unwrap_err();
    /// assert_eq!(error.to_string(), "$.detail.plan: Empty arrays are not allowed");
    /// ```
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let json = json::parse(text.as_bytes(), MAX_JSON_DEPTH).map_err(|e| PatternError {
            path: "$".to_owned(),
            message: e.to_string(),
            syntax: true,
        })?;
        Pattern::from_json(&json, text.chars().count())
    }

    /// Validates a pattern held as a `serde_json::Value`. Numbers are taken as serde_json
    /// prints them.
    pub fn from_value(value: &serde_json::Value) -> Result<Pattern, PatternError> {
        Pattern::parse(&value.to_string())
    }

    fn from_json(json: &Json, source_chars: usize) -> Result<Pattern, PatternError> {
        let root = JsonPath::default();
        let Json::Object(members) = json else {
            return Err(PatternError::new(&root, "Filter is not an object"));
        };
        let root = parse_object(members, &root, "", false)?;
        Ok(Pattern {
            root: Arc::new(root),
            source_chars,
        })
    }

    /// The pattern as compact JSON. Parsing it gives an equal `Pattern`.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        write_object(&self.root, &mut out);
        out
    }

    /// Every leaf field the pattern names, as its dotted path from the root with its
    /// conditions, in pattern order. Fields inside `$or` alternatives are included, so a
    /// path can appear more than once.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &[Condition])> {
        let mut out = Vec::new();
        collect_fields(&self.root, &mut out);
        out.into_iter()
    }

    /// The length of the pattern text in characters.
    pub(crate) fn source_chars(&self) -> usize {
        self.source_chars
    }

    /// EventBridge's count of `$or` combinations: the product of the sizes of every `$or`
    /// array in the pattern.
    pub(crate) fn or_combinations(&self) -> u64 {
        fn walk(object: &Object) -> u64 {
            object.members.iter().fold(1u64, |acc, member| {
                let inner = match member {
                    Member::Field {
                        value: FieldValue::Object(o),
                        ..
                    } => walk(o),
                    Member::Field { .. } => 1,
                    Member::Or(alternatives) => alternatives
                        .iter()
                        .fold(alternatives.len() as u64, |acc, alternative| {
                            acc.saturating_mul(walk(alternative))
                        }),
                };
                acc.saturating_mul(inner)
            })
        }
        walk(&self.root)
    }

    /// The deepest object nesting, the root counting as 1, and the JSONPath of the first
    /// object that deep.
    pub(crate) fn nesting(&self) -> (usize, String) {
        fn walk(object: &Object, depth: usize, at: &JsonPath, deepest: &mut (usize, String)) {
            if depth > deepest.0 {
                *deepest = (depth, at.render());
            }
            for member in &object.members {
                match member {
                    Member::Field {
                        key,
                        value: FieldValue::Object(inner),
                        ..
                    } => walk(inner, depth + 1, &at.key(key), deepest),
                    Member::Field { .. } => {}
                    // An alternative sits at the depth of the object holding the `$or`.
                    Member::Or(alternatives) => {
                        let at = at.key("$or");
                        for (i, alternative) in alternatives.iter().enumerate() {
                            walk(alternative, depth, &at.index(i), deepest);
                        }
                    }
                }
            }
        }
        let mut deepest = (0, String::new());
        walk(&self.root, 1, &JsonPath::default(), &mut deepest);
        deepest
    }

    /// The largest wildcard complexity of any wildcard in the pattern (0 without any), and
    /// the JSONPath of that wildcard. Stops at the first wildcard above `limit`; that
    /// result is a lower bound (see [`Glob::complexity`]).
    pub(crate) fn wildcard_complexity(&self, limit: usize) -> (usize, String) {
        fn walk(object: &Object, at: &JsonPath, limit: usize, worst: &mut (usize, String)) {
            for member in &object.members {
                if worst.0 > limit {
                    return;
                }
                match member {
                    Member::Field {
                        key,
                        value: FieldValue::Object(inner),
                        ..
                    } => walk(inner, &at.key(key), limit, worst),
                    Member::Field {
                        key,
                        value: FieldValue::Leaf(conditions),
                        ..
                    } => {
                        for (i, condition) in conditions.iter().enumerate() {
                            let element = at.key(key).index(i);
                            let globs: Vec<(&Glob, JsonPath)> = match condition {
                                Condition::Wildcard(w) => vec![(&w.glob, element.key("wildcard"))],
                                Condition::AnythingBut(a) if a.globs.len() == 1 => {
                                    vec![(&a.globs[0], element.key("anything-but").key("wildcard"))]
                                }
                                Condition::AnythingBut(a) => {
                                    let list = element.key("anything-but").key("wildcard");
                                    a.globs
                                        .iter()
                                        .enumerate()
                                        .map(|(j, glob)| (glob, list.index(j)))
                                        .collect()
                                }
                                _ => continue,
                            };
                            for (glob, path) in globs {
                                let complexity = glob.complexity(limit);
                                if complexity > worst.0 {
                                    *worst = (complexity, path.render());
                                    if complexity > limit {
                                        return;
                                    }
                                }
                            }
                        }
                    }
                    Member::Or(alternatives) => {
                        let at = at.key("$or");
                        for (i, alternative) in alternatives.iter().enumerate() {
                            walk(alternative, &at.index(i), limit, worst);
                        }
                    }
                }
            }
        }
        let mut worst = (0, String::new());
        walk(&self.root, &JsonPath::default(), limit, &mut worst);
        worst
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

impl std::str::FromStr for Pattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Pattern, PatternError> {
        Pattern::parse(s)
    }
}

fn collect_fields<'a>(object: &'a Object, out: &mut Vec<(&'a str, &'a [Condition])>) {
    for member in &object.members {
        match member {
            Member::Field {
                path,
                value: FieldValue::Leaf(conditions),
                ..
            } => out.push((path, conditions)),
            Member::Field {
                value: FieldValue::Object(o),
                ..
            } => collect_fields(o, out),
            Member::Or(alternatives) => {
                for alternative in alternatives {
                    collect_fields(alternative, out);
                }
            }
        }
    }
}

/// Last occurrence of each key wins, at the position of that last occurrence (corpus §3.1).
/// Linear: an object with a hundred thousand keys takes milliseconds, not seconds.
fn last_wins(members: &[(String, Json)]) -> Vec<&(String, Json)> {
    let mut seen = std::collections::HashSet::with_capacity(members.len());
    let mut kept: Vec<&(String, Json)> = members
        .iter()
        .rev()
        .filter(|(key, _)| seen.insert(key.as_str()))
        .collect();
    kept.reverse();
    kept
}

fn parse_object(
    members: &[(String, Json)],
    at: &JsonPath,
    prefix: &str,
    in_or: bool,
) -> Result<Object, PatternError> {
    if members.is_empty() {
        return Err(PatternError::new(at, "Empty objects are not allowed"));
    }
    let mut out = Vec::new();
    for (key, value) in last_wins(members) {
        let here = at.key(key);
        if in_or && RESERVED.contains(&key.as_str()) {
            return Err(PatternError::new(
                &here,
                format!("{key} is Ruler reserved fieldName which cannot be used inside $or."),
            ));
        }
        if key == "$or" {
            let Json::Array(elements) = value else {
                return Err(PatternError::new(
                    &here,
                    "It must be an Array followed with $or.",
                ));
            };
            // An element that is not an object is named before the count, as event-ruler
            // does: `["x"]` has a wrong element more than too few.
            let mut objects = Vec::with_capacity(elements.len());
            for (i, element) in elements.iter().enumerate() {
                let Json::Object(inner) = element else {
                    return Err(PatternError::new(
                        &here.index(i),
                        "Only JSON object is allowed in array of $or relationship.",
                    ));
                };
                objects.push(inner);
            }
            if objects.len() < 2 {
                return Err(PatternError::new(
                    &here,
                    "There must have at least 2 Objects in $or relationship.",
                ));
            }
            let mut alternatives = Vec::with_capacity(objects.len());
            for (i, inner) in objects.into_iter().enumerate() {
                alternatives.push(parse_object(inner, &here.index(i), prefix, true)?);
            }
            out.push(Member::Or(alternatives));
            continue;
        }
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let value = match value {
            Json::Object(inner) => FieldValue::Object(parse_object(inner, &here, &path, in_or)?),
            Json::Array(elements) => {
                if elements.is_empty() {
                    return Err(PatternError::new(&here, "Empty arrays are not allowed"));
                }
                let conditions = elements
                    .iter()
                    .enumerate()
                    .map(|(i, element)| parse_condition(element, &here.index(i)))
                    .collect::<Result<Vec<_>, _>>()?;
                FieldValue::Leaf(conditions)
            }
            _ => {
                return Err(PatternError::new(
                    &here,
                    format!("\"{key}\" must be an object or an array"),
                ));
            }
        };
        out.push(Member::Field {
            key: key.clone(),
            path,
            value,
        });
    }
    Ok(Object { members: out })
}

fn parse_condition(element: &Json, at: &JsonPath) -> Result<Condition, PatternError> {
    let members = match element {
        Json::String(s) => return Ok(Condition::Exact(Literal::String(s.clone()))),
        Json::Number(n) => return Ok(Condition::Exact(Literal::Number(Number::from_json_text(n)))),
        Json::Bool(b) => return Ok(Condition::Exact(Literal::Bool(*b))),
        Json::Null => return Ok(Condition::Exact(Literal::Null)),
        Json::Array(_) => {
            return Err(PatternError::new(
                at,
                "Match value must be String, number, true, false, or null",
            ));
        }
        Json::Object(members) => last_wins(members),
    };
    let Some((name, value)) = members.first().map(|m| (&m.0, &m.1)) else {
        return Err(PatternError::new(at, "Match expression name not found"));
    };
    let here = at.key(name);
    let too_many = |message: &str| -> Result<(), PatternError> {
        match members.get(1) {
            Some((extra, _)) => Err(PatternError::new(&at.key(extra), message)),
            None => Ok(()),
        }
    };
    let condition = match name.as_str() {
        "prefix" | "suffix" => {
            let prefix = name == "prefix";
            let text = match value {
                Json::String(s) => s.clone(),
                Json::Object(inner) => ignore_case_operand(inner, name, &here)?,
                _ => {
                    return Err(PatternError::new(
                        &here,
                        format!("{name} match pattern must be a string"),
                    ));
                }
            };
            match (prefix, value) {
                (true, Json::String(_)) => Condition::Prefix(text),
                (true, _) => Condition::PrefixIgnoreCase(text),
                (false, Json::String(_)) => Condition::Suffix(text),
                (false, _) => Condition::SuffixIgnoreCase(text),
            }
        }
        "equals-ignore-case" => match value {
            Json::String(s) => Condition::EqualsIgnoreCase(s.clone()),
            _ => {
                return Err(PatternError::new(
                    &here,
                    "equals-ignore-case match pattern must be a string",
                ));
            }
        },
        "wildcard" => match value {
            Json::String(s) => {
                Condition::Wildcard(Wildcard::parse(s).map_err(|m| PatternError::new(&here, m))?)
            }
            _ => {
                return Err(PatternError::new(
                    &here,
                    "wildcard match pattern must be a string",
                ));
            }
        },
        "exists" => match value {
            Json::Bool(b) => Condition::Exists(*b),
            _ => {
                return Err(PatternError::new(
                    &here,
                    "exists match pattern must be either true or false.",
                ));
            }
        },
        "cidr" => match value {
            Json::String(s) => Condition::Cidr(Cidr {
                source: s.clone(),
                range: text::parse_cidr(s).map_err(|m| PatternError::new(&here, m))?,
            }),
            _ => {
                return Err(PatternError::new(
                    &here,
                    "prefix match pattern must be a string",
                ));
            }
        },
        "numeric" => match value {
            Json::Array(elements) => Condition::Numeric(parse_numeric(elements, &here)?),
            _ => {
                return Err(PatternError::new(
                    &here,
                    "Value of numeric must be an array.",
                ));
            }
        },
        "anything-but" => {
            let condition = Condition::AnythingBut(parse_anything_but(value, &here)?);
            // event-ruler's wording for extra keys after anything-but (corpus invalid.jsonl).
            too_many("Too many elements in numeric expression")?;
            return Ok(condition);
        }
        other => {
            return Err(PatternError::new(
                &here,
                format!("Unrecognized match type {other}"),
            ));
        }
    };
    too_many("Only one key allowed in match expression")?;
    Ok(condition)
}

/// The operand of `{"prefix"|"suffix": {"equals-ignore-case": "s"}}`.
fn ignore_case_operand(
    inner: &[(String, Json)],
    name: &str,
    at: &JsonPath,
) -> Result<String, PatternError> {
    let inner = last_wins(inner);
    let Some((key, value)) = inner.first().map(|m| (&m.0, &m.1)) else {
        return Err(PatternError::new(at, "Match expression name not found"));
    };
    if key != "equals-ignore-case" {
        return Err(PatternError::new(
            &at.key(key),
            format!("Unsupported {name} pattern: {key}"),
        ));
    }
    let Json::String(s) = value else {
        return Err(PatternError::new(
            &at.key(key),
            "equals-ignore-case match pattern must be a string",
        ));
    };
    if let Some((extra, _)) = inner.get(1) {
        return Err(PatternError::new(
            &at.key(extra),
            "Only one key allowed in match expression",
        ));
    }
    Ok(s.clone())
}

fn exact_bound(n: &str, at: &JsonPath) -> Result<(Number, f64), PatternError> {
    let number = Number::from_json_text(n);
    match number.as_f64() {
        Some(v) => Ok((number, v)),
        None => Err(PatternError::new(
            at,
            format!("Cannot compare number : {n}"),
        )),
    }
}

fn render(json: &Json) -> String {
    let mut out = String::new();
    match json {
        Json::String(s) => out.push_str(s),
        other => other.write(&mut out),
    }
    out
}

fn parse_numeric(elements: &[Json], at: &JsonPath) -> Result<Numeric, PatternError> {
    let operator = |i: usize| -> Result<Option<Comparison>, PatternError> {
        match elements.get(i) {
            None => Ok(None),
            Some(Json::String(s)) => match Comparison::parse(s) {
                Some(op) => Ok(Some(op)),
                None => Err(PatternError::new(
                    &at.index(i),
                    format!("Unrecognized numeric range operator: {s}"),
                )),
            },
            Some(other) => Err(PatternError::new(
                &at.index(i),
                format!("Invalid member in numeric match: {}", render(other)),
            )),
        }
    };
    let operand = |i: usize, op: Comparison| -> Result<(Number, f64), PatternError> {
        match elements.get(i) {
            Some(Json::Number(n)) => exact_bound(n, &at.index(i)),
            _ => {
                let name = if op == Comparison::Eq {
                    "equals"
                } else {
                    op.as_str()
                };
                Err(PatternError::new(
                    &at.index(i.min(elements.len())),
                    format!("Value of {name} must be numeric"),
                ))
            }
        }
    };
    let Some(first) = operator(0)? else {
        return Err(PatternError::new(at, "Invalid member in numeric match: ]"));
    };
    let (n1, v1) = operand(1, first)?;
    let mut terms = vec![(first, n1)];
    let mut bounds = vec![v1];
    if elements.len() > 2 {
        if !matches!(first, Comparison::Gt | Comparison::Ge) {
            return Err(PatternError::new(
                &at.index(2),
                "Too many elements in numeric expression",
            ));
        }
        let second = operator(2)?.expect("element 2 exists");
        if !matches!(second, Comparison::Lt | Comparison::Le) {
            return Err(PatternError::new(
                &at.index(2),
                format!("Bad numeric range operator: {}", second.as_str()),
            ));
        }
        let (n2, v2) = operand(3, second)?;
        if elements.len() > 4 {
            return Err(PatternError::new(
                &at.index(4),
                "Too many terms in numeric range expression",
            ));
        }
        if v1 >= v2 {
            return Err(PatternError::new(at, "Bottom must be less than top"));
        }
        terms.push((second, n2));
        bounds.push(v2);
    }
    Ok(Numeric { terms, bounds })
}

fn parse_anything_but(value: &Json, at: &JsonPath) -> Result<AnythingBut, PatternError> {
    const MIXED: &str = "Inside anything but list, either all values are number or string, mixed type is not supported";
    const SINGLE: &str = "Value of anything-but must be an array or single string/number value.";
    let plain = |values: Vec<Literal>, list: bool| AnythingBut {
        kind: AnythingButKind::Values,
        values,
        globs: Vec::new(),
        list,
    };
    match value {
        Json::String(s) => Ok(plain(vec![Literal::String(s.clone())], false)),
        Json::Number(n) => Ok(plain(
            vec![Literal::Number(Number::from_json_text(n))],
            false,
        )),
        Json::Null | Json::Bool(_) => Err(PatternError::new(at, SINGLE)),
        Json::Array(elements) => {
            if elements.is_empty() {
                return Err(PatternError::new(at, MIXED));
            }
            let mut values = Vec::with_capacity(elements.len());
            for (i, element) in elements.iter().enumerate() {
                let literal = match element {
                    Json::String(s) => Literal::String(s.clone()),
                    Json::Number(n) => Literal::Number(Number::from_json_text(n)),
                    _ => {
                        return Err(PatternError::new(
                            &at.index(i),
                            "Inside anything but list, start|null|boolean is not supported.",
                        ));
                    }
                };
                if let Some(first) = values.first()
                    && std::mem::discriminant(first) != std::mem::discriminant(&literal)
                {
                    return Err(PatternError::new(&at.index(i), MIXED));
                }
                values.push(literal);
            }
            Ok(plain(values, true))
        }
        Json::Object(members) => {
            let members = last_wins(members);
            let Some((name, operand)) = members.first().map(|m| (&m.0, &m.1)) else {
                return Err(PatternError::new(at, "Match expression name not found"));
            };
            let here = at.key(name);
            let (kind, message) = match name.as_str() {
                "prefix" => (
                    AnythingButKind::Prefix,
                    "prefix/suffix match pattern must be a string",
                ),
                "suffix" => (
                    AnythingButKind::Suffix,
                    "prefix/suffix match pattern must be a string",
                ),
                "equals-ignore-case" => (
                    AnythingButKind::EqualsIgnoreCase,
                    "Inside anything-but/equals-ignore-case list, number|start|null|boolean is not supported.",
                ),
                "wildcard" => (
                    AnythingButKind::Wildcard,
                    "wildcard match pattern must be a string",
                ),
                other => {
                    return Err(PatternError::new(
                        &here,
                        format!("Unsupported anything-but pattern: {other}"),
                    ));
                }
            };
            let (strings, list) = match operand {
                Json::String(s) => (vec![(s.clone(), here.clone())], false),
                Json::Array(elements) => {
                    if elements.is_empty() {
                        return Err(PatternError::new(&here, "Empty arrays are not allowed"));
                    }
                    let mut strings = Vec::with_capacity(elements.len());
                    for (i, element) in elements.iter().enumerate() {
                        match element {
                            Json::String(s) => strings.push((s.clone(), here.index(i))),
                            _ => return Err(PatternError::new(&here.index(i), message)),
                        }
                    }
                    (strings, true)
                }
                Json::Object(_)
                    if matches!(kind, AnythingButKind::Prefix | AnythingButKind::Suffix) =>
                {
                    return Err(PatternError::new(&here, SINGLE));
                }
                _ => return Err(PatternError::new(&here, message)),
            };
            let mut globs = Vec::new();
            for (s, path) in &strings {
                match kind {
                    AnythingButKind::Prefix | AnythingButKind::Suffix if s.is_empty() => {
                        return Err(PatternError::new(path, "Null prefix/suffix not allowed"));
                    }
                    AnythingButKind::Wildcard => {
                        globs.push(text::parse_glob(s).map_err(|m| PatternError::new(path, m))?)
                    }
                    _ => {}
                }
            }
            if let Some((extra, _)) = members.get(1) {
                return Err(PatternError::new(
                    &at.key(extra),
                    "Too many elements in numeric expression",
                ));
            }
            Ok(AnythingBut {
                kind,
                values: strings
                    .into_iter()
                    .map(|(s, _)| Literal::String(s))
                    .collect(),
                globs,
                list,
            })
        }
    }
}

fn write_object(object: &Object, out: &mut String) {
    out.push('{');
    for (i, member) in object.members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match member {
            Member::Field { key, value, .. } => {
                json::write_string(out, key);
                out.push(':');
                match value {
                    FieldValue::Object(inner) => write_object(inner, out),
                    FieldValue::Leaf(conditions) => {
                        out.push('[');
                        for (j, condition) in conditions.iter().enumerate() {
                            if j > 0 {
                                out.push(',');
                            }
                            write_condition(condition, out);
                        }
                        out.push(']');
                    }
                }
            }
            Member::Or(alternatives) => {
                out.push_str("\"$or\":[");
                for (j, alternative) in alternatives.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    write_object(alternative, out);
                }
                out.push(']');
            }
        }
    }
    out.push('}');
}

fn write_literal(literal: &Literal, out: &mut String) {
    match literal {
        Literal::String(s) => json::write_string(out, s),
        Literal::Number(n) => out.push_str(n.as_str()),
        Literal::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Literal::Null => out.push_str("null"),
    }
}

fn write_operator(name: &str, out: &mut String, operand: impl FnOnce(&mut String)) {
    out.push('{');
    json::write_string(out, name);
    out.push(':');
    operand(out);
    out.push('}');
}

fn write_str_operand(s: &str) -> impl FnOnce(&mut String) + '_ {
    move |out: &mut String| json::write_string(out, s)
}

fn write_ignore_case_operand(s: &str) -> impl FnOnce(&mut String) + '_ {
    move |out: &mut String| {
        write_operator("equals-ignore-case", out, |out| json::write_string(out, s))
    }
}

fn write_condition(condition: &Condition, out: &mut String) {
    let string = write_str_operand;
    let ignore_case = write_ignore_case_operand;
    match condition {
        Condition::Exact(literal) => write_literal(literal, out),
        Condition::Prefix(s) => write_operator("prefix", out, string(s)),
        Condition::PrefixIgnoreCase(s) => write_operator("prefix", out, ignore_case(s)),
        Condition::Suffix(s) => write_operator("suffix", out, string(s)),
        Condition::SuffixIgnoreCase(s) => write_operator("suffix", out, ignore_case(s)),
        Condition::EqualsIgnoreCase(s) => write_operator("equals-ignore-case", out, string(s)),
        Condition::Wildcard(w) => write_operator("wildcard", out, string(&w.source)),
        Condition::Exists(b) => write_operator("exists", out, |out| {
            out.push_str(if *b { "true" } else { "false" })
        }),
        Condition::Cidr(c) => write_operator("cidr", out, string(&c.source)),
        Condition::Numeric(numeric) => write_operator("numeric", out, |out| {
            out.push('[');
            for (i, (op, n)) in numeric.terms.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json::write_string(out, op.as_str());
                out.push(',');
                out.push_str(n.as_str());
            }
            out.push(']');
        }),
        Condition::AnythingBut(a) => write_operator("anything-but", out, |out| {
            let values = |out: &mut String| {
                if a.list {
                    out.push('[');
                }
                for (i, v) in a.values.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_literal(v, out);
                }
                if a.list {
                    out.push(']');
                }
            };
            let name = match a.kind {
                AnythingButKind::Values => return values(out),
                AnythingButKind::Prefix => "prefix",
                AnythingButKind::Suffix => "suffix",
                AnythingButKind::EqualsIgnoreCase => "equals-ignore-case",
                AnythingButKind::Wildcard => "wildcard",
            };
            write_operator(name, out, values);
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_error(text: &str, expect: &str) {
        let error = Pattern::parse(text).expect_err(text);
        assert_eq!(error.to_string(), expect, "{text}");
    }

    #[test]
    fn errors_name_the_path() {
        check_error(
            r#"{"detail":{"plan":[]}}"#,
            "$.detail.plan: Empty arrays are not allowed",
        );
        check_error(
            r#"{"a":[{"anything-but":{"prefix":["x",""]}}]}"#,
            "$.a[0].anything-but.prefix[1]: Null prefix/suffix not allowed",
        );
        check_error(
            r#"{"a.b":{"c":5}}"#,
            r#"$["a.b"].c: "c" must be an object or an array"#,
        );
        check_error("[1]", "$: Filter is not an object");
        check_error(
            r#"{"a":[{"numeric":[">",5,"<",5]}]}"#,
            "$.a[0].numeric: Bottom must be less than top",
        );
    }

    /// Inside `$or`, the names event-ruler reserves for operators it may add are refused
    /// as its own operators are (an audit found them accepted), and an element that is
    /// not an object is named before the count of elements.
    #[test]
    fn or_errors() {
        for name in [
            "regex",
            "date-after",
            "ip-address-not-in-range",
            "prefix",
            ">=",
        ] {
            check_error(
                &format!(r#"{{"$or":[{{"a":["1"]}},{{"{name}":["1"]}}]}}"#),
                &format!(
                    "$.$or[1].{name}: {name} is Ruler reserved fieldName which cannot be used inside $or."
                )
                .replace(".>=", "[\">=\"]"),
            );
        }
        // Outside `$or` these names are plain fields.
        Pattern::parse(r#"{"regex":["1"]}"#).unwrap();
        check_error(
            r#"{"$or":["x"]}"#,
            "$.$or[0]: Only JSON object is allowed in array of $or relationship.",
        );
        check_error(
            r#"{"$or":[{"a":["1"]},{"$or":["x"]}]}"#,
            "$.$or[1].$or[0]: Only JSON object is allowed in array of $or relationship.",
        );
        check_error(
            r#"{"$or":[{"a":["1"]}]}"#,
            "$.$or: There must have at least 2 Objects in $or relationship.",
        );
    }

    #[test]
    fn duplicate_keys_last_wins() {
        let pattern = Pattern::parse(r#"{"a":[1],"b":["x"],"a":[2]}"#).unwrap();
        assert_eq!(pattern.to_json(), r#"{"b":["x"],"a":[2]}"#);
        // Many members, some keys repeated many times.
        for n in [9, 10, 30, 100] {
            let keys: Vec<String> = (0..n).map(|i| format!("k{}", i * 5 % 7)).collect();
            let members: Vec<String> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| format!(r#""{k}":[{i}]"#))
                .collect();
            let pattern = Pattern::parse(&format!("{{{}}}", members.join(","))).unwrap();
            let expected: Vec<String> = (0..n)
                .filter(|&i| !keys[i + 1..].contains(&keys[i]))
                .map(|i| format!(r#""{}":[{i}]"#, keys[i]))
                .collect();
            assert_eq!(
                pattern.to_json(),
                format!("{{{}}}", expected.join(",")),
                "{n}"
            );
        }
    }

    #[test]
    fn renders_every_operator() {
        let text = r#"{"a":["x",3.0e2,true,null,{"prefix":"p"},{"prefix":{"equals-ignore-case":"P"}},{"suffix":"s"},{"suffix":{"equals-ignore-case":"S"}},{"equals-ignore-case":"e"},{"wildcard":"a\\*b*"},{"anything-but":["x","y"]},{"anything-but":5},{"anything-but":{"prefix":"q"}},{"anything-but":{"wildcard":["*x","y*"]}},{"numeric":[">",0,"<=",5]},{"exists":false},{"cidr":"10.0.0.0/8"}],"$or":[{"b":[1]},{"c":{"d":[2]}}]}"#;
        let pattern = Pattern::parse(text).unwrap();
        assert_eq!(pattern.to_json(), text);
        assert_eq!(Pattern::parse(&pattern.to_json()).unwrap(), pattern);
    }

    #[test]
    fn counts_or_combinations() {
        let pattern = Pattern::parse(
            r#"{"$or":[{"a":[1]},{"b":[1]}],"c":{"$or":[{"d":[1]},{"e":[1]},{"f":[1]}]}}"#,
        )
        .unwrap();
        assert_eq!(pattern.or_combinations(), 6);
    }
}
