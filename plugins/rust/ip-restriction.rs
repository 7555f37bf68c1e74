//! The ip-restriction plugin (wasm = "builtin:ip-restriction"): allow and
//! deny lists of addresses and CIDRs on the client address, for HTTP
//! streams (a JSON refusal) and TCP connections (closed).
//!
//! The Rust port of plugins/src/iprestriction: same keys, same messages,
//! and Go's net/netip rules for what an address or prefix is and what a
//! prefix contains.

use crate::common;
use sluice_proxy_wasm::{self as sdk, json, Action, HttpContext, RootContext, StreamContext};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::rc::Rc;

/// The plugin's root_id.
pub const NAME: &str = "ip-restriction";

/// An address as net/netip sees it: a family, the bits, and whether an
/// IPv6 zone was given (a zoned address is in no prefix).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Addr {
    v4: bool,
    bits: u128,
    zone: bool,
}

impl Addr {
    fn bit_len(&self) -> u32 {
        if self.v4 {
            32
        } else {
            128
        }
    }

    /// An IPv4-mapped IPv6 address as the IPv4 one (netip's Unmap).
    fn unmap(self) -> Addr {
        if !self.v4 && self.bits >> 32 == 0xffff {
            return Addr { v4: true, bits: self.bits & 0xffff_ffff, zone: false };
        }
        self
    }
}

/// Every key of the configuration, nested ones too: a misspelt one is
/// refused with the nearest of them.
const CONFIG_KEYS: &[&str] = &["allow", "deny", "message", "status"];

/// netip.ParseAddr: dotted-quad IPv4, or IPv6 with an optional %zone.
pub fn parse_addr(s: &str) -> Option<Addr> {
    if s.contains(':') {
        let (ip, zone) = match s.find('%') {
            Some(i) if i + 1 < s.len() => (&s[..i], true),
            Some(_) => return None,
            None => (s, false),
        };
        let a: Ipv6Addr = ip.parse().ok()?;
        return Some(Addr { v4: false, bits: u128::from(a), zone });
    }
    let a: Ipv4Addr = s.parse().ok()?;
    Some(Addr { v4: true, bits: u32::from(a) as u128, zone: false })
}

/// A prefix, masked; contains() follows netip.Prefix.Contains.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prefix {
    addr: Addr,
    len: u32,
}

fn mask(a: Addr, len: u32) -> u128 {
    let width = a.bit_len();
    if len == 0 {
        return 0;
    }
    let full: u128 = if width == 128 { u128::MAX } else { (1u128 << width) - 1 };
    a.bits & (full & !((1u128 << (width - len)).wrapping_sub(1)))
}

impl Prefix {
    pub fn contains(&self, a: Addr) -> bool {
        a.v4 == self.addr.v4 && !a.zone && mask(a, self.len) == self.addr.bits
    }
}

/// netip.ParsePrefix(s).Masked(): no zone, decimal bits without leading
/// zeros, at most the address's length.
pub fn parse_prefix(s: &str) -> Option<Prefix> {
    let i = s.rfind('/')?;
    let (ip, bits) = (&s[..i], &s[i + 1..]);
    let a = parse_addr(ip)?;
    if a.zone || bits.is_empty() || !bits.bytes().all(|c| c.is_ascii_digit()) || (bits.len() > 1 && bits.starts_with('0')) {
        return None;
    }
    let len: u32 = bits.parse().ok()?;
    if len > a.bit_len() {
        return None;
    }
    Some(Prefix { addr: Addr { bits: mask(a, len), ..a }, len })
}

/// A validated configuration.
#[derive(Debug)]
pub struct Filter {
    allow: Vec<Prefix>,
    deny: Vec<Prefix>,
    pub status: u32,
    pub message: String,
}

/// Validates a configuration ({"allow": [...], "deny": [...], "status": N, "message": "..."}).
pub fn parse(data: &[u8]) -> Result<Filter, String> {
    let (mut allow, mut deny, mut status, mut message) = (Vec::new(), Vec::new(), 0u32, String::new());
    if let Some(v) = json::parse_config(data)? {
        for (k, v) in json::object(&v, "iprestriction.Config")? {
            match json::key_name(k).as_str() {
                "allow" => allow = json::string_list(v, "Config.allow")?,
                "deny" => deny = json::string_list(v, "Config.deny")?,
                "status" => {
                    if let Some(s) = json::unsigned(v, "Config.status", "uint32", u32::MAX as u64)? {
                        status = s as u32;
                    }
                }
                "message" => {
                    if let Some(m) = json::string(v, "Config.message")? {
                        message = m;
                    }
                }
                _ => return Err(json::unknown_field_of(k, CONFIG_KEYS)),
            }
        }
    }
    let allow = prefixes("allow", &allow)?;
    let deny = prefixes("deny", &deny)?;
    if status == 0 {
        status = 403;
    }
    if !(100..=599).contains(&status) {
        return Err(format!("config: status: {} is not an HTTP status", status));
    }
    if message.is_empty() {
        message = "IP address not allowed".into();
    }
    Ok(Filter { allow, deny, status, message })
}

fn prefixes(key: &str, list: &[String]) -> Result<Vec<Prefix>, String> {
    let mut out = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        let s = s.trim();
        let p = if s.contains('/') {
            parse_prefix(s)
        } else {
            parse_addr(s).map(|a| Prefix { addr: a, len: a.bit_len() })
        };
        match p {
            Some(p) => out.push(p),
            None => return Err(format!("config: {}[{}]: {:?} is not an address or CIDR", key, i, s)),
        }
    }
    Ok(out)
}

impl Filter {
    /// Whether a client at ip may pass: allow decides alone when set,
    /// otherwise deny blocks; an address that cannot be read is refused
    /// whenever a list is set.
    pub fn allowed(&self, ip: &str) -> bool {
        if self.allow.is_empty() && self.deny.is_empty() {
            return true;
        }
        let a = match parse_addr(ip) {
            Some(a) => a.unmap(),
            None => return false,
        };
        if !self.allow.is_empty() {
            return self.allow.iter().any(|p| p.contains(a));
        }
        !self.deny.iter().any(|p| p.contains(a))
    }

    pub fn reply(&self) -> common::Reply {
        common::json_reply(self.status, &self.message, &[])
    }
}

/// A root context of the plugin, configured by on_configure.
pub fn root() -> Box<dyn RootContext> {
    Box::new(Plugin { f: None })
}

struct Plugin {
    f: Option<Rc<Filter>>,
}

impl RootContext for Plugin {
    fn on_configure(&mut self, _size: usize) -> bool {
        self.f = common::load_config(NAME, parse).map(Rc::new);
        if self.f.is_some() {
            // Only the request headers decide.
            common::skip_all_but_request_headers();
        }
        self.f.is_some()
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        self.f.clone().map(|f| Box::new(HttpStream { f }) as Box<dyn HttpContext>)
    }

    fn create_stream_context(&self, _id: u32) -> Option<Box<dyn StreamContext>> {
        self.f.clone().map(|f| Box::new(TcpStream { f }) as Box<dyn StreamContext>)
    }
}

struct HttpStream {
    f: Rc<Filter>,
}

impl HttpContext for HttpStream {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        if self.f.allowed(&common::client_ip()) {
            return Action::Continue;
        }
        self.f.reply().send();
        Action::Pause
    }
}

struct TcpStream {
    f: Rc<Filter>,
}

impl StreamContext for TcpStream {
    fn on_new_connection(&mut self) -> Action {
        if self.f.allowed(&common::client_ip()) {
            return Action::Continue;
        }
        common::must(NAME, "closing a refused connection", sdk::close_downstream());
        Action::Pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // plugins/src/iprestriction's TestAllowed.
    #[test]
    fn allowed() {
        let cases = [
            (r#"{}"#, "1.2.3.4", true),
            (r#"{"deny":["10.0.0.0/8"]}"#, "10.1.2.3", false),
            (r#"{"deny":["10.0.0.0/8"]}"#, "11.1.2.3", true),
            (r#"{"deny":["10.0.0.0/8"]}"#, "::ffff:10.1.2.3", false),
            (r#"{"allow":["192.168.1.0/24","127.0.0.1"]}"#, "192.168.1.77", true),
            (r#"{"allow":["192.168.1.0/24","127.0.0.1"]}"#, "127.0.0.1", true),
            (r#"{"allow":["192.168.1.0/24","127.0.0.1"]}"#, "127.0.0.2", false),
            (r#"{"allow":["10.0.0.5"],"deny":["10.0.0.0/8"]}"#, "10.0.0.5", true),
            (r#"{"allow":["10.0.0.5"],"deny":["10.0.0.0/8"]}"#, "10.0.0.6", false),
            (r#"{"allow":["2001:db8::/32"]}"#, "2001:db8::1", true),
            (r#"{"allow":["2001:db8::/32"]}"#, "2001:db9::1", false),
            (r#"{"deny":["1.2.3.4"]}"#, "", false),
            (r#"{"deny":["1.2.3.4"]}"#, "not-an-ip", false),
            // net/netip's rules, beyond the Go test's cases.
            (r#"{"allow":[" 10.0.0.0/8 "]}"#, "10.255.0.1", true),
            (r#"{"allow":["10.1.2.3/8"]}"#, "10.9.9.9", true),
            (r#"{"allow":["0.0.0.0/0"]}"#, "203.0.113.1", true),
            (r#"{"allow":["0.0.0.0/0"]}"#, "2001:db8::1", false),
            (r#"{"allow":["::/0"]}"#, "2001:db8::1", true),
            (r#"{"allow":["::/0"]}"#, "10.0.0.1", false),
            (r#"{"allow":["::ffff:10.0.0.0/104"]}"#, "::ffff:10.0.0.1", false),
            (r#"{"allow":["fe80::/10"]}"#, "fe80::1%eth0", false),
            (r#"{"deny":["fe80::/10"]}"#, "fe80::1%eth0", true),
            (r#"{"deny":["1.2.3.4"]}"#, "01.2.3.4", false),
            (r#"{"allow":["2001:db8::1"]}"#, "2001:DB8::1", true),
        ];
        for (cfg, ip, want) in cases {
            let f = parse(cfg.as_bytes()).unwrap_or_else(|e| panic!("{}: {}", cfg, e));
            assert_eq!(f.allowed(ip), want, "{}: allowed({:?})", cfg, ip);
        }
    }

    // plugins/src/iprestriction's TestReplyAndErrors.
    #[test]
    fn reply_and_errors() {
        let f = parse(br#"{"status":401,"message":"go away"}"#).unwrap();
        let r = f.reply();
        assert_eq!((r.status, r.body.as_str()), (401, r#"{"message":"go away"}"#));
        assert_eq!(r.headers, vec![("content-type".to_string(), "application/json; charset=utf-8".to_string())]);
        let d = parse(b"").unwrap();
        let r = d.reply();
        assert_eq!((r.status, r.body.as_str()), (403, r#"{"message":"IP address not allowed"}"#));
        for cfg in [
            r#"{"allow":["10.0.0.0/33"]}"#,
            r#"{"deny":["x"]}"#,
            r#"{"status":42}"#,
            r#"{"status":600}"#,
            r#"{"status":-1}"#,
            r#"{"whitelist":["1.1.1.1"]}"#,
            r#"{"allow":["10.0.0.0/08"]}"#,
            r#"{"allow":["10.0.0.0/+8"]}"#,
            r#"{"allow":["fe80::/10%eth0"]}"#,
            r#"{"allow":["fe80::%eth0/10"]}"#,
            r#"{"allow":[""]}"#,
            r#"{"allow":["1.2.3"]}"#,
            r#"{"allow":[1]}"#,
        ] {
            assert!(parse(cfg.as_bytes()).is_err(), "parse({}) succeeded", cfg);
        }
        assert_eq!(parse(br#"{"deny":["x"]}"#).unwrap_err(), r#"config: deny[0]: "x" is not an address or CIDR"#);
        assert_eq!(parse(br#"{"status":42}"#).unwrap_err(), "config: status: 42 is not an HTTP status");
    }
}
