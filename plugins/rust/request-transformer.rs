//! The request-transformer plugin (wasm = "builtin:request-transformer"):
//! Kong's request-transformer, on request headers, the query string, the
//! method and path, and JSON or URL-encoded form bodies.
//!
//! The Rust port of plugins/src/requesttransformer: same keys, messages
//! and results.

use crate::{common, transform};
use sluice_proxy_wasm::{self as sdk, callbacks, json, Action, HttpContext, LogLevel, RootContext};
use std::rc::Rc;
use transform::{JsonTypes, Ops, Request};

/// The plugin's root_id.
pub const NAME: &str = "request-transformer";

#[derive(Default)]
struct Lists {
    headers: Vec<String>,
    querystring: Vec<String>,
    body: Vec<String>,
    uri: String,
    json_types: Vec<String>,
}

fn lists(v: &json::Value, key: &str) -> Result<Lists, String> {
    transform::lists(v, key, "requesttransformer.Lists", CONFIG_KEYS, |l: &mut Lists, name, v, field| {
        match name {
            "headers" => l.headers = json::string_list(v, field)?,
            "querystring" => l.querystring = json::string_list(v, field)?,
            "body" => l.body = json::string_list(v, field)?,
            "uri" => l.uri = json::string(v, field)?.unwrap_or(std::mem::take(&mut l.uri)),
            "json_types" => l.json_types = json::string_list(v, field)?,
            _ => return Ok(false),
        }
        Ok(true)
    })
}

/// A validated configuration.
pub struct Transformer {
    method: String,
    uri: String,
    headers: Ops,
    query: Ops,
    body: Ops,
    types: JsonTypes,
    /// headers_only_additions, decided once.
    only_additions: bool,
}

/// Every key of the configuration, nested ones too: a misspelt one is
/// refused with the nearest of them.
const CONFIG_KEYS: &[&str] = &["add", "append", "body", "headers", "json_types", "querystring", "remove", "rename", "replace", "uri"];

/// Validates a configuration.
pub fn parse(data: &[u8]) -> Result<Transformer, String> {
    let mut method = String::new();
    let (mut remove, mut rename, mut replace, mut add, mut append) =
        (Lists::default(), Lists::default(), Lists::default(), Lists::default(), Lists::default());
    if let Some(v) = json::parse_config(data)? {
        for (k, v) in json::object(&v, "requesttransformer.Config")? {
            let key = json::key_name(k);
            if key == "http_method" {
                method = json::string(v, "Config.http_method")?.unwrap_or(method);
                continue;
            }
            let l = match key.as_str() {
                "remove" | "rename" | "replace" | "add" | "append" => lists(v, &key)?,
                _ => return Err(json::unknown_field_of(k, CONFIG_KEYS)),
            };
            match key.as_str() {
                "remove" => remove = l,
                "rename" => rename = l,
                "replace" => replace = l,
                "add" => add = l,
                _ => append = l,
            }
        }
    }
    for (k, l) in [("remove", &remove), ("rename", &rename), ("add", &add), ("append", &append)] {
        if !l.uri.is_empty() {
            return Err(format!("config: {}.uri: only replace.uri exists", k));
        }
    }
    let uri = replace.uri.clone();
    if !uri.is_empty() && !uri.starts_with('/') {
        return Err(format!("config: replace.uri: {:?} must start with /", uri));
    }
    let headers = transform::parse_ops("headers", &remove.headers, &rename.headers, &replace.headers, &add.headers, &append.headers)?;
    let mut names = headers.remove.clone();
    for ps in [&headers.rename, &headers.replace, &headers.add, &headers.append] {
        names.extend(ps.iter().map(|p| p.name.clone()));
    }
    names.extend(headers.rename.iter().map(|p| p.value.clone()));
    for n in names {
        if n.starts_with(':') {
            return Err(format!("config: headers: {:?} is a pseudo-header; use http_method or replace.uri", n));
        }
    }
    let query = transform::parse_ops("querystring", &remove.querystring, &rename.querystring, &replace.querystring, &add.querystring, &append.querystring)?;
    let body = transform::parse_ops("body", &remove.body, &rename.body, &replace.body, &add.body, &append.body)?;
    for ty in replace.json_types.iter().chain(add.json_types.iter()).chain(append.json_types.iter()) {
        if ty != "string" && ty != "number" && ty != "boolean" {
            return Err(format!("config: json_types: {:?} is not string, number or boolean", ty));
        }
    }
    let types = JsonTypes { replace: replace.json_types, add: add.json_types, append: append.json_types };
    let mut t = Transformer { method: method.to_uppercase(), uri, headers, query, body, types, only_additions: false };
    t.only_additions = t.method.is_empty() && t.uri.is_empty() && t.query.is_empty() && t.body.is_empty() && t.headers.additions_only();
    Ok(t)
}

/// What the request headers give.
pub struct Outcome {
    pub headers: Vec<(String, String)>,
    pub changed: bool,
    /// The body is to be transformed (as a form when form).
    pub transform_body: bool,
    pub form: bool,
    /// The request as it arrived, for the body's templates.
    pub template: Request,
}

fn set_pseudo(h: &mut Vec<(String, String)>, name: &str, value: String) {
    match h.iter_mut().find(|(k, _)| k == name) {
        Some(e) => e.1 = value,
        None => h.insert(0, (name.to_string(), value)),
    }
}

impl Transformer {
    /// Whether the configuration only adds fixed request headers: then
    /// they are added by hostcalls, the map not copied.
    pub fn headers_only_additions(&self) -> bool {
        self.only_additions
    }

    pub fn request(&self, h: &[(String, String)]) -> Outcome {
        let (path, raw) = common::split_path(common::header(h, ":path").unwrap_or(""));
        // The request as it arrived (a copy of every header and the query)
        // only when a template or the body's transformation reads it.
        let want_template = !self.body.is_empty() || self.headers.templated() || self.query.templated();
        let mut q = Vec::new();
        if want_template || !self.query.is_empty() || !self.uri.is_empty() {
            q = common::query_values(raw).0;
        }
        let template = if want_template { Request { headers: h.to_vec(), query: q.clone() } } else { Request::default() };
        let mut out = self.headers.headers(h, &template);
        if !self.query.is_empty() || !self.uri.is_empty() {
            self.query.query(&mut q, &template);
            let mut np = if self.uri.is_empty() { path.to_string() } else { self.uri.clone() };
            let enc = common::encode_query(&q);
            if !enc.is_empty() {
                np.push('?');
                np.push_str(&enc);
            }
            set_pseudo(&mut out, ":path", np);
        }
        if !self.method.is_empty() {
            set_pseudo(&mut out, ":method", self.method.clone());
        }
        let changed = out.as_slice() != h;
        let (mut transform_body, mut form) = (false, false);
        if !self.body.is_empty() {
            let ct = common::header(&out, "content-type").unwrap_or("");
            if transform::is_json(ct) {
                transform_body = true;
            } else if transform::is_form(ct) {
                transform_body = true;
                form = true;
            }
        }
        Outcome { headers: out, changed, transform_body, form, template }
    }

    /// The body transformed, or None to leave it.
    pub fn body(&self, body: &[u8], template: &Request, form: bool) -> Option<Vec<u8>> {
        if form {
            let (mut q, ok) = common::query_values(&String::from_utf8_lossy(body));
            if !ok {
                return None;
            }
            self.body.query(&mut q, template);
            return Some(common::encode_query(&q).into_bytes());
        }
        self.body.json(body, template, &self.types)
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
            // Only the request is transformed, and its body only when a
            // body operation is configured.
            let mut skip = callbacks::REQUEST_TRAILERS | callbacks::RESPONSE_HEADERS | callbacks::RESPONSE_BODY | callbacks::RESPONSE_TRAILERS | callbacks::LOG;
            if t.body.is_empty() {
                skip |= callbacks::REQUEST_BODY;
            }
            let _ = sdk::skip_callbacks(skip);
        }
        self.t.is_some()
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        self.t.clone().map(|t| Box::new(Stream { t, body: None }) as Box<dyn HttpContext>)
    }
}

struct Stream {
    t: Rc<Transformer>,
    /// Set when the body is to be transformed: form or not, and the
    /// request as it arrived.
    body: Option<(bool, Request)>,
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _n: usize, eos: bool) -> Action {
        if self.t.headers_only_additions() {
            if let Err(e) = self.t.headers.add_in_place(NAME, sdk::MapType::HttpRequestHeaders) {
                sdk::log(LogLevel::Error, &format!("{}: adding request headers: {:?}", NAME, e));
            }
            return Action::Continue;
        }
        let mut r = self.t.request(&common::request_headers(NAME));
        if r.transform_body && !eos {
            // The body changes length.
            r.headers.retain(|(k, _)| k != "content-length");
            r.changed = true;
            self.body = Some((r.form, r.template));
        }
        if r.changed {
            common::replace_headers(NAME, sdk::MapType::HttpRequestHeaders, "request", &r.headers);
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, size: usize, eos: bool) -> Action {
        let (form, template) = match &self.body {
            Some(b) => b,
            None => return Action::Continue,
        };
        if !eos {
            return Action::Pause; // buffer until the whole body is here
        }
        let b = match sdk::get_http_request_body(0, size) {
            Ok(Some(b)) => b,
            other => {
                sdk::log(LogLevel::Error, &format!("{}: reading the request body: {:?}", NAME, other.err().unwrap_or(sdk::Status::Empty)));
                return Action::Continue;
            }
        };
        if let Some(out) = self.t.body(&b, template, *form) {
            common::must(NAME, "replacing the request body", sdk::set_http_request_body(&out));
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use common::owned as h;

    // plugins/src/requesttransformer's TestRequestHeadersAndQuery.
    #[test]
    fn request_headers_and_query() {
        let input = h(&[(":method", "GET"), (":path", "/v1/items?a=1&drop=x&old=7"), (":authority", "api"), ("x-remove", "1"), ("x-old", "o"),
            ("x-rep", "before"), ("x-have", "keep"), ("user-agent", "curl/8")]);
        let cases: &[(&str, &str, &[(&str, &str)])] = &[
            ("kong example", r#"{"add":{"headers":["X-Request-Source:external"]}}"#,
                &[("x-request-source", "external"), (":path", "/v1/items?a=1&drop=x&old=7")]),
            ("order and conditions", r#"{
			"remove":{"headers":["x-remove"],"querystring":["drop"]},
			"rename":{"headers":["x-old:x-new"],"querystring":["old:new"]},
			"replace":{"headers":["x-rep:after","x-absent:nope"],"querystring":["a:2"]},
			"add":{"headers":["x-have:ignored","x-added:$(headers.user_agent)"],"querystring":["q:$(query_params.a)"]},
			"append":{"headers":["x-have:second"]}}"#,
                &[("x-remove", ""), ("x-old", ""), ("x-new", "o"), ("x-rep", "after"), ("x-absent", ""), ("x-have", "keep"), ("x-added", "curl/8"),
                  (":path", "/v1/items?a=2&new=7&q=1")]),
            ("method and uri", r#"{"http_method":"post","replace":{"uri":"/v2/items"}}"#,
                &[(":method", "POST"), (":path", "/v2/items?a=1&drop=x&old=7")]),
            ("bracket template", r#"{"add":{"headers":["x-t:[$(headers[\"x-have\"])]"]}}"#, &[("x-t", "[keep]")]),
        ];
        for (name, cfg, want) in cases {
            let tr = parse(cfg.as_bytes()).unwrap_or_else(|e| panic!("{}: {}", name, e));
            let r = tr.request(&input);
            assert!(r.changed, "{}: changed = false", name);
            for (k, w) in *want {
                let got = common::header(&r.headers, k);
                if w.is_empty() {
                    assert!(got.is_none(), "{}: {} = {:?}, want it absent", name, k, got);
                } else {
                    assert_eq!(got, Some(*w), "{}: {}", name, k);
                }
            }
        }
        let tr = parse(br#"{"append":{"headers":["x-have:second"]}}"#).unwrap();
        let vals: Vec<String> = tr.request(&input).headers.into_iter().filter(|(k, _)| k == "x-have").map(|(_, v)| v).collect();
        assert_eq!(vals, vec!["keep", "second"]);
    }

    // TestBody.
    #[test]
    fn body() {
        let tr = parse(br#"{"remove":{"body":["secret"]},"rename":{"body":["n:name"]},"replace":{"body":["mode:live"]},
		"add":{"body":["count:3","flag:true","src:$(headers.x_src)"],"json_types":["number","boolean","string"]},
		"append":{"body":["tags:new"]}}"#).unwrap();
        let r = tr.request(&h(&[(":path", "/"), ("content-type", "application/json; charset=utf-8"), ("x-src", "edge")]));
        assert!(r.transform_body, "JSON body not selected for transformation");
        let out = tr.body(br#"{"secret":1,"n":"a","mode":"test","tags":["old"]}"#, &r.template, r.form).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"count":3,"flag":true,"mode":"live","name":"a","src":"edge","tags":["old","new"]}"#);
        assert!(tr.body(b"[1,2]", &r.template, false).is_none(), "a JSON array was transformed");
        assert!(!tr.request(&h(&[(":path", "/"), ("content-type", "text/plain")])).transform_body);
    }

    // TestParseErrors.
    #[test]
    fn parse_errors() {
        for cfg in [
            r#"{"add":{"headers":["novalue"]}}"#, r#"{"add":{"headers":[":path:/x"]}}"#, r#"{"add":{"uri":"/x"}}"#,
            r#"{"replace":{"uri":"x"}}"#, r#"{"add":{"headers":["a:$(cookies.x)"]}}"#, r#"{"add":{"json_types":["date"]}}"#,
            r#"{"adds":{}}"#, r#"{"rename":{"headers":["x-a::path"]}}"#, r#"{"http_method":1}"#,
        ] {
            assert!(parse(cfg.as_bytes()).is_err(), "parse({}) succeeded", cfg);
        }
    }

    // TestFormBody.
    #[test]
    fn form_body() {
        let tr = parse(br#"{"remove":{"body":["password"]},"rename":{"body":["u:user"]},"add":{"body":["source:$(headers.x_src)"]},"append":{"body":["tag:b"]}}"#).unwrap();
        let r = tr.request(&h(&[(":path", "/login"), ("content-type", "application/x-www-form-urlencoded; charset=utf-8"), ("x-src", "edge")]));
        assert!(r.transform_body && r.form);
        let out = tr.body(b"u=alice&password=x&tag=a", &r.template, r.form).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "source=edge&tag=a&tag=b&user=alice");
        assert!(tr.body(b"a=1;b=2", &r.template, true).is_none());
    }
}
