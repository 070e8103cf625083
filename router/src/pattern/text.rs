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
    /// Whether the whole of `s` matches: the first segment is a prefix, the last a suffix,
    /// and the others occur in order in between (leftmost occurrence is always safe when
    /// `*` is the only metacharacter).
    pub(crate) fn is_match(&self, s: &[u8]) -> bool {
        let segs = &self.segments;
        if segs.len() == 1 {
            return s == segs[0].as_bytes();
        }
        let first = segs[0].as_bytes();
        let last = segs[segs.len() - 1].as_bytes();
        if s.len() < first.len() + last.len() || !s.starts_with(first) || !s.ends_with(last) {
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
    /// worst-case input is read, counting each star and the position after it. Returns
    /// `usize::MAX` when the search gives up.
    pub(crate) fn complexity(&self) -> usize {
        if self.segments.len() == 1 {
            return 1;
        }
        // Tokens: `None` is a star, `Some(c)` a literal character.
        let mut tokens: Vec<Option<char>> = Vec::new();
        for (i, seg) in self.segments.iter().enumerate() {
            if i > 0 {
                tokens.push(None);
            }
            tokens.extend(seg.chars().map(Some));
        }
        let mut alphabet: Vec<char> = tokens.iter().flatten().copied().collect();
        alphabet.sort_unstable();
        alphabet.dedup();
        // A character that occurs nowhere in the pattern stands for all the others.
        let other = (1..)
            .filter_map(char::from_u32)
            .find(|c| !alphabet.contains(c));
        alphabet.extend(other);
        let close = |set: &mut Vec<usize>| {
            let mut i = 0;
            while i < set.len() {
                let p = set[i];
                if p < tokens.len() && tokens[p].is_none() && !set.contains(&(p + 1)) {
                    set.push(p + 1);
                }
                i += 1;
            }
            set.sort_unstable();
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
            if seen.len() > 4096 {
                return usize::MAX;
            }
            max = max.max(set.len());
            for &c in &alphabet {
                let mut next = Vec::new();
                for &p in &set {
                    match tokens.get(p) {
                        Some(None) => next.push(p),
                        Some(Some(t)) if *t == c => next.push(p + 1),
                        _ => {}
                    }
                }
                next.sort_unstable();
                next.dedup();
                close(&mut next);
                if !next.is_empty() && !seen.contains(&next) {
                    todo.push(next);
                }
            }
        }
        max
    }
}

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
        if &haystack[at..at + needle.len()] == needle {
            return Some(at);
        }
        at += 1;
    }
    None
}

/// An IP address as one number in its family's range; IPv4 and IPv6 never meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Ip {
    pub(crate) v6: bool,
    pub(crate) bits: u128,
}

/// Parses an IPv4 or IPv6 literal (any textual form of IPv6).
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
        && let Ok(v6) = s.parse::<Ipv6Addr>()
    {
        return Some(Ip {
            v6: true,
            bits: u128::from(v6),
        });
    }
    None
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

/// Parses `addr/bits` with the AWS messages of corpus §4.8.
pub(crate) fn parse_cidr(s: &str) -> Result<IpRange, String> {
    let Some((addr, bits)) = s.split_once('/').filter(|(_, bits)| !bits.contains('/')) else {
        return Err("Malformed CIDR, one '/' required".to_owned());
    };
    let bits: i64 = bits
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
    let width: i64 = if ip.v6 { 128 } else { 32 };
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
        let measure = |p: &str| parse_glob(p).unwrap().complexity();
        // Accepted by AWS.
        assert_eq!(measure("/Users/*/dir/dir/dir/dir/dir/doc.txt"), 8);
        // Rejected by AWS.
        assert_eq!(measure("*:*:*:*:*:event-bus/*"), 13);
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
    }
}
