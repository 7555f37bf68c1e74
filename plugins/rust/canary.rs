//! The canary plugin (wasm = "builtin:canary"): Istio VirtualService
//! routing as a filter. It picks a subset for each request (by header or
//! cookie match, else by weighted split, optionally sticky on a key) and
//! tells the proxy's backend picker through the request header
//! x-sluice-subset and the property sluice.subset.
//!
//! The Rust port of plugins/src/canary: same keys, same messages; regex
//! matches read Go's syntax (goregexp.rs).

use crate::{common, headermatch, random};
use headermatch::{HeaderMatch, Headers};
use sluice_proxy_wasm::{self as sdk, json, Action, HttpContext, RootContext};
use std::rc::Rc;

/// The plugin's root_id.
pub const NAME: &str = "canary";

/// SUBSET_HEADER and SUBSET_PROPERTY carry the chosen subset to the
/// backend picker. A client-sent SUBSET_HEADER is always replaced or
/// removed, so clients cannot steer requests past the rules.
pub const SUBSET_HEADER: &str = "x-sluice-subset";
pub const SUBSET_PROPERTY: &str = "sluice.subset";

/// Every key of the configuration, nested ones too, in the Go structs'
/// order: a misspelt one is refused with the nearest of them.
const CONFIG_KEYS: &[&str] = &[
    "http", "name", "match", "headers", "exact", "prefix", "regex", "cookies", "uri", "method", "route", "destination", "host", "subset",
    "subset", "weight", "sticky", "header", "cookie",
];

#[derive(Debug)]
struct Target {
    subset: String,
    weight: i64,
}

#[derive(Debug)]
struct Route {
    matches: Vec<HeaderMatch>,
    targets: Vec<Target>,
    total: i64,
}

/// Where a sticky pick takes its key from.
#[derive(Debug, Default)]
enum Sticky {
    #[default]
    None,
    Header(String),
    Cookie(String),
}

/// A validated configuration.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Route>,
    sticky: Sticky,
}

/// Validates a configuration.
pub fn parse(data: &[u8]) -> Result<Router, String> {
    let mut r = Router::default();
    let v = match json::parse_config(data)? {
        Some(v) => v,
        None => return Ok(r),
    };
    let mut http: &[json::Value] = &[];
    let mut sticky: Option<(String, String)> = None;
    for (k, v) in json::object(&v, "canary.Config")? {
        match json::key_name(k).as_str() {
            "http" => {
                http = match v {
                    json::Value::Null => &[],
                    json::Value::Array(a) => a,
                    _ => return Err(json::type_error(v, "Config.http", "[]canary.HTTPRoute")),
                }
            }
            "sticky" => sticky = parse_sticky(v, sticky)?,
            _ => return Err(json::unknown_field_of(k, CONFIG_KEYS)),
        }
    }
    if let Some((header, cookie)) = sticky {
        if header.is_empty() == cookie.is_empty() {
            return Err("config: sticky: set exactly one of header, cookie".into());
        }
        r.sticky = if header.is_empty() { Sticky::Cookie(cookie) } else { Sticky::Header(header) };
    }
    for (i, h) in http.iter().enumerate() {
        r.routes.push(parse_route(h, &format!("config: http[{}]", i))?);
    }
    Ok(r)
}

/// Decodes *Sticky into prev (null: nil; an object decodes into the
/// existing value, as Go's decoder does).
fn parse_sticky(v: &json::Value, prev: Option<(String, String)>) -> Result<Option<(String, String)>, String> {
    let members = match v {
        json::Value::Null => return Ok(None),
        json::Value::Object(m) => m,
        _ => return Err(json::type_error(v, "Config.sticky", "canary.Sticky")),
    };
    let (mut header, mut cookie) = prev.unwrap_or_default();
    for (k, mv) in members {
        match json::key_name(k).as_str() {
            "header" => header = json::string(mv, "Config.sticky.header")?.unwrap_or(header),
            "cookie" => cookie = json::string(mv, "Config.sticky.cookie")?.unwrap_or(cookie),
            _ => return Err(json::unknown_field_of(k, CONFIG_KEYS)),
        }
    }
    Ok(Some((header, cookie)))
}

fn parse_route(h: &json::Value, where_: &str) -> Result<Route, String> {
    let members: &[(String, json::Value)] = match h {
        json::Value::Null => &[],
        json::Value::Object(m) => m,
        _ => return Err(json::type_error(h, "Config.http", "canary.HTTPRoute")),
    };
    let mut matches = Vec::new();
    let mut dests: &[json::Value] = &[];
    for (k, v) in members {
        match json::key_name(k).as_str() {
            "name" => {
                json::string(v, "Config.http.name")?;
            }
            "match" => matches = headermatch::decode_list(v, "Config.http.match", &format!("{}.match", where_), CONFIG_KEYS)?,
            "route" => {
                dests = match v {
                    json::Value::Null => &[],
                    json::Value::Array(a) => a,
                    _ => return Err(json::type_error(v, "Config.http.route", "[]canary.RouteDestination")),
                }
            }
            _ => return Err(json::unknown_field_of(k, CONFIG_KEYS)),
        }
    }
    if dests.is_empty() {
        return Err(format!("{}.route: at least one destination is required", where_));
    }
    let mut targets = Vec::new();
    let mut total: i64 = 0;
    for (j, d) in dests.iter().enumerate() {
        let (mut subset, mut dest_subset, mut weight): (String, Option<String>, i64) = (String::new(), None, 0);
        let members: &[(String, json::Value)] = match d {
            json::Value::Null => &[],
            json::Value::Object(m) => m,
            _ => return Err(json::type_error(d, "Config.http.route", "canary.RouteDestination")),
        };
        for (k, v) in members {
            match json::key_name(k).as_str() {
                "subset" => subset = json::string(v, "Config.http.route.subset")?.unwrap_or(subset),
                "weight" => weight = json::signed(v, "Config.http.route.weight", "int")?.unwrap_or(weight),
                "destination" => dest_subset = parse_destination(v, dest_subset)?,
                _ => return Err(json::unknown_field_of(k, CONFIG_KEYS)),
            }
        }
        if let Some(ds) = dest_subset {
            if !subset.is_empty() && !ds.is_empty() && subset != ds {
                return Err(format!("{}.route[{}]: subset and destination.subset differ", where_, j));
            }
            if subset.is_empty() {
                subset = ds;
            }
        }
        if subset.is_empty() {
            return Err(format!("{}.route[{}]: subset is required", where_, j));
        }
        if weight < 0 {
            return Err(format!("{}.route[{}]: weight must not be negative", where_, j));
        }
        if weight == 0 && dests.len() == 1 {
            weight = 100; // Istio: a single destination takes all traffic
        }
        targets.push(Target { subset, weight });
        total = total.wrapping_add(weight);
    }
    if total == 0 {
        return Err(format!("{}.route: weights add up to 0", where_));
    }
    Ok(Route { matches, targets, total })
}

/// Decodes *Destination: its subset (host is accepted and unused); None
/// when null.
fn parse_destination(v: &json::Value, prev: Option<String>) -> Result<Option<String>, String> {
    let members = match v {
        json::Value::Null => return Ok(None),
        json::Value::Object(m) => m,
        _ => return Err(json::type_error(v, "Config.http.route.destination", "canary.Destination")),
    };
    let mut subset = prev.unwrap_or_default();
    for (k, mv) in members {
        match json::key_name(k).as_str() {
            "host" => {
                json::string(mv, "Config.http.route.destination.host")?;
            }
            "subset" => subset = json::string(mv, "Config.http.route.destination.subset")?.unwrap_or(subset),
            _ => return Err(json::unknown_field_of(k, CONFIG_KEYS)),
        }
    }
    Ok(Some(subset))
}

impl Router {
    /// Whether picking a subset looks at the request's headers.
    fn reads_headers(&self) -> bool {
        !matches!(self.sticky, Sticky::None) || self.routes.iter().any(|rt| !rt.matches.is_empty())
    }

    /// The subset for a request, or None when no route applies. roll is
    /// a uniform number in [0, 1), used when the request has no sticky
    /// key.
    pub fn pick<H: Headers + ?Sized>(&self, h: &H, roll: f64) -> Option<&str> {
        let rt = self.routes.iter().find(|rt| rt.matches.is_empty() || rt.matches.iter().any(|m| m.matches(h)))?;
        if rt.targets.len() == 1 {
            return Some(&rt.targets[0].subset);
        }
        let mut n = (roll * rt.total as f64) as i64;
        if let Some(key) = self.sticky_key(h) {
            let m = rt.total as u32;
            n = if m == 0 { 0 } else { (fnv32a(key) % m) as i64 };
        }
        for t in &rt.targets {
            if n < t.weight {
                return Some(&t.subset);
            }
            n -= t.weight;
        }
        rt.targets.last().map(|t| t.subset.as_str())
    }

    fn sticky_key<'a, H: Headers + ?Sized>(&self, h: &'a H) -> Option<&'a [u8]> {
        let v = match &self.sticky {
            Sticky::None => None,
            Sticky::Header(name) => headermatch::header(h, name),
            Sticky::Cookie(name) => headermatch::cookie(headermatch::header(h, "cookie").unwrap_or_default(), name),
        };
        v.filter(|v| !v.is_empty())
    }
}

/// FNV-1a, 32 bits (Go's hash/fnv New32a).
fn fnv32a(b: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &c in b {
        h ^= c as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// A root context of the plugin, configured by on_configure.
pub fn root() -> Box<dyn RootContext> {
    Box::new(Plugin { router: Rc::new(Router::default()) })
}

struct Plugin {
    router: Rc<Router>,
}

impl RootContext for Plugin {
    fn on_configure(&mut self, _size: usize) -> bool {
        match common::load_config(NAME, parse) {
            Some(r) => self.router = Rc::new(r),
            None => return false,
        }
        common::skip_all_but_request_headers();
        true
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream { router: self.router.clone() }))
    }
}

struct Stream {
    router: Rc<Router>,
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        // A weighted split without matches or a sticky key (the usual
        // canary) needs no header of the request.
        let h = if self.router.reads_headers() {
            common::request_header_pairs(NAME)
        } else {
            sdk::HeaderPairs::parse(Vec::new())
        };
        match self.router.pick(&h, random::float64()) {
            None => {
                // A client's own subset header is never passed on (with
                // the headers unread, removing it is the one hostcall).
                if !self.router.reads_headers() || headermatch::header(&h, SUBSET_HEADER).is_some() {
                    common::must_on(NAME, "removing", SUBSET_HEADER, sdk::remove_http_request_header(SUBSET_HEADER));
                }
            }
            Some(subset) => {
                common::must_on(NAME, "setting", SUBSET_HEADER, sdk::set_http_request_header(SUBSET_HEADER, subset));
                common::must_on(NAME, "setting", SUBSET_PROPERTY, sdk::set_property(&[SUBSET_PROPERTY], subset.as_bytes()));
            }
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(p: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        p.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
    }

    // The Istio example of issue 5: x-canary: true -> v2; otherwise 90/10.
    const ISTIO: &str = r#"{"http":[
 {"match":[{"headers":{"x-canary":{"exact":"true"}}}],"route":[{"destination":{"host":"order-service","subset":"v2"},"weight":100}]},
 {"route":[{"destination":{"host":"order-service","subset":"v1"},"weight":90},{"destination":{"host":"order-service","subset":"v2"},"weight":10}]}]}"#;

    // plugins/src/canary's tests.
    #[test]
    fn header_match_always_wins() {
        let r = parse(ISTIO.as_bytes()).unwrap();
        for i in 0..100 {
            assert_eq!(r.pick(&h(&[("x-canary", "true")]), i as f64 / 100.0), Some("v2"), "roll {}", i);
        }
    }

    #[test]
    fn weighted_split() {
        let r = parse(ISTIO.as_bytes()).unwrap();
        let n = 2000;
        let v2 = (0..n).filter(|&i| r.pick(&h(&[]), (i as f64 + 0.5) / n as f64) == Some("v2")).count();
        assert_eq!(v2, 200);
    }

    #[test]
    fn sticky() {
        let r = parse(br#"{"sticky":{"cookie":"uid"},"http":[{"route":[{"subset":"a","weight":50},{"subset":"b","weight":50}]}]}"#).unwrap();
        let mut seen = std::collections::HashSet::new();
        for u in 0..50 {
            let hs = h(&[("cookie", &format!("uid=user-{}", u))]);
            let first = r.pick(&hs, 0.0).unwrap();
            for roll in [0.1, 0.3, 0.5, 0.7, 0.9] {
                assert_eq!(r.pick(&hs, roll), Some(first), "user {}", u);
            }
            seen.insert(first.to_string());
        }
        assert_eq!(seen.len(), 2);
        assert_eq!(r.pick(&h(&[]), 0.1), Some("a"));
        assert_eq!(r.pick(&h(&[]), 0.9), Some("b"));
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
    }

    #[test]
    fn no_route() {
        let r = parse(br#"{"http":[{"match":[{"headers":{"x-beta":{"exact":"1"}}}],"route":[{"subset":"beta"}]}]}"#).unwrap();
        assert_eq!(r.pick(&h(&[]), 0.5), None);
        assert_eq!(r.pick(&h(&[("x-beta", "1")]), 0.5), Some("beta"));
    }

    #[test]
    fn parse_errors() {
        for cfg in [
            r#"{"http":[{"route":[]}]}"#,
            r#"{"http":[{"route":[{"weight":10}]}]}"#,
            r#"{"http":[{"route":[{"subset":"a","weight":0},{"subset":"b","weight":0}]}]}"#,
            r#"{"http":[{"route":[{"subset":"a","weight":-1}]}]}"#,
            r#"{"http":[{"route":[{"subset":"a","weight":1.5}]}]}"#,
            r#"{"http":[{"route":[{"subset":"a","destination":{"subset":"b"}}]}]}"#,
            r#"{"sticky":{}}"#,
            r#"{"sticky":{"header":"a","cookie":"b"}}"#,
            r#"{"http":[{"match":[{"headers":{"x":{"regex":"("}}}],"route":[{"subset":"a"}]}]}"#,
            r#"{"routes":[]}"#,
        ] {
            let e = parse(cfg.as_bytes()).expect_err(cfg);
            assert!(e.starts_with("config: "), "{}: {}", cfg, e);
        }
        assert!(parse(br#"{"htp":[]}"#).unwrap_err().contains("did you mean \"http\""));
    }
}
