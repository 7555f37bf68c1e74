//! header-rust: the example header filter of header-go, in Rust with
//! sluice's dependency-free crate (sdk/rust). It sets a header on every
//! request on its way upstream and another on every response on its way
//! back, both named in its configuration:
//!
//! {"header": "x-hello", "value": "rust",
//!  "response_header": "x-filter", "response_value": "header-rust"}

use sluice_proxy_wasm::{self as sdk, Action, HttpContext, LogLevel, RootContext};
use std::rc::Rc;

sdk::main! {
    sdk::set_root_context(|_| Box::new(Root { cfg: Rc::new(Config::default()) }));
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub header: String,
    pub value: String,
    pub response_header: String,
    pub response_value: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            header: "x-hello".into(),
            value: "rust".into(),
            response_header: "x-filter".into(),
            response_value: "header-rust".into(),
        }
    }
}

/// Reads the plugin's config (JSON with flat string fields; a tiny reader
/// so the filter has no dependencies). Empty gives the defaults.
pub fn parse_config(json: &str) -> Result<Config, String> {
    let mut c = Config::default();
    let json = json.trim();
    if json.is_empty() {
        return Ok(c);
    }
    if !json.starts_with('{') || !json.ends_with('}') {
        return Err(format!("config: not a JSON object: {}", json));
    }
    // "response_header" contains "header" in quotes only as a whole key,
    // so the quoted key is unambiguous.
    if let Some(v) = string_field(json, "header") {
        c.header = v.to_lowercase();
    }
    if let Some(v) = string_field(json, "value") {
        c.value = v;
    }
    if let Some(v) = string_field(json, "response_header") {
        c.response_header = v.to_lowercase();
    }
    if let Some(v) = string_field(json, "response_value") {
        c.response_value = v;
    }
    if c.header.is_empty() || c.header.starts_with(':') || c.response_header.starts_with(':') {
        return Err(format!("config: {:?} / {:?} cannot be set", c.header, c.response_header));
    }
    Ok(c)
}

fn string_field(json: &str, name: &str) -> Option<String> {
    let key = format!("\"{}\"", name);
    let rest = json[json.find(&key)? + key.len()..].trim_start();
    let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

struct Root {
    cfg: Rc<Config>,
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = match sdk::get_plugin_configuration() {
            Ok(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
            Ok(None) => String::new(),
            Err(_) => return false,
        };
        match parse_config(&raw) {
            Ok(c) => {
                self.cfg = Rc::new(c);
                true
            }
            Err(e) => {
                sdk::log(LogLevel::Critical, &e);
                false
            }
        }
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream { cfg: self.cfg.clone() }))
    }
}

struct Stream {
    cfg: Rc<Config>,
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        if let Err(e) = sdk::set_http_request_header(&self.cfg.header, &self.cfg.value) {
            sdk::log(LogLevel::Error, &format!("setting {}: {:?}", self.cfg.header, e));
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        if !self.cfg.response_header.is_empty() {
            if let Err(e) = sdk::set_http_response_header(&self.cfg.response_header, &self.cfg.response_value) {
                sdk::log(LogLevel::Error, &format!("setting {}: {:?}", self.cfg.response_header, e));
            }
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_empty() {
        assert_eq!(parse_config(""), Ok(Config::default()));
    }

    #[test]
    fn reads_fields() {
        let c = parse_config(r#"{"header": "X-Team", "value": "blue", "response_header": ""}"#).unwrap();
        assert_eq!(c.header, "x-team");
        assert_eq!(c.value, "blue");
        assert_eq!(c.response_header, "");
        assert_eq!(c.response_value, "header-rust");
    }

    #[test]
    fn refuses_pseudo_headers_and_garbage() {
        assert!(parse_config(r#"{"header":":path"}"#).is_err());
        assert!(parse_config(r#"{"response_header":":status"}"#).is_err());
        assert!(parse_config("not json").is_err());
    }
}
