//! What several Rust built-ins share (the Rust side of
//! plugins/src/internal/common): configuration loading, Kong's JSON
//! replies, the client address.
#![allow(dead_code)]

use sluice_proxy_wasm::{self as sdk, json, LogLevel};
use std::borrow::Cow;

/// Reads the plugin configuration and parses it; a refusal is logged as
/// "NAME: error" (critical) and the configuration refused.
pub fn load_config<T>(plugin: &str, parse: impl FnOnce(&[u8]) -> Result<T, String>) -> Option<T> {
    let data = match sdk::get_plugin_configuration() {
        Ok(d) => d.unwrap_or_default(),
        Err(e) => {
            sdk::log(LogLevel::Critical, &format!("{}: reading configuration: {:?}", plugin, e));
            return None;
        }
    };
    match parse(&data) {
        Ok(c) => Some(c),
        Err(e) => {
            sdk::log(LogLevel::Critical, &format!("{}: {}", plugin, e));
            None
        }
    }
}

/// A map by name (credentials, API keys) with a cheap hash: SipHash,
/// std's default, costs more than the rest of a lookup for a short
/// name. Its keys come from the configuration alone, and a request only
/// looks one up, so no client can flood it with colliding keys.
pub type NameMap<V> = std::collections::HashMap<String, V, std::hash::BuildHasherDefault<NameHasher>>;

/// The hasher of [`NameMap`]: eight bytes a step, a multiply each.
#[derive(Default)]
pub struct NameHasher(u64);

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(tail) ^ ((rest.len() as u64) << 59)).wrapping_mul(K);
    }

    fn finish(&self) -> u64 {
        // The top bits choose hashbrown's control byte: mix them in.
        self.0 ^ (self.0 >> 29)
    }
}

/// Kong's error body: {"message":"..."}.
pub fn json_message(msg: &str) -> String {
    format!("{{\"message\":{}}}", json::quote(msg))
}

/// A local reply with Kong's JSON error body.
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// Kong's JSON reply: content-type first, then extra.
pub fn json_reply(status: u32, msg: &str, extra: &[(&str, &str)]) -> Reply {
    let mut headers = vec![("content-type".to_string(), "application/json; charset=utf-8".to_string())];
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Reply { status, headers, body: json_message(msg) }
}

impl Reply {
    /// Answers the stream with the reply; return Action::Pause after it.
    pub fn send(&self) {
        let h: Vec<(&str, &str)> = self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if let Err(e) = sdk::send_http_response(self.status, &h, self.body.as_bytes()) {
            sdk::log(LogLevel::Error, &format!("sending local response {}: {:?}", self.status, e));
        }
    }
}

/// The client's address without the port (source.address), "" if the
/// host does not say.
pub fn client_ip() -> String {
    match sdk::get_property(&["source", "address"]) {
        // The host's buffer becomes the String when it is UTF-8, cut to
        // the host in place for ip:port (every request of ip-restriction
        // and of the limiters by IP: no copy).
        Ok(Some(a)) => host_of(into_string(a)),
        _ => String::new(),
    }
}

/// host_only of an owned address, in its own buffer when the host starts
/// it (ip:port).
fn host_of(mut s: String) -> String {
    let h = host_only(&s);
    let (start, len) = (h.as_ptr() as usize - s.as_ptr() as usize, h.len());
    if start == 0 {
        s.truncate(len);
        s
    } else {
        s[start..start + len].to_string()
    }
}

/// Strips the port from "host:port" or "[v6]:port"; an address without
/// one is returned unchanged (the Go SDK's HostOnly).
pub fn host_only(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return match rest.find(']') {
            Some(i) => &rest[..i],
            None => addr,
        };
    }
    // Bytes, not chars: ':' is ASCII, and str's pattern search walks
    // characters (a visible share of rate-limiting by IP per request).
    let b = addr.as_bytes();
    match b.iter().position(|&c| c == b':') {
        Some(i) if !b[i + 1..].contains(&b':') => &addr[..i],
        _ => addr,
    }
}

/// Tells the host the plugin does its work in the request headers only:
/// the other stream callbacks are answered without entering the guest.
pub fn skip_all_but_request_headers() {
    use sdk::callbacks::*;
    let _ = sdk::skip_callbacks(REQUEST_BODY | REQUEST_TRAILERS | RESPONSE_HEADERS | RESPONSE_BODY | RESPONSE_TRAILERS | LOG);
}

/// The first value of a header, matched case-insensitively.
pub fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// The first value of a header in pairs of bytes, its name matched
/// case-insensitively.
pub fn header_bytes<'a>(h: &'a [(Vec<u8>, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v.as_slice())
}

/// The request headers as the host holds them (a value need not be
/// UTF-8), logging a failure (then none).
pub fn request_headers_bytes(plugin: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    sdk::get_map_bytes(sdk::MapType::HttpRequestHeaders).unwrap_or_else(|e| {
        sdk::log(LogLevel::Error, &format!("{}: reading request headers: {:?}", plugin, e));
        Vec::new()
    })
}

/// Go's strings.ToUpper: each character's simple upper-case mapping
/// (where Unicode's full mapping gives several characters, as for ß, the
/// simple one is the character itself, or for the Greek letters with iota
/// subscript their title-case form).
pub fn go_to_upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut u = c.to_uppercase();
            match (u.next(), u.next()) {
                (Some(x), None) => x,
                _ => match c as u32 {
                    0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => char::from_u32(c as u32 + 8).unwrap_or(c),
                    0x1FB3 => '\u{1FBC}',
                    0x1FC3 => '\u{1FCC}',
                    0x1FF3 => '\u{1FFC}',
                    _ => c,
                },
            }
        })
        .collect()
}

/// Header lookups by bytes (Go compares header values byte for byte),
/// over owned pairs (tests) or the host's pairs read in place (a
/// request's path: nothing copied).
pub trait HeaderBytes {
    /// The first value of a header, its name matched case-insensitively.
    fn get_bytes(&self, name: &str) -> Option<&[u8]>;
}

impl HeaderBytes for [(Vec<u8>, Vec<u8>)] {
    fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        header_bytes(self, name)
    }
}

impl HeaderBytes for Vec<(Vec<u8>, Vec<u8>)> {
    fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        header_bytes(self, name)
    }
}

impl<B: AsRef<[u8]>> HeaderBytes for sdk::HeaderPairs<B> {
    fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.get(name)
    }
}

/// Header lookups, over owned pairs (tests, a list being rewritten) or
/// over the host's pairs read in place (a request's path: no String per
/// field).
pub trait Headers {
    /// The first value of a header, matched case-insensitively.
    fn first(&self, name: &str) -> Option<Cow<'_, str>>;

    /// first as bytes: a value read from the host as it came, not
    /// checked for UTF-8 (jwt compares a token with those it verified
    /// byte for byte, and a 600-byte token costs the check).
    fn first_bytes(&self, name: &str) -> Option<Cow<'_, [u8]>> {
        self.first(name).map(|v| match v {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        })
    }
}

impl Headers for [(String, String)] {
    fn first(&self, name: &str) -> Option<Cow<'_, str>> {
        header(self, name).map(Cow::Borrowed)
    }
}

impl Headers for Vec<(String, String)> {
    fn first(&self, name: &str) -> Option<Cow<'_, str>> {
        header(self, name).map(Cow::Borrowed)
    }
}

impl<B: AsRef<[u8]>> Headers for sdk::HeaderPairs<B> {
    fn first(&self, name: &str) -> Option<Cow<'_, str>> {
        self.get_str(name)
    }
}

/// An integer in decimal, as to_string writes it, held inline: a header
/// value on every request's path, without the formatting machinery or
/// an allocation.
#[derive(Clone, Copy)]
pub struct Int {
    buf: [u8; 20],
    start: u8,
}

impl Int {
    pub fn new(n: i64) -> Int {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        let mut m = n.unsigned_abs();
        // A 64-bit division is a division instruction in Wasm (no
        // multiply-high to divide by a constant); while the value fits in
        // 32 bits the compiler divides by multiplying. Two digits a step.
        while m > u32::MAX as u64 {
            let r = (m % 100) as usize;
            m /= 100;
            i -= 2;
            buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[2 * r..2 * r + 2]);
        }
        let mut m = m as u32;
        while m >= 100 {
            let r = (m % 100) as usize;
            m /= 100;
            i -= 2;
            buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[2 * r..2 * r + 2]);
        }
        if m >= 10 {
            i -= 2;
            buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[2 * m as usize..2 * m as usize + 2]);
        } else {
            i -= 1;
            buf[i] = b'0' + m as u8;
        }
        if n < 0 {
            // 19 digits at most, so there is room.
            i -= 1;
            buf[i] = b'-';
        }
        Int { buf, start: i as u8 }
    }

    pub fn as_str(&self) -> &str {
        // Safety: new wrote ASCII digits and '-' from start on.
        unsafe { std::str::from_utf8_unchecked(&self.buf[self.start as usize..]) }
    }
}

/// "00" to "99", for Int::new.
const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

impl AsRef<str> for Int {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for Int {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The request's headers asked for one at a time, each `first` one
/// proxy_get_header_map_value. A plugin that reads a few headers pays
/// for those alone: proxy_get_header_map_pairs encodes every field of
/// the request for the guest to walk, which costs several single reads
/// on a request of ten or so fields. A failure other than NotFound is
/// logged (then the header reads as absent).
pub struct HostRequestHeaders<'a> {
    pub plugin: &'a str,
}

impl Headers for HostRequestHeaders<'_> {
    fn first(&self, name: &str) -> Option<Cow<'_, str>> {
        request_header(self.plugin, name).map(|v| Cow::Owned(into_string(v)))
    }

    fn first_bytes(&self, name: &str) -> Option<Cow<'_, [u8]>> {
        request_header(self.plugin, name).map(Cow::Owned)
    }
}

/// One request header's first value as bytes (the host's buffer, not
/// copied), None when absent; a failure is logged and reads as absent.
pub fn request_header(plugin: &str, name: &str) -> Option<Vec<u8>> {
    map_value(plugin, sdk::MapType::HttpRequestHeaders, name)
}

/// request_header for any map.
pub fn map_value(plugin: &str, t: sdk::MapType, name: &str) -> Option<Vec<u8>> {
    sdk::get_map_value_bytes(t, name).unwrap_or_else(|e| {
        sdk::log(LogLevel::Error, &format!("{}: reading header {}: {:?}", plugin, name, e));
        None
    })
}

/// Bytes as a String, without a copy when they are UTF-8 (else as
/// String::from_utf8_lossy makes them, as HeaderPairs::get_str reads).
pub fn into_string(b: Vec<u8>) -> String {
    match String::from_utf8(b) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// The request headers read in place, logging a failure (then none).
pub fn request_header_pairs(plugin: &str) -> sdk::HeaderPairs {
    read_header_pairs(plugin, sdk::MapType::HttpRequestHeaders, "request")
}

/// The response headers read in place, logging a failure (then none).
pub fn response_header_pairs(plugin: &str) -> sdk::HeaderPairs {
    read_header_pairs(plugin, sdk::MapType::HttpResponseHeaders, "response")
}

fn read_header_pairs(plugin: &str, t: sdk::MapType, which: &str) -> sdk::HeaderPairs {
    sdk::get_map_pairs(t).unwrap_or_else(|e| {
        sdk::log(LogLevel::Error, &format!("{}: reading {} headers: {:?}", plugin, which, e));
        sdk::HeaderPairs::parse(Vec::new())
    })
}

/// The request headers, logging a failure (then none).
pub fn request_headers(plugin: &str) -> Vec<(String, String)> {
    read_headers(plugin, sdk::MapType::HttpRequestHeaders, "request")
}

/// The response headers, logging a failure (then none).
pub fn response_headers(plugin: &str) -> Vec<(String, String)> {
    read_headers(plugin, sdk::MapType::HttpResponseHeaders, "response")
}

fn read_headers(plugin: &str, t: sdk::MapType, which: &str) -> Vec<(String, String)> {
    sdk::get_map(t).unwrap_or_else(|e| {
        sdk::log(LogLevel::Error, &format!("{}: reading {} headers: {:?}", plugin, which, e));
        Vec::new()
    })
}

/// Replaces a header map with h, logging a failure as "replacing which
/// headers".
pub fn replace_headers(plugin: &str, t: sdk::MapType, which: &str, h: &[(String, String)]) {
    let b = sdk::serialize_map_bytes(h.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
    if let Err(e) = sdk::set_map_bytes(t, &b) {
        sdk::log(LogLevel::Error, &format!("{}: replacing {} headers: {:?}", plugin, which, e));
    }
}

/// Owned pairs, for tests.
#[cfg(test)]
pub fn owned(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Splits a :path into path and raw query.
pub fn split_path(p: &str) -> (&str, &str) {
    // A byte search ('?' is ASCII): str::find(char) sets up a searcher
    // that costs more than a request's usual short path.
    match p.bytes().position(|b| b == b'?') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => (p, ""),
    }
}

/// The property that names the authenticated consumer.
pub const CONSUMER_PROPERTY: &str = "sluice.consumer";

/// Sets the stream's consumer property.
pub fn set_consumer(plugin: &str, consumer: &str) {
    if let Err(e) = sdk::set_property(&[CONSUMER_PROPERTY], consumer.as_bytes()) {
        sdk::log(LogLevel::Error, &format!("{}: setting {}: {:?}", plugin, CONSUMER_PROPERTY, e));
    }
}

/// Reads a file named by a configuration key. Rust built-ins have no
/// WASI, and sluice pre-opens no directory for the Go ones either: the
/// error says to inline the value.
pub fn read_file(key: &str, name: &str) -> Result<Vec<u8>, String> {
    std::fs::read(name).map_err(|e| format!("{}: open {}: {} (the host must pre-open its directory; inline the value instead)", key, name, e))
}

/// Go's url.ParseQuery: name to values, in first-seen order; Err when any
/// part has a semicolon or a bad escape (query_values has what Go returns
/// beside the error).
pub fn parse_query(raw: &str) -> Result<Vec<(String, Vec<String>)>, ()> {
    match query_values(raw) {
        (q, true) => Ok(q),
        _ => Err(()),
    }
}

/// Go's url.ParseQuery ignoring its error: the parts that parsed, and
/// whether all did.
pub fn query_values(raw: &str) -> (Vec<(String, Vec<String>)>, bool) {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut ok = true;
    for part in raw.split('&') {
        if part.contains(';') {
            ok = false;
            continue;
        }
        if part.is_empty() {
            continue;
        }
        let (k, v) = match part.find('=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, ""),
        };
        let (k, v) = match (query_unescape(k), query_unescape(v)) {
            (Some(k), Some(v)) => (k, v),
            _ => {
                ok = false;
                continue;
            }
        };
        match out.iter_mut().find(|(n, _)| *n == k) {
            Some(e) => e.1.push(v),
            None => out.push((k, vec![v])),
        }
    }
    (out, ok)
}

/// Go's url.QueryUnescape: %XX and '+' for a space; None on a bad escape.
pub fn query_unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let (hi, lo) = (b.get(i + 1).and_then(|c| hex(*c))?, b.get(i + 2).and_then(|c| hex(*c))?);
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    // Go keeps the bytes as they are; a Rust String cannot hold invalid
    // UTF-8, so such a value becomes U+FFFD (it can match no key anyway).
    Some(String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// Go's url.QueryEscape.
pub fn query_escape(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(c as char),
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[(c >> 4) as usize] as char);
                out.push(HEX[(c & 15) as usize] as char);
            }
        }
    }
    out
}

/// Go's url.Values.Encode: names sorted, each value escaped.
pub fn encode_query(q: &[(String, Vec<String>)]) -> String {
    let mut names: Vec<&(String, Vec<String>)> = q.iter().collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    for (k, vs) in names {
        for v in vs {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(&query_escape(k));
            out.push('=');
            out.push_str(&query_escape(v));
        }
    }
    out
}

/// Go's time.ParseDuration, in nanoseconds; None where Go errs.
pub fn parse_duration(orig: &str) -> Option<i64> {
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next() {
        if c == '-' || c == '+' {
            neg = c == '-';
            s = &s[1..];
        }
    }
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    const MAX: u64 = 1 << 63;
    let mut d: u64 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return None;
        }
        // The integer part.
        let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut v: u64 = 0;
        for &c in &b[..n] {
            if v > MAX / 10 {
                return None;
            }
            v = v * 10 + (c - b'0') as u64;
            if v > MAX {
                return None;
            }
        }
        let pre = n > 0;
        s = &s[n..];
        // The fraction.
        let (mut f, mut scale, mut post) = (0u64, 1f64, false);
        if s.starts_with('.') {
            s = &s[1..];
            let n = s.bytes().take_while(|c| c.is_ascii_digit()).count();
            let mut overflow = false;
            for c in s[..n].bytes() {
                if overflow {
                    continue;
                }
                if f > (MAX - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let y = f * 10 + (c - b'0') as u64;
                if y > MAX {
                    overflow = true;
                    continue;
                }
                f = y;
                scale *= 10.0;
            }
            post = n > 0;
            s = &s[n..];
        }
        if !pre && !post {
            return None;
        }
        // The unit.
        let i = s.bytes().position(|c| c == b'.' || c.is_ascii_digit()).unwrap_or(s.len());
        if i == 0 {
            return None;
        }
        let unit: u64 = match &s[..i] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        s = &s[i..];
        if v > MAX / unit {
            return None;
        }
        v *= unit;
        if f > 0 {
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > MAX {
                return None;
            }
        }
        d += v;
        if d > MAX {
            return None;
        }
    }
    if neg {
        return Some((d as i64).wrapping_neg());
    }
    if d > MAX - 1 {
        return None;
    }
    Some(d as i64)
}

/// Logs a failed hostcall as "NAME: what: error".
pub fn must<T>(plugin: &str, what: &str, r: Result<T, sdk::Status>) {
    if let Err(e) = r {
        sdk::log(LogLevel::Error, &format!("{}: {}: {:?}", plugin, what, e));
    }
}

/// Logs a failed hostcall on a header or property as "NAME: verb name:
/// error"; the text is only made for a failure (a request's path makes
/// none).
pub fn must_on<T>(plugin: &str, verb: &str, name: &str, r: Result<T, sdk::Status>) {
    if let Err(e) = r {
        sdk::log(LogLevel::Error, &format!("{}: {} {}: {:?}", plugin, verb, name, e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_as_to_string() {
        for n in [0, 1, 9, 10, 99, 100, 101, 999, 1000, 12345, -1, -10, -100, 1 << 40, 4294967295, 4294967296, 4294967395, -4294967296, i64::MAX, i64::MIN, i64::MIN + 1] {
            assert_eq!(Int::new(n).as_str(), n.to_string());
        }
        let mut n: i64 = 1;
        while let Some(m) = n.checked_mul(7) {
            for x in [n - 1, n, n + 1, -n] {
                assert_eq!(Int::new(x).as_str(), x.to_string());
            }
            n = m;
        }
    }

    #[test]
    fn name_maps_find_what_they_hold() {
        let mut m: NameMap<usize> = NameMap::default();
        let names: Vec<String> = (0..300).map(|i| "k".repeat(i % 20) + &i.to_string()).collect();
        for (i, n) in names.iter().enumerate() {
            m.insert(n.clone(), i);
        }
        for (i, n) in names.iter().enumerate() {
            assert_eq!(m.get(n.as_str()), Some(&i), "{}", n);
        }
        for absent in ["", "k", "kkkkkkkk", "x1", "1 "] {
            assert_eq!(m.get(absent), None, "{}", absent);
        }
    }

    #[test]
    fn host_only_cases() {
        for (a, want) in [("1.2.3.4:80", "1.2.3.4"), ("[::1]:80", "::1"), ("::1", "::1"), ("1.2.3.4", "1.2.3.4"), ("[x", "[x"), ("[]:80", ""), ("", ""), ("a:b:c", "a:b:c"), ("a:", "a"), (":80", "")] {
            assert_eq!(host_only(a), want, "{}", a);
            assert_eq!(host_of(a.to_string()), want, "{}", a);
        }
    }

    #[test]
    fn queries_as_go_does() {
        let q = parse_query("b=2&a=1&a=x+y&c&d=%41%2f&&e=").unwrap();
        assert_eq!(encode_query(&q), "a=1&a=x+y&b=2&c=&d=A%2F&e=");
        assert!(parse_query("a=1;b=2").is_err());
        assert!(parse_query("a=%zz").is_err());
        assert!(parse_query("a=%4").is_err());
        assert_eq!(parse_query("").unwrap(), vec![]);
        assert_eq!(query_escape("a b/~é"), "a+b%2F~%C3%A9");
    }

    #[test]
    fn kong_message() {
        assert_eq!(json_message("IP address not allowed"), r#"{"message":"IP address not allowed"}"#);
        assert_eq!(json_message("a<b"), r#"{"message":"a\u003cb"}"#);
    }
}
