//! Check programs: each sub-rule's constraints laid out as one short, flat array of
//! [`Op`]s, so that checking a candidate reads a few contiguous bytes instead of chasing
//! pointers through its constraints and tests. Exact values and case folds are interned in
//! a [`Dictionary`] shared by all rules; an event leaf is looked up in it once, and each
//! exact test is then an integer comparison.

use super::compile::{Constraint, Test};
use super::flatten::{FxMap, Value};
use super::number::NumberKey;
use super::text::ShortKey;

/// The id of an interned value; [`NONE`] for a leaf value that no test names.
pub(crate) type ValueId = u32;

/// No interned value.
pub(crate) const NONE: ValueId = 0;
const TRUE: ValueId = 1;
const FALSE: ValueId = 2;
const NULL: ValueId = 3;
const FIRST_FREE: ValueId = 4;

/// One step of a check program.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Op {
    /// Starts a constraint: some leaf at `path` passes one of the next `tests` ops, or,
    /// when `allow_absent`, the path has no leaf.
    Field {
        path: u32,
        tests: u32,
        allow_absent: bool,
    },
    /// The leaf's value is this interned exact value.
    Value(ValueId),
    /// The leaf's case fold is this interned fold.
    Fold(ValueId),
    /// Any leaf passes (`exists: true`).
    Exists,
    /// An interned predicate: any other test, evaluated at most once per event leaf.
    Pred(PredId),
}

/// The id of an interned predicate.
pub(crate) type PredId = u32;

/// A test on one path, shared by every constraint that states it.
#[derive(Debug, Clone)]
struct Pred {
    test: Test,
    refs: u32,
}

/// Interned exact values (strings, numbers, `true`/`false`/`null`) and case folds, with
/// reference counts so that removing rules frees them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Dictionary {
    /// Strings of up to 16 bytes by their [`ShortKey`], longer ones by their bytes: most
    /// values that rules name are short, and their lookup then compares two words
    /// instead of following a pointer to the key's bytes.
    short: FxMap<ShortKey, ValueId>,
    strings: FxMap<Box<[u8]>, ValueId>,
    numbers: FxMap<NumberKey, ValueId>,
    folds: FxMap<Box<str>, ValueId>,
    /// References per id; a free id has 0.
    refs: Vec<u32>,
    free: Vec<ValueId>,
    /// Predicates by id (`None` when free), and their ids by path and test.
    preds: Vec<Option<Pred>>,
    pred_ids: FxMap<(u32, String), PredId>,
    free_preds: Vec<PredId>,
}

/// The id of `key` in `map`, taking a new id (a freed one first) for a new key.
fn id_for<K: std::hash::Hash + Eq>(
    map: &mut FxMap<K, ValueId>,
    refs: &mut Vec<u32>,
    free: &mut Vec<ValueId>,
    key: K,
) -> ValueId {
    *map.entry(key).or_insert_with(|| {
        if refs.len() < FIRST_FREE as usize {
            refs.resize(FIRST_FREE as usize, 0);
        }
        free.pop().unwrap_or_else(|| {
            refs.push(0);
            (refs.len() - 1) as ValueId
        })
    })
}

impl Dictionary {
    /// The ops of one test: an interned comparison where there is one.
    fn intern(&mut self, test: &Test) -> Option<Op> {
        let (refs, free) = (&mut self.refs, &mut self.free);
        let (id, fold) = match test {
            Test::String(s) => match ShortKey::of(s) {
                Some(key) => (id_for(&mut self.short, refs, free, key), false),
                None => (id_for(&mut self.strings, refs, free, s.clone()), false),
            },
            Test::Number(key) => (id_for(&mut self.numbers, refs, free, key.clone()), false),
            Test::EqualsIgnoreCase(s) => {
                (id_for(&mut self.folds, refs, free, s.as_str().into()), true)
            }
            Test::Bool(true) => return Some(Op::Value(TRUE)),
            Test::Bool(false) => return Some(Op::Value(FALSE)),
            Test::Null => return Some(Op::Value(NULL)),
            Test::Exists => return Some(Op::Exists),
            _ => return None,
        };
        self.refs[id as usize] += 1;
        Some(if fold { Op::Fold(id) } else { Op::Value(id) })
    }

    /// The predicate id of a test on `path`, interned.
    fn intern_pred(&mut self, path: u32, test: &Test) -> PredId {
        let key = (path, format!("{test:?}"));
        let id = match self.pred_ids.get(&key) {
            Some(&id) => id,
            None => {
                let pred = Pred {
                    test: test.clone(),
                    refs: 0,
                };
                let id = match self.free_preds.pop() {
                    Some(id) => {
                        self.preds[id as usize] = Some(pred);
                        id
                    }
                    None => {
                        self.preds.push(Some(pred));
                        (self.preds.len() - 1) as PredId
                    }
                };
                self.pred_ids.insert(key, id);
                id
            }
        };
        if let Some(pred) = &mut self.preds[id as usize] {
            pred.refs += 1;
        }
        id
    }

    fn release_pred(&mut self, path: u32, test: &Test) {
        let key = (path, format!("{test:?}"));
        let Some(&id) = self.pred_ids.get(&key) else {
            return;
        };
        let Some(pred) = &mut self.preds[id as usize] else {
            return;
        };
        pred.refs -= 1;
        if pred.refs == 0 {
            self.preds[id as usize] = None;
            self.pred_ids.remove(&key);
            self.free_preds.push(id);
        }
    }

    /// The test of a live predicate.
    #[inline]
    pub(crate) fn pred(&self, id: PredId) -> Option<&Test> {
        self.preds.get(id as usize)?.as_ref().map(|p| &p.test)
    }

    /// One more than the largest predicate id.
    pub(crate) fn pred_capacity(&self) -> usize {
        self.preds.len()
    }

    /// Drops one reference taken by [`Dictionary::intern`] for `test`.
    fn release(&mut self, test: &Test) {
        let id = match test {
            Test::String(s) => self.string_id(s),
            Test::Number(key) => self.numbers.get(key).copied(),
            Test::EqualsIgnoreCase(s) => self.folds.get(s.as_str()).copied(),
            _ => None,
        };
        let Some(id) = id else { return };
        let refs = &mut self.refs[id as usize];
        *refs -= 1;
        if *refs == 0 {
            match test {
                Test::String(s) => match ShortKey::of(s) {
                    Some(key) => {
                        self.short.remove(&key);
                    }
                    None => {
                        self.strings.remove(&**s);
                    }
                },
                Test::Number(key) => {
                    self.numbers.remove(key);
                }
                Test::EqualsIgnoreCase(s) => {
                    self.folds.remove(s.as_str());
                }
                _ => {}
            }
            self.free.push(id);
        }
    }

    /// The id of an event value, [`NONE`] when no test names it.
    #[inline]
    pub(crate) fn value_id(&self, value: Value<'_>) -> ValueId {
        match value {
            Value::String(s) => self.string_id(s).unwrap_or(NONE),
            Value::Number { text, exact } => {
                if self.numbers.is_empty() {
                    return NONE;
                }
                let key = NumberKey::of_ascii(text, exact);
                self.numbers.get(&key).copied().unwrap_or(NONE)
            }
            Value::Bool(true) => TRUE,
            Value::Bool(false) => FALSE,
            Value::Null => NULL,
        }
    }

    #[inline]
    fn string_id(&self, s: &[u8]) -> Option<ValueId> {
        match ShortKey::of(s) {
            Some(key) => self.short.get(&key).copied(),
            None => self.strings.get(s).copied(),
        }
    }

    /// The id of a case-folded event string, [`NONE`] when no test names it.
    #[inline]
    pub(crate) fn fold_id(&self, folded: &str) -> ValueId {
        self.folds.get(folded).copied().unwrap_or(NONE)
    }

    /// Appends the check program of a sub-rule's constraints to `code`, interning their
    /// values and predicates.
    pub(crate) fn program(&mut self, constraints: &[Constraint], code: &mut Vec<Op>) {
        for constraint in constraints {
            code.push(Op::Field {
                path: constraint.path,
                tests: constraint.tests.len() as u32,
                allow_absent: constraint.allow_absent,
            });
            for test in &constraint.tests {
                let op = match self.intern(test) {
                    Some(op) => op,
                    None => Op::Pred(self.intern_pred(constraint.path, test)),
                };
                code.push(op);
            }
        }
    }

    /// The op of test number `test` of constraint number `constraint` in a program.
    pub(crate) fn op_at(program: &[Op], constraint: usize, test: usize) -> Op {
        let mut at = 0;
        for _ in 0..constraint {
            match program.get(at) {
                Some(Op::Field { tests, .. }) => at += 1 + *tests as usize,
                _ => return Op::Exists,
            }
        }
        program.get(at + 1 + test).copied().unwrap_or(Op::Exists)
    }

    /// Releases what [`Dictionary::program`] interned for these constraints.
    pub(crate) fn release_program(&mut self, constraints: &[Constraint]) {
        for constraint in constraints {
            for test in &constraint.tests {
                if matches!(
                    test,
                    Test::String(_) | Test::Number(_) | Test::EqualsIgnoreCase(_)
                ) {
                    self.release(test);
                } else if !matches!(test, Test::Bool(_) | Test::Null | Test::Exists) {
                    self.release_pred(constraint.path, test);
                }
            }
        }
    }

    /// How many values, folds and predicates are interned.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.short.len()
            + self.strings.len()
            + self.numbers.len()
            + self.folds.len()
            + self.pred_ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::compile::Needs;

    fn constraint(path: u32, tests: Vec<Test>) -> Constraint {
        Constraint {
            path,
            tests: tests.into(),
            allow_absent: false,
        }
    }

    #[test]
    fn interns_shared_values_once_and_frees_them_with_the_last_user() {
        let mut dict = Dictionary::default();
        let a = [constraint(0, vec![Test::String((*b"x").into())])];
        let b = [constraint(
            1,
            vec![
                Test::String((*b"x").into()),
                Test::Number(NumberKey::of("300", Some(300.0))),
                Test::EqualsIgnoreCase("ab".into()),
                Test::Prefix((*b"p").into()),
            ],
        )];
        let (mut pa, mut pb) = (Vec::new(), Vec::new());
        dict.program(&a, &mut pa);
        dict.program(&b, &mut pb);
        assert_eq!(pa[1], pb[1], "one id for one value");
        let Op::Pred(p) = pb[4] else {
            panic!("a prefix is a predicate: {:?}", pb[4])
        };
        assert!(matches!(dict.pred(p), Some(Test::Prefix(_))));
        assert_eq!(dict.len(), 4);
        assert_eq!(Dictionary::op_at(&pb, 0, 3), pb[4]);
        let x = dict.value_id(Value::String(b"x"));
        assert_eq!(Op::Value(x), pa[1]);
        let n = dict.value_id(Value::Number {
            text: b"3e2",
            exact: Some(300.0),
        });
        assert_eq!(Op::Value(n), pb[2], "numbers meet by value");
        assert_eq!(Op::Fold(dict.fold_id("ab")), pb[3]);
        assert_eq!(dict.value_id(Value::String(b"y")), NONE);

        dict.release_program(&a);
        assert_eq!(dict.value_id(Value::String(b"x")), x, "still used by b");
        dict.release_program(&b);
        assert_eq!(dict.len(), 0);
        assert_eq!(dict.value_id(Value::String(b"x")), NONE);
        assert!(Test::String((*b"x").into()).needs().contains(Needs::VALUE));
    }

    /// Strings of every length around the short/long border, NULs and high bytes
    /// included: each gets its own id and is found again, and a string that differs from
    /// a named one in one byte or in length is not taken for it.
    #[test]
    fn short_and_long_strings_are_told_apart() {
        let mut strings = crate::pattern::tests::byte_strings(20, 30);
        // Neighbours: the last byte changed, a NUL added.
        for s in strings.clone() {
            for b in [0u8, 1, b'a', b'b', 0xff] {
                let mut t = s.clone();
                if let Some(last) = t.last_mut() {
                    *last = b;
                }
                strings.push(t.clone());
                t.push(0);
                strings.push(t);
            }
        }
        strings.sort();
        strings.dedup();
        let mut dict = Dictionary::default();
        let named: Vec<&Vec<u8>> = strings.iter().step_by(2).collect();
        let program: Vec<Constraint> = named
            .iter()
            .map(|s| constraint(0, vec![Test::String(s.as_slice().into())]))
            .collect();
        let mut code = Vec::new();
        dict.program(&program, &mut code);
        let mut ids = std::collections::HashSet::new();
        for s in &strings {
            let id = dict.value_id(Value::String(s));
            if named.contains(&s) {
                assert_ne!(id, NONE, "{s:?} is named");
                assert!(ids.insert(id), "{s:?} shares an id");
            } else {
                assert_eq!(id, NONE, "{s:?} is not named");
            }
        }
        dict.release_program(&program);
        assert_eq!(dict.len(), 0);
    }
}
