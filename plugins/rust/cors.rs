//! The cors plugin (wasm = "builtin:cors", Kong's cors): preflight
//! requests answered locally (or passed on), and CORS headers added to
//! responses for allowed origins.
//!
//! The Rust port of plugins/src/cors: same keys, same messages; origin
//! patterns read Go's syntax (goregexp.rs), and an Origin is matched and
//! echoed byte for byte, as Go does.

use crate::{common, goregexp};
use common::HeaderBytes;
use sluice_proxy_wasm::{self as sdk, callbacks, json, Action, HttpContext, LogLevel, MapType, RootContext};
use std::rc::Rc;

/// The plugin's root_id.
pub const NAME: &str = "cors";

/// Every key of the configuration: a misspelt one is refused with the
/// nearest of them.
const CONFIG_KEYS: &[&str] =
    &["origins", "methods", "headers", "exposed_headers", "credentials", "max_age", "preflight_continue", "private_network"];

const DEFAULT_METHODS: &[&str] = &["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT"];

/// A validated configuration.
#[derive(Debug, Default)]
pub struct Cors {
    any: bool,
    /// Exact origins, lower-cased, without a trailing slash.
    exact: Vec<String>,
    patterns: Vec<goregexp::Regexp>,
    methods: String,
    headers: String,
    exposed: String,
    creds: bool,
    max_age: String,
    cont: bool,
    private_network: bool,
}

/// Validates a configuration.
pub fn parse(data: &[u8]) -> Result<Cors, String> {
    let (mut origins, mut methods, mut headers, mut exposed) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut creds, mut cont, mut pn, mut max_age) = (false, false, false, 0i64);
    if let Some(v) = json::parse_config(data)? {
        for (k, v) in json::object(&v, "cors.Config")? {
            match json::key_name(k).as_str() {
                "origins" => origins = json::string_list(v, "Config.origins")?,
                "methods" => methods = json::string_list(v, "Config.methods")?,
                "headers" => headers = json::string_list(v, "Config.headers")?,
                "exposed_headers" => exposed = json::string_list(v, "Config.exposed_headers")?,
                "credentials" => creds = json::boolean(v, "Config.credentials")?.unwrap_or(creds),
                "max_age" => max_age = json::signed(v, "Config.max_age", "int64")?.unwrap_or(max_age),
                "preflight_continue" => cont = json::boolean(v, "Config.preflight_continue")?.unwrap_or(cont),
                "private_network" => pn = json::boolean(v, "Config.private_network")?.unwrap_or(pn),
                _ => return Err(json::unknown_field_of(k, CONFIG_KEYS)),
            }
        }
    }
    let mut x = Cors { any: origins.is_empty(), creds, cont, private_network: pn, ..Default::default() };
    for (i, o) in origins.iter().enumerate() {
        if o == "*" {
            x.any = true;
        } else if o.contains(|c| r"\^$*+?()[]{}|".contains(c)) {
            let re = goregexp::compile(&format!("^(?:{})$", o))
                .map_err(|e| format!("config: origins[{}]: {:?} is not a valid regular expression: {}", i, o, e))?;
            x.patterns.push(re);
        } else {
            x.exact.push(origin_key(o.as_bytes()));
        }
    }
    if methods.is_empty() {
        methods = DEFAULT_METHODS.iter().map(|m| m.to_string()).collect();
    }
    for (i, m) in methods.iter().enumerate() {
        if m.is_empty() || common::go_to_upper(m) != *m {
            return Err(format!("config: methods[{}]: {:?} must be an upper-case method name", i, m));
        }
    }
    x.methods = methods.join(",");
    x.headers = headers.join(",");
    x.exposed = exposed.join(",");
    if max_age < 0 {
        return Err("config: max_age: must not be negative".into());
    }
    if max_age > 0 {
        x.max_age = max_age.to_string();
    }
    Ok(x)
}

/// Go's strings.ToLower(strings.TrimSuffix(o, "/")): simple lower-case
/// mapping per character, a byte that is not UTF-8 read as U+FFFD.
fn origin_key(o: &[u8]) -> String {
    let o = o.strip_suffix(b"/").unwrap_or(o);
    let mut out = String::with_capacity(o.len());
    for c in goregexp::go_runes(o).chars() {
        let mut l = c.to_lowercase();
        match (l.next(), l.next()) {
            (Some(x), None) => out.push(x),
            // Only U+0130 lower-cases to two characters; Go's simple
            // mapping gives 'i'.
            _ => out.push(if c == '\u{130}' { 'i' } else { c }),
        }
    }
    out
}

/// A header to set: name and value (an echoed Origin is the request's
/// bytes).
pub type Header<'a> = (&'static str, &'a [u8]);

impl Cors {
    /// The Access-Control-Allow-Origin value for origin, None when the
    /// origin is not allowed.
    fn allow_origin<'a>(&self, origin: &'a [u8]) -> Option<&'a [u8]> {
        if self.any {
            if self.creds && !origin.is_empty() {
                // "*" is not allowed with credentials: echo the origin.
                return Some(origin);
            }
            return Some(b"*");
        }
        if origin.is_empty() {
            return None;
        }
        if self.exact_match(origin) || self.patterns.iter().any(|re| re.is_match(origin)) {
            return Some(origin);
        }
        None
    }

    /// Whether origin is one of the exact origins, compared as
    /// origin_key makes them.
    fn exact_match(&self, origin: &[u8]) -> bool {
        if self.exact.is_empty() {
            return false;
        }
        if origin.is_ascii() {
            // The exact origins are lower case already, and an ASCII
            // origin's key is its ASCII lower case: no copy to compare.
            // An origin as browsers send it (lower case) is equal byte for
            // byte, which compares words at a time.
            let o = origin.strip_suffix(b"/").unwrap_or(origin);
            return self.exact.iter().any(|e| e.as_bytes() == o || e.as_bytes().eq_ignore_ascii_case(o));
        }
        self.exact.contains(&origin_key(origin))
    }

    fn common<'a>(&self, origin: &'a [u8]) -> Option<Vec<Header<'a>>> {
        let allow = self.allow_origin(origin)?;
        // Room for a preflight's answer: no reallocation on the way.
        let mut h = Vec::with_capacity(8);
        h.push(("access-control-allow-origin", allow));
        if allow != b"*" {
            h.push(("vary", b"Origin"));
        }
        if self.creds {
            h.push(("access-control-allow-credentials", b"true"));
        }
        Some(h)
    }

    /// What to do with a request: Some(headers) answers it 200 with them
    /// (a preflight; none for a disallowed origin), None lets it through.
    pub fn preflight<'a, H: HeaderBytes + ?Sized>(&'a self, h: &'a H) -> Option<Vec<Header<'a>>> {
        let header = |name: &str| -> Option<&'a [u8]> { h.get_bytes(name) };
        let method = header(":method").unwrap_or_default();
        let req_method = header("access-control-request-method");
        if method != b"OPTIONS" || req_method.map_or(true, |m| m.is_empty()) || self.cont {
            return None;
        }
        let origin = header("origin").unwrap_or_default();
        let mut out = match self.common(origin) {
            Some(out) => out,
            None => return Some(Vec::new()),
        };
        out.push(("access-control-allow-methods", self.methods.as_bytes()));
        let allow_headers = if self.headers.is_empty() {
            header("access-control-request-headers").unwrap_or_default()
        } else {
            self.headers.as_bytes()
        };
        if !allow_headers.is_empty() {
            out.push(("access-control-allow-headers", allow_headers));
        }
        if !self.max_age.is_empty() {
            out.push(("access-control-max-age", self.max_age.as_bytes()));
        }
        if self.private_network && header("access-control-request-private-network") == Some(b"true") {
            out.push(("access-control-allow-private-network", b"true"));
        }
        Some(out)
    }

    /// The CORS headers for the response to a request that came with
    /// origin.
    #[cfg(test)]
    pub fn response_headers<'a>(&'a self, origin: &'a [u8]) -> Vec<Header<'a>> {
        let mut h = Vec::new();
        self.each_response_header(origin, |k, v| h.push((k, v)));
        h
    }

    /// Calls f with each of response_headers' headers, in order: what a
    /// response's path sets, without a Vec.
    fn each_response_header<'a>(&'a self, origin: &'a [u8], mut f: impl FnMut(&'static str, &'a [u8])) {
        let allow = match self.allow_origin(origin) {
            Some(a) => a,
            None => return,
        };
        f("access-control-allow-origin", allow);
        if allow != b"*" {
            f("vary", b"Origin");
        }
        if self.creds {
            f("access-control-allow-credentials", b"true");
        }
        if !self.exposed.is_empty() {
            f("access-control-expose-headers", self.exposed.as_bytes());
        }
    }
}

/// A root context of the plugin, configured by on_configure.
pub fn root() -> Box<dyn RootContext> {
    Box::new(Plugin { cors: Rc::new(Cors::default()), deferred: false })
}

struct Plugin {
    cors: Rc<Cors>,
    /// The host applies response headers handed over at request time
    /// (sluice): the response-headers callback is then skipped.
    deferred: bool,
}

impl RootContext for Plugin {
    fn on_configure(&mut self, _size: usize) -> bool {
        match common::load_config(NAME, parse) {
            Some(c) => self.cors = Rc::new(c),
            None => return false,
        }
        self.deferred = sdk::enable_deferred_response_headers();
        let mut skip = callbacks::REQUEST_BODY | callbacks::REQUEST_TRAILERS | callbacks::RESPONSE_BODY | callbacks::RESPONSE_TRAILERS | callbacks::LOG;
        if self.deferred {
            skip |= callbacks::RESPONSE_HEADERS;
        }
        let _ = sdk::skip_callbacks(skip);
        true
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream { cors: self.cors.clone(), deferred: self.deferred, origin: None }))
    }
}

struct Stream {
    cors: Rc<Cors>,
    deferred: bool,
    /// The request's Origin, if it had one (kept for the response
    /// headers when they are not deferred).
    origin: Option<Vec<u8>>,
}

impl Stream {
    /// Keeps the request's Origin for the response headers, or hands the
    /// host the headers it calls for now (deferred).
    fn response_headers_for(&mut self, origin: Option<&[u8]>) {
        let origin = match origin {
            Some(o) => o,
            None => return,
        };
        if !self.deferred {
            self.origin = Some(origin.to_vec());
            return;
        }
        let cors = &self.cors;
        // As on_http_response_headers edits: Vary added (the response may
        // vary on more), the others replaced.
        let r = sdk::defer_response_headers(|e| {
            cors.each_response_header(origin, |k, v| if k == "vary" { e.add(k, v) } else { e.replace(k, v) })
        });
        common::must(NAME, "deferring response headers", r);
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        // Only an OPTIONS request can be a preflight, which reads several
        // headers: the whole map then. Any other request needs its Origin
        // alone: two single reads, where the whole map would cost several
        // on a request of ten or so fields.
        if !self.cors.cont && common::request_header(NAME, ":method").as_deref() == Some(&b"OPTIONS"[..]) {
            let h = common::request_header_pairs(NAME);
            if let Some(reply) = self.cors.preflight(&h) {
                if let Err(e) = sdk::send_local_response(200, &reply, b"", -1) {
                    sdk::log(LogLevel::Error, &format!("sending local response 200: {:?}", e));
                }
                return Action::Pause;
            }
            self.response_headers_for(h.get_bytes("origin"));
            return Action::Continue;
        }
        let origin = common::request_header(NAME, "origin");
        self.response_headers_for(origin.as_deref());
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let origin = match &self.origin {
            Some(o) => o,
            None => return Action::Continue,
        };
        self.cors.each_response_header(origin, |k, v| {
            if k == "vary" {
                common::must(NAME, "adding vary", sdk::add_http_response_header(k, "Origin"));
            } else {
                common::must_on(NAME, "setting", k, sdk::replace_map_value_bytes(MapType::HttpResponseHeaders, k, v));
            }
        });
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(p: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        p.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
    }

    fn get<'a>(h: &'a [Header], k: &str) -> &'a str {
        h.iter().find(|(n, _)| *n == k).map(|(_, v)| std::str::from_utf8(v).unwrap()).unwrap_or("")
    }

    // plugins/src/cors's TestPreflight.
    #[test]
    fn preflight() {
        let kong = r#"{"origins":["https://app.example.com"],"methods":["GET","POST","PUT","DELETE"],"max_age":3600,"credentials":true}"#;
        let pre = |origin: &str, extra: &[(&str, &str)]| {
            let mut v = vec![(":method", "OPTIONS"), (":path", "/api"), ("origin", origin), ("access-control-request-method", "POST")];
            v.extend_from_slice(extra);
            h(&v.iter().map(|(a, b)| (*a, *b)).collect::<Vec<_>>())
        };
        let cases: Vec<(&str, &str, Vec<(Vec<u8>, Vec<u8>)>, bool, &str, &str)> = vec![
            ("allowed origin", kong, pre("https://app.example.com", &[("access-control-request-headers", "x-a")]), true, "https://app.example.com", "x-a"),
            ("other origin", kong, pre("https://evil.example.com", &[]), true, "", ""),
            ("not a preflight", kong, h(&[(":method", "OPTIONS"), ("origin", "https://app.example.com")]), false, "", ""),
            ("GET", kong, h(&[(":method", "GET"), ("origin", "https://app.example.com")]), false, "", ""),
            ("continue", r#"{"preflight_continue":true}"#, pre("https://a.com", &[]), false, "", ""),
            ("star", "{}", pre("https://a.com", &[]), true, "*", ""),
            ("regex", r#"{"origins":["https://.*\\.example\\.org"],"headers":["x-b","x-c"]}"#, pre("https://x.example.org", &[]), true, "https://x.example.org", "x-b,x-c"),
            ("regex anchored", r#"{"origins":["https://.*\\.example\\.org"]}"#, pre("https://x.example.org.evil.com", &[]), true, "", ""),
            ("exact ignores case and a slash", kong, pre("HTTPS://App.Example.com/", &[]), true, "HTTPS://App.Example.com/", ""),
        ];
        for (name, cfg, req, want_reply, acao, acah) in cases {
            let c = parse(cfg.as_bytes()).unwrap();
            let r = c.preflight(&req);
            assert_eq!(r.is_some(), want_reply, "{}", name);
            if let Some(r) = r {
                assert_eq!(get(&r, "access-control-allow-origin"), acao, "{}", name);
                assert_eq!(get(&r, "access-control-allow-headers"), acah, "{}", name);
                if acao == "https://app.example.com" {
                    assert_eq!(get(&r, "access-control-allow-methods"), "GET,POST,PUT,DELETE");
                    assert_eq!(get(&r, "access-control-max-age"), "3600");
                    assert_eq!(get(&r, "access-control-allow-credentials"), "true");
                    assert_eq!(get(&r, "vary"), "Origin");
                }
            }
        }
    }

    #[test]
    fn response_headers() {
        let c = parse(br#"{"origins":["https://app.example.com"],"exposed_headers":["x-total"]}"#).unwrap();
        let r = c.response_headers(b"https://app.example.com");
        assert_eq!(get(&r, "access-control-allow-origin"), "https://app.example.com");
        assert_eq!(get(&r, "access-control-expose-headers"), "x-total");
        assert!(c.response_headers(b"https://other.com").is_empty());
        let star = parse(br#"{"origins":["*"],"credentials":true}"#).unwrap();
        assert_eq!(get(&star.response_headers(b"https://z.com"), "access-control-allow-origin"), "https://z.com");
    }

    #[test]
    fn parse_errors() {
        for cfg in [r#"{"origins":["(("]}"#, r#"{"methods":["get"]}"#, r#"{"max_age":-1}"#, r#"{"max_age":1.5}"#, r#"{"origin":["x"]}"#, r#"{"origins":["\\pL"]}"#] {
            let e = parse(cfg.as_bytes()).expect_err(cfg);
            assert!(e.starts_with("config: "), "{}", e);
        }
        assert!(parse(br#"{"methods":["STRASSE","\u00df"]}"#).is_ok(), "Go's ToUpper keeps \u{df}");
        assert!(parse(br#"{"methods":["\u1fb3"]}"#).is_err(), "Go's ToUpper maps U+1FB3 to U+1FBC");
    }

    #[test]
    fn origin_keys_as_go() {
        assert_eq!(origin_key(b"HTTPS://A.COM/"), "https://a.com");
        assert_eq!(origin_key("\u{130}".as_bytes()), "i");
        assert_eq!(origin_key(b"a\xe2\x82"), "a\u{fffd}\u{fffd}");
    }
}
