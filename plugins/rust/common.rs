//! What several Rust built-ins share (the Rust side of
//! plugins/src/internal/common): configuration loading, Kong's JSON
//! replies, the client address. Each plugin includes it with
//! `#[path = "../common.rs"] mod common;`, so a module carries only what
//! its plugin uses.
#![allow(dead_code)]

use sluice_proxy_wasm::{self as sdk, json, LogLevel};

/// Reads the plugin configuration and parses it; a refusal is logged as
/// "NAME: error" (critical) and the configuration refused.
pub fn load_config<T>(plugin: &str, parse: impl FnOnce(&[u8]) -> Result<T, String>) -> Option<T> {
    let data = match sdk::get_plugin_configuration() {
        Ok(d) => d.unwrap_or_default(),
        Err(e) => {
            sdk::log(LogLevel::Critical, &format!("{}: reading configuration: {:?}", plugin, e));
            return None;
        }
    };
    match parse(&data) {
        Ok(c) => Some(c),
        Err(e) => {
            sdk::log(LogLevel::Critical, &format!("{}: {}", plugin, e));
            None
        }
    }
}

/// Kong's error body: {"message":"..."}.
pub fn json_message(msg: &str) -> String {
    format!("{{\"message\":{}}}", json::quote(msg))
}

/// A local reply with Kong's JSON error body.
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// Kong's JSON reply: content-type first, then extra.
pub fn json_reply(status: u32, msg: &str, extra: &[(&str, &str)]) -> Reply {
    let mut headers = vec![("content-type".to_string(), "application/json; charset=utf-8".to_string())];
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Reply { status, headers, body: json_message(msg) }
}

impl Reply {
    /// Answers the stream with the reply; return Action::Pause after it.
    pub fn send(&self) {
        let h: Vec<(&str, &str)> = self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if let Err(e) = sdk::send_http_response(self.status, &h, self.body.as_bytes()) {
            sdk::log(LogLevel::Error, &format!("sending local response {}: {:?}", self.status, e));
        }
    }
}

/// The client's address without the port (source.address), "" if the
/// host does not say.
pub fn client_ip() -> String {
    match sdk::get_property(&["source", "address"]) {
        Ok(Some(a)) => host_only(&String::from_utf8_lossy(&a)).to_string(),
        _ => String::new(),
    }
}

/// Strips the port from "host:port" or "[v6]:port"; an address without
/// one is returned unchanged (the Go SDK's HostOnly).
pub fn host_only(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return match rest.find(']') {
            Some(i) => &rest[..i],
            None => addr,
        };
    }
    if addr.matches(':').count() == 1 {
        return &addr[..addr.find(':').unwrap_or(addr.len())];
    }
    addr
}

/// Logs a failed hostcall as "NAME: what: error".
pub fn must<T>(plugin: &str, what: &str, r: Result<T, sdk::Status>) {
    if let Err(e) = r {
        sdk::log(LogLevel::Error, &format!("{}: {}: {:?}", plugin, what, e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_only_cases() {
        for (a, want) in [("1.2.3.4:80", "1.2.3.4"), ("[::1]:80", "::1"), ("::1", "::1"), ("1.2.3.4", "1.2.3.4"), ("[x", "[x"), ("[]:80", ""), ("", "")] {
            assert_eq!(host_only(a), want, "{}", a);
        }
    }

    #[test]
    fn kong_message() {
        assert_eq!(json_message("IP address not allowed"), r#"{"message":"IP address not allowed"}"#);
        assert_eq!(json_message("a<b"), r#"{"message":"a\u003cb"}"#);
    }
}
