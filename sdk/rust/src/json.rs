//! A small JSON reader for plugin configurations: parse once at configure
//! time into a [`Value`], then walk it. No crates: parsing into
//! serde_json's Value instead makes a module 12 KB larger (Debian's 1.0.87,
//! measured on a filter that only parses its configuration), before serde's
//! derive macros, which would also need building.
//!
//! Errors read like Go's encoding/json ones (`config: json: unknown field
//! "x"`), so a plugin ported from Go keeps its messages.

/// A parsed JSON value. Objects keep their members in order, duplicates
/// included, as a decoder that walks them wants; numbers keep their text
/// so integers wider than f64's mantissa stay exact.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// encoding/json's name for the kind, as in "cannot unmarshal number".
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
}

/// Parses a plugin configuration: empty (or all white space) and `null`
/// are no configuration (None), anything else must be one JSON value.
pub fn parse_config(data: &[u8]) -> Result<Option<Value>, String> {
    let mut p = Parser { b: data, i: 0, depth: 0 };
    p.ws();
    if p.i == data.len() {
        return Ok(None);
    }
    let v = p.value().map_err(|e| format!("config: {}", e))?;
    p.ws();
    if p.i != data.len() {
        return Err(format!("config: invalid character {} after top-level value", p.quoted_here()));
    }
    Ok(if v == Value::Null { None } else { Some(v) })
}

/// Parses the first JSON value of data and ignores what follows it, as
/// Go's json.Decoder.Decode does (a JWT's claims are read that way). No
/// value at all is an error.
pub fn parse_first(data: &[u8]) -> Result<Value, String> {
    let mut p = Parser { b: data, i: 0, depth: 0 };
    p.ws();
    if p.i == data.len() {
        return Err("unexpected end of JSON input".into());
    }
    p.value()
}

/// [`parse_first`] keeping of a top-level object only the members whose
/// name `keep` accepts (the others are checked as JSON, not built): the
/// cheap way to read a few members of a request's JSON (a token's
/// claims). Errors and other kinds of value are as parse_first's.
pub fn parse_first_members(data: &[u8], keep: &dyn Fn(&str) -> bool) -> Result<Value, String> {
    let mut p = Parser { b: data, i: 0, depth: 0 };
    p.ws();
    if p.i == data.len() {
        return Err("unexpected end of JSON input".into());
    }
    p.top_value(keep)
}

/// A member's value as [`visit_first_members`] hands it over: a scalar
/// as a view of the input where it can be (a string without escapes, a
/// number's text), anything else built as [`parse_first`] builds it.
#[derive(Clone, Debug, PartialEq)]
pub enum Member<'a> {
    Null,
    Bool(bool),
    Number(&'a str),
    String(std::borrow::Cow<'a, str>),
    /// An object or an array.
    Other(Value),
}

impl Member<'_> {
    /// The value parse_first builds for the same JSON.
    pub fn into_value(self) -> Value {
        match self {
            Member::Null => Value::Null,
            Member::Bool(b) => Value::Bool(b),
            Member::Number(n) => Value::Number(n.to_string()),
            Member::String(s) => Value::String(s.into_owned()),
            Member::Other(v) => v,
        }
    }
}

/// [`parse_first_members`] without building the object: f gets each
/// member whose name `keep` accepts, in order (duplicates included), its
/// value a [`Member`]; the others are checked as JSON, not built. Ok(true)
/// when the first value is an object, Ok(false) when it is another kind
/// of value; the same input is refused, with the same errors, as
/// parse_first_members refuses. A request's JSON (a token's claims) is
/// read this way without an allocation per member.
pub fn visit_first_members<'a>(data: &'a [u8], keep: &dyn Fn(&str) -> bool, f: &mut dyn FnMut(&str, Member<'a>)) -> Result<bool, String> {
    let mut p = Parser { b: data, i: 0, depth: 0 };
    p.ws();
    if p.i == data.len() {
        return Err("unexpected end of JSON input".into());
    }
    if p.b[p.i] != b'{' {
        return p.value().map(|_| false);
    }
    p.nested(|p| p.visit_members(keep, f)).map(|_| true)
}

/// [`parse_value`] keeping of a top-level object only the members whose
/// name `keep` accepts, as [`parse_first_members`] does.
pub fn parse_value_members(data: &[u8], keep: &dyn Fn(&str) -> bool) -> Result<Value, String> {
    let mut p = Parser { b: data, i: 0, depth: 0 };
    let v = p.top_value(keep)?;
    p.ws();
    if p.i != data.len() {
        return Err(format!("invalid character {} after top-level value", p.quoted_here()));
    }
    Ok(v)
}

/// Parses exactly one JSON value (null included), as Go's json.Unmarshal
/// does: empty input and trailing data are errors.
pub fn parse_value(data: &[u8]) -> Result<Value, String> {
    let mut p = Parser { b: data, i: 0, depth: 0 };
    let v = p.value()?;
    p.ws();
    if p.i != data.len() {
        return Err(format!("invalid character {} after top-level value", p.quoted_here()));
    }
    Ok(v)
}

/// Encodes v as Go's json.Marshal encodes what json.Decoder (UseNumber)
/// decoded it into: object members sorted by name, a repeated name the
/// last one, numbers as written, strings as [`quote`] does.
pub fn marshal(v: &Value) -> String {
    let mut out = String::new();
    marshal_into(v, &mut out);
    out
}

fn marshal_into(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(n),
        Value::String(s) => out.push_str(&quote(s)),
        Value::Array(items) => {
            out.push('[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                marshal_into(it, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut last: Vec<(&String, &Value)> = Vec::new();
            for (k, v) in members {
                match last.iter_mut().find(|(lk, _)| *lk == k) {
                    Some(e) => e.1 = v,
                    None => last.push((k, v)),
                }
            }
            last.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in last.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&quote(k));
                out.push(':');
                marshal_into(v, out);
            }
            out.push('}');
        }
    }
}

/// Decodes a signed integer, as into a Go int64 (go_type names it in
/// errors): null leaves it alone (None); a fraction, exponent or overflow
/// is refused as encoding/json refuses it.
pub fn signed(v: &Value, field: &str, go_type: &str) -> Result<Option<i64>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => match n.parse::<i64>() {
            Ok(x) if n.bytes().all(|c| c.is_ascii_digit() || c == b'-') => Ok(Some(x)),
            _ => Err(format!("config: json: cannot unmarshal number {} into Go struct field {} of type {}", n, field, go_type)),
        },
        _ => Err(type_error(v, field, go_type)),
    }
}

/// The error for a member no field takes.
pub fn unknown_field(name: &str) -> String {
    format!("config: json: unknown field {:?}", name)
}

/// The error for a member no field takes, naming the nearest of keys (the
/// configuration's keys, nested ones too) when it looks like a misspelling
/// of it, as the Go built-ins and sluice's config check say it.
pub fn unknown_field_of(name: &str, keys: &[&str]) -> String {
    match suggest_key(name, keys) {
        Some(s) => format!("config: json: unknown field {:?}; did you mean {:?}?", name, s),
        None => unknown_field(name),
    }
}

/// The key closest to k by edit distance (case folded), when close enough
/// to be a misspelling: at most 2 edits, or a third of k's length.
fn suggest_key<'a>(k: &str, keys: &[&'a str]) -> Option<&'a str> {
    let lk = k.to_lowercase();
    let mut best: Option<(&str, usize)> = None;
    for name in keys {
        let d = edit_distance(lk.as_bytes(), name.to_lowercase().as_bytes());
        if best.map_or(true, |(_, bd)| d < bd) {
            best = Some((name, d));
        }
    }
    match best {
        Some((name, d)) if d <= 2 || d <= k.len() / 3 => Some(name),
        _ => None,
    }
}

/// The Levenshtein distance between a and b.
fn edit_distance(a: &[u8], b: &[u8]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = if a[i - 1] == b[j - 1] { 0 } else { 1 };
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The error for a value of the wrong kind.
pub fn type_error(v: &Value, field: &str, want: &str) -> String {
    format!("config: json: cannot unmarshal {} into Go struct field {} of type {}", v.kind(), field, want)
}

/// The members of an object (what: the struct's name for the error).
pub fn object<'a>(v: &'a Value, what: &str) -> Result<&'a [(String, Value)], String> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(format!("config: json: cannot unmarshal {} into Go value of type {}", v.kind(), what)),
    }
}

/// Merges a JSON object of strings into m, as decoding into a Go
/// map[string]string does: null leaves m alone, a null member is "", a
/// repeated name replaces the earlier value.
pub fn merge_string_map(v: &Value, field: &str, m: &mut Vec<(String, String)>) -> Result<(), String> {
    let members = match v {
        Value::Null => return Ok(()),
        Value::Object(members) => members,
        _ => return Err(type_error(v, field, "map[string]string")),
    };
    for (k, mv) in members {
        let s = match mv {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            _ => return Err(type_error(mv, field, "string")),
        };
        match m.iter_mut().find(|(mk, _)| mk == k) {
            Some(e) => e.1 = s,
            None => m.push((k.clone(), s)),
        }
    }
    Ok(())
}

/// Decodes a list of strings, as into a Go []string: null is an empty
/// list, a null element is "". (A repeated member replaces the list.)
pub fn string_list(v: &Value, field: &str) -> Result<Vec<String>, String> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|it| match it {
                Value::String(s) => Ok(s.clone()),
                Value::Null => Ok(String::new()),
                _ => Err(type_error(it, field, "string")),
            })
            .collect(),
        _ => Err(type_error(v, field, "[]string")),
    }
}

/// Decodes a string, as into a Go string: null leaves it alone (None).
pub fn string(v: &Value, field: &str) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(type_error(v, field, "string")),
    }
}

/// Decodes a bool, as into a Go bool: null leaves it alone (None).
pub fn boolean(v: &Value, field: &str) -> Result<Option<bool>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        _ => Err(type_error(v, field, "bool")),
    }
}

/// Decodes an unsigned integer of at most max, as into a Go uint32
/// (go_type names it in errors): null leaves it alone (None); a fraction,
/// exponent, sign or overflow is refused as encoding/json refuses it.
pub fn unsigned(v: &Value, field: &str, go_type: &str, max: u64) -> Result<Option<u64>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => match n.parse::<u64>() {
            Ok(x) if x <= max && n.bytes().all(|c| c.is_ascii_digit()) => Ok(Some(x)),
            _ => Err(format!("config: json: cannot unmarshal number {} into Go struct field {} of type {}", n, field, go_type)),
        },
        _ => Err(type_error(v, field, go_type)),
    }
}

/// Encodes s as a JSON string the way Go's encoding/json does (HTML
/// characters and U+2028/U+2029 escaped too), so bodies built from it
/// match the Go plugins' byte for byte.
pub fn quote(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '<' || c == '>' || c == '&' => {
                let b = c as u32;
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's encoding/json matches member names to fields case-insensitively;
/// a plugin matches `key_name(k)` against its lower-case field names.
pub fn key_name(k: &str) -> String {
    k.to_lowercase()
}

// Nesting deeper than this is refused (the reader is recursive).
const MAX_DEPTH: u32 = 128;

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    depth: u32,
}

impl<'a> Parser<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn quoted_here(&self) -> String {
        match std::str::from_utf8(&self.b[self.i..]).ok().and_then(|s| s.chars().next()) {
            Some(c) => format!("{:?}", c),
            None => format!("0x{:02x}", self.b[self.i]),
        }
    }

    fn err<T>(&self, looking: &str) -> Result<T, String> {
        if self.i >= self.b.len() {
            return Err("unexpected end of JSON input".into());
        }
        Err(format!("invalid character {} {} (offset {})", self.quoted_here(), looking, self.i))
    }

    /// The next value's first byte, after white space.
    fn start(&mut self) -> Result<u8, String> {
        self.ws();
        match self.b.get(self.i) {
            Some(&c) => Ok(c),
            None => self.err(""),
        }
    }

    /// Runs f one level deeper (an object or array), refusing nesting
    /// past MAX_DEPTH.
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, String>) -> Result<T, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("exceeded max depth".into());
        }
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.start()? {
            b'{' => self.nested(|p| p.members(&|_| true)),
            b'[' => self.nested(|p| p.array(true)),
            b'"' => Ok(Value::String(self.string()?)),
            b't' => self.word("true", Value::Bool(true)),
            b'f' => self.word("false", Value::Bool(false)),
            b'n' => self.word("null", Value::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => self.err("looking for beginning of value"),
        }
    }

    fn word(&mut self, w: &str, v: Value) -> Result<Value, String> {
        for &c in w.as_bytes() {
            if self.b.get(self.i) != Some(&c) {
                return self.err(&format!("in literal {}", w));
            }
            self.i += 1;
        }
        Ok(v)
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.i < self.b.len() && self.b[self.i].is_ascii_digit() {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.i;
        self.number_end()?;
        Ok(Value::Number(String::from_utf8_lossy(&self.b[start..self.i]).into_owned()))
    }

    /// Reads a numeric literal without keeping it.
    fn number_end(&mut self) -> Result<(), String> {
        if self.b[self.i] == b'-' {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(c) if c.is_ascii_digit() => {
                self.digits();
            }
            _ => return self.err("in numeric literal"),
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return self.err("after decimal point in numeric literal");
            }
        }
        if matches!(self.b.get(self.i), Some(b'e') | Some(b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+') | Some(b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return self.err("in exponent of numeric literal");
            }
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let mut n = 0u32;
        for _ in 0..4 {
            let d = match self.b.get(self.i).and_then(|c| (*c as char).to_digit(16)) {
                Some(d) => d,
                None => return self.err("in \\u hexadecimal character escape"),
            };
            n = n * 16 + d;
            self.i += 1;
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, String> {
        let mut out = Vec::new();
        self.string_into(Some(&mut out))?;
        // Invalid UTF-8 becomes U+FFFD, as encoding/json does.
        Ok(String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    /// Reads a string literal, its decoded bytes into out (None: checked
    /// only). out is sized for the literal's plain run first, so a string
    /// without escapes costs one allocation.
    fn string_into(&mut self, mut out: Option<&mut Vec<u8>>) -> Result<(), String> {
        self.i += 1; // the opening quote
        if let Some(o) = out.as_deref_mut() {
            let plain = self.b[self.i.min(self.b.len())..].iter().take_while(|&&c| c != b'"' && c != b'\\' && c >= 0x20).count();
            o.reserve(plain);
        }
        loop {
            let c = match self.b.get(self.i) {
                Some(&c) => c,
                None => return self.err(""),
            };
            match c {
                b'"' => {
                    self.i += 1;
                    return Ok(());
                }
                b'\\' => {
                    self.i += 1;
                    let e = match self.b.get(self.i) {
                        Some(&e) => e,
                        None => return self.err(""),
                    };
                    self.i += 1;
                    let simple = match e {
                        b'"' => Some(b'"'),
                        b'\\' => Some(b'\\'),
                        b'/' => Some(b'/'),
                        b'b' => Some(8),
                        b'f' => Some(12),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        b'u' => None,
                        _ => {
                            self.i -= 1;
                            return self.err("in string escape code");
                        }
                    };
                    if let Some(s) = simple {
                        if let Some(o) = out.as_deref_mut() {
                            o.push(s);
                        }
                        continue;
                    }
                    let mut cp = self.hex4()?;
                    if (0xD800..0xDC00).contains(&cp) && self.b.get(self.i) == Some(&b'\\') && self.b.get(self.i + 1) == Some(&b'u') {
                        let save = self.i;
                        self.i += 2;
                        let lo = self.hex4()?;
                        if (0xDC00..0xE000).contains(&lo) {
                            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        } else {
                            self.i = save;
                        }
                    }
                    if let Some(o) = out.as_deref_mut() {
                        let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
                        let mut buf = [0u8; 4];
                        o.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    }
                }
                0..=0x1f => return self.err("in string literal"),
                _ => {
                    if let Some(o) = out.as_deref_mut() {
                        o.push(c);
                    }
                    self.i += 1;
                }
            }
        }
    }

    /// value() with a top-level object's members filtered by keep.
    fn top_value(&mut self, keep: &dyn Fn(&str) -> bool) -> Result<Value, String> {
        self.ws();
        if self.b.get(self.i) != Some(&b'{') {
            return self.value();
        }
        self.nested(|p| p.members(keep))
    }

    /// An object, keeping the members keep accepts; a name without
    /// escapes is matched in place, so a skipped member allocates nothing.
    fn members(&mut self, keep: &dyn Fn(&str) -> bool) -> Result<Value, String> {
        let mut out = Vec::new();
        self.visit_members(keep, &mut |k, v| out.push((k.to_string(), v.into_value())))?;
        Ok(Value::Object(out))
    }

    /// An object, handing each member keep accepts to f (members()
    /// builds the object from them).
    fn visit_members(&mut self, keep: &dyn Fn(&str) -> bool, f: &mut dyn FnMut(&str, Member<'a>)) -> Result<(), String> {
        self.i += 1;
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(());
        }
        let b = self.b;
        loop {
            self.ws();
            if self.b.get(self.i) != Some(&b'"') {
                return self.err("looking for beginning of object key string");
            }
            let start = self.i;
            self.string_into(None)?;
            let raw = &b[start + 1..self.i - 1];
            let name: Option<std::borrow::Cow<'a, str>> = match if raw.contains(&b'\\') { None } else { std::str::from_utf8(raw).ok() } {
                Some(k) => Some(std::borrow::Cow::Borrowed(k)).filter(|k| keep(k)),
                None => {
                    // Escapes or bad UTF-8: decoded as object() would.
                    let end = self.i;
                    self.i = start;
                    let k = self.string()?;
                    self.i = end;
                    Some(std::borrow::Cow::Owned(k)).filter(|k| keep(k))
                }
            };
            self.ws();
            if self.b.get(self.i) != Some(&b':') {
                return self.err("after object key");
            }
            self.i += 1;
            match name {
                Some(k) => {
                    let v = self.member_value()?;
                    f(&k, v);
                }
                None => self.skip()?,
            }
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return self.err("after object key:value pair"),
            }
        }
    }

    /// value() as a [`Member`]: a string without escapes and a number
    /// as views of the input.
    fn member_value(&mut self) -> Result<Member<'a>, String> {
        let b = self.b;
        match self.start()? {
            b'"' => {
                let start = self.i;
                self.string_into(None)?;
                let raw = &b[start + 1..self.i - 1];
                if !raw.contains(&b'\\') {
                    if let Ok(s) = std::str::from_utf8(raw) {
                        return Ok(Member::String(std::borrow::Cow::Borrowed(s)));
                    }
                }
                let end = self.i;
                self.i = start;
                let s = self.string()?;
                self.i = end;
                Ok(Member::String(std::borrow::Cow::Owned(s)))
            }
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                self.number_end()?;
                // A numeric literal is ASCII.
                Ok(Member::Number(std::str::from_utf8(&b[start..self.i]).unwrap_or_default()))
            }
            _ => Ok(match self.value()? {
                Value::Null => Member::Null,
                Value::Bool(x) => Member::Bool(x),
                v => Member::Other(v),
            }),
        }
    }

    /// Reads a value as value() does (the same errors), building nothing.
    fn skip(&mut self) -> Result<(), String> {
        match self.start()? {
            b'{' => self.nested(|p| p.members(&|_| false)).map(drop),
            b'[' => self.nested(|p| p.array(false)).map(drop),
            b'"' => self.string_into(None),
            b't' => self.word("true", Value::Null).map(drop),
            b'f' => self.word("false", Value::Null).map(drop),
            b'n' => self.word("null", Value::Null).map(drop),
            b'-' | b'0'..=b'9' => self.number_end(),
            _ => self.err("looking for beginning of value"),
        }
    }

    /// An array, its elements built or (build false) only checked.
    fn array(&mut self, build: bool) -> Result<Value, String> {
        self.i += 1;
        let mut out = Vec::new();
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(Value::Array(out));
        }
        loop {
            if build {
                out.push(self.value()?);
            } else {
                self.skip()?;
            }
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Value::Array(out));
                }
                _ => return self.err("after array element"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::String(x.into())
    }

    #[test]
    fn parses() {
        let cases: &[(&str, Option<Value>)] = &[
            ("", None),
            ("  \n", None),
            ("null", None),
            (r#"{"a":"b","n":-1.5e3,"t":true,"f":false,"z":null,"l":[1,"x"]}"#, Some(Value::Object(vec![
                ("a".into(), s("b")),
                ("n".into(), Value::Number("-1.5e3".into())),
                ("t".into(), Value::Bool(true)),
                ("f".into(), Value::Bool(false)),
                ("z".into(), Value::Null),
                ("l".into(), Value::Array(vec![Value::Number("1".into()), s("x")])),
            ]))),
            (r#""\u00e9\ud83d\ude00\n\"\\\/""#, Some(s("é😀\n\"\\/"))),
            (r#"{"a":1,"a":2}"#, Some(Value::Object(vec![
                ("a".into(), Value::Number("1".into())),
                ("a".into(), Value::Number("2".into())),
            ]))),
            ("[]", Some(Value::Array(vec![]))),
            (" {} ", Some(Value::Object(vec![]))),
        ];
        for (input, want) in cases {
            assert_eq!(&parse_config(input.as_bytes()).unwrap(), want, "{}", input);
        }
    }

    #[test]
    fn refuses() {
        for input in [
            "request_headers=1", "{", "{\"a\"}", "{\"a\":}", "[1,]", "{\"a\":1,}", "01", "1.", "-", "tru",
            "\"\\x\"", "\"a\nb\"", "{} x", "\"unterminated", "{a:1}",
        ] {
            let err = parse_config(input.as_bytes()).expect_err(input);
            assert!(err.starts_with("config: "), "{}: {}", input, err);
        }
        let deep = "[".repeat(10_000);
        assert!(parse_config(deep.as_bytes()).unwrap_err().contains("max depth"));
    }

    #[test]
    fn string_maps_decode_as_go_maps() {
        let v = parse_config(br#"{"a":"1","b":null,"a":"3"}"#).unwrap().unwrap();
        let mut m = Vec::new();
        merge_string_map(&v, "f", &mut m).unwrap();
        assert_eq!(m, vec![("a".to_string(), "3".to_string()), ("b".to_string(), String::new())]);
        merge_string_map(&Value::Null, "f", &mut m).unwrap();
        assert_eq!(m.len(), 2);
        let err = merge_string_map(&Value::Number("1".into()), "Config.request_headers", &mut m).unwrap_err();
        assert_eq!(err, "config: json: cannot unmarshal number into Go struct field Config.request_headers of type map[string]string");
        assert!(object(&Value::Array(vec![]), "Config").unwrap_err().contains("cannot unmarshal array"));
        assert_eq!(unknown_field("x"), "config: json: unknown field \"x\"");
        assert_eq!(
            unknown_field_of("request_header", &["request_headers", "response_headers"]),
            "config: json: unknown field \"request_header\"; did you mean \"request_headers\"?"
        );
        assert_eq!(unknown_field_of("zzz", &["request_headers"]), "config: json: unknown field \"zzz\"");
    }

    #[test]
    fn scalars_decode_as_go_values() {
        let n = |x: &str| Value::Number(x.into());
        assert_eq!(unsigned(&n("403"), "C.status", "uint32", u32::MAX as u64), Ok(Some(403)));
        assert_eq!(unsigned(&Value::Null, "C.status", "uint32", u32::MAX as u64), Ok(None));
        for bad in ["-1", "1.5", "1e2", "4294967296"] {
            let e = unsigned(&n(bad), "C.status", "uint32", u32::MAX as u64).unwrap_err();
            assert!(e.contains("cannot unmarshal number") && e.contains("uint32"), "{}: {}", bad, e);
        }
        assert!(unsigned(&Value::String("1".into()), "C.status", "uint32", 9).unwrap_err().contains("cannot unmarshal string"));
        assert_eq!(string_list(&Value::Null, "f"), Ok(vec![]));
        assert_eq!(string_list(&Value::Array(vec![Value::String("a".into()), Value::Null]), "f"), Ok(vec!["a".to_string(), String::new()]));
        assert!(string_list(&Value::Array(vec![n("1")]), "f").is_err());
        assert_eq!(boolean(&Value::Bool(true), "f"), Ok(Some(true)));
        assert_eq!(string(&Value::Null, "f"), Ok(None));
    }

    #[test]
    fn members_filtered_as_a_full_parse() {
        let inputs: &[&[u8]] = &[
            br#"{"iss":"orders","sub":"u1","exp":1700000000}"#,
            br#" {"a":1,"b":[1,{"c":"\u00e9\ud83d\ude00"}],"a":true} tail"#,
            br#"{"x\u0061":"k","xa":null,"\u212aid":-1.5e3,"xa":{"n":[[],{}]}}"#,
            b"{\"k\xff\":\"v\xfe\",\"xa\":2}",
            br#"[1,2]"#,
            br#""text""#,
            br#"null"#,
            br#"{}"#,
            // Errors, in kept and skipped members alike.
            br#"{"a":1,"b":[1,}"#,
            br#"{"b":"\x"}"#,
            br#"{"b":"\ud800\uzzzz"}"#,
            br#"{"b":tru}"#,
            br#"{"b":-}"#,
            br#"{"b":1.}"#,
            br#"{"b":1e}"#,
            b"{\"b\":\"\x01\"}",
            br#"{"b" 1}"#,
            br#"{"b":1 "c":2}"#,
            br#"{b:1}"#,
            br#"{"b":{"c":1]}"#,
            br#"{"a":"#,
            b"",
            b"   ",
            // A token's claims: repeated names, nested values, escapes,
            // exponents, cut short.
            br#"{"exp":1,"a":"x","exp":2e3,"a":{"a":[1,"\""]},"xa":"\u0041\n"}"#,
            br#"{"a":-0.5E-2,"xa":1E+400,"long":"\/\b\f\r\t\\"}"#,
            br#"{"a":"unterminated}"#,
            br#"{"a":1"#,
            br#"{"a":[{"b":{"c":"#,
            br#"{"a":1e5x}"#,
            br#"{"a":01}"#,
            br#"{"a":"\u12"}"#,
            b"{\"a\":\"caf\xc3\xa9 \xff\"}",
        ];
        let deep = format!("{{\"b\":{}{}}}", "[".repeat(200), "]".repeat(200));
        let keeps: [&dyn Fn(&str) -> bool; 3] = [&|_| true, &|_| false, &|k| k == "a" || k == "xa" || k.len() > 3];
        for (n, keep) in keeps.iter().enumerate() {
            let filtered = |v: Result<Value, String>| match v {
                Ok(Value::Object(m)) => Ok(Value::Object(m.into_iter().filter(|(k, _)| keep(k)).collect())),
                other => other,
            };
            for data in inputs.iter().copied().chain([deep.as_bytes()]) {
                assert_eq!(parse_first_members(data, keep), filtered(parse_first(data)), "keep {} of {:?}", n, lossy(data));
                assert_eq!(parse_value_members(data, keep), filtered(parse_value(data)), "keep {} of {:?}", n, lossy(data));
                // The visitor sees what the filtered parse builds, and
                // refuses what it refuses, with the same errors.
                let mut seen = Vec::new();
                let visited = visit_first_members(data, keep, &mut |k, v| seen.push((k.to_string(), v.into_value())));
                match (visited, parse_first_members(data, keep)) {
                    (Ok(true), Ok(Value::Object(m))) => assert_eq!(seen, m, "visit {} of {:?}", n, lossy(data)),
                    (Ok(false), Ok(v)) => assert!(!matches!(v, Value::Object(_)), "visit {} of {:?}", n, lossy(data)),
                    (Err(a), Err(b)) => assert_eq!(a, b, "visit {} of {:?}", n, lossy(data)),
                    (a, b) => panic!("visit {} of {:?}: {:?} against {:?}", n, lossy(data), a, b),
                }
            }
        }
    }

    fn lossy(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    #[test]
    fn first_values_and_marshal_as_go() {
        assert_eq!(parse_first(br#" {"b":1} trailing"#).unwrap(), Value::Object(vec![("b".into(), Value::Number("1".into()))]));
        assert!(parse_first(b"  ").is_err());
        assert_eq!(parse_value(b"null").unwrap(), Value::Null);
        assert!(parse_value(b"{} x").is_err());
        assert!(parse_value(b"").is_err());
        let v = parse_value(br#"{"z":[1.50,true,null],"a":"<x>","a":{"k":"v"}}"#).unwrap();
        assert_eq!(marshal(&v), r#"{"a":{"k":"v"},"z":[1.50,true,null]}"#);
        assert_eq!(signed(&Value::Number("-7".into()), "C.n", "int64"), Ok(Some(-7)));
        for bad in ["1.5", "1e3", "9223372036854775808"] {
            assert!(signed(&Value::Number(bad.into()), "C.n", "int64").unwrap_err().contains("int64"), "{}", bad);
        }
    }

    #[test]
    fn quotes_as_go_does() {
        // What json.Marshal gives for the same string.
        assert_eq!(quote("a\"b\\c\n<&>\u{2028}é\u{1}"), r#""a\"b\\c\n\u003c\u0026\u003e\u2028é\u0001""#);
        assert_eq!(quote(""), "\"\"");
    }
}
