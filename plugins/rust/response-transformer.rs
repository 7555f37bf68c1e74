//! The response-transformer plugin (wasm = "builtin:response-transformer"):
//! Kong's response-transformer, on response headers and JSON bodies.
//!
//! The Rust port of plugins/src/responsetransformer: same keys, messages
//! and results (bodies written as Go's encoding/json writes them).

use crate::{common, transform};
use sluice_proxy_wasm::{self as sdk, callbacks, json, Action, HttpContext, LogLevel, RootContext};
use std::rc::Rc;
use transform::{JsonTypes, Ops, Request};

/// The plugin's root_id.
pub const NAME: &str = "response-transformer";

#[derive(Default)]
struct Lists {
    headers: Vec<String>,
    json: Vec<String>,
    json_types: Vec<String>,
    body: Option<String>,
}

fn lists(v: &json::Value, key: &str) -> Result<Lists, String> {
    transform::lists(v, key, "responsetransformer.Lists", CONFIG_KEYS, |l: &mut Lists, name, v, field| {
        match name {
            "headers" => l.headers = json::string_list(v, field)?,
            "json" => l.json = json::string_list(v, field)?,
            "json_types" => l.json_types = json::string_list(v, field)?,
            // A *string: null unsets it.
            "body" => l.body = json::string(v, field)?,
            _ => return Ok(false),
        }
        Ok(true)
    })
}

/// A validated configuration.
pub struct Transformer {
    headers: Ops,
    json: Ops,
    types: JsonTypes,
    body: Option<String>,
}

/// Every key of the configuration, nested ones too: a misspelt one is
/// refused with the nearest of them.
const CONFIG_KEYS: &[&str] = &["add", "append", "body", "headers", "json", "json_types", "remove", "rename", "replace"];

/// Validates a configuration.
pub fn parse(data: &[u8]) -> Result<Transformer, String> {
    let (mut remove, mut rename, mut replace, mut add, mut append) =
        (Lists::default(), Lists::default(), Lists::default(), Lists::default(), Lists::default());
    if let Some(v) = json::parse_config(data)? {
        for (k, v) in json::object(&v, "responsetransformer.Config")? {
            let key = json::key_name(k);
            let l = lists(v, &key)?;
            match key.as_str() {
                "remove" => remove = l,
                "rename" => rename = l,
                "replace" => replace = l,
                "add" => add = l,
                "append" => append = l,
                _ => return Err(json::unknown_field_of(k, CONFIG_KEYS)),
            }
        }
    }
    for (k, l) in [("remove", &remove), ("rename", &rename), ("add", &add), ("append", &append)] {
        if l.body.is_some() {
            return Err(format!("config: {}.body: only replace.body exists", k));
        }
    }
    let headers = transform::parse_ops("headers", &remove.headers, &rename.headers, &replace.headers, &add.headers, &append.headers)?;
    for n in remove.headers.iter().chain(add.headers.iter()) {
        if n.starts_with(':') {
            return Err(format!("config: headers: {:?}: pseudo-headers cannot be changed", n));
        }
    }
    let json = transform::parse_ops("json", &remove.json, &rename.json, &replace.json, &add.json, &append.json)?;
    let types = JsonTypes { replace: replace.json_types, add: add.json_types, append: append.json_types };
    Ok(Transformer { headers, json, types, body: replace.body })
}

impl Transformer {
    /// Whether the configuration only adds fixed response headers (no
    /// body, no JSON): then they are added by hostcalls, the map not
    /// copied.
    pub fn headers_only_additions(&self) -> bool {
        self.body.is_none() && self.json.is_empty() && self.headers.additions_only()
    }

    /// The response headers transformed, whether they changed, and whether
    /// the body is to be transformed too.
    pub fn headers(&self, h: &[(String, String)]) -> (Vec<(String, String)>, bool, bool) {
        let out = self.headers.headers(h, &Request::default());
        let changed = out.as_slice() != h;
        let ct = common::header(&out, "content-type").unwrap_or("");
        let body = self.body.is_some() || (!self.json.is_empty() && transform::is_json(ct));
        (out, changed, body)
    }

    /// The body transformed, or None to leave it.
    pub fn body(&self, body: &[u8]) -> Option<Vec<u8>> {
        if let Some(b) = &self.body {
            return Some(b.clone().into_bytes());
        }
        self.json.json(body, &Request::default(), &self.types)
    }
}

/// A root context of the plugin, configured by on_configure.
pub fn root() -> Box<dyn RootContext> {
    Box::new(Plugin { t: None })
}

struct Plugin {
    t: Option<Rc<Transformer>>,
}

impl RootContext for Plugin {
    fn on_configure(&mut self, _size: usize) -> bool {
        self.t = common::load_config(NAME, parse).map(Rc::new);
        if let Some(t) = &self.t {
            // Only the response is transformed, and its body only when a
            // body operation is configured.
            let mut skip = callbacks::REQUEST_HEADERS | callbacks::REQUEST_BODY | callbacks::REQUEST_TRAILERS | callbacks::RESPONSE_TRAILERS | callbacks::LOG;
            if t.body.is_none() && t.json.is_empty() {
                skip |= callbacks::RESPONSE_BODY;
            }
            let _ = sdk::skip_callbacks(skip);
        }
        self.t.is_some()
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        self.t.clone().map(|t| Box::new(Stream { t, body: false }) as Box<dyn HttpContext>)
    }
}

struct Stream {
    t: Rc<Transformer>,
    body: bool,
}

impl HttpContext for Stream {
    fn on_http_response_headers(&mut self, _n: usize, eos: bool) -> Action {
        if self.t.headers_only_additions() {
            if let Err(e) = self.t.headers.add_in_place(NAME, sdk::MapType::HttpResponseHeaders) {
                sdk::log(LogLevel::Error, &format!("{}: adding response headers: {:?}", NAME, e));
            }
            return Action::Continue;
        }
        let (mut out, mut changed, body) = self.t.headers(&common::response_headers(NAME));
        if body && !eos {
            // The body changes length.
            out.retain(|(k, _)| k != "content-length");
            changed = true;
            self.body = true;
        }
        if changed {
            common::replace_headers(NAME, sdk::MapType::HttpResponseHeaders, "response", &out);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, eos: bool) -> Action {
        if !self.body {
            return Action::Continue;
        }
        if !eos {
            return Action::Pause; // buffer until the whole body is here
        }
        let b = match sdk::get_http_response_body(0, size) {
            Ok(b) => b.unwrap_or_default(),
            Err(e) if size > 0 => {
                sdk::log(LogLevel::Error, &format!("{}: reading the response body: {:?}", NAME, e));
                return Action::Continue;
            }
            Err(_) => Vec::new(),
        };
        if let Some(out) = self.t.body(&b) {
            common::must(NAME, "replacing the response body", sdk::set_http_response_body(&out));
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use common::owned as h;

    // plugins/src/responsetransformer's TestHeadersAndJSON.
    #[test]
    fn headers_and_json() {
        let tr = parse(
            br#"{"remove":{"headers":["server"],"json":["internal"]},
		"rename":{"headers":["x-old:x-new"]},"replace":{"headers":["x-v:2"],"json":["status:ok"]},
		"add":{"headers":["x-served-by:sluice","x-v:ignored"],"json":["n:1"],"json_types":["number"]},
		"append":{"headers":["x-multi:b"],"json":["list:c"]}}"#,
        )
        .unwrap();
        let input = h(&[(":status", "200"), ("server", "up"), ("x-old", "o"), ("x-v", "1"), ("x-multi", "a"), ("content-type", "application/json")]);
        let (out, changed, body) = tr.headers(&input);
        assert!(changed && body);
        for (k, w) in [("server", ""), ("x-old", ""), ("x-new", "o"), ("x-v", "2"), ("x-served-by", "sluice"), (":status", "200")] {
            let got = common::header(&out, k);
            assert_eq!(got.unwrap_or(""), w, "{}", k);
            assert!(!(w.is_empty() && got.is_some()), "{} present", k);
        }
        assert_eq!(out.iter().filter(|(k, _)| k == "x-multi").count(), 2);
        let b = tr.body(br#"{"internal":"x","status":"bad","list":"a"}"#).unwrap();
        assert_eq!(String::from_utf8(b).unwrap(), r#"{"list":["a","c"],"n":1,"status":"ok"}"#);
        assert!(!tr.headers(&h(&[("content-type", "text/html")])).2, "an HTML body was selected for JSON transformation");
    }

    // TestReplaceBody.
    #[test]
    fn replace_body() {
        let tr = parse(br#"{"replace":{"body":"{\"message\":\"hidden\"}"}}"#).unwrap();
        assert!(tr.headers(&h(&[("content-type", "text/plain")])).2);
        assert_eq!(tr.body(b"anything").unwrap(), br#"{"message":"hidden"}"#.to_vec());
    }

    // TestParseErrors, and a few more.
    #[test]
    fn parse_errors() {
        for cfg in [
            r#"{"add":{"headers":["x"]}}"#,
            r#"{"add":{"body":"x"}}"#,
            r#"{"remove":{"headers":[":status"]}}"#,
            r#"{"add":{"querystring":["a:b"]}}"#,
            r#"{"add":{"headers":[":authority:x"]}}"#,
            r#"{"remove":{"json":[" "]}}"#,
            r#"{"add":{"json":["a:$(headers.x"]}}"#,
            r#"{"add":[]}"#,
            r#"{"other":{}}"#,
        ] {
            assert!(parse(cfg.as_bytes()).is_err(), "parse({}) succeeded", cfg);
        }
        assert!(parse(br#"{"replace":{"body":null},"add":null}"#).unwrap().body.is_none());
    }
}
