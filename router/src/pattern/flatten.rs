//! The event flattener: one pass over the event bytes that validates the JSON and emits the
//! leaf values of the fields some rule names, each with its path id and the array elements
//! it sits in. Fields that no rule names are scanned (to validate them) but never copied,
//! unescaped or hashed.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::OnceLock;

use super::json::{scan_number, scan_string, skip_ws, unescape_into};
use super::number::exact_f64_ascii;
use super::text::{ShortKey, head};

/// A small, fast hasher for short keys (FxHash's multiply-rotate), started from a key drawn
/// once per process. Events cannot grow the maps it serves (they are read-only at match
/// time), but whoever writes rules fills them, and FxHash is easily inverted: without the
/// key, rule strings built to share one hash would turn a table into a list (8,000 of them
/// took 0.45 s to build and 23 ms per event naming a thousand such strings).
#[derive(Clone, Copy)]
pub(crate) struct FxHasher(u64);

/// Builds [`FxHasher`]s that start from the process's key.
#[derive(Clone, Copy)]
pub(crate) struct FxBuild(u64);

impl Default for FxBuild {
    fn default() -> FxBuild {
        static KEY: OnceLock<u64> = OnceLock::new();
        FxBuild(*KEY.get_or_init(|| RandomState::new().hash_one(0x9e37_79b9_7f4a_7c15_u64)))
    }
}

impl BuildHasher for FxBuild {
    type Hasher = FxHasher;

    #[inline]
    fn build_hasher(&self) -> FxHasher {
        FxHasher(self.0)
    }
}

const MULTIPLIER: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(MULTIPLIER);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            // The last one to seven bytes as one word, zero-padded: `[u8]` keys hash their
            // length first, so only `str` keys that differ in trailing NULs can collide
            // here (a comparison, never a wrong answer).
            self.0 = (self.0.rotate_left(5) ^ head(rest)).wrapping_mul(MULTIPLIER);
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(MULTIPLIER);
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(MULTIPLIER);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(MULTIPLIER);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    /// The multiply leaves the low bits of the product depending only on the low bits of
    /// the input, and hash tables index by the low bits: keys that differ only high up
    /// (the float64 bits of integers, whose low mantissa bits are zero) would all land in
    /// one bucket. The rotation brings the well-mixed high bits down.
    #[inline]
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, FxBuild>;

/// The field paths rules name, as a trie over dot-separated segments. Pattern key `a.b` and
/// nested `a` → `b` are the same path, and so are event keys (corpus §3.1), so both sides
/// are split at dots.
#[derive(Debug, Clone)]
pub(crate) struct PathTrie {
    nodes: Vec<PathNode>,
}

impl Default for PathTrie {
    fn default() -> PathTrie {
        PathTrie::new()
    }
}

#[derive(Debug, Default, Clone)]
struct PathNode {
    /// The child nodes: scanned while there are few, through `index` (segments of up to
    /// 16 bytes) or `long` once there are more than [`SCAN_CHILDREN`].
    children: Vec<Child>,
    index: FxMap<ShortKey, u32>,
    long: FxMap<Box<[u8]>, u32>,
    path: Option<u32>,
}

#[derive(Debug, Clone)]
struct Child {
    /// The whole segment when it has at most 16 bytes, else its ends and length.
    short: ShortKey,
    node: u32,
    /// The segment, compared only when longer than 16 bytes.
    key: Box<[u8]>,
}

/// Up to this many children, a scan of the keys beats hashing one.
const SCAN_CHILDREN: usize = 16;

impl PathNode {
    #[inline]
    fn child(&self, segment: &[u8]) -> Option<u32> {
        let short = ShortKey::ends(segment);
        if self.children.len() <= SCAN_CHILDREN {
            self.children
                .iter()
                .find(|c| c.short == short && (short.is_whole() || *c.key == *segment))
                .map(|c| c.node)
        } else if short.is_whole() {
            self.index.get(&short).copied()
        } else {
            self.long.get(segment).copied()
        }
    }

    fn add_child(&mut self, key: &[u8], node: u32) {
        // `PathTrie::step` finds a dot-free key whole on the strength of this.
        debug_assert!(!key.contains(&b'.'), "a segment holds no dot");
        let short = ShortKey::ends(key);
        self.children.push(Child {
            short,
            node,
            key: key.into(),
        });
        let n = self.children.len();
        // Past the scan limit, index every child once, then each new one.
        let new = match n {
            0..=SCAN_CHILDREN => return,
            n if n == SCAN_CHILDREN + 1 => &self.children[..],
            n => &self.children[n - 1..],
        };
        for c in new {
            if c.short.is_whole() {
                self.index.insert(c.short, c.node);
            } else {
                self.long.insert(c.key.clone(), c.node);
            }
        }
    }
}

impl PathTrie {
    pub(crate) fn new() -> PathTrie {
        PathTrie {
            nodes: vec![PathNode::default()],
        }
    }

    /// Registers a dotted path under `id`.
    pub(crate) fn insert(&mut self, path: &str, id: u32) {
        let mut node = 0;
        for segment in path.split('.') {
            node = match self.nodes[node].child(segment.as_bytes()) {
                Some(next) => next as usize,
                None => {
                    let next = self.nodes.len();
                    self.nodes.push(PathNode::default());
                    self.nodes[node].add_child(segment.as_bytes(), next as u32);
                    next
                }
            };
        }
        self.nodes[node].path = Some(id);
    }

    /// Follows an event key from `node`; `None` when no rule path continues that way.
    #[inline]
    fn step(&self, node: u32, key: &[u8]) -> Option<u32> {
        // Segments hold no dot, so a key found whole is one segment: the usual case, and
        // one lookup without looking for dots first.
        if let Some(next) = self.nodes[node as usize].child(key) {
            return Some(next);
        }
        if !key.contains(&b'.') {
            return None;
        }
        let mut node = node;
        for segment in key.split(|&b| b == b'.') {
            node = self.nodes[node as usize].child(segment)?;
        }
        Some(node)
    }

    #[inline]
    fn has_children(&self, node: u32) -> bool {
        !self.nodes[node as usize].children.is_empty()
    }

    #[inline]
    fn path(&self, node: u32) -> Option<u32> {
        self.nodes[node as usize].path
    }
}

/// What kind of leaf value an event field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    String,
    Number,
    True,
    False,
    Null,
}

/// One leaf value at a path some rule names.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Leaf {
    pub(crate) path: u32,
    pub(crate) kind: Kind,
    /// The value's bytes: a string's unescaped content or a number's text.
    start: u32,
    end: u32,
    /// Whether `start..end` indexes the unescape buffer instead of the event.
    in_buf: bool,
    /// The exact float64 of a number, when it has one.
    pub(crate) number: Option<f64>,
    /// The innermost array element the leaf sits in, an index into `Flat::frames` (0: in
    /// no array).
    frame: u32,
}

impl Leaf {
    /// Whether the leaf sits inside an array.
    #[inline]
    pub(crate) fn in_array(&self) -> bool {
        self.frame != 0
    }
}

/// A leaf value, borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    String(&'a [u8]),
    Number { text: &'a [u8], exact: Option<f64> },
    Bool(bool),
    Null,
}

/// Why an event cannot be matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventError {
    message: String,
}

impl EventError {
    pub(crate) fn new(message: impl Into<String>) -> EventError {
        EventError {
            message: message.into(),
        }
    }
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EventError {}

/// The flattened event, reused across events to keep allocation off the hot path.
#[derive(Debug, Default)]
pub(crate) struct Flat {
    pub(crate) leaves: Vec<Leaf>,
    buf: Vec<u8>,
    /// The array elements that hold leaves, each pointing to the element it sits in; frame 0
    /// stands for the event itself. Leaves in one element share its frame, so an event
    /// costs one frame per such element, however deep the arrays nest.
    frames: Vec<Frame>,
    /// The array elements around the value being read, outermost first: array id, element
    /// index and frame (`NO_FRAME` until a leaf inside needs it; the frames made form a
    /// prefix of the stack).
    stack: Vec<(u32, u32, u32)>,
    key: Vec<u8>,
    next_array: u32,
}

impl Flat {
    /// Makes the frames the stack lacks, outermost first; returns the innermost.
    #[cold]
    fn make_frames(&mut self) -> u32 {
        let made = self.stack.iter().take_while(|e| e.2 != NO_FRAME).count();
        let mut parent = if made == 0 { 0 } else { self.stack[made - 1].2 };
        for entry in &mut self.stack[made..] {
            let depth = self.frames[parent as usize].depth + 1;
            let frame = self.frames.len() as u32;
            self.frames.push(Frame {
                array: entry.0,
                #[cfg(test)]
                index: entry.1,
                parent,
                depth,
            });
            entry.2 = frame;
            parent = frame;
        }
        parent
    }

    /// Flattens `event` against `paths`. On error the contents are unspecified.
    pub(crate) fn read(
        &mut self,
        event: &[u8],
        paths: &PathTrie,
        max_depth: usize,
    ) -> Result<(), EventError> {
        self.leaves.clear();
        self.buf.clear();
        self.frames.clear();
        self.frames.push(Frame {
            array: u32::MAX,
            #[cfg(test)]
            index: 0,
            parent: 0,
            depth: 0,
        });
        self.stack.clear();
        self.next_array = 0;
        if event.len() > u32::MAX as usize {
            return Err(EventError::new("the event is larger than 4 GiB"));
        }
        let pos = skip_ws(event, 0);
        if event.get(pos) != Some(&b'{') {
            return Err(EventError::new(not_an_object(event, pos)));
        }
        let mut reader = Reader {
            bytes: event,
            pos,
            paths,
            max_depth,
            flat: self,
        };
        reader.value(Some(0), 0)?;
        let end = skip_ws(event, reader.pos);
        if end != event.len() {
            return Err(EventError::new(format!(
                "unexpected text after the event at byte {end}"
            )));
        }
        Ok(())
    }

    /// The value of a leaf.
    #[inline]
    pub(crate) fn value<'a>(&'a self, event: &'a [u8], leaf: &Leaf) -> Value<'a> {
        let bytes = || {
            let source = if leaf.in_buf { &self.buf[..] } else { event };
            &source[leaf.start as usize..leaf.end as usize]
        };
        match leaf.kind {
            Kind::String => Value::String(bytes()),
            Kind::Number => Value::Number {
                text: bytes(),
                exact: leaf.number,
            },
            Kind::True => Value::Bool(true),
            Kind::False => Value::Bool(false),
            Kind::Null => Value::Null,
        }
    }

    /// Whether two leaves can come from one pattern match: wherever they sit in the same
    /// array, they sit in the same element of it (corpus §3.3). Below the innermost element
    /// holding both, their elements are either in different arrays (compatible) or in one
    /// array at different indexes (not).
    #[inline]
    pub(crate) fn compatible(&self, a: &Leaf, b: &Leaf) -> bool {
        let frames = &self.frames;
        let (mut a, mut b) = (a.frame as usize, b.frame as usize);
        while frames[a].depth > frames[b].depth {
            a = frames[a].parent as usize;
        }
        while frames[b].depth > frames[a].depth {
            b = frames[b].parent as usize;
        }
        let mut below = None;
        while a != b {
            below = Some((a, b));
            a = frames[a].parent as usize;
            b = frames[b].parent as usize;
        }
        below.is_none_or(|(x, y)| frames[x].array != frames[y].array)
    }

    /// The frame of the innermost array element a leaf sits in (0: in no array).
    #[inline]
    pub(crate) fn frame_of(&self, leaf: u32) -> u32 {
        self.leaves[leaf as usize].frame
    }

    /// How many array elements deep a leaf sits.
    #[inline]
    pub(crate) fn depth(&self, leaf: u32) -> u32 {
        self.frames[self.leaves[leaf as usize].frame as usize].depth
    }

    /// How many frames the event has, frame 0 (the event itself) included.
    pub(crate) fn frame_count(&self) -> usize {
        self.frames.len()
    }

    /// How many arrays the event has: array ids are below this.
    pub(crate) fn array_count(&self) -> usize {
        self.next_array as usize
    }

    /// The array a frame (not 0) is an element of, and the frame that array sits in.
    #[inline]
    pub(crate) fn home(&self, frame: u32) -> (u32, u32) {
        let frame = &self.frames[frame as usize];
        (frame.array, frame.parent)
    }

    /// The array elements a leaf sits in, outermost first, as `(array id, index)`.
    #[cfg(test)]
    pub(crate) fn chain(&self, leaf: &Leaf) -> Vec<(u32, u32)> {
        let mut chain = Vec::new();
        let mut at = leaf.frame as usize;
        while at != 0 {
            let frame = &self.frames[at];
            chain.push((frame.array, frame.index));
            at = frame.parent as usize;
        }
        chain.reverse();
        chain
    }
}

/// One array element that holds leaves.
#[derive(Debug, Clone, Copy)]
struct Frame {
    array: u32,
    /// Read only by the tests' view of a leaf's chain.
    #[cfg(test)]
    index: u32,
    /// The frame of the element this one sits in (0: none).
    parent: u32,
    /// How many array elements deep this one is.
    depth: u32,
}

/// A stack entry whose frame is not made yet.
const NO_FRAME: u32 = u32::MAX;

struct Reader<'e, 'f> {
    bytes: &'e [u8],
    pos: usize,
    paths: &'f PathTrie,
    max_depth: usize,
    flat: &'f mut Flat,
}

impl Reader<'_, '_> {
    fn syntax(&self, at: usize, what: &str) -> EventError {
        if self.bytes.get(at).is_some_and(|&b| b >= 0x80) {
            // Strings check their own UTF-8; anywhere else JSON is ASCII.
            return self.in_string(at, "a non-ASCII byte outside a string");
        }
        self.in_string(at, what)
    }

    /// An error that the string scanner found (a non-ASCII byte there is its own business).
    fn in_string(&self, at: usize, what: &str) -> EventError {
        if at >= self.bytes.len() {
            EventError::new(format!(
                "the event is truncated (it ends after byte {}): {what}",
                self.bytes.len()
            ))
        } else {
            EventError::new(format!("the event is not valid JSON at byte {at}: {what}"))
        }
    }

    /// Reads one value at trie node `node` (`None`: no rule looks here).
    fn value(&mut self, node: Option<u32>, depth: usize) -> Result<(), EventError> {
        let start = self.pos;
        match self.bytes.get(start) {
            Some(b'{') => {
                if depth >= self.max_depth {
                    return Err(EventError::new(format!(
                        "the event nests deeper than {} levels",
                        self.max_depth
                    )));
                }
                let node = node.filter(|&n| self.paths.has_children(n));
                self.pos = skip_ws(self.bytes, start + 1);
                if self.bytes.get(self.pos) == Some(&b'}') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    if self.bytes.get(self.pos) != Some(&b'"') {
                        return Err(self.syntax(self.pos, "expected a field name"));
                    }
                    let key_start = self.pos;
                    let (key_end, has_escape) = scan_string(self.bytes, key_start)
                        .map_err(|(at, what)| self.in_string(at, what))?;
                    self.pos = key_end;
                    let child = match node {
                        None => None,
                        Some(n) => {
                            let raw = &self.bytes[key_start + 1..key_end - 1];
                            if has_escape {
                                self.flat.key.clear();
                                unescape_into(raw, &mut self.flat.key);
                                self.paths.step(n, &self.flat.key)
                            } else {
                                self.paths.step(n, raw)
                            }
                        }
                    };
                    self.pos = skip_ws(self.bytes, self.pos);
                    if self.bytes.get(self.pos) != Some(&b':') {
                        return Err(self.syntax(self.pos, "expected ':'"));
                    }
                    self.pos = skip_ws(self.bytes, self.pos + 1);
                    self.value(child, depth + 1)?;
                    self.pos = skip_ws(self.bytes, self.pos);
                    match self.bytes.get(self.pos) {
                        Some(b',') => self.pos = skip_ws(self.bytes, self.pos + 1),
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return Err(self.syntax(self.pos, "expected ',' or '}'")),
                    }
                }
            }
            Some(b'[') => {
                if depth >= self.max_depth {
                    return Err(EventError::new(format!(
                        "the event nests deeper than {} levels",
                        self.max_depth
                    )));
                }
                let array = self.flat.next_array;
                self.flat.next_array += 1;
                self.pos = skip_ws(self.bytes, start + 1);
                if self.bytes.get(self.pos) == Some(&b']') {
                    self.pos += 1;
                    return Ok(());
                }
                let mut index = 0u32;
                loop {
                    if node.is_some() {
                        self.flat.stack.push((array, index, NO_FRAME));
                    }
                    self.value(node, depth + 1)?;
                    if node.is_some() {
                        self.flat.stack.pop();
                    }
                    self.pos = skip_ws(self.bytes, self.pos);
                    match self.bytes.get(self.pos) {
                        Some(b',') => self.pos = skip_ws(self.bytes, self.pos + 1),
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return Err(self.syntax(self.pos, "expected ',' or ']'")),
                    }
                    index += 1;
                }
            }
            Some(b'"') => {
                let (end, has_escape) = scan_string(self.bytes, start)
                    .map_err(|(at, what)| self.in_string(at, what))?;
                self.pos = end;
                if let Some(path) = node.and_then(|n| self.paths.path(n)) {
                    let raw = &self.bytes[start + 1..end - 1];
                    if has_escape {
                        let buf_start = self.flat.buf.len();
                        unescape_into(raw, &mut self.flat.buf);
                        let buf_end = self.flat.buf.len();
                        self.leaf(path, Kind::String, buf_start, buf_end, true, None);
                    } else {
                        self.leaf(path, Kind::String, start + 1, end - 1, false, None);
                    }
                }
                Ok(())
            }
            Some(b'-' | b'0'..=b'9') => {
                let end = scan_number(self.bytes, start)
                    .map_err(|at| self.syntax(at, "malformed number"))?;
                self.pos = end;
                if let Some(path) = node.and_then(|n| self.paths.path(n)) {
                    let exact = exact_f64_ascii(&self.bytes[start..end]);
                    self.leaf(path, Kind::Number, start, end, false, exact);
                }
                Ok(())
            }
            Some(b't') => self.literal(node, b"true", Kind::True),
            Some(b'f') => self.literal(node, b"false", Kind::False),
            Some(b'n') => self.literal(node, b"null", Kind::Null),
            _ => Err(self.syntax(start, "expected a value")),
        }
    }

    fn literal(&mut self, node: Option<u32>, word: &[u8], kind: Kind) -> Result<(), EventError> {
        if !self.bytes[self.pos..].starts_with(word) {
            return Err(self.syntax(self.pos, "unrecognized token"));
        }
        let start = self.pos;
        self.pos += word.len();
        if let Some(path) = node.and_then(|n| self.paths.path(n)) {
            self.leaf(path, kind, start, self.pos, false, None);
        }
        Ok(())
    }

    fn leaf(
        &mut self,
        path: u32,
        kind: Kind,
        start: usize,
        end: usize,
        in_buf: bool,
        number: Option<f64>,
    ) {
        let flat = &mut *self.flat;
        let frame = match flat.stack.last() {
            None => 0,
            Some(&(_, _, frame)) if frame != NO_FRAME => frame,
            Some(_) => flat.make_frames(),
        };
        flat.leaves.push(Leaf {
            path,
            kind,
            start: start as u32,
            end: end as u32,
            in_buf,
            number,
            frame,
        });
    }
}

/// Why an event that does not start with `{` is refused: what it starts with instead.
fn not_an_object(event: &[u8], pos: usize) -> String {
    let what = match event.get(pos) {
        None if event.is_empty() => return "the event is empty".to_owned(),
        None => return "the event is only white space".to_owned(),
        Some(b'[') => "a JSON array",
        Some(b'"') => "a JSON string",
        Some(b'-' | b'0'..=b'9') => "a JSON number",
        Some(b't' | b'f') => "a JSON boolean",
        Some(b'n') => "JSON null",
        Some(&byte) => {
            return format!(
                "the event is not a JSON object: it starts with byte 0x{byte:02x} at byte {pos}"
            );
        }
    };
    format!("the event is not a JSON object: it starts as {what} at byte {pos}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    type Flattened = Vec<(u32, String, Vec<(u32, u32)>)>;

    fn flatten(event: &str, paths: &[&str]) -> Result<Flattened, EventError> {
        let mut trie = PathTrie::new();
        for (i, p) in paths.iter().enumerate() {
            trie.insert(p, i as u32);
        }
        let mut flat = Flat::default();
        flat.read(event.as_bytes(), &trie, 16)?;
        Ok(flat
            .leaves
            .iter()
            .map(|leaf| {
                let text = match flat.value(event.as_bytes(), leaf) {
                    Value::String(s) => format!("{:?}", String::from_utf8_lossy(s)),
                    Value::Number { text, .. } => String::from_utf8_lossy(text).into_owned(),
                    Value::Bool(b) => b.to_string(),
                    Value::Null => "null".to_owned(),
                };
                (leaf.path, text, flat.chain(leaf))
            })
            .collect())
    }

    #[test]
    fn keeps_only_named_paths_with_their_array_elements() {
        let leaves = flatten(
            r#"{"x": {"skip": [1, {"y": 2}]}, "a": [{"b": "p\"q"}, {"b": [3e2, null]}], "a.c": true}"#,
            &["a.b", "a.c"],
        )
        .unwrap();
        assert_eq!(
            leaves,
            vec![
                (0, r#""p\"q""#.to_owned(), vec![(1, 0)]),
                (0, "3e2".to_owned(), vec![(1, 1), (2, 0)]),
                (0, "null".to_owned(), vec![(1, 1), (2, 1)]),
                (1, "true".to_owned(), vec![]),
            ]
        );
    }

    /// An event key is split at its dots, whether it is found whole or not: `a.b` reaches
    /// the same path as `a` → `b`, and empty segments are segments.
    #[test]
    fn keys_are_split_at_dots() {
        let paths = ["a.b", "a", "", "x..y", "x.", "p.q.r"];
        let cases: [(&str, Option<usize>); 11] = [
            (r#"{"a": {"b": 1}}"#, Some(0)),
            (r#"{"a.b": 1}"#, Some(0)),
            (r#"{"a\u002eb": 1}"#, Some(0)),
            (r#"{"a": 1}"#, Some(1)),
            (r#"{"": 1}"#, Some(2)),
            (r#"{"x..y": 1}"#, Some(3)),
            (r#"{"x": {"": {"y": 1}}}"#, Some(3)),
            (r#"{"x.": 1}"#, Some(4)),
            (r#"{"p": {"q.r": 1}}"#, Some(5)),
            (r#"{".": 1}"#, None),
            (r#"{"a..b": 1}"#, None),
        ];
        for (event, path) in cases {
            let leaves = flatten(event, &paths).unwrap();
            let found: Vec<usize> = leaves.iter().map(|(p, _, _)| *p as usize).collect();
            assert_eq!(found, path.into_iter().collect::<Vec<_>>(), "{event}");
        }
    }

    #[test]
    fn rejects_bad_events() {
        for event in [
            "",
            "[]",
            "1",
            "{",
            r#"{"a":}"#,
            r#"{"a":1,}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":01}"#,
            r#"{"a":"\x"}"#,
            "{} {}",
            r#"{"a":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}"#,
        ] {
            assert!(flatten(event, &["a"]).is_err(), "{event:?}");
        }
    }

    /// Invalid UTF-8 is an error wherever it stands, in fields no rule names too.
    #[test]
    fn rejects_invalid_utf8_anywhere() {
        let mut trie = PathTrie::new();
        trie.insert("a", 0);
        let mut flat = Flat::default();
        for event in [
            &b"{\"a\":\"x\xff\"}"[..],
            b"{\"skip\":\"0123456789\xc3\x28\"}",
            b"{\"k\xe2\x82\":1}",
            b"{\"a\":1}\xff",
            b"{\"a\":\xc3\xa9}",
            b"{\"a\":\"\xed\xa0\x80\"}",
        ] {
            assert!(flat.read(event, &trie, 16).is_err(), "{event:?}");
        }
        let error = flat.read(b"{\"skip\":\"0123456789\xc3\x28\"}", &trie, 16);
        assert_eq!(
            error.unwrap_err().to_string(),
            "the event is not valid JSON at byte 19: invalid UTF-8 in a string"
        );
        let error = flat.read(b"{\"a\":\xc3\xa9}", &trie, 16);
        assert_eq!(
            error.unwrap_err().to_string(),
            "the event is not valid JSON at byte 5: a non-ASCII byte outside a string"
        );
        flat.read(
            "{\"a\":\"caf\u{e9} \u{1F600}\",\"b\":\"\u{e9}t\u{e9}\"}".as_bytes(),
            &trie,
            16,
        )
        .expect("valid UTF-8 passes");
        assert_eq!(flat.leaves.len(), 1);
    }

    /// Integers as float64 bits differ only in their high bits; their hashes must still
    /// spread over the low bits that hash tables index by.
    #[test]
    fn hashes_of_integers_spread_over_low_bits() {
        let build = FxBuild::default();
        let low: std::collections::HashSet<u64> = (0..4096u32)
            .map(|i| build.hash_one(f64::from(i).to_bits()) & 0xfff)
            .collect();
        assert!(
            low.len() >= 256,
            "{} distinct low 12 bits of 4096",
            low.len()
        );
    }

    /// Strings built to share one hash when the hasher starts from zero (the last word of
    /// each undoes the multiply) do not share it under the process's key.
    #[test]
    fn the_process_key_breaks_built_collisions() {
        // The inverse of the multiplier modulo 2^64, by Newton's iteration.
        let mut inverse = MULTIPLIER;
        for _ in 0..6 {
            inverse = inverse.wrapping_mul(2u64.wrapping_sub(MULTIPLIER.wrapping_mul(inverse)));
        }
        assert_eq!(MULTIPLIER.wrapping_mul(inverse), 1);
        let target = 0x0123_4567_89ab_cdef_u64;
        let keys: Vec<Box<[u8]>> = (0..64u64)
            .map(|i| {
                let (a, b) = (i.wrapping_mul(0x9e37_79b9), !i);
                // The state before the last word, as the hasher computes it from zero: the
                // length first, then the words.
                let mut state = 0u64;
                for word in [24, a, b] {
                    state = (state.rotate_left(5) ^ word).wrapping_mul(MULTIPLIER);
                }
                let last = state.rotate_left(5) ^ target.wrapping_mul(inverse);
                [a, b, last].iter().flat_map(|w| w.to_le_bytes()).collect()
            })
            .collect();
        let from_zero: std::collections::HashSet<u64> = keys
            .iter()
            .map(|k| {
                let mut hasher = FxHasher(0);
                k.hash(&mut hasher);
                hasher.finish()
            })
            .collect();
        assert_eq!(from_zero.len(), 1, "the built strings collide from zero");
        let keyed = FxBuild::default();
        let hashes: std::collections::HashSet<u64> =
            keys.iter().map(|k| keyed.hash_one(k)).collect();
        assert!(hashes.len() > 60, "{} distinct hashes of 64", hashes.len());
    }

    /// Keys that share heads, lengths or (past 16 bytes) both ends each find their own
    /// path, whether a node's children are scanned or indexed.
    #[test]
    fn path_trie_tells_keys_apart() {
        let mut trie = PathTrie::new();
        let keys = ["a", "ab", "abcdefgh", "abcdefghi", "abcdefghj", "b\0"];
        for (i, key) in keys.iter().enumerate() {
            trie.insert(key, i as u32);
        }
        for (i, key) in keys.iter().enumerate() {
            let node = trie.step(0, key.as_bytes()).expect("registered");
            assert_eq!(trie.path(node), Some(i as u32), "{key}");
        }
        assert_eq!(trie.step(0, b"abcdefghk"), None);
        assert_eq!(trie.step(0, b"abc"), None);

        // Many children, sharing heads and lengths (and, past 16 bytes, both ends), scanned
        // and then hashed.
        let mut trie = PathTrie::new();
        let keys: Vec<String> = (0..300)
            .flat_map(|i| {
                [
                    format!("f{i}"),
                    format!("abcdefgh{i}"),
                    format!("x.abcdefgh{i}"),
                    format!("abcdefgh{i:04}ijklmnop"),
                ]
            })
            .collect();
        for (i, key) in keys.iter().enumerate() {
            trie.insert(key, i as u32);
            for (j, key) in keys[..=i].iter().enumerate().step_by(37) {
                let node = trie.step(0, key.as_bytes()).expect("registered");
                assert_eq!(trie.path(node), Some(j as u32), "{key}");
            }
        }
        for (i, key) in keys.iter().enumerate() {
            let node = trie.step(0, key.as_bytes()).expect("registered");
            assert_eq!(trie.path(node), Some(i as u32), "{key}");
            let other = format!("{key}0");
            let found = trie.step(0, other.as_bytes()).and_then(|n| trie.path(n));
            assert_eq!(
                found,
                keys.iter().position(|k| *k == other).map(|i| i as u32)
            );
        }
    }

    #[test]
    fn array_compatibility() {
        let event = r#"{"a": [{"b": 1, "c": [2, 3], "d": {"e": [4]}}, {"b": 5, "c": [6]}], "f": 7, "g": [[8, 9], [10]]}"#;
        let mut trie = PathTrie::new();
        for (i, p) in ["a.b", "a.c", "a.d.e", "f", "g"].iter().enumerate() {
            trie.insert(p, i as u32);
        }
        let mut flat = Flat::default();
        flat.read(event.as_bytes(), &trie, 16).unwrap();
        let value = |i: usize| match flat.value(event.as_bytes(), &flat.leaves[i]) {
            Value::Number { text, .. } => String::from_utf8_lossy(text).into_owned(),
            other => panic!("{other:?}"),
        };
        let at = |n: &str| (0..flat.leaves.len()).find(|&i| value(i) == n).unwrap();
        let compatible = |x: &str, y: &str| {
            let (x, y) = (&flat.leaves[at(x)], &flat.leaves[at(y)]);
            let answer = flat.compatible(x, y);
            assert_eq!(answer, flat.compatible(y, x), "symmetric");
            answer
        };
        // One element of `a`, at different depths inside it.
        assert!(compatible("1", "2"));
        assert!(compatible("1", "4"));
        assert!(compatible("2", "4"));
        // Two elements of one array inside the same element of `a`.
        assert!(!compatible("2", "3"));
        // Different elements of `a`.
        assert!(!compatible("1", "5"));
        assert!(!compatible("4", "6"));
        // Outside any array, or in different arrays.
        assert!(compatible("7", "1"));
        assert!(compatible("8", "1"));
        // Nested arrays: the same inner array, then different elements of the outer one.
        assert!(!compatible("8", "9"));
        assert!(!compatible("8", "10"));
        assert!(compatible("8", "8"));
    }

    /// Leaves in one array element share its frame and frames point to their parents, so
    /// deep arrays cost one frame per element that holds a leaf, not the depth per leaf (a
    /// 2 MB event of 126 nested arrays around a million numbers took 1 GB when each leaf
    /// copied its chain).
    #[test]
    fn deep_arrays_cost_a_frame_per_element() {
        let depth = 100;
        let numbers = vec!["1"; 10_000].join(",");
        let event = format!(
            r#"{{"a": {}{numbers}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let mut trie = PathTrie::new();
        trie.insert("a", 0);
        let mut flat = Flat::default();
        flat.read(event.as_bytes(), &trie, 128).unwrap();
        assert_eq!(flat.leaves.len(), 10_000);
        assert_eq!(flat.frames.len(), 1 + (depth - 1) + 10_000);
        let chain = flat.chain(&flat.leaves[9_999]);
        assert_eq!(chain.len(), depth);
        assert_eq!(chain[depth - 1].1, 9_999);
        assert!(!flat.compatible(&flat.leaves[0], &flat.leaves[9_999]));
    }
}
