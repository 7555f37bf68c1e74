//! Istio's request matches (the Rust side of
//! plugins/src/internal/common/match.go), for canary and fault:
//! StringMatch (exact, prefix, or a regex with Go's syntax, matched
//! against the whole value) and HeaderMatch (headers, cookies, uri,
//! method; every condition must hold).
//!
//! Requests are read as bytes (the host's pairs in place): Go compares
//! header values byte for byte and reads bytes that are not UTF-8 as
//! U+FFFD.
#![allow(dead_code)]

use crate::goregexp;
pub use crate::common::HeaderBytes as Headers;
use sluice_proxy_wasm::json::{self, Value};

/// The first value of a header, its name matched case-insensitively.
pub fn header<'a, H: Headers + ?Sized>(h: &'a H, name: &str) -> Option<&'a [u8]> {
    h.get_bytes(name)
}

/// A cookie's value from a Cookie header (Go's common.Cookie: parts split
/// at ';', white space trimmed, the first whose name is name).
pub fn cookie<'a>(cookie_header: &'a [u8], name: &str) -> Option<&'a [u8]> {
    for part in cookie_header.split(|&c| c == b';') {
        let part = trim_space(part);
        if let Some(i) = part.iter().position(|&c| c == b'=') {
            if &part[..i] == name.as_bytes() {
                return Some(&part[i + 1..]);
            }
        }
    }
    None
}

/// Go's strings.TrimSpace: ASCII and Unicode white space at both ends.
pub fn trim_space(mut b: &[u8]) -> &[u8] {
    loop {
        match leading_space(b) {
            0 => break,
            n => b = &b[n..],
        }
    }
    loop {
        match trailing_space(b) {
            0 => break,
            n => b = &b[..b.len() - n],
        }
    }
    b
}

fn is_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}' | '\u{1680}' | '\u{2000}'..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}')
}

// The length of a white space character at the start (end) of b, 0 if none.
fn leading_space(b: &[u8]) -> usize {
    for n in 1..=b.len().min(3) {
        if let Ok(s) = std::str::from_utf8(&b[..n]) {
            return if s.chars().next().map_or(false, is_space) { n } else { 0 };
        }
    }
    0
}

fn trailing_space(b: &[u8]) -> usize {
    for n in 1..=b.len().min(3) {
        if let Ok(s) = std::str::from_utf8(&b[b.len() - n..]) {
            return if s.chars().next().map_or(false, is_space) { n } else { 0 };
        }
    }
    0
}

/// Istio's StringMatch.
#[derive(Debug)]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Regex(goregexp::Regexp),
}

impl StringMatch {
    /// Whether v matches; a missing value never does.
    pub fn matches(&self, v: Option<&[u8]>) -> bool {
        let v = match v {
            Some(v) => v,
            None => return false,
        };
        match self {
            StringMatch::Exact(s) => v == s.as_bytes(),
            StringMatch::Prefix(s) => v.starts_with(s.as_bytes()),
            StringMatch::Regex(re) => re.is_match(v),
        }
    }
}

/// Istio's HeaderMatch: conditions that must all hold.
#[derive(Debug, Default)]
pub struct HeaderMatch {
    pub headers: Vec<(String, StringMatch)>,
    pub cookies: Vec<(String, StringMatch)>,
    pub uri: Option<StringMatch>,
    pub method: Option<StringMatch>,
}

impl HeaderMatch {
    /// Whether a request's headers meet every condition.
    pub fn matches<H: Headers + ?Sized>(&self, h: &H) -> bool {
        if !self.headers.iter().all(|(k, m)| m.matches(header(h, k))) {
            return false;
        }
        if !self.cookies.is_empty() {
            let ch = header(h, "cookie").unwrap_or_default();
            if !self.cookies.iter().all(|(k, m)| m.matches(cookie(ch, k))) {
                return false;
            }
        }
        if let Some(m) = &self.uri {
            let p = header(h, ":path").unwrap_or_default();
            let path = &p[..p.iter().position(|&c| c == b'?').unwrap_or(p.len())];
            if !m.matches(Some(path)) {
                return false;
            }
        }
        match &self.method {
            Some(m) => m.matches(header(h, ":method")),
            None => true,
        }
    }
}

/// The JSON keys of a HeaderMatch and its StringMatch, in the Go
/// structs' order (for the nearest-key suggestion).
pub const KEYS: &[&str] = &["headers", "exact", "prefix", "regex", "cookies", "uri", "method"];

/// One entry of a HeaderMatch's headers or cookies as decoded (Go's
/// map[string]*StringMatch: a null entry is an error at compile time).
type Pending = Vec<(String, Option<Value>)>;

/// Decodes a list of HeaderMatch (where names it in errors, as
/// "config: http[0].match"); keys is the whole configuration's key list.
pub fn decode_list(v: &Value, field: &str, where_: &str, keys: &[&str]) -> Result<Vec<HeaderMatch>, String> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => {
            items.iter().enumerate().map(|(i, it)| decode(it, field, &format!("{}[{}]", where_, i), keys)).collect()
        }
        _ => Err(json::type_error(v, field, "[]common.HeaderMatch")),
    }
}

/// Decodes and compiles one HeaderMatch.
pub fn decode(v: &Value, field: &str, where_: &str, keys: &[&str]) -> Result<HeaderMatch, String> {
    let members = match v {
        Value::Null => return Ok(HeaderMatch::default()),
        Value::Object(m) => m,
        _ => return Err(json::type_error(v, field, "common.HeaderMatch")),
    };
    let (mut headers, mut cookies): (Option<Pending>, Option<Pending>) = (None, None);
    let (mut uri, mut method): (Option<Value>, Option<Value>) = (None, None);
    for (k, mv) in members {
        match json::key_name(k).as_str() {
            "headers" => merge_map(mv, &format!("{}.headers", field), &mut headers)?,
            "cookies" => merge_map(mv, &format!("{}.cookies", field), &mut cookies)?,
            "uri" => uri = Some(mv.clone()),
            "method" => method = Some(mv.clone()),
            _ => return Err(json::unknown_field_of(k, keys)),
        }
    }
    let mut m = HeaderMatch::default();
    for (k, sm) in headers.unwrap_or_default() {
        let w = format!("{}.headers.{}", where_, k);
        match sm {
            None => return Err(format!("{}: empty match", w)),
            Some(sm) => m.headers.push((k, compile(&sm, &format!("{}.headers", field), &w, keys)?)),
        }
    }
    for (k, sm) in cookies.unwrap_or_default() {
        let w = format!("{}.cookies.{}", where_, k);
        match sm {
            None => return Err(format!("{}: empty match", w)),
            Some(sm) => m.cookies.push((k, compile(&sm, &format!("{}.cookies", field), &w, keys)?)),
        }
    }
    if let Some(u) = uri.filter(|u| *u != Value::Null) {
        m.uri = Some(compile(&u, &format!("{}.uri", field), &format!("{}.uri", where_), keys)?);
    }
    if let Some(x) = method.filter(|x| *x != Value::Null) {
        m.method = Some(compile(&x, &format!("{}.method", field), &format!("{}.method", where_), keys)?);
    }
    Ok(m)
}

/// Decodes a map[string]*StringMatch into m as Go does: null makes it
/// nil, members are added (a repeated name replaces), a null member is a
/// nil match.
pub fn merge_map(v: &Value, field: &str, m: &mut Option<Pending>) -> Result<(), String> {
    let members = match v {
        Value::Null => {
            *m = None;
            return Ok(());
        }
        Value::Object(members) => members,
        _ => return Err(json::type_error(v, field, "map[string]*common.StringMatch")),
    };
    let m = m.get_or_insert_with(Vec::new);
    for (k, mv) in members {
        let sm = match mv {
            Value::Null => None,
            Value::Object(_) => Some(mv.clone()),
            _ => return Err(json::type_error(mv, field, "common.StringMatch")),
        };
        match m.iter_mut().find(|(n, _)| n == k) {
            Some(e) => e.1 = sm,
            None => m.push((k.clone(), sm)),
        }
    }
    Ok(())
}

/// Decodes and compiles a StringMatch (Go's StringMatch.Compile): exactly
/// one of exact, prefix, regex; a regex is matched against the whole value.
pub fn compile(v: &Value, field: &str, where_: &str, keys: &[&str]) -> Result<StringMatch, String> {
    let members = match v {
        Value::Object(m) => m,
        _ => return Err(json::type_error(v, field, "common.StringMatch")),
    };
    let (mut exact, mut prefix, mut regex): (Option<String>, Option<String>, Option<String>) = (None, None, None);
    for (k, mv) in members {
        // A pointer field: null sets it to nil.
        let slot = match json::key_name(k).as_str() {
            "exact" => &mut exact,
            "prefix" => &mut prefix,
            "regex" => &mut regex,
            _ => return Err(json::unknown_field_of(k, keys)),
        };
        *slot = match mv {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            _ => return Err(json::type_error(mv, &format!("{}.{}", field, json::key_name(k)), "string")),
        };
    }
    let n = exact.is_some() as u8 + prefix.is_some() as u8 + regex.is_some() as u8;
    if n != 1 {
        return Err(format!("{}: set exactly one of exact, prefix, regex", where_));
    }
    if let Some(s) = exact {
        return Ok(StringMatch::Exact(s));
    }
    if let Some(s) = prefix {
        return Ok(StringMatch::Prefix(s));
    }
    let r = regex.unwrap_or_default();
    match goregexp::compile(&format!("^(?:{})$", r)) {
        Ok(re) => Ok(StringMatch::Regex(re)),
        Err(e) => Err(format!("{}: regex {:?}: {}", where_, r, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdrs(p: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        p.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
    }

    // plugins/src/internal/common's TestHeaderMatch.
    #[test]
    fn header_match() {
        let req = hdrs(&[(":method", "GET"), (":path", "/api/v2/orders?x=1"), ("x-canary", "true"), ("cookie", "a=1; user=beta-7")]);
        let cases = [
            (r#"{}"#, true),
            (r#"{"headers":{"x-canary":{"exact":"true"}}}"#, true),
            (r#"{"headers":{"X-Canary":{"exact":"true"}}}"#, true),
            (r#"{"headers":{"x-canary":{"exact":"TRUE"}}}"#, false),
            (r#"{"headers":{"x-missing":{"prefix":""}}}"#, false),
            (r#"{"cookies":{"user":{"prefix":"beta-"}}}"#, true),
            (r#"{"cookies":{"user":{"regex":"beta-[0-9]"}}}"#, true),
            (r#"{"cookies":{"user":{"regex":"beta"}}}"#, false),
            (r#"{"uri":{"prefix":"/api/v2"},"method":{"exact":"GET"}}"#, true),
            (r#"{"uri":{"exact":"/api/v2/orders"}}"#, true),
            (r#"{"method":{"exact":"POST"}}"#, false),
        ];
        for (m, want) in cases {
            let v = json::parse_config(m.as_bytes()).unwrap().unwrap_or(Value::Object(vec![]));
            let hm = decode(&v, "m", "match", KEYS).unwrap_or_else(|e| panic!("{}: {}", m, e));
            assert_eq!(hm.matches(&req), want, "{}", m);
        }
        for bad in [r#"{"headers":{"a":{}}}"#, r#"{"headers":{"a":{"exact":"x","prefix":"y"}}}"#, r#"{"uri":{"regex":"("}}"#, r#"{"headers":{"a":null}}"#, r#"{"uri":{"exact":null}}"#] {
            let v = json::parse_config(bad.as_bytes()).unwrap().unwrap();
            assert!(decode(&v, "m", "match", KEYS).is_err(), "{}", bad);
        }
    }

    #[test]
    fn cookies_as_go_reads_them() {
        assert_eq!(cookie(b"a=1; user=beta-7", "user"), Some(&b"beta-7"[..]));
        assert_eq!(cookie(b"\xc2\xa0user=x\xe3\x80\x80;", "user"), Some(&b"x"[..]));
        assert_eq!(cookie(b"user", "user"), None);
        assert_eq!(cookie(b"a=1;user==2", "user"), Some(&b"=2"[..]));
        assert_eq!(trim_space(b" \t\xffx\xff "), &b"\xffx\xff"[..]);
    }
}
