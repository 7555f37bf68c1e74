//! The rate-limiting plugin (wasm = "builtin:rate-limiting"): Kong's
//! rate-limiting, requests counted per consumer, IP, header or path in
//! second..year windows, in the host's shared data so every instance of
//! the process (or, with a Redis-backed store, every replica) sees one
//! count.
//!
//! The Rust port of plugins/src/ratelimiting: same keys, messages,
//! headers, metrics and shared-data keys.

use crate::{common, limits};
use limits::{Store, PERIODS};
use sluice_proxy_wasm::{self as sdk, json, Action, HttpContext, LogLevel, RootContext};
use std::cell::RefCell;
use std::rc::Rc;

/// The plugin's root_id.
pub const NAME: &str = "rate-limiting";

/// A validated configuration.
#[derive(Debug)]
pub struct Limiter {
    plugin: String,
    /// The limits, shortest period first.
    limits: Vec<Limit>,
    limit_by: String,
    header_name: String,
    path: String,
    pub policy: String,
    fault_tolerant: bool,
    hide_headers: bool,
    error_code: u32,
    error_message: String,
    /// The last identifier decided for and its counters' keys, one per
    /// limit: a client's next request builds no key (one per period a
    /// request, otherwise).
    keys: RefCell<(String, Vec<String>)>,
}

/// One period's limit.
#[derive(Debug)]
struct Limit {
    /// Its index in PERIODS.
    period: usize,
    max: i64,
    /// max as the X-RateLimit-Limit-PERIOD value, written once.
    max_text: common::Int,
}

/// Every key of the configuration: a misspelt one is refused with the
/// nearest of them.
const CONFIG_KEYS: &[&str] = &[
    "day", "error_code", "error_message", "fault_tolerant", "header_name", "hide_client_headers", "hour", "limit_by", "minute",
    "month", "path", "policy", "redis", "redis_database", "redis_host", "redis_password", "redis_port", "redis_ssl",
    "redis_timeout", "redis_username", "second", "sync_rate", "year",
];

/// Validates a configuration; plugin scopes the counters.
pub fn parse(data: &[u8], plugin: &str) -> Result<Limiter, String> {
    let mut periods: [Option<i64>; 6] = [None; 6];
    let (mut limit_by, mut header_name, mut path, mut policy, mut error_message) = (String::new(), String::new(), String::new(), String::new(), String::new());
    let (mut fault_tolerant, mut hide, mut error_code) = (None, false, 0u32);
    if let Some(v) = json::parse_config(data)? {
        for (k, v) in json::object(&v, "ratelimiting.Config")? {
            let f = |name: &str| format!("Config.{}", name);
            let key = json::key_name(k);
            if let Some(i) = PERIODS.iter().position(|p| *p == key) {
                periods[i] = limits::opt_i64(v, &f(PERIODS[i]))?;
                continue;
            }
            match key.as_str() {
                "limit_by" => limit_by = json::string(v, &f("limit_by"))?.unwrap_or(limit_by),
                "header_name" => header_name = json::string(v, &f("header_name"))?.unwrap_or(header_name),
                "path" => path = json::string(v, &f("path"))?.unwrap_or(path),
                "policy" => policy = json::string(v, &f("policy"))?.unwrap_or(policy),
                "fault_tolerant" => fault_tolerant = json::boolean(v, &f("fault_tolerant"))?,
                "hide_client_headers" => hide = json::boolean(v, &f("hide_client_headers"))?.unwrap_or(hide),
                "error_code" => error_code = json::unsigned(v, &f("error_code"), "uint32", u32::MAX as u64)?.map(|x| x as u32).unwrap_or(error_code),
                "error_message" => error_message = json::string(v, &f("error_message"))?.unwrap_or(error_message),
                // Kong's Redis settings, accepted so configurations move
                // across; the host's shared store holds the Redis address.
                "redis" => {}
                "redis_host" | "redis_password" | "redis_username" => {
                    json::string(v, &f(&key))?;
                }
                "redis_port" | "redis_database" | "redis_timeout" => {
                    json::signed(v, &f(&key), "int")?;
                }
                "redis_ssl" => {
                    json::boolean(v, &f("redis_ssl"))?;
                }
                "sync_rate" => limits::float(v, &f("sync_rate"))?,
                _ => return Err(json::unknown_field_of(k, CONFIG_KEYS)),
            }
        }
    }
    let mut l = Limiter {
        plugin: plugin.to_string(),
        limits: Vec::new(),
        limit_by,
        header_name,
        path,
        policy,
        fault_tolerant: fault_tolerant.unwrap_or(true),
        hide_headers: hide,
        error_code,
        error_message,
        keys: RefCell::new((String::new(), Vec::new())),
    };
    for (i, v) in periods.iter().enumerate() {
        if let Some(v) = *v {
            if v <= 0 {
                return Err(format!("config: {}: must be a positive number of requests", PERIODS[i]));
            }
            l.limits.push(Limit { period: i, max: v, max_text: common::Int::new(v) });
        }
    }
    if l.limits.is_empty() {
        // As Kong: a rate limiter without a limit is a mistake, not a no-op.
        return Err("config: set at least one of second, minute, hour, day, month, year".into());
    }
    match l.limit_by.as_str() {
        "" => l.limit_by = "consumer".into(),
        "consumer" | "credential" | "ip" | "service" => {}
        "header" if l.header_name.is_empty() => return Err("config: limit_by = \"header\" needs header_name".into()),
        "path" if l.path.is_empty() => return Err("config: limit_by = \"path\" needs path".into()),
        "header" | "path" => {}
        other => return Err(format!("config: limit_by: {:?} is not one of consumer, credential, ip, service, header, path", other)),
    }
    match l.policy.as_str() {
        "" => l.policy = "local".into(),
        "local" | "redis" => {}
        other => return Err(format!("config: policy: {:?} is not local or redis", other)),
    }
    if l.error_code == 0 {
        l.error_code = 429;
    }
    if l.error_message.is_empty() {
        l.error_message = "API rate limit exceeded".into();
    }
    Ok(l)
}

/// What an identifier may ask about a request; each answer costs a
/// hostcall, so only what limit_by needs is asked.
pub trait Request {
    fn header(&self, name: &str) -> Option<String>;
    /// The consumer an auth plugin set (the sluice.consumer property),
    /// never a header a client could send.
    fn consumer(&self) -> String;
    fn client_ip(&self) -> String;
}

/// The current request, through hostcalls.
struct HostRequest;

impl Request for HostRequest {
    fn header(&self, name: &str) -> Option<String> {
        sdk::get_http_request_header(name).ok().flatten()
    }
    fn consumer(&self) -> String {
        match sdk::get_property(&[common::CONSUMER_PROPERTY]) {
            // The host's buffer becomes the String (no copy when UTF-8).
            Ok(Some(v)) => common::into_string(v),
            _ => String::new(),
        }
    }
    fn client_ip(&self) -> String {
        common::client_ip()
    }
}

/// The X-RateLimit-Limit-PERIOD and X-RateLimit-Remaining-PERIOD names
/// of PERIODS[i], lower case as header maps carry them.
fn period_headers(i: usize) -> (&'static str, &'static str) {
    const NAMES: [(&str, &str); 6] = [
        ("x-ratelimit-limit-second", "x-ratelimit-remaining-second"),
        ("x-ratelimit-limit-minute", "x-ratelimit-remaining-minute"),
        ("x-ratelimit-limit-hour", "x-ratelimit-remaining-hour"),
        ("x-ratelimit-limit-day", "x-ratelimit-remaining-day"),
        ("x-ratelimit-limit-month", "x-ratelimit-remaining-month"),
        ("x-ratelimit-limit-year", "x-ratelimit-remaining-year"),
    ];
    NAMES[i.min(5)]
}

/// What the response headers of a request let through say, as numbers:
/// kept by the stream from its request to its response and written out
/// there (no allocation, nothing formatted twice: a limit's own value was
/// written at configure time).
#[derive(Clone, Copy, Default, Debug)]
pub struct RateHeaders {
    /// How many limits there are (none with hide_client_headers).
    n: u8,
    /// The remaining count of each limit.
    remaining: [i64; 6],
    /// The most constrained limit (index, remaining) and its reset.
    best: Option<(u8, i64, i64)>,
}

/// The outcome for one request.
#[derive(Default)]
pub struct Decision {
    /// A refusal to send instead of going on.
    pub reply: Option<common::Reply>,
    /// The store failed (and the request was let through because of
    /// fault_tolerant, unless reply says otherwise).
    pub store_error: Option<String>,
}

impl Limiter {
    /// What requests are counted by, falling back to the client IP as
    /// Kong does.
    #[cfg(test)]
    pub fn identifier(&self, r: &dyn Request) -> String {
        let id = self.identifier_value(r);
        let mut out = String::with_capacity(self.limit_by.len() + 1 + id.len());
        out.push_str(&self.limit_by);
        out.push(':');
        out.push_str(&id);
        out
    }

    /// identifier without its "limit_by:" (what the request says; the
    /// counters' keys are cached by it, so a request builds no
    /// identifier).
    fn identifier_value(&self, r: &dyn Request) -> String {
        let id = match self.limit_by.as_str() {
            "consumer" | "credential" => r.consumer(),
            "service" => "service".to_string(),
            "header" => r.header(&self.header_name).unwrap_or_default(),
            "path" => {
                let p = r.header(":path").unwrap_or_default();
                let (p, _) = common::split_path(&p);
                if p == self.path {
                    p.to_string()
                } else {
                    String::new()
                }
            }
            _ => String::new(),
        };
        if id.is_empty() {
            return r.client_ip();
        }
        id
    }

    fn key(&self, period: &str, id: &str) -> String {
        let parts = ["sluice/rate-limiting/", &self.policy, "/", &self.plugin, "/", period, "/", id];
        let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        for p in parts {
            out.push_str(p);
        }
        out
    }

    /// Counts the request against every limit at unix time now; h gets
    /// what the response headers say (see [`Limiter::header_pairs`]).
    /// Written into the caller's h, and the counts kept on the stack: a
    /// request's path copies no struct around.
    #[cfg(test)]
    pub fn decide(&self, s: &mut dyn Store, id: &str, now: i64, h: &mut RateHeaders) -> Decision {
        self.decide_for(s, ("", id), now, h)
    }

    /// decide for the identifier id.0 + id.1 (a request's: "limit_by:"
    /// and identifier_value), not joined unless its keys are made.
    fn decide_for(&self, s: &mut dyn Store, id: (&str, &str), now: i64, h: &mut RateHeaders) -> Decision {
        h.n = 0;
        h.best = None;
        let n = self.limits.len().min(h.remaining.len());
        let mut cache = self.keys.borrow_mut();
        let same = cache.0.len() == id.0.len() + id.1.len() && cache.0.starts_with(id.0) && cache.0.ends_with(id.1);
        if !same || cache.1.len() != n {
            cache.0.clear();
            cache.0.push_str(id.0);
            cache.0.push_str(id.1);
            let id = &cache.0;
            let keys = self.limits.iter().map(|l| self.key(PERIODS[l.period], id)).collect();
            cache.1 = keys;
        }
        let keys = &cache.1;
        let mut counts = [0i64; 6];
        let mut exceeded: Option<usize> = None;
        // With several periods, read them all first so that a request
        // refused by one does not use up the others (the increments then
        // start from these reads: one get and one CAS set per key). With
        // one, the increment alone checks.
        let mut reads: Vec<Option<limits::Read>> = Vec::new();
        if n > 1 {
            reads.reserve_exact(n);
            for (i, l) in self.limits[..n].iter().enumerate() {
                match limits::usage_read(s, &keys[i], limits::window_of(l.period, now).0) {
                    Ok((c, r)) => {
                        counts[i] = c;
                        reads.push(Some(r));
                        if c >= l.max && exceeded.is_none() {
                            exceeded = Some(i);
                        }
                    }
                    Err(e) => return self.store_failed(e),
                }
            }
        }
        if exceeded.is_none() {
            for (i, l) in self.limits[..n].iter().enumerate() {
                let read = reads.get_mut(i).and_then(Option::take);
                match limits::increment_from(s, &keys[i], limits::window_of(l.period, now).0, 1, l.max, read) {
                    Ok((c, ok)) => {
                        counts[i] = c;
                        if !ok && exceeded.is_none() {
                            // Lost a race to the last slot: over the limit after all.
                            exceeded = Some(i);
                        }
                    }
                    Err(e) => return self.store_failed(e),
                }
            }
        }
        let reset = |i: usize| limits::reset_seconds(limits::window_of(self.limits[i].period, now).1, now);
        if !self.hide_headers {
            // RateLimit-* describe the most constrained limit (the lowest
            // remaining; on a tie, the larger limit), as Kong does.
            for (i, l) in self.limits[..n].iter().enumerate() {
                let rem = (l.max - counts[i]).max(0);
                h.remaining[i] = rem;
                match h.best {
                    Some((b, br, _)) if !(rem < br || (rem == br && l.max > self.limits[b as usize].max)) => {}
                    _ => h.best = Some((i as u8, rem, 0)),
                }
            }
            h.n = n as u8;
            if let Some((b, _, r)) = &mut h.best {
                *r = reset(*b as usize);
            }
        }
        let mut d = Decision::default();
        if let Some(i) = exceeded {
            let retry = common::Int::new(reset(i));
            let mut extra: Vec<(&str, String)> = Vec::new();
            self.header_pairs(h, |k, v| extra.push((k, v.to_string())));
            extra.push(("retry-after", retry.as_str().to_string()));
            let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
            d.reply = Some(common::json_reply(self.error_code, &self.error_message, &extra));
        }
        d
    }

    /// Calls f with each header of h, in Kong's order: each limit's
    /// X-RateLimit-Limit-PERIOD and X-RateLimit-Remaining-PERIOD, then
    /// RateLimit-Limit, -Remaining and -Reset. Names are lower case, as
    /// header maps carry them.
    pub fn header_pairs(&self, h: &RateHeaders, mut f: impl FnMut(&'static str, &str)) {
        // RateLimit-Remaining repeats the best limit's count, written
        // once (the last one written is the best's when there is one
        // limit).
        let mut last: Option<(i64, common::Int)> = None;
        for (l, &rem) in self.limits.iter().zip(&h.remaining[..h.n as usize]) {
            let (limit, remaining) = period_headers(l.period);
            f(limit, l.max_text.as_str());
            let text = common::Int::new(rem);
            f(remaining, text.as_str());
            last = Some((rem, text));
        }
        if let Some((b, rem, reset)) = h.best {
            f("ratelimit-limit", self.limits[b as usize].max_text.as_str());
            let text = match last {
                Some((n, text)) if n == rem => text,
                _ => common::Int::new(rem),
            };
            f("ratelimit-remaining", text.as_str());
            f("ratelimit-reset", common::Int::new(reset).as_str());
        }
    }

    fn store_failed(&self, err: String) -> Decision {
        let reply = if self.fault_tolerant { None } else { Some(common::json_reply(500, "An unexpected error occurred", &[])) };
        Decision { reply, store_error: Some(err) }
    }
}

// ---- glue ----

/// A root context of the plugin, configured by on_configure.
pub fn root() -> Box<dyn RootContext> {
    Box::new(Plugin { p: None })
}

struct Shared {
    lim: Limiter,
    /// "limit_by:", which starts every identifier.
    id_prefix: String,
    store_errors: u32,
    rejected: u32,
    /// The response headers go to the host at request time
    /// (sdk::defer_response_headers).
    deferred: bool,
}

struct Plugin {
    p: Option<Rc<Shared>>,
}

impl RootContext for Plugin {
    fn on_configure(&mut self, _size: usize) -> bool {
        let name = limits::plugin_name(NAME);
        let lim = match common::load_config(NAME, |b| parse(b, &name)) {
            Some(l) => l,
            None => return false,
        };
        let store_errors = limits::counter(NAME, &format!("sluice_rate_limiting_store_errors_total{{plugin=\"{}\",policy=\"{}\"}}", name, lim.policy));
        let rejected = limits::counter(NAME, &format!("sluice_rate_limiting_rejected_total{{plugin=\"{}\"}}", name));
        sdk::log(LogLevel::Info, &format!("{}: policy {} (counters in the host's shared data)", name, lim.policy));
        // Headers shown: decided with the request, so handed to the host
        // then where it applies them at the response (sluice), and the
        // response-headers callback has nothing left to do.
        let deferred = !lim.hide_headers && sdk::enable_deferred_response_headers();
        {
            use sdk::callbacks::*;
            let mut skip = REQUEST_BODY | REQUEST_TRAILERS | RESPONSE_BODY | RESPONSE_TRAILERS | LOG;
            if lim.hide_headers || deferred {
                skip |= RESPONSE_HEADERS;
            }
            let _ = sdk::skip_callbacks(skip);
        }
        let id_prefix = format!("{}:", lim.limit_by);
        self.p = Some(Rc::new(Shared { lim, id_prefix, store_errors, rejected, deferred }));
        true
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        self.p.clone().map(|p| Box::new(Stream { p, headers: RateHeaders::default() }) as Box<dyn HttpContext>)
    }
}

struct Stream {
    p: Rc<Shared>,
    headers: RateHeaders,
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let lim = &self.p.lim;
        let id = lim.identifier_value(&HostRequest);
        let d = lim.decide_for(&mut limits::SharedData, (&self.p.id_prefix, &id), limits::now_seconds(), &mut self.headers);
        if let Some(e) = &d.store_error {
            let _ = sdk::increment_metric(self.p.store_errors, 1);
            let what = if d.reply.is_some() { "rejected" } else { "let through (fault_tolerant)" };
            sdk::log(LogLevel::Warn, &format!("{}: shared store failed, request {}: {}", NAME, what, e));
        }
        if let Some(reply) = &d.reply {
            // The reply carries the headers; its response gets none.
            self.headers = RateHeaders::default();
            if reply.status == lim.error_code {
                let _ = sdk::increment_metric(self.p.rejected, 1);
            }
            reply.send();
            return Action::Pause;
        }
        if self.p.deferred {
            let r = sdk::defer_response_headers(|e| lim.header_pairs(&self.headers, |k, v| e.replace(k, v.as_bytes())));
            common::must(NAME, "deferring response headers", r);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        if self.p.deferred {
            // The host has them (and skips this callback).
            return Action::Continue;
        }
        self.p.lim.header_pairs(&self.headers, |k, v| common::must_on(NAME, "setting", k, sdk::set_http_response_header(k, v)));
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use limits::MemStore;

    fn header<'a, K: AsRef<str>, V: AsRef<str>>(h: &'a [(K, V)], k: &str) -> &'a str {
        h.iter().find(|(n, _)| n.as_ref().eq_ignore_ascii_case(k)).map_or("", |(_, v)| v.as_ref())
    }

    /// A decision with its response headers.
    struct D {
        reply: Option<common::Reply>,
        store_error: Option<String>,
        headers: RateHeaders,
    }

    fn dec(l: &Limiter, s: &mut dyn Store, id: &str, now: i64) -> D {
        let mut headers = RateHeaders { n: 9, best: Some((9, 9, 9)), ..Default::default() };
        let d = l.decide(s, id, now, &mut headers);
        D { reply: d.reply, store_error: d.store_error, headers }
    }

    /// The response headers of a decision, in order.
    fn pairs(l: &Limiter, d: &D) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        l.header_pairs(&d.headers, |k, v| out.push((k, v.to_string())));
        out
    }

    #[test]
    fn response_headers_in_kongs_order() {
        let l = parse(br#"{"second":5,"hour":1000000000000}"#, "rl").unwrap();
        let d = dec(&l, &mut MemStore::default(), "a", 1_700_000_000);
        let want: Vec<(&str, String)> = [
            ("x-ratelimit-limit-second", "5"), ("x-ratelimit-remaining-second", "4"),
            ("x-ratelimit-limit-hour", "1000000000000"), ("x-ratelimit-remaining-hour", "999999999999"),
            ("ratelimit-limit", "5"), ("ratelimit-remaining", "4"), ("ratelimit-reset", "1"),
        ].iter().map(|(k, v)| (*k, v.to_string())).collect();
        assert_eq!(pairs(&l, &d), want);
    }

    #[test]
    fn period_header_names() {
        for (i, p) in PERIODS.iter().enumerate() {
            let (l, r) = period_headers(i);
            assert_eq!((l.to_string(), r.to_string()), (format!("x-ratelimit-limit-{}", p), format!("x-ratelimit-remaining-{}", p)));
        }
    }

    // plugins/src/ratelimiting's TestDecideMinuteLimit.
    #[test]
    fn minute_limit() {
        let l = parse(br#"{"minute":3,"policy":"redis"}"#, "rl").unwrap();
        let mut s = MemStore::default();
        let now = 1_700_000_010;
        let want_reset = limits::window("minute", now).1 - now;
        for i in 1..=3 {
            let d = dec(&l, &mut s, "ip:1.2.3.4", now);
            assert!(d.reply.is_none(), "request {} rejected", i);
            let h = pairs(&l, &d);
            assert_eq!(header(&h, "x-ratelimit-remaining-minute"), (3 - i).to_string());
            assert_eq!(header(&h, "ratelimit-limit"), "3");
        }
        let d = dec(&l, &mut s, "ip:1.2.3.4", now);
        let r = d.reply.unwrap();
        assert_eq!((r.status, r.body.as_str()), (429, r#"{"message":"API rate limit exceeded"}"#));
        assert_eq!(header(&r.headers, "retry-after"), want_reset.to_string());
        assert_eq!(header(&r.headers, "ratelimit-remaining"), "0");
        assert!(dec(&l, &mut s, "ip:5.6.7.8", now).reply.is_none());
        assert!(dec(&l, &mut s, "ip:1.2.3.4", now + 60).reply.is_none());
        assert!(l.key("minute", "x").contains("/redis/"));
    }

    // TestDecideSeveralPeriods.
    #[test]
    fn several_periods() {
        let l = parse(br#"{"second":2,"hour":3}"#, "rl").unwrap();
        let mut s = MemStore::default();
        let now = 1_700_000_000;
        dec(&l, &mut s, "a", now);
        let d = dec(&l, &mut s, "a", now);
        let h = pairs(&l, &d);
        assert_eq!((header(&h, "ratelimit-limit"), header(&h, "ratelimit-remaining")), ("2", "0"));
        assert_eq!(dec(&l, &mut s, "a", now).reply.unwrap().status, 429);
        let d = dec(&l, &mut s, "a", now + 1);
        assert!(d.reply.is_none());
        assert_eq!(header(&pairs(&l, &d), "x-ratelimit-remaining-hour"), "0");
        assert_eq!(dec(&l, &mut s, "a", now + 2).reply.unwrap().status, 429);
        // Once the keys exist: one get and one set per period.
        let (gets, sets) = (s.gets, s.sets);
        assert!(dec(&l, &mut s, "a", now + 3600 * 24).reply.is_none());
        assert_eq!((s.gets - gets, s.sets - sets), (2, 2));
        // A write lost to another one reads the key again.
        let key = l.key("hour", "a");
        let (gets, sets) = (s.gets, s.sets);
        let stale = s.get(&key).unwrap();
        s.set(&key, &stale.0.clone().unwrap(), 0).unwrap();
        let start = limits::window("hour", now + 3600 * 24).0;
        assert_eq!(limits::increment_from(&mut s, &key, start, 1, 3, Some(stale)), Ok((2, true)));
        assert_eq!((s.gets - gets, s.sets - sets), (2, 3));
    }

    // TestDecideHideHeadersAndStoreFailure.
    #[test]
    fn hide_headers_and_store_failure() {
        for (cfg, status) in [(r#"{"minute":5}"#, 0), (r#"{"minute":5,"fault_tolerant":false}"#, 500)] {
            let l = parse(cfg.as_bytes(), "rl").unwrap();
            let mut s = MemStore { fail: Some(sdk::Status::InternalFailure), ..Default::default() };
            let d = dec(&l, &mut s, "a", 0);
            assert_eq!(d.reply.map(|r| r.status).unwrap_or(0), status, "{}", cfg);
            assert!(d.store_error.is_some());
        }
        let l = parse(br#"{"minute":1,"hide_client_headers":true}"#, "rl").unwrap();
        let d = dec(&l, &mut MemStore::default(), "a", 0);
        assert!(pairs(&l, &d).is_empty());
    }

    struct Req {
        headers: Vec<(String, String)>,
        consumer: String,
        ip: String,
    }

    impl Request for Req {
        fn header(&self, name: &str) -> Option<String> {
            common::header(&self.headers, name).map(str::to_string)
        }
        fn consumer(&self) -> String {
            self.consumer.clone()
        }
        fn client_ip(&self) -> String {
            self.ip.clone()
        }
    }

    // TestIdentifier.
    #[test]
    fn identifier() {
        let hs = common::owned(&[(":path", "/api/x?y=1"), ("x-consumer-username", "mallory"), ("x-user", "u7")]);
        let r = Req { headers: hs.clone(), consumer: "alice".into(), ip: "10.0.0.9".into() };
        for (cfg, want) in [
            (r#"{"minute":1}"#, "consumer:alice"),
            (r#"{"minute":1,"limit_by":"ip"}"#, "ip:10.0.0.9"),
            (r#"{"minute":1,"limit_by":"header","header_name":"X-User"}"#, "header:u7"),
            (r#"{"minute":1,"limit_by":"header","header_name":"x-none"}"#, "header:10.0.0.9"),
            (r#"{"minute":1,"limit_by":"path","path":"/api/x"}"#, "path:/api/x"),
            (r#"{"minute":1,"limit_by":"path","path":"/other"}"#, "path:10.0.0.9"),
            (r#"{"minute":1,"limit_by":"service"}"#, "service:service"),
        ] {
            assert_eq!(parse(cfg.as_bytes(), "rl").unwrap().identifier(&r), want, "{}", cfg);
        }
        let r = Req { headers: hs, consumer: String::new(), ip: "10.0.0.9".into() };
        assert_eq!(parse(br#"{"minute":1}"#, "rl").unwrap().identifier(&r), "consumer:10.0.0.9");
    }

    #[test]
    fn parse_errors() {
        for cfg in [
            "{}",
            r#"{"minute":0}"#,
            r#"{"minute":-1}"#,
            r#"{"minute":1.5}"#,
            r#"{"minute":null}"#,
            r#"{"minute":1,"limit_by":"header"}"#,
            r#"{"minute":1,"limit_by":"path"}"#,
            r#"{"minute":1,"limit_by":"cookie"}"#,
            r#"{"minute":1,"policy":"cluster"}"#,
            r#"{"minute":1,"minutes":2}"#,
            r#"{"minute":1,"error_code":-1}"#,
            r#"{"minute":1,"redis_port":"6379"}"#,
            r#"{"minute":1,"sync_rate":"x"}"#,
        ] {
            assert!(parse(cfg.as_bytes(), "rl").is_err(), "parse({}) succeeded", cfg);
        }
        let l = parse(br#"{"minute":1,"redis":{"host":"r"},"redis_host":"r","redis_port":6379,"sync_rate":-1,"error_code":418,"error_message":"slow"}"#, "rl").unwrap();
        let mut s = MemStore::default();
        assert!(dec(&l, &mut s, "a", 0).reply.is_none());
        let r = dec(&l, &mut s, "a", 0).reply.unwrap();
        assert_eq!((r.status, r.body.as_str()), (418, r#"{"message":"slow"}"#));
    }
}
