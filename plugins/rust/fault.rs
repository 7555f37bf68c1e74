//! The fault plugin (wasm = "builtin:fault", Istio's
//! HTTPFaultInjection): delay and/or abort a percentage of requests,
//! optionally only those matching headers.
//!
//! The Rust port of plugins/src/fault: same keys, messages and metrics;
//! durations read as Go's time.ParseDuration, regex matches with Go's
//! syntax (goregexp.rs).

use crate::{common, headermatch, random};
use headermatch::{HeaderMatch, Headers};
use sluice_proxy_wasm::{self as sdk, json, Action, HttpContext, LogLevel, MetricType, RootContext};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// The plugin's root_id.
pub const NAME: &str = "fault";

/// Every key of the configuration, nested ones too, in the Go structs'
/// order: a misspelt one is refused with the nearest of them.
const CONFIG_KEYS: &[&str] = &[
    "delay", "fixedDelay", "fixed_delay", "percentage", "abort", "httpStatus", "http_status", "grpcStatus", "grpc_status", "percentage",
    "match", "headers", "exact", "prefix", "regex", "cookies", "uri", "method", "headers",
];

const GRPC_CODES: &[&str] = &[
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// A validated configuration.
#[derive(Debug)]
pub struct Injector {
    /// Nanoseconds; 0: no delay.
    delay: i64,
    delay_percent: f64,
    abort_http: u32,
    /// -1: not gRPC.
    abort_grpc: i32,
    abort_percent: f64,
    matches: Vec<HeaderMatch>,
}

impl Default for Injector {
    fn default() -> Self {
        Injector { delay: 0, delay_percent: 0.0, abort_http: 0, abort_grpc: -1, abort_percent: 0.0, matches: Vec::new() }
    }
}

/// What to do to one request.
#[derive(Debug, PartialEq)]
pub struct Fault {
    /// Nanoseconds.
    pub delay: i64,
    /// The abort's status; 0: none.
    pub status: u32,
    /// The abort's gRPC status, -1 when not gRPC.
    pub grpc_status: i32,
}

/// Istio's percentage: {value = N} or a bare number (None: unset).
fn percentage(v: &json::Value) -> Result<Option<f64>, String> {
    let bad = |e: &str| Err(format!("config: percentage: want a number or {{value = N}}: {}", e));
    let n = match v {
        // A nil *Percentage: every request.
        json::Value::Null => return Ok(None),
        json::Value::Number(n) => n.clone(),
        json::Value::Object(members) => {
            let mut n = "0".to_string();
            for (k, mv) in members {
                if json::key_name(k) != "value" {
                    return bad(&format!("json: unknown field {:?}", k));
                }
                match mv {
                    json::Value::Null => {}
                    json::Value::Number(x) => n = x.clone(),
                    _ => return bad(&format!("json: cannot unmarshal {} into Go struct field .value of type float64", mv.kind())),
                }
            }
            n
        }
        _ => return bad(&format!("json: cannot unmarshal {} into Go value of type struct {{ Value float64 \"json:\\\"value\\\"\" }}", v.kind())),
    };
    match n.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(Some(x)),
        _ => bad(&format!("json: cannot unmarshal number {} into Go value of type float64", n)),
    }
}

fn percent(p: Option<f64>, where_: &str) -> Result<f64, String> {
    match p {
        None => Ok(100.0), // Istio: unset percentage means every request
        Some(p) if !(0.0..=100.0).contains(&p) => Err(format!("config: {}.percentage: {} is not within 0..100", where_, p)),
        Some(p) => Ok(p),
    }
}

/// Validates a configuration.
pub fn parse(data: &[u8]) -> Result<Injector, String> {
    let mut inj = Injector::default();
    let v = match json::parse_config(data)? {
        Some(v) => v,
        None => return Ok(inj),
    };
    let (mut delay, mut abort): (Option<&json::Value>, Option<&json::Value>) = (None, None);
    let mut matches = Vec::new();
    let mut headers = None;
    for (k, v) in json::object(&v, "fault.Config")? {
        match json::key_name(k).as_str() {
            "delay" => delay = Some(v),
            "abort" => abort = Some(v),
            "match" => matches = headermatch::decode_list(v, "Config.match", "config: match", CONFIG_KEYS)?,
            "headers" => headermatch::merge_map(v, "Config.headers", &mut headers)?,
            _ => return Err(json::unknown_field_of(k, CONFIG_KEYS)),
        }
    }
    if let Some(d) = delay.filter(|d| **d != json::Value::Null) {
        let members = json::object(d, "fault.Delay")?;
        let (mut fixed, mut fixed2, mut pct) = (String::new(), String::new(), None);
        for (k, v) in members {
            match json::key_name(k).as_str() {
                "fixeddelay" => fixed = json::string(v, "Config.delay.fixedDelay")?.unwrap_or(fixed),
                "fixed_delay" => fixed2 = json::string(v, "Config.delay.fixed_delay")?.unwrap_or(fixed2),
                "percentage" => pct = percentage(v)?,
                _ => return Err(json::unknown_field_of(k, CONFIG_KEYS)),
            }
        }
        let s = if fixed.is_empty() { fixed2 } else { fixed };
        inj.delay = match common::parse_duration(&s) {
            Some(d) if d > 0 => d,
            _ => return Err(format!("config: delay.fixedDelay: {:?} is not a positive duration such as \"5s\"", s)),
        };
        inj.delay_percent = percent(pct, "delay")?;
    }
    if let Some(a) = abort.filter(|a| **a != json::Value::Null) {
        let members = json::object(a, "fault.Abort")?;
        let (mut http, mut http2, mut grpc, mut grpc2, mut pct) = (0u32, 0u32, String::new(), String::new(), None);
        for (k, v) in members {
            match json::key_name(k).as_str() {
                "httpstatus" => http = json::unsigned(v, "Config.abort.httpStatus", "uint32", u32::MAX as u64)?.map_or(http, |x| x as u32),
                "http_status" => http2 = json::unsigned(v, "Config.abort.http_status", "uint32", u32::MAX as u64)?.map_or(http2, |x| x as u32),
                "grpcstatus" => grpc = json::string(v, "Config.abort.grpcStatus")?.unwrap_or(grpc),
                "grpc_status" => grpc2 = json::string(v, "Config.abort.grpc_status")?.unwrap_or(grpc2),
                "percentage" => pct = percentage(v)?,
                _ => return Err(json::unknown_field_of(k, CONFIG_KEYS)),
            }
        }
        inj.abort_http = if http == 0 { http2 } else { http };
        let g = if grpc.is_empty() { grpc2 } else { grpc };
        if !g.is_empty() && inj.abort_http != 0 {
            return Err("config: abort: set one of httpStatus, grpcStatus".into());
        } else if !g.is_empty() {
            let up = common::go_to_upper(&g);
            match GRPC_CODES.iter().position(|c| *c == up) {
                Some(code) => inj.abort_grpc = code as i32,
                None => return Err(format!("config: abort.grpcStatus: {:?} is not a gRPC status name such as UNAVAILABLE", g)),
            }
            inj.abort_http = 200;
        } else if !(200..=599).contains(&inj.abort_http) {
            return Err(format!("config: abort.httpStatus: {} is not an HTTP status from 200 to 599", inj.abort_http));
        }
        inj.abort_percent = percent(pct, "abort")?;
    }
    // headers is shorthand for one more match entry.
    let mut entries: Vec<Option<json::Value>> = Vec::new();
    if let Some(h) = headers.filter(|h| !h.is_empty()) {
        entries.push(Some(json::Value::Object(vec![(
            "headers".to_string(),
            json::Value::Object(h.into_iter().map(|(k, v)| (k, v.unwrap_or(json::Value::Null))).collect()),
        )])));
    }
    inj.matches = matches;
    for (i, e) in entries.into_iter().enumerate() {
        let where_ = format!("config: match[{}]", inj.matches.len() + i);
        inj.matches.push(headermatch::decode(&e.unwrap_or(json::Value::Null), "Config.headers", &where_, CONFIG_KEYS)?);
    }
    Ok(inj)
}

impl Injector {
    /// The faults for a request; the rolls are uniform numbers in [0, 100).
    pub fn decide<H: Headers + ?Sized>(&self, h: &H, delay_roll: f64, abort_roll: f64) -> Fault {
        let mut f = Fault { delay: 0, status: 0, grpc_status: -1 };
        if !self.matches.is_empty() && !self.matches.iter().any(|m| m.matches(h)) {
            return f;
        }
        if self.delay > 0 && delay_roll < self.delay_percent {
            f.delay = self.delay;
        }
        if self.abort_http != 0 && abort_roll < self.abort_percent {
            f.grpc_status = self.abort_grpc;
            f.status = if self.abort_grpc >= 0 { 200 } else { self.abort_http };
        }
        f
    }

    /// How often pending delays are checked: a twentieth of the delay,
    /// between 5 ms and 100 ms (in milliseconds).
    pub fn tick_period_ms(&self) -> u32 {
        (self.delay / 20).clamp(5_000_000, 100_000_000) as u32 / 1_000_000
    }
}

/// A root context of the plugin, configured by on_configure.
pub fn root() -> Box<dyn RootContext> {
    Box::new(Plugin { shared: Rc::new(Shared::default()) })
}

/// What the root context and the streams share: the configuration, the
/// metrics, and the delayed streams the root resumes from on_tick (a
/// paused stream cannot wake itself, and the ABI has no per-stream
/// timer).
#[derive(Default)]
struct Shared {
    inj: Injector,
    delayed: u32,
    aborted: u32,
    /// Context id to (wake-up time in host nanoseconds, the fault).
    pending: RefCell<HashMap<u32, (u64, Fault)>>,
}

struct Plugin {
    shared: Rc<Shared>,
}

impl RootContext for Plugin {
    fn on_configure(&mut self, _size: usize) -> bool {
        let inj = match common::load_config(NAME, parse) {
            Some(i) => i,
            None => return false,
        };
        if inj.delay > 0 {
            if let Err(e) = sdk::set_tick_period_milliseconds(inj.tick_period_ms()) {
                sdk::log(LogLevel::Critical, &format!("{}: delays need ticks: {:?}", NAME, e));
                return false;
            }
        }
        let name = match sdk::get_property(&["plugin_name"]) {
            Ok(Some(n)) => String::from_utf8_lossy(&n).into_owned(),
            _ => String::new(),
        };
        let metric = |what: &str| sdk::define_metric(MetricType::Counter, &format!("sluice_fault_{}_injected_total{{plugin=\"{}\"}}", what, name)).unwrap_or(0);
        self.shared = Rc::new(Shared { inj, delayed: metric("delays"), aborted: metric("aborts"), pending: RefCell::default() });
        common::skip_all_but_request_headers();
        true
    }

    fn on_tick(&mut self) {
        if self.shared.pending.borrow().is_empty() {
            return;
        }
        let now = sdk::get_current_time_nanoseconds().unwrap_or_else(|e| {
            sdk::log(LogLevel::Warn, &format!("reading host time: {:?}", e));
            0
        });
        let due: Vec<(u32, Fault)> = {
            let mut p = self.shared.pending.borrow_mut();
            let ids: Vec<u32> = p.iter().filter(|(_, (wake, _))| now >= *wake).map(|(id, _)| *id).collect();
            ids.into_iter().filter_map(|id| p.remove(&id).map(|(_, f)| (id, f))).collect()
        };
        for (id, f) in due {
            if let Err(e) = sdk::set_effective_context(id) {
                sdk::log(LogLevel::Warn, &format!("{}: stream {} gone before its delay ended: {:?}", NAME, id, e));
                continue;
            }
            if f.status != 0 {
                abort(&self.shared, &f);
            } else {
                common::must(NAME, "resuming a delayed request", sdk::resume_http_request());
            }
        }
    }

    fn create_http_context(&self, id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream { shared: self.shared.clone(), id }))
    }
}

fn abort(shared: &Shared, f: &Fault) {
    let _ = sdk::increment_metric(shared.aborted, 1);
    let r = if f.grpc_status >= 0 {
        sdk::send_local_response(200, &[("content-type", b"application/grpc")], b"", f.grpc_status)
    } else {
        sdk::send_local_response(f.status, &[("content-type", b"text/plain")], b"fault filter abort", -1)
    };
    common::must(NAME, "sending the abort", r);
}

struct Stream {
    shared: Rc<Shared>,
    id: u32,
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        // Without matches the faults apply to every request: no header
        // is read.
        let h = if self.shared.inj.matches.is_empty() {
            sdk::HeaderPairs::parse(Vec::new())
        } else {
            common::request_header_pairs(NAME)
        };
        let f = self.shared.inj.decide(&h, random::float64() * 100.0, random::float64() * 100.0);
        if f.delay > 0 {
            let _ = sdk::increment_metric(self.shared.delayed, 1);
            let now = sdk::get_current_time_nanoseconds().unwrap_or(0);
            self.shared.pending.borrow_mut().insert(self.id, (now + f.delay as u64, f));
            return Action::Pause;
        }
        if f.status != 0 {
            abort(&self.shared, &f);
            return Action::Pause;
        }
        Action::Continue
    }
}

// A stream whose client left during its delay is forgotten.
impl Drop for Stream {
    fn drop(&mut self) {
        self.shared.pending.borrow_mut().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(p: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        p.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
    }

    const S: i64 = 1_000_000_000;

    // plugins/src/fault's TestDecide.
    #[test]
    fn decide() {
        let cases: &[(&str, &str, &[(&str, &str)], f64, f64, i64, u32, i32)] = &[
            ("nothing", "{}", &[], 0.0, 0.0, 0, 0, -1),
            ("delay always", r#"{"delay":{"fixedDelay":"2s"}}"#, &[], 99.9, 0.0, 2 * S, 0, -1),
            ("delay 10% hit", r#"{"delay":{"fixedDelay":"5s","percentage":{"value":10}}}"#, &[], 9.9, 0.0, 5 * S, 0, -1),
            ("delay 10% miss", r#"{"delay":{"fixedDelay":"5s","percentage":{"value":10}}}"#, &[], 10.0, 0.0, 0, 0, -1),
            ("abort http", r#"{"abort":{"httpStatus":503,"percentage":50}}"#, &[], 0.0, 49.0, 0, 503, -1),
            ("abort miss", r#"{"abort":{"httpStatus":503,"percentage":50}}"#, &[], 0.0, 51.0, 0, 0, -1),
            ("abort grpc", r#"{"abort":{"grpcStatus":"UNAVAILABLE"}}"#, &[], 0.0, 0.0, 0, 200, 14),
            ("grpc lower case", r#"{"abort":{"grpcStatus":"unavailable"}}"#, &[], 0.0, 0.0, 0, 200, 14),
            ("both", r#"{"delay":{"fixed_delay":"1s"},"abort":{"http_status":500}}"#, &[], 0.0, 0.0, S, 500, -1),
            ("header match", r#"{"abort":{"httpStatus":418},"headers":{"x-fault":{"exact":"yes"}}}"#, &[("x-fault", "yes")], 0.0, 0.0, 0, 418, -1),
            ("header mismatch", r#"{"abort":{"httpStatus":418},"headers":{"x-fault":{"exact":"yes"}}}"#, &[("x-fault", "no")], 0.0, 0.0, 0, 0, -1),
            (
                "match list",
                r#"{"abort":{"httpStatus":418},"match":[{"uri":{"prefix":"/a"}},{"uri":{"prefix":"/b"}}]}"#,
                &[(":path", "/b/1")],
                0.0,
                0.0,
                0,
                418,
                -1,
            ),
        ];
        for &(name, cfg, hs, dr, ar, delay, status, grpc) in cases {
            let inj = parse(cfg.as_bytes()).unwrap_or_else(|e| panic!("{}: {}", name, e));
            assert_eq!(inj.decide(&h(hs), dr, ar), Fault { delay, status, grpc_status: grpc }, "{}", name);
        }
    }

    #[test]
    fn parse_errors_and_ticks() {
        for cfg in [
            r#"{"delay":{"fixedDelay":"soon"}}"#,
            r#"{"delay":{"fixedDelay":"-1s"}}"#,
            r#"{"delay":{}}"#,
            r#"{"abort":{"httpStatus":42}}"#,
            r#"{"abort":{}}"#,
            r#"{"abort":{"grpcStatus":"NOPE"}}"#,
            r#"{"abort":{"grpcStatus":"PERMIßION_DENIED"}}"#,
            r#"{"abort":{"httpStatus":503,"grpcStatus":"INTERNAL"}}"#,
            r#"{"abort":{"httpStatus":503,"percentage":{"value":101}}}"#,
            r#"{"abort":{"httpStatus":503,"percentage":{"val":1}}}"#,
            r#"{"abort":{"httpStatus":503,"percentage":"5"}}"#,
            r#"{"abort":{"httpStatus":503,"percentage":1e400}}"#,
            r#"{"delays":{}}"#,
            r#"{"headers":{"x":null}}"#,
        ] {
            let e = parse(cfg.as_bytes()).expect_err(cfg);
            assert!(e.starts_with("config: "), "{}: {}", cfg, e);
        }
        for (cfg, want) in [(r#"{"delay":{"fixedDelay":"10ms"}}"#, 5), (r#"{"delay":{"fixedDelay":"1s"}}"#, 50), (r#"{"delay":{"fixedDelay":"1m"}}"#, 100)] {
            assert_eq!(parse(cfg.as_bytes()).unwrap().tick_period_ms(), want, "{}", cfg);
        }
        // Unset percentage: every request; null likewise.
        assert_eq!(parse(br#"{"abort":{"httpStatus":503,"percentage":null}}"#).unwrap().abort_percent, 100.0);
        assert_eq!(parse(br#"{"abort":{"httpStatus":503,"percentage":{}}}"#).unwrap().abort_percent, 0.0);
    }

    #[test]
    fn durations_as_go() {
        let ok: &[(&str, i64)] = &[
            ("0", 0),
            ("5s", 5 * S),
            ("1.5s", 1_500_000_000),
            (".5s", 500_000_000),
            ("1.s", S),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("2\u{b5}s", 2000),
            ("2\u{3bc}s", 2000),
            ("-1s", -S),
            ("+1s", S),
            ("9223372036854775807ns", i64::MAX),
            ("0.000000001s", 1),
        ];
        for &(s, want) in ok {
            assert_eq!(common::parse_duration(s), Some(want), "{}", s);
        }
        for s in ["", "s", "1", ".s", "1x", "1e3s", "9223372036854775808ns", "-", "1s ", " 1s", "1.5.5s", "10000000000000000000s"] {
            assert_eq!(common::parse_duration(s), None, "{}", s);
        }
    }
}
