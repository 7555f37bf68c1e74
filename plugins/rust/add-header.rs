//! The add-header plugin (wasm = "builtin:add-header"): fixed headers added
//! to every request, before it goes upstream, and to every response;
//! existing values are kept (the header gets a second value).
//!
//! The Rust port of plugins/src/addheader: same keys, same messages.

use crate::common;
use sluice_proxy_wasm::{self as sdk, callbacks, json, Action, HttpContext, LogLevel, RootContext};
use std::rc::Rc;

/// The plugin's root_id.
pub const NAME: &str = "add-header";

/// A validated configuration: lower-case names, sorted by name.
#[derive(Debug, Default, PartialEq)]
pub struct Config {
    pub request_headers: Vec<(String, String)>,
    pub response_headers: Vec<(String, String)>,
}

/// Every key of the configuration, nested ones too: a misspelt one is
/// refused with the nearest of them.
const CONFIG_KEYS: &[&str] = &["request_headers", "response_headers"];

/// Validates a configuration ({"request_headers": {...}, "response_headers": {...}}).
pub fn parse(data: &[u8]) -> Result<Config, String> {
    let (mut req, mut resp) = (Vec::new(), Vec::new());
    if let Some(v) = json::parse_config(data)? {
        for (k, v) in json::object(&v, "addheader.Config")? {
            match json::key_name(k).as_str() {
                "request_headers" => json::merge_string_map(v, "Config.request_headers", &mut req)?,
                "response_headers" => json::merge_string_map(v, "Config.response_headers", &mut resp)?,
                _ => return Err(json::unknown_field_of(k, CONFIG_KEYS)),
            }
        }
    }
    Ok(Config { request_headers: sorted(req, "request_headers")?, response_headers: sorted(resp, "response_headers")? })
}

fn sorted(m: Vec<(String, String)>, key: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::with_capacity(m.len());
    for (k, v) in m {
        if k.is_empty() || k.starts_with(':') {
            return Err(format!("config: {}: {:?} is not a header name that may be added", key, k));
        }
        out.push((k.to_lowercase(), v));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// A root context of the plugin, configured by on_configure.
pub fn root() -> Box<dyn RootContext> {
    Box::new(Plugin { config: Rc::new(Config::default()) })
}

struct Plugin {
    config: Rc<Config>,
}

impl RootContext for Plugin {
    fn on_configure(&mut self, _size: usize) -> bool {
        match common::load_config(NAME, parse) {
            Some(c) => self.config = Rc::new(c),
            None => return false,
        }
        // Only the header callbacks do anything: the host need not enter
        // the guest for the others (nor for response headers when none
        // are configured).
        let mut skip = callbacks::REQUEST_BODY
            | callbacks::REQUEST_TRAILERS
            | callbacks::RESPONSE_BODY
            | callbacks::RESPONSE_TRAILERS
            | callbacks::LOG;
        if self.config.response_headers.is_empty() {
            skip |= callbacks::RESPONSE_HEADERS;
        }
        let _ = sdk::skip_callbacks(skip);
        true
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream { config: self.config.clone() }))
    }
}

struct Stream {
    config: Rc<Config>,
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        for (k, v) in &self.config.request_headers {
            if let Err(e) = sdk::add_http_request_header(k, v) {
                sdk::log(LogLevel::Error, &format!("{}: adding request header {:?}: {:?}", NAME, k, e));
            }
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        for (k, v) in &self.config.response_headers {
            if let Err(e) = sdk::add_http_response_header(k, v) {
                sdk::log(LogLevel::Error, &format!("{}: adding response header {:?}: {:?}", NAME, k, e));
            }
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use common::owned as pairs;

    // The cases of plugins/src/addheader's TestParse, and a few more.
    #[test]
    fn parse_cases() {
        struct Case {
            name: &'static str,
            config: &'static str,
            req: &'static [(&'static str, &'static str)],
            resp: &'static [(&'static str, &'static str)],
            err: &'static str,
        }
        let cases = [
            Case { name: "empty", config: "", req: &[], resp: &[], err: "" },
            Case { name: "null", config: "null", req: &[], resp: &[], err: "" },
            Case {
                name: "both",
                config: r#"{"request_headers":{"X-B":"2","x-a":"1"},"response_headers":{"x-served-by":"sluice"}}"#,
                req: &[("x-a", "1"), ("x-b", "2")],
                resp: &[("x-served-by", "sluice")],
                err: "",
            },
            Case { name: "keys match as Go's do", config: r#"{"Request_Headers":{"a":"b"}}"#, req: &[("a", "b")], resp: &[], err: "" },
            Case { name: "unknown key", config: r#"{"request_header":{"a":"b"}}"#, req: &[], resp: &[], err: "unknown field" },
            Case { name: "pseudo header", config: r#"{"request_headers":{":path":"/x"}}"#, req: &[], resp: &[], err: "not a header name" },
            Case { name: "empty name", config: r#"{"response_headers":{"":"x"}}"#, req: &[], resp: &[], err: "not a header name" },
            Case { name: "not json", config: "request_headers=1", req: &[], resp: &[], err: "config" },
            Case { name: "not an object", config: "[1]", req: &[], resp: &[], err: "cannot unmarshal array" },
            Case { name: "value not a string", config: r#"{"request_headers":{"a":1}}"#, req: &[], resp: &[], err: "cannot unmarshal number" },
        ];
        for c in cases {
            match parse(c.config.as_bytes()) {
                Ok(got) => {
                    assert!(c.err.is_empty(), "{}: accepted, want an error containing {:?}", c.name, c.err);
                    assert_eq!(got.request_headers, pairs(c.req), "{}", c.name);
                    assert_eq!(got.response_headers, pairs(c.resp), "{}", c.name);
                }
                Err(e) => {
                    assert!(!c.err.is_empty() && e.contains(c.err), "{}: err = {:?}, want one containing {:?}", c.name, e, c.err);
                    assert!(e.starts_with("config: "), "{}: {:?}", c.name, e);
                }
            }
        }
    }
}
