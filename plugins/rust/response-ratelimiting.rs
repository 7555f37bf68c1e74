//! The response-ratelimiting plugin (wasm =
//! "builtin:response-ratelimiting"): Kong's, named limits that the
//! upstream's responses consume through a header such as "X-Sluice-Limit:
//! sms=1" (or Kong's "X-Kong-Limit"). A request arriving when a limit is
//! used up gets 429 before it reaches the upstream.
//!
//! The Rust port of plugins/src/responseratelimiting: same keys, messages,
//! headers, metric and shared-data keys.

use crate::{common, limits};
use limits::{Store, PERIODS};
use sluice_proxy_wasm::{self as sdk, json, Action, HttpContext, LogLevel, RootContext};
use std::rc::Rc;

/// The plugin's root_id.
pub const NAME: &str = "response-ratelimiting";

/// The response headers the upstream reports usage in when header_name is
/// not set: sluice's own and Kong's, so an upstream written for Kong is
/// counted as it was there (its header removed too).
pub const DEFAULT_HEADER_NAMES: [&str; 2] = ["x-sluice-limit", "x-kong-limit"];

/// A validated configuration.
#[derive(Debug)]
pub struct Limiter {
    plugin: String,
    /// (name, period, max), sorted by name, then period.
    limits: Vec<(String, &'static str, i64)>,
    names: Vec<String>,
    /// The usage headers read and removed from responses.
    pub header_names: Vec<String>,
    limit_by: String,
    pub policy: String,
    fault_tolerant: bool,
    hide: bool,
    block: bool,
}

/// Every key of the configuration, nested ones too: a misspelt one is
/// refused with the nearest of them.
const CONFIG_KEYS: &[&str] = &[
    "block_on_first_violation", "day", "fault_tolerant", "header_name", "hide_client_headers", "hour", "limit_by", "limits",
    "minute", "month", "policy", "redis", "redis_database", "redis_host", "redis_password", "redis_port", "redis_timeout",
    "second", "year",
];

/// Decodes limits into out as into a Go map[string]Periods: members are
/// merged in (a repeated name replaces the earlier one), null empties it;
/// null members are periods with nothing set.
fn limits_of(v: &json::Value, out: &mut Vec<(String, [Option<i64>; 6])>) -> Result<(), String> {
    let members = match v {
        json::Value::Null => {
            out.clear();
            return Ok(());
        }
        json::Value::Object(m) => m,
        _ => return Err(json::type_error(v, "Config.limits", "map[string]responseratelimiting.Periods")),
    };
    for (name, pv) in members {
        // Go decodes each member, a repeated one too, into a fresh value.
        let mut p: [Option<i64>; 6] = [None; 6];
        match pv {
            json::Value::Null => {}
            json::Value::Object(m) => {
                for (k, v) in m {
                    let key = json::key_name(k);
                    match PERIODS.iter().position(|x| *x == key) {
                        Some(i) => p[i] = limits::opt_i64(v, &format!("Periods.{}", PERIODS[i]))?,
                        None => return Err(json::unknown_field_of(k, CONFIG_KEYS)),
                    }
                }
            }
            _ => return Err(json::type_error(pv, "Config.limits", "responseratelimiting.Periods")),
        }
        match out.iter_mut().find(|(n, _)| n == name) {
            Some(e) => e.1 = p,
            None => out.push((name.clone(), p)),
        }
    }
    Ok(())
}

/// Validates a configuration; plugin scopes the counters.
pub fn parse(data: &[u8], plugin: &str) -> Result<Limiter, String> {
    let mut named: Vec<(String, [Option<i64>; 6])> = Vec::new();
    let (mut header_name, mut limit_by, mut policy) = (String::new(), String::new(), String::new());
    let (mut fault_tolerant, mut hide, mut block) = (None, false, None);
    if let Some(v) = json::parse_config(data)? {
        for (k, v) in json::object(&v, "responseratelimiting.Config")? {
            let f = |name: &str| format!("Config.{}", name);
            let key = json::key_name(k);
            match key.as_str() {
                "limits" => limits_of(v, &mut named)?,
                "header_name" => header_name = json::string(v, &f("header_name"))?.unwrap_or(header_name),
                "limit_by" => limit_by = json::string(v, &f("limit_by"))?.unwrap_or(limit_by),
                "policy" => policy = json::string(v, &f("policy"))?.unwrap_or(policy),
                "fault_tolerant" => fault_tolerant = json::boolean(v, &f("fault_tolerant"))?,
                "hide_client_headers" => hide = json::boolean(v, &f("hide_client_headers"))?.unwrap_or(hide),
                "block_on_first_violation" => block = json::boolean(v, &f("block_on_first_violation"))?,
                // Kong's Redis settings, accepted and left to the host's
                // shared store.
                "redis" => {}
                "redis_host" | "redis_password" => {
                    json::string(v, &f(&key))?;
                }
                "redis_port" | "redis_database" | "redis_timeout" => {
                    json::signed(v, &f(&key), "int")?;
                }
                _ => return Err(json::unknown_field_of(k, CONFIG_KEYS)),
            }
        }
    }
    let mut l = Limiter {
        plugin: plugin.to_string(),
        limits: Vec::new(),
        names: Vec::new(),
        header_names: DEFAULT_HEADER_NAMES.iter().map(|s| s.to_string()).collect(),
        limit_by,
        policy,
        fault_tolerant: fault_tolerant.unwrap_or(true),
        hide,
        block: block.unwrap_or(true),
    };
    if !header_name.is_empty() {
        l.header_names = vec![header_name.to_lowercase()];
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, p) in &named {
        if name.is_empty() || name.contains(|c| "=,; /".contains(c)) {
            return Err(format!("config: limits: {:?} is not a usable limit name", name));
        }
        let mut n = 0;
        for (i, v) in p.iter().enumerate() {
            if let Some(v) = *v {
                if v <= 0 {
                    return Err(format!("config: limits.{}.{}: must be positive", name, PERIODS[i]));
                }
                l.limits.push((name.clone(), PERIODS[i], v));
                n += 1;
            }
        }
        if n == 0 {
            return Err(format!("config: limits.{}: set at least one of second, minute, hour, day, month, year", name));
        }
        l.names.push(name.clone());
    }
    if l.limits.is_empty() {
        return Err("config: limits: name at least one limit, e.g. limits = { sms = { minute = 10 } }".into());
    }
    match l.limit_by.as_str() {
        "" => l.limit_by = "consumer".into(),
        "consumer" | "credential" | "ip" => {}
        other => return Err(format!("config: limit_by: {:?} is not consumer, credential or ip", other)),
    }
    match l.policy.as_str() {
        "" => l.policy = "local".into(),
        "local" | "redis" => {}
        other => return Err(format!("config: policy: {:?} is not local or redis", other)),
    }
    Ok(l)
}

/// The outcome of the request phase.
#[derive(Default)]
pub struct RequestDecision {
    pub reply: Option<common::Reply>,
    /// X-RateLimit-Remaining-<limit> for the upstream.
    pub upstream_headers: Vec<(String, String)>,
    pub store_error: Option<String>,
}

impl Limiter {
    /// Whom the limits count, falling back to the client IP; consumer is
    /// the one an auth plugin set (the sluice.consumer property).
    pub fn identifier(&self, consumer: &str, client_ip: &str) -> String {
        let id = if self.limit_by != "ip" { consumer } else { "" };
        if id.is_empty() { client_ip } else { id }.to_string()
    }

    fn key(&self, name: &str, period: &str, id: &str) -> String {
        format!("sluice/response-ratelimiting/{}/{}/{}/{}/{}", self.policy, self.plugin, name, period, id)
    }

    /// Checks the limits before the request goes upstream.
    pub fn on_request(&self, s: &mut dyn Store, id: &str, now: i64) -> RequestDecision {
        let mut d = RequestDecision::default();
        let mut remaining: Vec<(&str, i64)> = Vec::new();
        for (name, period, max) in &self.limits {
            let (start, _) = limits::window(period, now);
            let n = match limits::usage(s, &self.key(name, period, id), start) {
                Ok(n) => n,
                Err(e) => {
                    d.store_error = Some(e);
                    if !self.fault_tolerant {
                        d.reply = Some(common::json_reply(500, "An unexpected error occurred", &[]));
                    }
                    return d;
                }
            };
            let r = (max - n).max(0);
            match remaining.iter_mut().find(|(k, _)| k == name) {
                Some(e) => e.1 = e.1.min(r),
                None => remaining.push((name, r)),
            }
        }
        for name in &self.names {
            let r = remaining.iter().find(|(k, _)| k == name).map(|e| e.1).unwrap_or(0);
            if r == 0 && self.block {
                d.reply = Some(common::json_reply(429, &format!("API rate limit exceeded for '{}'", name), &[]));
                return d;
            }
            d.upstream_headers.push((format!("x-ratelimit-remaining-{}", name), r.to_string()));
        }
        d
    }

    /// Reads the upstream's usage header ("sms=1, email=2"); unknown names
    /// and malformed items are skipped.
    pub fn parse_usage(&self, v: &str) -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = Vec::new();
        for item in v.split(',') {
            let item = item.trim();
            let (k, n) = match item.find('=') {
                Some(i) => (&item[..i], &item[i + 1..]),
                None => continue,
            };
            let c = match go_parse_int(n.trim()) {
                Some(c) if c > 0 => c,
                _ => continue,
            };
            let k = k.trim();
            if self.names.iter().any(|name| name == k) {
                match out.iter_mut().find(|(name, _)| name == k) {
                    Some(e) => e.1 = e.1.wrapping_add(c),
                    None => out.push((k.to_string(), c)),
                }
            }
        }
        out
    }

    /// Counts the usage the upstream reported; the headers for the client
    /// (none with hide_client_headers) and the first store error.
    pub fn on_response(&self, s: &mut dyn Store, id: &str, usage: &[(String, i64)], now: i64) -> (Vec<(String, String)>, Option<String>) {
        let mut h = Vec::new();
        let mut first_err = None;
        for (name, period, max) in &self.limits {
            let (start, _) = limits::window(period, now);
            let by = usage.iter().find(|(k, _)| k == name).map(|e| e.1).unwrap_or(0);
            let key = self.key(name, period, id);
            let r = if by > 0 { limits::increment(s, &key, start, by, 0).map(|(n, _)| n) } else { limits::usage(s, &key, start) };
            let n = match r {
                Ok(n) => n,
                Err(e) => {
                    first_err.get_or_insert(e);
                    continue;
                }
            };
            let rem = max.wrapping_sub(n).max(0);
            if !self.hide {
                let suffix = format!("-{}-{}", name.to_lowercase(), period);
                h.push((format!("x-ratelimit-limit{}", suffix), max.to_string()));
                h.push((format!("x-ratelimit-remaining{}", suffix), rem.to_string()));
            }
        }
        (h, first_err)
    }
}

/// Go's strconv.ParseInt(s, 10, 64): an optional sign, then digits.
fn go_parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('+').or_else(|| s.strip_prefix('-')).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

// ---- glue ----

/// A root context of the plugin, configured by on_configure.
pub fn root() -> Box<dyn RootContext> {
    Box::new(Plugin { p: None })
}

struct Shared {
    l: Limiter,
    store_errors: u32,
}

struct Plugin {
    p: Option<Rc<Shared>>,
}

impl RootContext for Plugin {
    fn on_configure(&mut self, _size: usize) -> bool {
        let name = limits::plugin_name(NAME);
        let l = match common::load_config(NAME, |b| parse(b, &name)) {
            Some(l) => l,
            None => return false,
        };
        let store_errors = limits::counter(NAME, &format!("sluice_response_ratelimiting_store_errors_total{{plugin=\"{}\",policy=\"{}\"}}", name, l.policy));
        {
            use sdk::callbacks::*;
            let _ = sdk::skip_callbacks(REQUEST_BODY | REQUEST_TRAILERS | RESPONSE_BODY | RESPONSE_TRAILERS | LOG);
        }
        self.p = Some(Rc::new(Shared { l, store_errors }));
        true
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        self.p.clone().map(|p| Box::new(Stream { p, id: String::new() }) as Box<dyn HttpContext>)
    }
}

struct Stream {
    p: Rc<Shared>,
    id: String,
}

fn consumer() -> String {
    match sdk::get_property(&[common::CONSUMER_PROPERTY]) {
        Ok(Some(v)) => String::from_utf8_lossy(&v).into_owned(),
        _ => String::new(),
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let l = &self.p.l;
        self.id = l.identifier(&consumer(), &common::client_ip());
        let d = l.on_request(&mut limits::SharedData, &self.id, limits::now_seconds());
        if let Some(e) = &d.store_error {
            let _ = sdk::increment_metric(self.p.store_errors, 1);
            sdk::log(LogLevel::Warn, &format!("{}: shared store failed: {}", NAME, e));
        }
        if let Some(reply) = &d.reply {
            reply.send();
            return Action::Pause;
        }
        for (k, v) in &d.upstream_headers {
            common::must_on(NAME, "setting", k, sdk::set_http_request_header(k, v));
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let l = &self.p.l;
        let mut usage: Vec<String> = Vec::new();
        for name in &l.header_names {
            if let Ok(Some(v)) = sdk::get_http_response_header(name) {
                usage.push(v);
                // The usage header is for sluice, not the client.
                common::must_on(NAME, "removing", name, sdk::remove_http_response_header(name));
            }
        }
        let (h, err) = l.on_response(&mut limits::SharedData, &self.id, &l.parse_usage(&usage.join(",")), limits::now_seconds());
        if let Some(e) = err {
            let _ = sdk::increment_metric(self.p.store_errors, 1);
            sdk::log(LogLevel::Warn, &format!("{}: shared store failed: {}", NAME, e));
        }
        for (k, v) in &h {
            common::must_on(NAME, "setting", k, sdk::set_http_response_header(k, v));
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use limits::MemStore;

    // plugins/src/responseratelimiting's tests.
    #[test]
    fn request_and_response() {
        let l = parse(br#"{"limits":{"sms":{"minute":2},"email":{"hour":5,"second":3}}}"#, "rr").unwrap();
        assert_eq!(l.names, vec!["email", "sms"]);
        let mut s = MemStore::default();
        let now = 1_700_000_000;
        let d = l.on_request(&mut s, "alice", now);
        assert!(d.reply.is_none());
        assert_eq!(d.upstream_headers, common::owned(&[("x-ratelimit-remaining-email", "3"), ("x-ratelimit-remaining-sms", "2")]));
        let usage = l.parse_usage("sms=1, email = 2, bogus=9, sms=x, =1, sms=-1, sms=+1");
        assert_eq!(usage, vec![("sms".to_string(), 2), ("email".to_string(), 2)]);
        let (h, err) = l.on_response(&mut s, "alice", &usage, now);
        assert!(err.is_none());
        assert_eq!(common::header(&h, "x-ratelimit-remaining-sms-minute"), Some("0"));
        assert_eq!(common::header(&h, "x-ratelimit-remaining-email-second"), Some("1"));
        let d = l.on_request(&mut s, "alice", now);
        let r = d.reply.unwrap();
        assert_eq!((r.status, r.body.as_str()), (429, r#"{"message":"API rate limit exceeded for 'sms'"}"#));
        assert!(l.on_request(&mut s, "bob", now).reply.is_none());
        assert!(l.on_request(&mut s, "alice", now + 60).reply.is_none());
    }

    #[test]
    fn options() {
        let l = parse(br#"{"limits":{"Sms":{"minute":1}},"block_on_first_violation":false,"hide_client_headers":true,"header_name":"X-Usage","limit_by":"ip"}"#, "rr").unwrap();
        assert_eq!(l.header_names, vec!["x-usage"]);
        assert_eq!(l.identifier("alice", "10.0.0.1"), "10.0.0.1");
        let mut s = MemStore::default();
        let (h, _) = l.on_response(&mut s, "a", &l.parse_usage("Sms=5"), 0);
        assert!(h.is_empty());
        let d = l.on_request(&mut s, "a", 0);
        assert!(d.reply.is_none());
        assert_eq!(d.upstream_headers, common::owned(&[("x-ratelimit-remaining-Sms", "0")]));
        let l = parse(br#"{"limits":{"sms":{"minute":1}}}"#, "rr").unwrap();
        assert_eq!(l.identifier("", "10.0.0.1"), "10.0.0.1");
        assert_eq!(l.identifier("alice", "10.0.0.1"), "alice");
        let mut s = MemStore { fail: Some(sdk::Status::InternalFailure), ..Default::default() };
        let d = l.on_request(&mut s, "a", 0);
        assert!(d.reply.is_none() && d.store_error.is_some());
        let l = parse(br#"{"limits":{"sms":{"minute":1}},"fault_tolerant":false}"#, "rr").unwrap();
        assert_eq!(l.on_request(&mut s, "a", 0).reply.unwrap().status, 500);
    }

    #[test]
    fn parse_errors() {
        for cfg in [
            "{}",
            r#"{"limits":{}}"#,
            r#"{"limits":{"sms":{}}}"#,
            r#"{"limits":{"sms":null}}"#,
            r#"{"limits":{"a b":{"minute":1}}}"#,
            r#"{"limits":{"":{"minute":1}}}"#,
            r#"{"limits":{"sms":{"minute":0}}}"#,
            r#"{"limits":{"sms":{"minutes":1}}}"#,
            r#"{"limits":{"sms":{"minute":1}},"limit_by":"header"}"#,
            r#"{"limits":{"sms":{"minute":1}},"policy":"cluster"}"#,
            r#"{"limits":{"sms":{"minute":1}},"sync_rate":1}"#,
            r#"{"limits":[1]}"#,
        ] {
            assert!(parse(cfg.as_bytes(), "rr").is_err(), "parse({}) succeeded", cfg);
        }
    }
}
