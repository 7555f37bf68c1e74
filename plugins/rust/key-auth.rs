//! The key-auth plugin (wasm = "builtin:key-auth"): Kong's key-auth, API
//! keys in a header or query parameter.
//!
//! The Rust port of plugins/src/keyauth: same keys, messages and headers.

use crate::common;
use sluice_proxy_wasm::{self as sdk, json, Action, HttpContext, LogLevel, RootContext};
use std::rc::Rc;

/// The plugin's root_id.
pub const NAME: &str = "key-auth";

pub const HEADER_CONSUMER_USERNAME: &str = "x-consumer-username";
pub const HEADER_CONSUMER_ID: &str = "x-consumer-id";
pub const HEADER_ANONYMOUS: &str = "x-anonymous-consumer";

/// A validated configuration.
#[derive(Debug)]
pub struct Auth {
    names: Vec<String>,
    in_header: bool,
    in_query: bool,
    hide: bool,
    preflight: bool,
    anonymous: String,
    realm: String,
    consumers: common::NameMap<String>,
}

/// Decodes a list of {"key","consumer"}; strict rejects unknown members
/// (the configuration), as the Go decoder does for it but not for
/// keys_file.
fn keys(v: &json::Value, strict: bool, out: &mut Vec<(String, String)>) -> Result<(), String> {
    let items = match v {
        json::Value::Null => return Ok(()),
        json::Value::Array(items) => items,
        _ => return Err(json::type_error(v, "Config.keys", "[]keyauth.Key")),
    };
    for it in items {
        let (mut key, mut consumer) = (String::new(), String::new());
        match it {
            json::Value::Null => {}
            json::Value::Object(members) => {
                for (k, v) in members {
                    match json::key_name(k).as_str() {
                        "key" => key = json::string(v, "Key.key")?.unwrap_or(key),
                        "consumer" => consumer = json::string(v, "Key.consumer")?.unwrap_or(consumer),
                        _ if strict => return Err(json::unknown_field_of(k, CONFIG_KEYS)),
                        _ => {}
                    }
                }
            }
            _ => return Err(json::type_error(it, "Config.keys", "keyauth.Key")),
        }
        out.push((key, consumer));
    }
    Ok(())
}

/// Every key of the configuration, nested ones too: a misspelt one is
/// refused with the nearest of them.
const CONFIG_KEYS: &[&str] = &["anonymous", "consumer", "hide_credentials", "key", "key_in_body", "key_in_header", "key_in_query", "key_names", "keys", "keys_file", "realm", "run_on_preflight"];

/// Validates a configuration; read_file reads keys_file.
pub fn parse(data: &[u8], read_file: impl Fn(&str, &str) -> Result<Vec<u8>, String>) -> Result<Auth, String> {
    let mut names = Vec::new();
    let (mut in_header, mut in_query, mut in_body, mut hide, mut preflight) = (None, None, false, false, None);
    let (mut anonymous, mut realm, mut keys_file) = (String::new(), String::new(), String::new());
    let mut list = Vec::new();
    if let Some(v) = json::parse_config(data)? {
        for (k, v) in json::object(&v, "keyauth.Config")? {
            match json::key_name(k).as_str() {
                "key_names" => names = json::string_list(v, "Config.key_names")?,
                // A *bool: null sets it back to unset.
                "key_in_header" => in_header = json::boolean(v, "Config.key_in_header")?,
                "key_in_query" => in_query = json::boolean(v, "Config.key_in_query")?,
                "key_in_body" => in_body = json::boolean(v, "Config.key_in_body")?.unwrap_or(in_body),
                "hide_credentials" => hide = json::boolean(v, "Config.hide_credentials")?.unwrap_or(hide),
                "anonymous" => anonymous = json::string(v, "Config.anonymous")?.unwrap_or(anonymous),
                "run_on_preflight" => preflight = json::boolean(v, "Config.run_on_preflight")?,
                "realm" => realm = json::string(v, "Config.realm")?.unwrap_or(realm),
                "keys" => {
                    list.clear();
                    keys(v, true, &mut list)?
                }
                "keys_file" => keys_file = json::string(v, "Config.keys_file")?.unwrap_or(keys_file),
                _ => return Err(json::unknown_field_of(k, CONFIG_KEYS)),
            }
        }
    }
    if in_body {
        return Err("config: key_in_body: not supported by sluice's key-auth; use a header or query parameter".into());
    }
    if names.is_empty() {
        names = vec!["apikey".to_string()];
    }
    if realm.is_empty() {
        realm = "sluice".into();
    }
    if !keys_file.is_empty() {
        let b = read_file("keys_file", &keys_file).map_err(|e| format!("config: {}", e))?;
        let want = |e: String| format!("config: keys_file {}: want a JSON list of {{\"key\",\"consumer\"}}: {}", keys_file, e);
        let v = json::parse_config(&b).map_err(|e| want(e.trim_start_matches("config: ").to_string()))?;
        if let Some(v) = v {
            keys(&v, false, &mut list).map_err(|e| want(e.trim_start_matches("config: ").to_string()))?;
        }
    }
    let mut consumers = common::NameMap::default();
    for (i, (key, consumer)) in list.into_iter().enumerate() {
        if key.is_empty() || consumer.is_empty() {
            return Err(format!("config: keys[{}]: key and consumer are required", i));
        }
        consumers.insert(key, consumer);
    }
    Ok(Auth {
        names,
        in_header: in_header.unwrap_or(true),
        in_query: in_query.unwrap_or(true),
        hide,
        preflight: preflight.unwrap_or(true),
        anonymous,
        realm,
        consumers,
    })
}

/// What a request gets.
#[derive(Default)]
pub struct Outcome {
    /// A refusal (status != 0) to send instead of going on.
    pub reply: Option<common::Reply>,
    pub consumer: String,
    pub anonymous: bool,
    /// The header holding the key, to remove (hide_credentials).
    pub remove_header: String,
    /// :path without the key parameter (hide_credentials), "" to keep it.
    pub new_path: String,
    /// A preflight let through unchecked.
    pub skip: bool,
}

impl Auth {
    pub fn check<H: common::Headers + ?Sized>(&self, headers: &H) -> Outcome {
        if !self.preflight && headers.first(":method").as_deref() == Some("OPTIONS") {
            return Outcome { skip: true, ..Default::default() };
        }
        let (mut key, mut header, mut new_path, mut found) = (String::new(), String::new(), String::new(), false);
        if self.in_header {
            for n in &self.names {
                if let Some(v) = headers.first(n) {
                    key = v.into_owned();
                    header = n.clone();
                    found = true;
                    break;
                }
            }
        }
        if !found && self.in_query {
            let p = headers.first(":path").unwrap_or_default();
            let (path, raw) = common::split_path(&p);
            if let Ok(mut q) = common::parse_query(raw) {
                for n in &self.names {
                    if let Some(i) = q.iter().position(|(k, _)| k == n) {
                        key = q[i].1[0].clone();
                        found = true;
                        q.remove(i);
                        new_path = path.to_string();
                        let enc = common::encode_query(&q);
                        if !enc.is_empty() {
                            new_path.push('?');
                            new_path.push_str(&enc);
                        }
                        break;
                    }
                }
            }
        }
        if !found || key.is_empty() {
            return self.anonymous_or("No API key found in request");
        }
        let consumer = match self.consumers.get(&key) {
            Some(c) => c.clone(),
            None => return self.anonymous_or("Unauthorized"),
        };
        let mut r = Outcome { consumer, ..Default::default() };
        if self.hide {
            if !header.is_empty() {
                r.remove_header = header;
            } else {
                r.new_path = new_path;
            }
        }
        r
    }

    fn anonymous_or(&self, msg: &str) -> Outcome {
        if !self.anonymous.is_empty() {
            return Outcome { consumer: self.anonymous.clone(), anonymous: true, ..Default::default() };
        }
        let realm = format!("Key realm=\"{}\"", self.realm.replace('"', "'"));
        Outcome { reply: Some(common::json_reply(401, msg, &[("www-authenticate", &realm)])), ..Default::default() }
    }
}

/// A root context of the plugin, configured by on_configure.
pub fn root() -> Box<dyn RootContext> {
    Box::new(Plugin { auth: None })
}

struct Plugin {
    auth: Option<Rc<Auth>>,
}

impl RootContext for Plugin {
    fn on_configure(&mut self, _size: usize) -> bool {
        self.auth = common::load_config(NAME, |b| parse(b, common::read_file)).map(Rc::new);
        if self.auth.is_some() {
            common::skip_all_but_request_headers();
        }
        self.auth.is_some()
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        self.auth.clone().map(|auth| Box::new(Stream { auth }) as Box<dyn HttpContext>)
    }
}

struct Stream {
    auth: Rc<Auth>,
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        // Only the headers the check asks for are read (the key's names,
        // then :path for the query), one hostcall each.
        let r = self.auth.check(&common::HostRequestHeaders { plugin: NAME });
        if r.skip {
            return Action::Continue;
        }
        if let Some(reply) = &r.reply {
            reply.send();
            return Action::Pause;
        }
        if r.anonymous {
            common::must(NAME, "setting anonymous", sdk::set_http_request_header(HEADER_ANONYMOUS, "true"));
        } else if let Err(e) = sdk::remove_http_request_header(HEADER_ANONYMOUS) {
            // Removing an absent header is Ok: one hostcall, where asking
            // whether it is there would be one too.
            sdk::log(LogLevel::Error, &format!("{}: removing {}: {:?}", NAME, HEADER_ANONYMOUS, e));
        }
        common::must(NAME, "setting consumer", sdk::set_http_request_header(HEADER_CONSUMER_USERNAME, &r.consumer));
        common::set_consumer(NAME, &r.consumer);
        common::must(NAME, "setting consumer id", sdk::set_http_request_header(HEADER_CONSUMER_ID, &r.consumer));
        if !r.remove_header.is_empty() {
            common::must(NAME, "hiding the key header", sdk::remove_http_request_header(&r.remove_header));
        }
        if !r.new_path.is_empty() {
            common::must(NAME, "hiding the key parameter", sdk::set_http_request_header(":path", &r.new_path));
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_file(_: &str, _: &str) -> Result<Vec<u8>, String> {
        Err("no files here".into())
    }

    fn h(method: &str, path: &str, kv: &[&str]) -> Vec<(String, String)> {
        let mut out = vec![(":method".into(), method.into()), (":path".into(), path.into()), (":authority".into(), "example.com".into())];
        for p in kv.chunks(2) {
            out.push((p[0].to_string(), p[1].to_string()));
        }
        out
    }

    // plugins/src/keyauth's TestCheck.
    #[test]
    fn check() {
        let cfg = r#"{"key_names":["apikey","x-api-key"],"keys":[{"key":"k1","consumer":"alice"},{"key":"k2","consumer":"bob"}]}"#;
        let hidden = r#"{"hide_credentials":true,"keys":[{"key":"k1","consumer":"alice"}]}"#;
        let anon = r#"{"anonymous":"guest","keys":[{"key":"k1","consumer":"alice"}]}"#;
        let no_preflight = r#"{"run_on_preflight":false,"keys":[{"key":"k1","consumer":"alice"}]}"#;
        // name, cfg, headers, status, msg, consumer, anonymous, remove header, new path, skip
        let cases: Vec<(&str, &str, Vec<(String, String)>, u32, &str, &str, bool, &str, &str, bool)> = vec![
            ("no key", cfg, h("GET", "/", &[]), 401, "No API key found in request", "", false, "", "", false),
            ("wrong key", cfg, h("GET", "/", &["apikey", "nope"]), 401, "Unauthorized", "", false, "", "", false),
            ("header key", cfg, h("GET", "/", &["ApiKey", "k1"]), 0, "", "alice", false, "", "", false),
            ("second name", cfg, h("GET", "/", &["x-api-key", "k2"]), 0, "", "bob", false, "", "", false),
            ("query key", cfg, h("GET", "/a?x=1&apikey=k2", &[]), 0, "", "bob", false, "", "", false),
            ("empty key", cfg, h("GET", "/", &["apikey", ""]), 401, "No API key", "", false, "", "", false),
            ("hide header", hidden, h("GET", "/", &["apikey", "k1"]), 0, "", "alice", false, "apikey", "", false),
            ("hide query", hidden, h("GET", "/a?apikey=k1&b=2", &[]), 0, "", "alice", false, "", "/a?b=2", false),
            ("hide only query", hidden, h("GET", "/a?apikey=k1", &[]), 0, "", "alice", false, "", "/a", false),
            ("anonymous", anon, h("GET", "/", &[]), 0, "", "guest", true, "", "", false),
            ("anonymous wrong key", anon, h("GET", "/", &["apikey", "x"]), 0, "", "guest", true, "", "", false),
            ("preflight skipped", no_preflight, h("OPTIONS", "/", &[]), 0, "", "", false, "", "", true),
            ("preflight checked", cfg, h("OPTIONS", "/", &[]), 401, "", "", false, "", "", false),
            // Beyond the Go test: a query that does not parse is not read.
            ("bad query", cfg, h("GET", "/a?apikey=k1;x=1", &[]), 401, "No API key", "", false, "", "", false),
            ("escaped query", hidden, h("GET", "/a?b=x%20y&apikey=k%31", &[]), 0, "", "alice", false, "", "/a?b=x+y", false),
        ];
        for (name, cfg, headers, status, msg, consumer, anonymous, remove, new_path, skip) in cases {
            let a = parse(cfg.as_bytes(), no_file).unwrap();
            let r = a.check(&headers);
            let got = r.reply.as_ref().map(|r| r.status).unwrap_or(0);
            assert_eq!(got, status, "{}: status", name);
            if let Some(reply) = &r.reply {
                assert!(reply.body.contains(msg), "{}: body {}", name, reply.body);
                assert!(reply.headers.iter().any(|(k, v)| k == "www-authenticate" && v == "Key realm=\"sluice\""), "{}: {:?}", name, reply.headers);
                continue;
            }
            assert_eq!(
                (r.consumer.as_str(), r.anonymous, r.remove_header.as_str(), r.new_path.as_str(), r.skip),
                (consumer, anonymous, remove, new_path, skip),
                "{}",
                name
            );
        }
    }

    // plugins/src/keyauth's TestParseErrors.
    #[test]
    fn parse_errors() {
        for cfg in [
            r#"{"key_in_body":true}"#,
            r#"{"keys":[{"key":"k"}]}"#,
            r#"{"key_name":["a"]}"#,
            r#"{"keys_file":"/nope.json"}"#,
            r#"{"keys":[{"key":"k","consumer":"c","extra":1}]}"#,
            r#"{"keys":{"key":"k"}}"#,
        ] {
            assert!(parse(cfg.as_bytes(), no_file).is_err(), "parse({}) succeeded", cfg);
        }
        let from_file = |_: &str, _: &str| Ok(br#"[{"key":"fk","consumer":"carol","note":"ignored"}]"#.to_vec());
        let a = parse(br#"{"keys_file":"k.json"}"#, from_file).unwrap();
        assert_eq!(a.check(&h("GET", "/", &["apikey", "fk"])).consumer, "carol");
        let bad_file = |_: &str, _: &str| Ok(b"{".to_vec());
        let e = parse(br#"{"keys_file":"k.json"}"#, bad_file).unwrap_err();
        assert!(e.starts_with("config: keys_file k.json: want a JSON list of {\"key\",\"consumer\"}: "), "{}", e);
        let realm = parse(br#"{"realm":"a\"b"}"#, no_file).unwrap();
        let r = realm.check(&h("GET", "/", &[])).reply.unwrap();
        assert!(r.headers.contains(&("www-authenticate".to_string(), "Key realm=\"a'b\"".to_string())));
    }
}
