//! Go's regular expressions (regexp.Compile's RE2 syntax and matching) on
//! the regex crate, for the Rust built-ins whose Go originals match
//! patterns (cors origins, canary and fault matches).
//!
//! The two libraries read many patterns differently: in Go `\d`, `\w`,
//! `\s` and `\b` are ASCII, `\!`, `\_` and `\<` are literals, `{` that
//! opens no repeat count is a literal, `[` inside a class is a literal,
//! `(?i-i)` and `(?)` are fine, octal escapes work, `a**` is an error and
//! counts above 1000 are refused; in the regex crate each of these is
//! Unicode-aware, an error, or means something else (`[a&&b]` is an
//! intersection there). So a pattern is not handed to the crate as it is:
//! `compile` parses it with Go's parser's rules (regexp/syntax, Perl
//! flags), refusing what Go refuses, and writes out an unambiguous
//! equivalent: every literal and class as explicit code point ranges, case
//! folded where `(?i)` is on (the crate's simple case folding, which is
//! Go's), `.`, `^` and `$` spelled for the flags in force, `\b` as the
//! crate's ASCII boundary. Only is_match is offered, so greediness and
//! capture groups do not matter and are dropped.
//!
//! What differs, refused with an error that says so: Unicode classes
//! (`\pL`, `\p{Greek}`: the two libraries' Unicode tables are not the
//! same version), an escape naming a surrogate, groups and repetitions
//! nested more than MAX_DEPTH deep (Go allows a parse tree 1000 deep; the
//! crate's compiler recurses on a guest's 64 KiB stack), and a pattern
//! that compiles to more than the crate's size limit (Go's own limit is
//! higher).
//!
//! Text that is not UTF-8 is matched as Go matches it: each byte that does
//! not start a valid sequence reads as U+FFFD.
#![allow(dead_code)]

use regex_syntax::hir::{ClassUnicode, ClassUnicodeRange};

/// How deep the pattern given to the crate may nest groups (see the
/// module doc): each group of Go's pattern is one, and so is each item a
/// repetition applies to (it is written out as a group).
pub const MAX_DEPTH: usize = 120;

/// A compiled pattern.
#[derive(Debug)]
pub struct Regexp {
    re: regex::bytes::Regex,
}

impl Regexp {
    /// Whether text contains a match (Go's MatchString).
    pub fn is_match(&self, text: &[u8]) -> bool {
        match std::str::from_utf8(text) {
            Ok(_) => self.re.is_match(text),
            Err(_) => self.re.is_match(go_runes(text).as_bytes()),
        }
    }
}

/// Compiles pattern as Go's regexp.Compile does (the same patterns
/// accepted, errors worded as Go's: "error parsing regexp: ...").
pub fn compile(pattern: &str) -> Result<Regexp, String> {
    let translated = translate(pattern)?;
    regex::bytes::RegexBuilder::new(&translated)
        // The lazy DFA's cache lives in the instance's linear memory
        // (2 MiB by default): a small one keeps an instance small.
        .dfa_size_limit(256 << 10)
        .build()
        .map(|re| Regexp { re })
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(n) => {
                format!("error parsing regexp: expression too large: the Rust built-ins compile a pattern to at most {} bytes", n)
            }
            e => format!("error parsing regexp: {}", e),
        })
}

/// Text with each byte that starts no valid UTF-8 sequence replaced by
/// U+FFFD, one per byte, as Go's decoder reads it (from_utf8_lossy
/// replaces a maximal invalid sequence with one).
pub fn go_runes(mut b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() + 8);
    while !b.is_empty() {
        match std::str::from_utf8(b) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let n = e.valid_up_to();
                out.push_str(std::str::from_utf8(&b[..n]).unwrap_or_default());
                out.push('\u{fffd}');
                b = &b[n + 1..];
            }
        }
    }
    out
}

// Go's flags that change what a pattern means (FoldCase; OneLine
// inverted as MULTI_LINE; DotNL; NonGreedy, which only matters to where
// a match ends, is parsed and dropped).
const FOLD: u8 = 1;
const MULTI_LINE: u8 = 2;
const DOT_NL: u8 = 4;
const NON_GREEDY: u8 = 8;

// The repeat counts Go allows (regexp/syntax), and in a nest of counted
// repeats their product.
const MAX_REPEAT: i64 = 1000;

fn err(code: &str, expr: &str) -> String {
    format!("error parsing regexp: {}: `{}`", code, expr)
}

const INVALID_ESCAPE: &str = "invalid escape sequence";
const INVALID_CHAR_RANGE: &str = "invalid character class range";
const INVALID_NAMED_CAPTURE: &str = "invalid named capture";
const INVALID_PERL_OP: &str = "invalid or unsupported Perl syntax";
const INVALID_REPEAT_OP: &str = "invalid nested repetition operator";
const INVALID_REPEAT_SIZE: &str = "invalid repeat count";
const MISSING_BRACKET: &str = "missing closing ]";
const MISSING_PAREN: &str = "missing closing )";
const MISSING_REPEAT_ARGUMENT: &str = "missing argument to repetition operator";
const TRAILING_BACKSLASH: &str = "trailing backslash at end of expression";
const UNEXPECTED_PAREN: &str = "unexpected )";

/// An item written out, that a repetition may apply to: where it starts
/// in the output, and the product of the counted repeats inside it along
/// its deepest path (Go's repeatIsValid), 0 when a {0} prunes it.
#[derive(Clone, Copy)]
struct Item {
    start: usize,
    weight: i64,
}

/// An open group: the flags to restore at its `)`, the item the group
/// will be, and the largest weight of what it holds so far.
struct Group {
    flags: u8,
    start: usize,
    weight: i64,
}

struct Translator<'a> {
    whole: &'a str,
    out: String,
    flags: u8,
    groups: Vec<Group>,
    // The top of Go's parse stack: None at the start, after `(` and `|`
    // (where a repetition has no argument).
    last: Option<Item>,
    // Weight of the items of the top level, finished.
    top_weight: i64,
}

/// The regex crate pattern that matches what Go's pattern matches.
pub fn translate(pattern: &str) -> Result<String, String> {
    let mut t = Translator { whole: pattern, out: String::with_capacity(pattern.len() * 8), flags: 0, groups: Vec::new(), last: None, top_weight: 1 };
    t.parse()?;
    let mut depth = 0usize;
    for c in t.out.bytes() {
        // Every ( and ) written is structure: literals and classes are
        // written as \x{...} escapes.
        match c {
            b'(' => depth += 1,
            b')' => depth -= 1,
            _ => {}
        }
        if depth > MAX_DEPTH {
            return Err(too_deep(pattern));
        }
    }
    Ok(t.out)
}

fn too_deep(pattern: &str) -> String {
    format!(
        "error parsing regexp: expression nests too deeply: the Rust built-ins allow groups and repetitions {} deep: `{}`",
        MAX_DEPTH, pattern
    )
}

fn take_char(s: &str) -> (char, &str) {
    let c = s.chars().next().unwrap_or('\0');
    (c, &s[c.len_utf8().min(s.len())..])
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

fn unhex(c: char) -> i64 {
    c.to_digit(16).map(|d| d as i64).unwrap_or(-1)
}

impl<'a> Translator<'a> {
    fn parse(&mut self) -> Result<(), String> {
        let mut t: &str = self.whole;
        // The text of the repetition operator just read, if the last
        // thing read was one (Go: lastRepeat).
        let mut last_repeat: Option<&str> = None;
        while !t.is_empty() {
            let mut repeat: Option<&str> = None;
            match t.as_bytes()[0] {
                b'(' => {
                    if t.len() >= 2 && t.as_bytes()[1] == b'?' {
                        t = self.perl_flags(t)?;
                    } else {
                        self.open_group(self.flags)?;
                        t = &t[1..];
                    }
                }
                b'|' => {
                    self.finish_last();
                    self.out.push('|');
                    t = &t[1..];
                }
                b')' => {
                    self.close_group()?;
                    t = &t[1..];
                }
                b'^' => {
                    self.push_item(if self.flags & MULTI_LINE != 0 { "(?m:^)" } else { r"\A" });
                    t = &t[1..];
                }
                b'$' => {
                    self.push_item(if self.flags & MULTI_LINE != 0 { "(?m:$)" } else { r"\z" });
                    t = &t[1..];
                }
                b'.' => {
                    self.push_item(if self.flags & DOT_NL != 0 { "(?s:.)" } else { "(?-s:.)" });
                    t = &t[1..];
                }
                b'[' => t = self.class(t)?,
                b'*' | b'+' | b'?' => {
                    let before = t;
                    let op = &t[..1];
                    let after = self.repeat(op, 0, 0, false, before, &t[1..], last_repeat)?;
                    repeat = Some(before);
                    t = after;
                }
                b'{' => {
                    let before = t;
                    match parse_repeat(t) {
                        None => {
                            // A { that opens no count is a literal.
                            self.literal('{');
                            t = &t[1..];
                        }
                        Some((min, max, after)) => {
                            if min < 0 || min > MAX_REPEAT || max > MAX_REPEAT || (max >= 0 && min > max) {
                                return Err(err(INVALID_REPEAT_SIZE, &before[..before.len() - after.len()]));
                            }
                            let spelled = if max == min {
                                format!("{{{}}}", min)
                            } else if max < 0 {
                                format!("{{{},}}", min)
                            } else {
                                format!("{{{},{}}}", min, max)
                            };
                            let after = self.repeat(&spelled, min, max, true, before, after, last_repeat)?;
                            repeat = Some(before);
                            t = after;
                        }
                    }
                }
                b'\\' => t = self.escape_outside_class(t)?,
                _ => {
                    let (c, rest) = take_char(t);
                    self.literal(c);
                    t = rest;
                }
            }
            last_repeat = repeat;
        }
        if !self.groups.is_empty() {
            return Err(err(MISSING_PAREN, self.whole));
        }
        Ok(())
    }

    // ---- the parse stack ----

    /// Folds the last item into its group's weight: something else
    /// follows it, so no repetition can apply to it any more.
    fn finish_last(&mut self) {
        if let Some(it) = self.last.take() {
            match self.groups.last_mut() {
                Some(g) => g.weight = g.weight.max(it.weight),
                None => self.top_weight = self.top_weight.max(it.weight),
            }
        }
    }

    fn push_item(&mut self, spelled: &str) {
        self.finish_last();
        let start = self.out.len();
        self.out.push_str(spelled);
        self.last = Some(Item { start, weight: 1 });
    }

    fn open_group(&mut self, restore: u8) -> Result<(), String> {
        self.finish_last();
        if self.groups.len() >= MAX_DEPTH {
            return Err(too_deep(self.whole));
        }
        self.groups.push(Group { flags: restore, start: self.out.len(), weight: 1 });
        self.out.push_str("(?:");
        Ok(())
    }

    fn close_group(&mut self) -> Result<(), String> {
        self.finish_last();
        let g = match self.groups.pop() {
            Some(g) => g,
            None => return Err(err(UNEXPECTED_PAREN, self.whole)),
        };
        self.out.push(')');
        self.flags = g.flags;
        self.last = Some(Item { start: g.start, weight: g.weight });
        Ok(())
    }

    /// Go's parser.repeat: op applies to the last item. counted is a
    /// {min,max} (Go's OpRepeat, which prunes and weighs); min and max
    /// matter only then.
    #[allow(clippy::too_many_arguments)]
    fn repeat<'s>(
        &mut self, spelled: &str, min: i64, max: i64, counted: bool, before: &'s str, mut after: &'s str, last_repeat: Option<&'s str>,
    ) -> Result<&'s str, String> {
        if after.starts_with('?') {
            // Non-greedy: the same matches.
            after = &after[1..];
        }
        if let Some(lr) = last_repeat {
            return Err(err(INVALID_REPEAT_OP, &lr[..lr.len() - after.len()]));
        }
        let it = match self.last {
            Some(it) => it,
            None => return Err(err(MISSING_REPEAT_ARGUMENT, &before[..before.len() - after.len()])),
        };
        let weight = if !counted {
            it.weight
        } else if max == 0 {
            0
        } else {
            let m = if max < 0 { min } else { max };
            m.max(1) * it.weight.max(1)
        };
        if counted && (min >= 2 || max >= 2) && weight > MAX_REPEAT {
            return Err(err(INVALID_REPEAT_SIZE, &before[..before.len() - after.len()]));
        }
        // The item in a group of its own, so the operator applies to all
        // of it (and a repeated repeat reads as one in the crate).
        self.out.insert_str(it.start, "(?:");
        self.out.push(')');
        self.out.push_str(spelled);
        self.last = Some(Item { start: it.start, weight });
        Ok(after)
    }

    // ---- groups and flags ----

    /// Go's parsePerlFlags: t starts with "(?".
    fn perl_flags<'s>(&mut self, s: &'s str) -> Result<&'s str, String> {
        let b = s.as_bytes();
        let starts_with_p = b.len() > 4 && b[2] == b'P' && b[3] == b'<';
        let starts_with_name = b.len() > 3 && b[2] == b'<';
        if starts_with_p || starts_with_name {
            let name_start = if starts_with_p { 4 } else { 3 };
            let end = match s.find('>') {
                Some(e) => e,
                None => return Err(err(INVALID_NAMED_CAPTURE, s)),
            };
            let name = &s[name_start..end];
            if name.is_empty() || !name.chars().all(|c| c == '_' || is_alnum(c)) {
                return Err(err(INVALID_NAMED_CAPTURE, &s[..end + 1]));
            }
            // Captures do not matter to a match: a plain group.
            self.open_group(self.flags)?;
            return Ok(&s[end + 1..]);
        }
        let mut t = &s[2..];
        let mut flags = self.flags;
        let mut negate = false;
        let mut saw_flag = false;
        while !t.is_empty() {
            let (c, rest) = take_char(t);
            t = rest;
            let bit = match c {
                'i' => FOLD,
                'm' => MULTI_LINE,
                's' => DOT_NL,
                'U' => NON_GREEDY,
                '-' => {
                    if negate {
                        break;
                    }
                    negate = true;
                    saw_flag = false;
                    continue;
                }
                ':' | ')' => {
                    if negate && !saw_flag {
                        break;
                    }
                    if c == ':' {
                        self.open_group(self.flags)?;
                    }
                    self.flags = flags;
                    return Ok(t);
                }
                _ => break,
            };
            if negate {
                flags &= !bit;
            } else {
                flags |= bit;
            }
            saw_flag = true;
        }
        Err(err(INVALID_PERL_OP, &s[..s.len() - t.len()]))
    }

    // ---- escapes ----

    fn escape_outside_class<'s>(&mut self, t: &'s str) -> Result<&'s str, String> {
        let b = t.as_bytes();
        if b.len() >= 2 {
            match b[1] {
                b'A' => {
                    self.push_item(r"\A");
                    return Ok(&t[2..]);
                }
                // Go's \b and \B are ASCII: the crate's (?-u:\b).
                b'b' => {
                    self.push_item(r"(?-u:\b)");
                    return Ok(&t[2..]);
                }
                b'B' => {
                    self.push_item(r"(?-u:\B)");
                    return Ok(&t[2..]);
                }
                b'C' => return Err(err(INVALID_ESCAPE, &t[..2])),
                b'Q' => {
                    // \Q...\E: literals up to \E or the end.
                    let rest = &t[2..];
                    let (lit, after) = match rest.find(r"\E") {
                        Some(i) => (&rest[..i], &rest[i + 2..]),
                        None => (rest, ""),
                    };
                    for c in lit.chars() {
                        self.literal(c);
                    }
                    return Ok(after);
                }
                b'z' => {
                    self.push_item(r"\z");
                    return Ok(&t[2..]);
                }
                b'p' | b'P' => return Err(unicode_class(t)),
                _ => {}
            }
        }
        if let Some((cls, rest)) = self.perl_class(t) {
            self.push_class(cls);
            return Ok(rest);
        }
        let (c, rest) = parse_escape(t)?;
        self.literal_code(c);
        Ok(rest)
    }

    /// A Perl class escape (\d \D \s \S \w \W) at the start of t.
    fn perl_class<'s>(&self, t: &'s str) -> Option<(ClassUnicode, &'s str)> {
        if t.len() < 2 || !t.is_char_boundary(2) {
            return None;
        }
        let (negated, ranges): (bool, &[(u32, u32)]) = match &t[..2] {
            r"\d" => (false, DIGIT),
            r"\D" => (true, DIGIT),
            r"\s" => (false, PERL_SPACE),
            r"\S" => (true, PERL_SPACE),
            r"\w" => (false, WORD),
            r"\W" => (true, WORD),
            _ => return None,
        };
        Some((self.group(negated, ranges), &t[2..]))
    }

    /// Go's appendGroup: a class table, folded when (?i) is on, then
    /// negated.
    fn group(&self, negated: bool, ranges: &[(u32, u32)]) -> ClassUnicode {
        let mut c = ClassUnicode::empty();
        for &(lo, hi) in ranges {
            push_range(&mut c, lo, hi);
        }
        if self.flags & FOLD != 0 {
            c.case_fold_simple();
        }
        if negated {
            c.negate();
        }
        c
    }

    // ---- literals and classes ----

    fn literal(&mut self, c: char) {
        self.literal_code(c as u32);
    }

    /// A literal code point.
    fn literal_code(&mut self, c: u32) {
        let mut cls = ClassUnicode::empty();
        push_range(&mut cls, c, c);
        if self.flags & FOLD != 0 {
            cls.case_fold_simple();
        }
        self.push_class(cls);
    }

    fn push_class(&mut self, cls: ClassUnicode) {
        let spelled = spell_class(&cls);
        self.push_item(&spelled);
    }

    /// Go's parseClass: s starts with "[".
    fn class<'s>(&mut self, s: &'s str) -> Result<&'s str, String> {
        let mut t = &s[1..];
        let mut negated = false;
        if t.starts_with('^') {
            negated = true;
            t = &t[1..];
        }
        let mut cls = ClassUnicode::empty();
        let mut first = true;
        while t.is_empty() || !t.starts_with(']') || first {
            first = false;
            // POSIX [:alnum:] and the like.
            if t.len() > 2 && t.starts_with("[:") {
                if let Some(i) = t[2..].find(":]") {
                    let name = &t[..i + 4];
                    let (neg, ranges) = posix_class(name).ok_or_else(|| err(INVALID_CHAR_RANGE, name))?;
                    cls.union(&self.group(neg, ranges));
                    t = &t[i + 4..];
                    continue;
                }
            }
            if t.starts_with(r"\p") || t.starts_with(r"\P") {
                return Err(unicode_class(t));
            }
            if let Some((g, rest)) = self.perl_class(t) {
                cls.union(&g);
                t = rest;
                continue;
            }
            let range_start = t;
            let (lo, rest) = class_char(t, s)?;
            t = rest;
            let mut hi = lo;
            // [a-] is a and -.
            if t.len() >= 2 && t.starts_with('-') && !t[1..].starts_with(']') {
                let (h, rest) = class_char(&t[1..], s)?;
                t = rest;
                hi = h;
                if hi < lo {
                    return Err(err(INVALID_CHAR_RANGE, &range_start[..range_start.len() - t.len()]));
                }
            }
            let mut r = ClassUnicode::empty();
            push_range(&mut r, lo, hi);
            if self.flags & FOLD != 0 {
                r.case_fold_simple();
            }
            cls.union(&r);
        }
        t = &t[1..];
        if negated {
            cls.negate();
        }
        self.push_class(cls);
        Ok(t)
    }
}

/// Go's parseClassChar.
fn class_char<'s>(t: &'s str, whole: &str) -> Result<(u32, &'s str), String> {
    if t.is_empty() {
        return Err(err(MISSING_BRACKET, whole));
    }
    if t.starts_with('\\') {
        return parse_escape(t);
    }
    let (c, rest) = take_char(t);
    Ok((c as u32, rest))
}

/// Go's parseEscape: t starts with a backslash; the code point it names.
/// One difference: a surrogate (\x{D800}) is refused. No text holds
/// one, yet Go matches a pattern that is only that literal against
/// U+FFFD (it becomes a literal string) and never otherwise.
fn parse_escape(s: &str) -> Result<(u32, &str), String> {
    let (c, rest) = go_parse_escape(s)?;
    if (0xD800..=0xDFFF).contains(&c) {
        return Err(format!(
            "error parsing regexp: `{}` names a surrogate code point, which no text holds (the Rust built-ins refuse it)",
            &s[..s.len() - rest.len()]
        ));
    }
    Ok((c, rest))
}

fn go_parse_escape(s: &str) -> Result<(u32, &str), String> {
    let mut t = &s[1..];
    if t.is_empty() {
        return Err(err(TRAILING_BACKSLASH, ""));
    }
    let (c, rest) = take_char(t);
    t = rest;
    let bad = |t: &str| Err(err(INVALID_ESCAPE, &s[..s.len() - t.len()]));
    match c {
        '1'..='7' if !t.starts_with(|d: char| ('0'..='7').contains(&d)) => bad(t),
        '0'..='7' => {
            // Up to three octal digits.
            let mut r = c as u32 - '0' as u32;
            for _ in 1..3 {
                match t.as_bytes().first() {
                    Some(&d @ b'0'..=b'7') => {
                        r = r * 8 + (d - b'0') as u32;
                        t = &t[1..];
                    }
                    _ => break,
                }
            }
            Ok((r, t))
        }
        'x' => {
            if t.is_empty() {
                return bad(t);
            }
            let (c, rest) = take_char(t);
            t = rest;
            if c == '{' {
                let mut r: i64 = 0;
                let mut n = 0;
                loop {
                    if t.is_empty() {
                        return bad(t);
                    }
                    let (c, rest) = take_char(t);
                    t = rest;
                    if c == '}' {
                        break;
                    }
                    let v = unhex(c);
                    if v < 0 {
                        return bad(t);
                    }
                    r = r * 16 + v;
                    if r > 0x10FFFF {
                        return bad(t);
                    }
                    n += 1;
                }
                if n == 0 {
                    return bad(t);
                }
                return Ok((r as u32, t));
            }
            let x = unhex(c);
            if t.is_empty() {
                // Go reads the second digit with nextRune, which fails
                // only on bad UTF-8; an empty rest gives an invalid escape.
                return bad(t);
            }
            let (c2, rest) = take_char(t);
            t = rest;
            let y = unhex(c2);
            if x < 0 || y < 0 {
                return bad(t);
            }
            Ok(((x * 16 + y) as u32, t))
        }
        'a' => Ok((7, t)),
        'f' => Ok((12, t)),
        'n' => Ok((10, t)),
        'r' => Ok((13, t)),
        't' => Ok((9, t)),
        'v' => Ok((11, t)),
        c if (c as u32) < 0x80 && !is_alnum(c) => Ok((c as u32, t)),
        _ => bad(t),
    }
}

/// Go's parseRepeat: {min}, {min,} (max -1) or {min,max} at the start of
/// s, with the rest; None when s does not start with one (then { is a
/// literal); min -1 when a number is too big.
fn parse_repeat(s: &str) -> Option<(i64, i64, &str)> {
    let s = s.strip_prefix('{')?;
    let (mut min, s) = parse_int(s)?;
    let max;
    let s = if let Some(s) = s.strip_prefix(',') {
        if s.is_empty() {
            return None;
        }
        if s.starts_with('}') {
            max = -1;
            s
        } else {
            let (m, s) = parse_int(s)?;
            max = m;
            if m < 0 {
                min = -1;
            }
            s
        }
    } else {
        max = min;
        s
    };
    let rest = s.strip_prefix('}')?;
    Some((min, max, rest))
}

/// Go's parseInt: digits without a leading zero; -1 when too big.
fn parse_int(s: &str) -> Option<(i64, &str)> {
    let b = s.as_bytes();
    if b.is_empty() || !b[0].is_ascii_digit() {
        return None;
    }
    if b.len() >= 2 && b[0] == b'0' && b[1].is_ascii_digit() {
        return None;
    }
    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
    let mut v: i64 = 0;
    for &d in &b[..n] {
        if v >= 100_000_000 {
            v = -1;
            break;
        }
        v = v * 10 + (d - b'0') as i64;
    }
    Some((v, &s[n..]))
}

fn unicode_class(t: &str) -> String {
    // \pL, or \p{Name}.
    let end = if t[2..].starts_with('{') { t.find('}').map(|i| i + 1).unwrap_or(t.len()) } else { t.char_indices().nth(3).map(|(i, _)| i).unwrap_or(t.len()) };
    format!(
        "error parsing regexp: Unicode class `{}` is not supported by the Rust built-ins (their Unicode tables are not Go's); list the characters in a class instead",
        &t[..end]
    )
}

/// Adds lo..=hi, leaving out the surrogates (no text holds them).
fn push_range(c: &mut ClassUnicode, lo: u32, hi: u32) {
    let mut add = |lo: u32, hi: u32| {
        if lo <= hi {
            if let (Some(a), Some(b)) = (char::from_u32(lo), char::from_u32(hi)) {
                c.push(ClassUnicodeRange::new(a, b));
            }
        }
    };
    add(lo, hi.min(0xD7FF));
    add(lo.max(0xE000), hi);
}

/// A class spelled as explicit ranges; an empty one (which the crate
/// refuses) as an assertion that never holds.
fn spell_class(c: &ClassUnicode) -> String {
    let r = c.ranges();
    if r.is_empty() {
        return r"(?-u:\b\B)".to_string();
    }
    if r.len() == 1 && r[0].start() == r[0].end() {
        return format!(r"\x{{{:X}}}", r[0].start() as u32);
    }
    let mut s = String::with_capacity(2 + r.len() * 16);
    s.push('[');
    for x in r {
        if x.start() == x.end() {
            s.push_str(&format!(r"\x{{{:X}}}", x.start() as u32));
        } else {
            s.push_str(&format!(r"\x{{{:X}}}-\x{{{:X}}}", x.start() as u32, x.end() as u32));
        }
    }
    s.push(']');
    s
}

// Go's ASCII classes (regexp/syntax perl_groups.go).
const DIGIT: &[(u32, u32)] = &[(0x30, 0x39)];
const PERL_SPACE: &[(u32, u32)] = &[(0x9, 0xa), (0xc, 0xd), (0x20, 0x20)];
const WORD: &[(u32, u32)] = &[(0x30, 0x39), (0x41, 0x5a), (0x5f, 0x5f), (0x61, 0x7a)];

fn posix_class(name: &str) -> Option<(bool, &'static [(u32, u32)])> {
    let (neg, base) = match name.strip_prefix("[:^") {
        Some(rest) => (true, rest),
        None => (false, name.strip_prefix("[:")?),
    };
    let ranges: &'static [(u32, u32)] = match base {
        "alnum:]" => &[(0x30, 0x39), (0x41, 0x5a), (0x61, 0x7a)],
        "alpha:]" => &[(0x41, 0x5a), (0x61, 0x7a)],
        "ascii:]" => &[(0x0, 0x7f)],
        "blank:]" => &[(0x9, 0x9), (0x20, 0x20)],
        "cntrl:]" => &[(0x0, 0x1f), (0x7f, 0x7f)],
        "digit:]" => DIGIT,
        "graph:]" => &[(0x21, 0x7e)],
        "lower:]" => &[(0x61, 0x7a)],
        "print:]" => &[(0x20, 0x7e)],
        "punct:]" => &[(0x21, 0x2f), (0x3a, 0x40), (0x5b, 0x60), (0x7b, 0x7e)],
        "space:]" => &[(0x9, 0xd), (0x20, 0x20)],
        "upper:]" => &[(0x41, 0x5a)],
        "word:]" => WORD,
        "xdigit:]" => &[(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
        _ => return None,
    };
    Some((neg, ranges))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        compile(&format!("^(?:{})$", p)).unwrap_or_else(|e| panic!("{}: {}", p, e)).is_match(s.as_bytes())
    }

    #[test]
    fn go_semantics() {
        let cases: &[(&str, &str, bool)] = &[
            (r"\d+", "123", true),
            (r"\d", "٣", false), // Go's \d is ASCII
            (r"\w+", "a_1", true),
            (r"\w", "é", false),
            (r"\s", "\u{b}", false), // Go's \s has no \v
            (r"[[:space:]]", "\u{b}", true),
            (r"(?i)k", "\u{212a}", true),
            (r"(?i)\w", "\u{17f}", true),
            (r"(?i)[^k]", "K", false),
            (r"a\_b\!\<", "a_b!<", true),
            (r"a{", "a{", true),
            (r"a{,5}", "a{,5}", true),
            (r"x{2}", "xx", true),
            (r"[a[b]", "[", true),
            (r"[a&&b]", "&", true),
            (r"[a~~b]", "~", true),
            (r"[a-b-c]", "-", true),
            (r"\Qa.b\E", "a.b", true),
            (r"\Qa.b\E", "axb", false),
            (r"\Qa.b\E)|(x", "a.b", true),
            (r"\101\0", "A\0", true),
            (r"\x{41}\x42", "AB", true),
            (r"(?i)(?-i)a", "A", false),
            (r"(?)a", "a", true),
            (r"(?i-i)a", "a", true),
            (r"(?s).", "\n", true),
            (r".", "\n", false),
            (r"(?m)a$\nb", "a\nb", true),
            (r"(?P<n>a)(?<m>b)", "ab", true),
            (r"\bab\b", "ab", true),
            (r".\B.", "ab", true),
            (r".\B.", "a-", false),
            (r"[^\x00-\x{10FFFF}]", "a", false),
            (r"a(?i)*", "", true),
            (r"^*a", "a", true),
            (r"a|b)|(c", "a", true),
        ];
        for &(p, s, want) in cases {
            assert_eq!(m(p, s), want, "{} on {:?}", p, s);
        }
        // The wrap `^(?:P)$` holds the user's `)`: `a)|(b` is `^(?:a)|(b)$`.
        assert!(compile("^(?:a)|(b)$").unwrap().is_match(b"xb"));
    }

    #[test]
    fn invalid_utf8_reads_as_go_does() {
        // Each bad byte is one U+FFFD: a truncated 3-byte sequence is two.
        let re = compile(r"^(?:..)$").unwrap();
        assert!(re.is_match(b"\xe2\x82"));
        assert!(compile(r"^(?:\x{FFFD})$").unwrap().is_match(b"\xff"));
        assert!(!compile(r"^(?:.)$").unwrap().is_match(b"\xe2\x82"));
    }

    #[test]
    fn go_refuses() {
        for p in [
            r"a**", r"a*+", r"a{2}{3}", r"a{1001}", r"(a{10}){200}", r"{2}", r"*", r"(*)", r"a|*", r"(?i)*", r"\8", r"\1", r"\C", r"\q",
            r"[z-a]", r"[a", r"(a", r"a)", r"(?P<1-x>a)", r"(?P<>a)", r"(?x)a", r"(?-)a", r"(?i-)a", r"(?=a)", r"(?<=a)", r"(?P=n)",
            r"\x{110000}", r"\xg0", r"\x{}", r"\", r"[[:foo:]]", r"[\b]", r"\x{D800}", r"[\x{DFFF}-\x{E000}]", r"x{2,1}", r"\pL", r"\p{Greek}", r"[\PL]",
        ] {
            assert!(compile(p).is_err(), "{} accepted", p);
        }
        let deep = format!("{}a{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
        assert!(compile(&deep).unwrap_err().contains("nests too deeply"));
        let ok = format!("{}a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(compile(&ok).is_ok());
        // Each repeated item is written as a group of its own.
        assert!(compile(&format!("a{}", "(?i)*".repeat(MAX_DEPTH))).is_ok());
        assert!(compile(&format!("a{}", "(?i)*".repeat(MAX_DEPTH + 1))).unwrap_err().contains("nests too deeply"));
        assert!(compile(r"(a{10}b{100}){10}").is_ok());
        assert!(compile(r"(a{0}){1000}").is_ok());
    }
}
