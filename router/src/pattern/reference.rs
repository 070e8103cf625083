//! A deliberately naive reference interpreter, for tests only. It reads the event into a
//! tree, lists every leaf with its path and array elements, multiplies out the `$or`s, and
//! tries every combination of leaves. It shares the pattern AST and the small text helpers
//! (number exactness, case folding, IP parsing) with the engine, and nothing else: no index,
//! no flattener, no compiled tests, its own wildcard matcher.

use std::collections::HashMap;

use super::json::{self, Json};
use super::number::exact_f64;
use super::parse::{
    AnythingButKind, Comparison, Condition, FieldValue, Literal, Member, Object, Pattern,
};
use super::text;

/// Whether `pattern` matches `event`, or why the event cannot be matched.
pub(crate) fn matches(pattern: &Pattern, event: &[u8], max_depth: usize) -> Result<bool, String> {
    let event = Event::parse(event, max_depth)?;
    Ok(Rule::new(pattern).matches(&event))
}

/// An event read into a tree, with its leaves listed by path.
pub(crate) struct Event {
    tree: Json,
}

impl Event {
    pub(crate) fn parse(event: &[u8], max_depth: usize) -> Result<Event, String> {
        let tree = json::parse(event, max_depth).map_err(|e| e.to_string())?;
        if !matches!(tree, Json::Object(_)) {
            return Err("not an object".to_owned());
        }
        Ok(Event { tree })
    }

    pub(crate) fn leaves(&self) -> HashMap<String, Vec<RefLeaf<'_>>> {
        let mut leaves = Vec::new();
        let mut n_arrays = 0;
        collect(
            &self.tree,
            "",
            &mut Vec::new(),
            &mut n_arrays,
            &mut leaves,
            true,
        );
        let mut by_path: HashMap<String, Vec<RefLeaf<'_>>> = HashMap::new();
        for leaf in leaves {
            by_path.entry(leaf.path.clone()).or_default().push(leaf);
        }
        by_path
    }
}

/// A pattern with its `$or`s multiplied out.
pub(crate) struct Rule<'p> {
    conjunctions: Vec<Conjunction<'p>>,
}

impl<'p> Rule<'p> {
    pub(crate) fn new(pattern: &'p Pattern) -> Rule<'p> {
        Rule {
            conjunctions: alternatives(&pattern.root),
        }
    }

    pub(crate) fn matches(&self, event: &Event) -> bool {
        let leaves = event.leaves();
        self.matches_leaves(&leaves)
    }

    pub(crate) fn matches_leaves(&self, leaves: &HashMap<String, Vec<RefLeaf<'_>>>) -> bool {
        self.conjunctions
            .iter()
            .any(|conjunction| conjunction_matches(conjunction, leaves))
    }
}

pub(crate) struct RefLeaf<'a> {
    path: String,
    value: &'a Json,
    chain: Vec<(usize, usize)>,
}

fn collect<'a>(
    json: &'a Json,
    path: &str,
    chain: &mut Vec<(usize, usize)>,
    n_arrays: &mut usize,
    out: &mut Vec<RefLeaf<'a>>,
    root: bool,
) {
    match json {
        Json::Object(members) => {
            for (key, value) in members {
                let child = if root {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                collect(value, &child, chain, n_arrays, out, false);
            }
        }
        Json::Array(elements) => {
            let id = *n_arrays;
            *n_arrays += 1;
            for (i, element) in elements.iter().enumerate() {
                chain.push((id, i));
                collect(element, path, chain, n_arrays, out, false);
                chain.pop();
            }
        }
        leaf => out.push(RefLeaf {
            path: path.to_owned(),
            value: leaf,
            chain: chain.clone(),
        }),
    }
}

type Conjunction<'p> = Vec<(&'p str, &'p [Condition])>;

fn alternatives(object: &Object) -> Vec<Conjunction<'_>> {
    let mut result: Vec<Conjunction<'_>> = vec![Vec::new()];
    for member in &object.members {
        let options: Vec<Conjunction<'_>> = match member {
            Member::Field {
                path,
                value: FieldValue::Leaf(conditions),
                ..
            } => vec![vec![(path.as_str(), conditions.as_slice())]],
            Member::Field {
                value: FieldValue::Object(inner),
                ..
            } => alternatives(inner),
            Member::Or(objects) => objects.iter().flat_map(alternatives).collect(),
        };
        result = result
            .iter()
            .flat_map(|base| {
                options.iter().map(move |option| {
                    // A later mention of a path replaces an earlier one.
                    let mut combined: Conjunction<'_> = base
                        .iter()
                        .copied()
                        .filter(|(p, _)| !option.iter().any(|(q, _)| p == q))
                        .collect();
                    combined.extend(option.iter().copied());
                    combined
                })
            })
            .collect();
    }
    result
}

fn conjunction_matches(
    conjunction: &Conjunction<'_>,
    leaves: &HashMap<String, Vec<RefLeaf<'_>>>,
) -> bool {
    let mut choices: Vec<Vec<&RefLeaf<'_>>> = Vec::new();
    for (path, conditions) in conjunction {
        let at_path: &[RefLeaf<'_>] = leaves.get(*path).map(Vec::as_slice).unwrap_or(&[]);
        let passing: Vec<&RefLeaf<'_>> = at_path
            .iter()
            .filter(|l| conditions.iter().any(|c| test(c, l.value)))
            .collect();
        let absent_ok = conditions
            .iter()
            .any(|c| matches!(c, Condition::Exists(false)));
        if passing.is_empty() {
            if absent_ok && at_path.is_empty() {
                continue;
            }
            return false;
        }
        choices.push(passing);
    }
    search(&choices, &mut Vec::new())
}

fn search<'a>(choices: &[Vec<&'a RefLeaf<'a>>], chosen: &mut Vec<&'a RefLeaf<'a>>) -> bool {
    let Some((first, rest)) = choices.split_first() else {
        return true;
    };
    for &leaf in first {
        // Two leaves conflict when they sit in different elements of the same array.
        let conflict = chosen.iter().any(|other| {
            leaf.chain
                .iter()
                .any(|(array, index)| other.chain.iter().any(|(a, i)| a == array && i != index))
        });
        if !conflict {
            chosen.push(leaf);
            if search(rest, chosen) {
                return true;
            }
            chosen.pop();
        }
    }
    false
}

fn numbers_equal(pattern_text: &str, event_text: &str) -> bool {
    pattern_text == event_text
        || matches!((exact_f64(pattern_text), exact_f64(event_text)), (Some(a), Some(b)) if a == b)
}

fn folded(s: &str) -> String {
    s.chars().map(text::fold_char).collect()
}

fn test(condition: &Condition, value: &Json) -> bool {
    match (condition, value) {
        (Condition::Exact(Literal::String(s)), Json::String(v)) => {
            match (text::parse_ip(s), text::parse_ip(v)) {
                (Some(a), Some(b)) => a == b,
                (Some(_), None) => false,
                _ => s == v,
            }
        }
        (Condition::Exact(Literal::Number(n)), Json::Number(v)) => numbers_equal(n.as_str(), v),
        (Condition::Exact(Literal::Bool(b)), Json::Bool(v)) => b == v,
        (Condition::Exact(Literal::Null), Json::Null) => true,
        (Condition::Prefix(p), Json::String(v)) => v.starts_with(p.as_str()),
        (Condition::Suffix(p), Json::String(v)) => v.ends_with(p.as_str()),
        (Condition::PrefixIgnoreCase(p), Json::String(v)) => folded(v).starts_with(&folded(p)),
        (Condition::SuffixIgnoreCase(p), Json::String(v)) => folded(v).ends_with(&folded(p)),
        (Condition::EqualsIgnoreCase(p), Json::String(v)) => folded(v) == folded(p),
        (Condition::Wildcard(w), Json::String(v)) => wildcard(w.as_str(), v),
        (Condition::Numeric(n), Json::Number(v)) => match exact_f64(v) {
            Some(x) => n.terms().iter().all(|(op, bound)| {
                let b = bound.as_f64().expect("numeric bounds are exact");
                match op {
                    Comparison::Eq => x == b,
                    Comparison::Lt => x < b,
                    Comparison::Le => x <= b,
                    Comparison::Gt => x > b,
                    Comparison::Ge => x >= b,
                }
            }),
            None => false,
        },
        (Condition::Exists(true), _) => true,
        (Condition::Cidr(c), Json::String(v)) => {
            text::parse_ip(v).is_some_and(|ip| c.range.contains(ip))
        }
        (Condition::AnythingBut(a), value) => {
            let excluded = match (a.kind(), value) {
                (AnythingButKind::Values, Json::String(v)) => a
                    .values()
                    .iter()
                    .any(|x| matches!(x, Literal::String(s) if s == v)),
                (AnythingButKind::Values, Json::Number(v)) => a
                    .values()
                    .iter()
                    .any(|x| matches!(x, Literal::Number(n) if numbers_equal(n.as_str(), v))),
                (AnythingButKind::Prefix, Json::String(v)) => a.strings().any(|p| v.starts_with(p)),
                (AnythingButKind::Suffix, Json::String(v)) => a.strings().any(|p| v.ends_with(p)),
                (AnythingButKind::EqualsIgnoreCase, Json::String(v)) => {
                    a.strings().any(|p| folded(p) == folded(v))
                }
                (AnythingButKind::Wildcard, Json::String(v)) => a.strings().any(|p| wildcard(p, v)),
                _ => false,
            };
            !excluded
        }
        _ => false,
    }
}

/// Wildcard matching by dynamic programming over characters, straight from the definition.
fn wildcard(pattern: &str, value: &str) -> bool {
    #[derive(PartialEq)]
    enum Token {
        Star,
        Char(char),
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => tokens.push(Token::Star),
            '\\' => tokens.push(Token::Char(chars.next().expect("validated escape"))),
            c => tokens.push(Token::Char(c)),
        }
    }
    let value: Vec<char> = value.chars().collect();
    // reach[j]: the first i tokens can match the first j characters.
    let mut reach = vec![false; value.len() + 1];
    reach[0] = true;
    for token in &tokens {
        let mut next = vec![false; value.len() + 1];
        for j in 0..=value.len() {
            next[j] = match token {
                Token::Star => reach[j] || (j > 0 && next[j - 1]),
                Token::Char(c) => j > 0 && reach[j - 1] && value[j - 1] == *c,
            };
        }
        reach = next;
    }
    reach[value.len()]
}
