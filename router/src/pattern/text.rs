//! String helpers shared by parsing and matching: case folding (corpus §4.3), wildcards
//! (§4.4, §4.9) and IP addresses (§4.1, §4.8).

use std::net::{Ipv4Addr, Ipv6Addr};

/// Folds one character so that two characters are equal ignoring case exactly when their
/// folds are equal: the simple (one-character) upper-case mapping, then the simple
/// lower-case mapping, with no locale. This is how Java's `equalsIgnoreCase` compares, so
/// `Σ`, `σ` and `ς` meet while `ß` and `SS` do not.
pub(crate) fn fold_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let upper = simple(c.to_uppercase(), c);
    if upper == '\u{130}' {
        // The simple lower-case mapping of U+0130 is 'i'; the full one adds a dot.
        return 'i';
    }
    simple(upper.to_lowercase(), upper)
}

fn simple(mut mapped: impl Iterator<Item = char>, c: char) -> char {
    match (mapped.next(), mapped.next()) {
        (Some(m), None) => m,
        _ => c,
    }
}

/// Appends the case fold of `s` to `out`.
pub(crate) fn fold_into(s: &str, out: &mut String) {
    if s.is_ascii() {
        // The usual case, a byte at a time.
        let start = out.len();
        out.push_str(s);
        out[start..].make_ascii_lowercase();
        return;
    }
    out.extend(s.chars().map(fold_char));
}

/// The case fold of `s`.
pub(crate) fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    fold_into(s, &mut out);
    out
}

/// A validated wildcard pattern split at its unescaped stars: `segments.len()` is one more
/// than the number of stars, and the segments hold the literal text with escapes removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    pub(crate) segments: Vec<String>,
}

/// Why a wildcard pattern is invalid, in event-ruler's words. Positions count characters.
pub(crate) fn parse_glob(source: &str) -> Result<Glob, String> {
    let mut segments = vec![String::new()];
    let mut chars = source.chars().enumerate().peekable();
    let mut last_was_star = false;
    while let Some((idx, c)) = chars.next() {
        match c {
            '*' => {
                if last_was_star {
                    return Err(format!("Consecutive wildcard characters at pos {idx}"));
                }
                segments.push(String::new());
                last_was_star = true;
            }
            '\\' => {
                match chars.next() {
                    Some((_, escaped @ ('*' | '\\'))) => {
                        segments.last_mut().expect("never empty").push(escaped)
                    }
                    _ => return Err(format!("Invalid escape character at pos {}", idx + 1)),
                }
                last_was_star = false;
            }
            c => {
                segments.last_mut().expect("never empty").push(c);
                last_was_star = false;
            }
        }
    }
    Ok(Glob { segments })
}

impl Glob {
    /// The wildcard pattern this glob was parsed from, escapes and all: a star or a
    /// backslash inside a segment is written `\*` or `\\`, and the segments are joined
    /// by unescaped stars, so that `parse_glob` reads it back to the same glob.
    pub(crate) fn source(&self) -> String {
        let mut out = String::new();
        for (i, segment) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push('*');
            }
            for c in segment.chars() {
                if matches!(c, '*' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
        }
        out
    }

    /// Whether the whole of `s` matches: the first segment is a prefix, the last a suffix,
    /// and the others occur in order in between (leftmost occurrence is always safe when
    /// `*` is the only metacharacter).
    pub(crate) fn is_match(&self, s: &[u8]) -> bool {
        let segs = &self.segments;
        if segs.len() == 1 {
            return same(s, segs[0].as_bytes());
        }
        let first = segs[0].as_bytes();
        let last = segs[segs.len() - 1].as_bytes();
        if s.len() < first.len() + last.len()
            || !same(&s[..first.len()], first)
            || !same(&s[s.len() - last.len()..], last)
        {
            return false;
        }
        let mut rest = &s[first.len()..s.len() - last.len()];
        for seg in &segs[1..segs.len() - 1] {
            let seg = seg.as_bytes();
            match find(rest, seg) {
                Some(at) => rest = &rest[at + seg.len()..],
                None => return false,
            }
        }
        true
    }

    /// The complexity measure behind EventBridge's "Rule is too complex" rejection (corpus
    /// §4.9): the largest number of pattern positions that can be live at once while a
    /// worst-case input is read, counting each star and the position after it.
    ///
    /// The search stops as soon as it finds more than `limit` live positions, so a result
    /// above `limit` is a lower bound, not the exact measure. It also gives up (returning
    /// `usize::MAX`) after [`COMPLEXITY_STATES`] distinct sets of positions. Sets of
    /// positions are bit sets stepped a word at a time, and each set is stepped only on the
    /// characters its positions expect plus one that none of them expects (every other
    /// character leads to the same set), so even a pattern at the length limit with
    /// hundreds of stars is measured in milliseconds.
    pub(crate) fn complexity(&self, limit: usize) -> usize {
        if self.segments.len() == 1 {
            return 1;
        }
        // Positions: each character and each star of the pattern, then its end. `chars`
        // holds the character id at each literal position.
        let mut ids: Vec<char> = Vec::new();
        let mut chars: Vec<Option<usize>> = Vec::new();
        for (i, seg) in self.segments.iter().enumerate() {
            if i > 0 {
                chars.push(None);
            }
            for c in seg.chars() {
                let id = ids.iter().position(|&known| known == c).unwrap_or_else(|| {
                    ids.push(c);
                    ids.len() - 1
                });
                chars.push(Some(id));
            }
        }
        let words = (chars.len() + 1).div_ceil(64);
        let mut stars = vec![0u64; words];
        let mut expects = vec![vec![0u64; words]; ids.len()];
        for (p, token) in chars.iter().enumerate() {
            match token {
                None => stars[p / 64] |= 1 << (p % 64),
                Some(id) => expects[*id][p / 64] |= 1 << (p % 64),
            }
        }
        // `next` gets the positions one after those of `from`.
        let shift_into = |next: &mut [u64], from: &[u64]| {
            let mut carry = 0;
            for (n, &f) in next.iter_mut().zip(from) {
                *n |= (f << 1) | carry;
                carry = f >> 63;
            }
        };
        // Behind a live star, the position after it is live too.
        let close = |set: &mut Vec<u64>| loop {
            let live_stars: Vec<u64> = set.iter().zip(&stars).map(|(s, t)| s & t).collect();
            let before = set.clone();
            shift_into(set, &live_stars);
            if *set == before {
                break;
            }
        };
        let count = |set: &[u64]| set.iter().map(|w| w.count_ones() as usize).sum::<usize>();
        let mut start = vec![0u64; words];
        start[0] = 1;
        close(&mut start);
        let mut seen: std::collections::HashSet<Vec<u64>> = std::collections::HashSet::new();
        let mut todo = vec![start];
        let mut max = 0;
        let mut expected: Vec<usize> = Vec::new();
        // `listed[id] == seen.len()`: `id` is in `expected` for the set in hand.
        let mut listed = vec![usize::MAX; ids.len()];
        while let Some(set) = todo.pop() {
            if seen.contains(&set) {
                continue;
            }
            if seen.len() >= COMPLEXITY_STATES {
                return usize::MAX;
            }
            max = max.max(count(&set));
            if max > limit {
                return max;
            }
            expected.clear();
            for (w, &word) in set.iter().enumerate() {
                let mut bits = word;
                while bits != 0 {
                    let p = w * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    if let Some(Some(id)) = chars.get(p)
                        && listed[*id] != seen.len()
                    {
                        listed[*id] = seen.len();
                        expected.push(*id);
                    }
                }
            }
            let stay: Vec<u64> = set.iter().zip(&stars).map(|(s, t)| s & t).collect();
            // `None`: a character that no live position expects.
            for c in expected.iter().map(Some).chain([None]) {
                let mut next = stay.clone();
                if let Some(&id) = c {
                    let advancing: Vec<u64> =
                        set.iter().zip(&expects[id]).map(|(s, e)| s & e).collect();
                    shift_into(&mut next, &advancing);
                }
                close(&mut next);
                if count(&next) > 0 && !seen.contains(&next) {
                    todo.push(next);
                }
            }
            seen.insert(set);
        }
        max
    }
}

/// How many distinct sets of live positions the complexity search visits before it gives up.
pub(crate) const COMPLEXITY_STATES: usize = 4096;

/// The first occurrence of `needle` in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    let first = needle[0];
    let mut at = 0;
    while at + needle.len() <= haystack.len() {
        let offset = haystack[at..=haystack.len() - needle.len()]
            .iter()
            .position(|&b| b == first)?;
        at += offset;
        if same(&haystack[at..at + needle.len()], needle) {
            return Some(at);
        }
        at += 1;
    }
    None
}

/// The first eight bytes of a string, zero-padded: with the length, the whole of a
/// string of up to eight bytes.
#[inline]
pub(crate) fn head(segment: &[u8]) -> u64 {
    let n = segment.len();
    let word = |at: usize| u32::from_le_bytes(segment[at..at + 4].try_into().expect("4 bytes"));
    match n {
        8.. => u64::from_le_bytes(segment[..8].try_into().expect("8 bytes")),
        // Two reads that overlap: the shared bytes land on themselves.
        4..8 => u64::from(word(0)) | u64::from(word(n - 4)) << ((n - 4) * 8),
        1..4 => {
            let byte = |at: usize| u64::from(segment[at]) << (at * 8);
            byte(0) | byte(n / 2) | byte(n - 1)
        }
        0 => 0,
    }
}

/// A string's first eight bytes and its last eight (which overlap for fewer than 16),
/// zero-padded, and its length: the whole string when it has at most 16 bytes, so that
/// comparing or hashing it takes two words instead of following a pointer to its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ShortKey(u64, u64, u32);

impl ShortKey {
    /// The ends of any string (whole only up to 16 bytes; see [`ShortKey::of`]).
    #[inline]
    pub(crate) fn ends(s: &[u8]) -> ShortKey {
        let n = s.len();
        let tail = match n {
            9.. => u64::from_le_bytes(s[n - 8..].try_into().expect("8 bytes")),
            _ => 0,
        };
        ShortKey(head(s), tail, n as u32)
    }

    /// The key of a string of at most 16 bytes, which it holds whole.
    #[inline]
    pub(crate) fn of(s: &[u8]) -> Option<ShortKey> {
        (s.len() <= 16).then(|| ShortKey::ends(s))
    }

    #[inline]
    pub(crate) fn is_whole(self) -> bool {
        self.2 <= 16
    }
}

/// Whether two strings are equal, comparing short ones as words rather than calling
/// `memcmp`, whose call costs more than the comparison for a few bytes.
#[inline]
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && if a.len() <= 16 {
            ShortKey::ends(a) == ShortKey::ends(b)
        } else {
            a == b
        }
}

/// An IP address as one number in its family's range; IPv4 and IPv6 never meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Ip {
    pub(crate) v6: bool,
    pub(crate) bits: u128,
}

/// Parses an IPv4 or IPv6 literal as event-ruler reads one (corpus §4.8): IPv4 in dotted
/// decimal, IPv6 in any textual form made of hex digits and colons only. An IPv6 form with
/// a dotted IPv4 tail (`::ffff:10.0.0.1`) is no IP literal to it, and an IPv4-mapped
/// address in hex (`::ffff:a00:1`) is the IPv4 address it maps, as Java's
/// `InetAddress.getByName` makes it.
pub(crate) fn parse_ip(s: &str) -> Option<Ip> {
    let first = *s.as_bytes().first()?;
    if !(first.is_ascii_hexdigit() || first == b':') {
        return None;
    }
    if let Ok(v4) = s.parse::<Ipv4Addr>() {
        return Some(Ip {
            v6: false,
            bits: u128::from(u32::from(v4)),
        });
    }
    if s.contains(':')
        && s.bytes().all(|b| b == b':' || b.is_ascii_hexdigit())
        && let Ok(v6) = s.parse::<Ipv6Addr>()
    {
        return Some(match v6.to_ipv4_mapped() {
            Some(v4) => Ip {
                v6: false,
                bits: u128::from(u32::from(v4)),
            },
            None => Ip {
                v6: true,
                bits: u128::from(v6),
            },
        });
    }
    None
}

impl std::fmt::Display for Ip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match u32::try_from(self.bits) {
            Ok(v4) if !self.v6 => write!(f, "{}", Ipv4Addr::from(v4)),
            _ => write!(f, "{}", Ipv6Addr::from(self.bits)),
        }
    }
}

/// In CIDR notation: a range is a block, so `lo` and `hi` differ in its host bits alone.
impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let width = if self.lo.v6 { 128 } else { 32 };
        let host_bits = (self.lo.bits ^ self.hi.bits).count_ones();
        write!(f, "{}/{}", self.lo, width - host_bits)
    }
}

/// A validated CIDR range: the addresses from `lo` to `hi`, both included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IpRange {
    pub(crate) lo: Ip,
    pub(crate) hi: Ip,
}

impl IpRange {
    pub(crate) fn contains(&self, ip: Ip) -> bool {
        ip.v6 == self.lo.v6 && self.lo.bits <= ip.bits && ip.bits <= self.hi.bits
    }
}

/// Parses `addr/bits` with the AWS messages of corpus §4.8. As in event-ruler, which
/// splits on `/` with Java's `String.split`, trailing slashes are dropped and the mask is
/// a 32-bit integer.
pub(crate) fn parse_cidr(s: &str) -> Result<IpRange, String> {
    let Some((addr, bits)) = s
        .trim_end_matches('/')
        .split_once('/')
        .filter(|(_, bits)| !bits.contains('/'))
    else {
        return Err("Malformed CIDR, one '/' required".to_owned());
    };
    let bits: i32 = bits
        .parse()
        .map_err(|_| "Malformed CIDR, mask bits must be an integer".to_owned())?;
    if bits < 0 {
        return Err("Malformed CIDR, mask bits must not be negative".to_owned());
    }
    let ip = match parse_ip(addr) {
        Some(ip) => ip,
        None => {
            let looks_v4 = addr.split('.').count() == 4
                && addr
                    .split('.')
                    .all(|octet| !octet.is_empty() && octet.bytes().all(|b| b.is_ascii_digit()));
            return Err(if looks_v4 {
                format!("Invalid IP address: {addr}")
            } else {
                format!("Nonstandard IP address: {addr}")
            });
        }
    };
    let width: i32 = if ip.v6 { 128 } else { 32 };
    if bits >= width {
        return Err(if ip.v6 {
            "IPv6 mask bits must be < 128".to_owned()
        } else {
            "IPv4 mask bits must be < 32".to_owned()
        });
    }
    let host_bits = (width - bits) as u32;
    let host_mask: u128 = u128::MAX.checked_shr(128 - host_bits).unwrap_or(0);
    let lo = ip.bits & !host_mask;
    let hi = lo | host_mask;
    Ok(IpRange {
        lo: Ip {
            v6: ip.v6,
            bits: lo,
        },
        hi: Ip {
            v6: ip.v6,
            bits: hi,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Short keys hold strings of up to 16 bytes whole (the head alone those of up to
    /// eight), and `same` agrees with `==`.
    #[test]
    fn short_keys_and_same() {
        let strings = crate::pattern::tests::byte_strings(20, 30);
        for a in &strings {
            let bytes: Vec<u8> = a.iter().chain([0; 8].iter()).take(8).copied().collect();
            assert_eq!(
                head(a),
                u64::from_le_bytes(bytes.try_into().unwrap()),
                "{a:?}"
            );
            for b in &strings {
                assert_eq!(same(a, b), a == b, "{a:?} {b:?}");
                if a.len() == b.len() && a.len() <= 8 {
                    assert_eq!(head(a) == head(b), a == b, "{a:?} {b:?}");
                }
                if let (Some(x), Some(y)) = (ShortKey::of(a), ShortKey::of(b)) {
                    assert_eq!(x == y, a == b, "{a:?} {b:?}");
                }
            }
            assert_eq!(ShortKey::of(a).is_some(), a.len() <= 16);
        }
    }

    #[test]
    fn folds_case_per_character() {
        assert_eq!(fold("ÄbΣ"), fold("äBσ"));
        assert_eq!(fold("σ"), fold("ς"));
        assert_ne!(fold("STRASSE"), fold("straße"));
        assert_eq!(fold("İ"), fold("i"));
    }

    #[test]
    fn wildcard_errors() {
        assert_eq!(
            parse_glob("foo**bar").unwrap_err(),
            "Consecutive wildcard characters at pos 4"
        );
        assert_eq!(
            parse_glob("**").unwrap_err(),
            "Consecutive wildcard characters at pos 1"
        );
        assert_eq!(
            parse_glob("he\\llo").unwrap_err(),
            "Invalid escape character at pos 3"
        );
        assert_eq!(
            parse_glob("x\\").unwrap_err(),
            "Invalid escape character at pos 2"
        );
        assert!(parse_glob("a\\**").is_ok());
    }

    #[test]
    fn wildcard_matching() {
        let check = |p: &str, s: &str| parse_glob(p).unwrap().is_match(s.as_bytes());
        assert!(check("*", ""));
        assert!(check("a*c", "abc"));
        assert!(check("a*c", "ac"));
        assert!(!check("ab", "abc"));
        assert!(check("a\\*b", "a*b"));
        assert!(!check("a\\*b", "axb"));
        assert!(check("*a*a*", "aa"));
        assert!(!check("*a*a*", "a"));
        assert!(!check("aa*aa", "aaa"));
    }

    #[test]
    fn wildcard_complexity_matches_the_aws_examples() {
        let measure = |p: &str| parse_glob(p).unwrap().complexity(usize::MAX);
        // Accepted by AWS.
        assert_eq!(measure("/Users/*/dir/dir/dir/dir/dir/doc.txt"), 8);
        // Rejected by AWS.
        assert_eq!(measure("*:*:*:*:*:event-bus/*"), 13);
    }

    /// The measure as first written: sorted vectors of positions, stepped on every character
    /// of the pattern plus one it lacks, no early exit. Slow, plainly right.
    fn complexity_by_vectors(glob: &Glob) -> usize {
        if glob.segments.len() == 1 {
            return 1;
        }
        let mut tokens: Vec<Option<char>> = Vec::new();
        for (i, seg) in glob.segments.iter().enumerate() {
            if i > 0 {
                tokens.push(None);
            }
            tokens.extend(seg.chars().map(Some));
        }
        let mut alphabet: Vec<Option<char>> =
            tokens.iter().copied().filter(Option::is_some).collect();
        alphabet.push(Some('\u{0}'));
        let close = |set: &mut Vec<usize>| {
            let star_ends: Vec<usize> = set
                .iter()
                .filter(|&&p| p < tokens.len() && tokens[p].is_none())
                .map(|p| p + 1)
                .collect();
            set.extend(star_ends);
            set.sort_unstable();
            set.dedup();
        };
        let mut start = vec![0];
        close(&mut start);
        let mut seen = std::collections::HashSet::new();
        let mut todo = vec![start];
        let mut max = 0;
        while let Some(set) = todo.pop() {
            if !seen.insert(set.clone()) {
                continue;
            }
            assert!(
                seen.len() <= COMPLEXITY_STATES,
                "the generated globs stay small"
            );
            max = max.max(set.len());
            for c in &alphabet {
                let mut next: Vec<usize> = set
                    .iter()
                    .filter_map(|&p| match tokens.get(p) {
                        Some(None) => Some(p),
                        Some(t) if t == c => Some(p + 1),
                        _ => None,
                    })
                    .collect();
                close(&mut next);
                if !next.is_empty() {
                    todo.push(next);
                }
            }
        }
        max
    }

    /// The only escapes are `\*` and `\\`, so a glob's source is the very text it was
    /// parsed from.
    #[test]
    fn wildcard_source_is_the_text_parsed() {
        let mut texts = vec![String::new()];
        let mut n_valid = 0;
        while let Some(text) = texts.pop() {
            if text.len() < 7 {
                for c in ['a', '\\', '*'] {
                    texts.push(format!("{text}{c}"));
                }
            }
            if let Ok(glob) = parse_glob(&text) {
                assert_eq!(glob.source(), text);
                assert_eq!(parse_glob(&glob.source()), Ok(glob));
                n_valid += 1;
            }
        }
        assert!(n_valid > 100, "{n_valid}");
    }

    #[test]
    fn wildcard_complexity_agrees_with_the_plain_search() {
        // Every glob over `a`, `b` and `*` of up to 9 characters without two stars in a row.
        let mut globs = vec![String::new()];
        let mut checked = 0;
        while let Some(glob) = globs.pop() {
            if glob.len() < 9 {
                for c in ['a', 'b', '*'] {
                    if !(c == '*' && glob.ends_with('*')) {
                        globs.push(format!("{glob}{c}"));
                    }
                }
            }
            let parsed = parse_glob(&glob).unwrap();
            let exact = complexity_by_vectors(&parsed);
            assert_eq!(parsed.complexity(usize::MAX), exact, "{glob}");
            for limit in 0..=exact + 1 {
                let bounded = parsed.complexity(limit);
                if exact <= limit {
                    assert_eq!(bounded, exact, "{glob} under {limit}");
                } else {
                    assert!(
                        bounded > limit && bounded <= exact,
                        "{glob} under {limit}: {bounded}"
                    );
                }
            }
            checked += 1;
        }
        assert_eq!(checked, 14_410);
    }

    #[test]
    fn wildcard_complexity_of_long_patterns_is_bounded_quickly() {
        // Patterns at the largest length the builder allows, with up to 500 stars: the first
        // search took minutes on some of them.
        let mut patterns = vec![
            "a*".repeat(511),
            "*a".repeat(511),
            "ab*".repeat(341),
            (0..1_000)
                .map(|i| {
                    if i % 2 == 1 {
                        '*'
                    } else {
                        char::from(b'a' + (i % 26) as u8)
                    }
                })
                .collect(),
            (0..1_000)
                .map(|i| {
                    if i % 3 == 2 {
                        '*'
                    } else {
                        char::from_u32(0x100 + i).unwrap()
                    }
                })
                .collect(),
        ];
        patterns.push(format!("*{}", "x".repeat(1_000)));
        for pattern in &patterns {
            let glob = parse_glob(pattern).unwrap();
            let bounded = glob.complexity(8);
            assert!(bounded > 8, "{}...: {bounded}", &pattern[..10]);
            // Without the early exit the search ends too (exact or given up).
            assert!(glob.complexity(usize::MAX) >= bounded);
        }
        // One star in front of a long literal is simple, however long.
        let glob = parse_glob(&format!("{}*", "x".repeat(1_000))).unwrap();
        assert_eq!(glob.complexity(8), 2);
    }

    #[test]
    fn cidr_messages() {
        assert_eq!(
            parse_cidr("10.0.0.0").unwrap_err(),
            "Malformed CIDR, one '/' required"
        );
        assert_eq!(
            parse_cidr("256.0.0.0/8").unwrap_err(),
            "Invalid IP address: 256.0.0.0"
        );
        assert_eq!(
            parse_cidr("xx.11.xx/8").unwrap_err(),
            "Nonstandard IP address: xx.11.xx"
        );
        assert_eq!(
            parse_cidr("10.0.0.1/32").unwrap_err(),
            "IPv4 mask bits must be < 32"
        );
        let range = parse_cidr("10.0.0.5/24").unwrap();
        assert!(range.contains(parse_ip("10.0.0.255").unwrap()));
        assert!(!range.contains(parse_ip("10.0.1.0").unwrap()));
        let range = parse_cidr("::/0").unwrap();
        assert!(!range.contains(parse_ip("10.0.0.1").unwrap()));
        // As event-ruler reads them (an audit): trailing slashes dropped, the mask a 32-bit
        // integer, an IPv4-mapped address in hex an IPv4 address, a dotted tail refused.
        assert_eq!(parse_cidr("10.0.0.0/8/"), parse_cidr("10.0.0.0/8"));
        assert_eq!(
            parse_cidr("10.0.0.0//8").unwrap_err(),
            "Malformed CIDR, one '/' required"
        );
        assert_eq!(
            parse_cidr("10.0.0.0/99999999999").unwrap_err(),
            "Malformed CIDR, mask bits must be an integer"
        );
        assert_eq!(
            parse_cidr("::ffff:a00:0/104").unwrap_err(),
            "IPv4 mask bits must be < 32"
        );
        assert_eq!(
            parse_cidr("::ffff:10.0.0.0/104").unwrap_err(),
            "Nonstandard IP address: ::ffff:10.0.0.0"
        );
    }

    #[test]
    fn ip_literals_as_event_ruler_reads_them() {
        let v4 = |bits: u32| {
            Some(Ip {
                v6: false,
                bits: bits.into(),
            })
        };
        assert_eq!(parse_ip("10.0.0.1"), v4(0x0a00_0001));
        assert_eq!(parse_ip("::ffff:a00:1"), v4(0x0a00_0001));
        assert_eq!(parse_ip("::FFFF:0A00:0001"), v4(0x0a00_0001));
        for not_ip in [
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "fe80::1%eth0",
            "10.0.0.1/8",
            "",
        ] {
            assert_eq!(parse_ip(not_ip), None, "{not_ip}");
        }
        assert_eq!(parse_ip("0:0:0:0:0:0:0:1"), Some(Ip { v6: true, bits: 1 }));
        // IPv4-compatible (not mapped) stays IPv6.
        assert_eq!(
            parse_ip("::a00:1"),
            Some(Ip {
                v6: true,
                bits: 0x0a00_0001
            })
        );
    }
}
