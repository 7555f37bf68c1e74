//! The Rust twin of the Go header filter: adds the header named in its
//! configuration ({"header": "...", "value": "..."}, default
//! x-hello: rust) to every request, and counts requests.

use sluice_proxy_wasm::{self as sdk, Action, HttpContext, LogLevel, MetricType, RootContext};
use std::rc::Rc;

sdk::main! {
    sdk::set_root_context(|_| Box::new(Root { header: Rc::new(("x-hello".into(), "rust".into())), requests: 0 }));
}

struct Root {
    header: Rc<(String, String)>,
    requests: u32,
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let cfg = match sdk::get_plugin_configuration() {
            Ok(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
            Ok(None) => return true,
            Err(_) => return false,
        };
        // A tiny reader for {"header":"...","value":"..."}: no JSON crate,
        // so the filter has no dependencies.
        let field = |name: &str| -> Option<String> {
            let key = format!("\"{}\"", name);
            let rest = &cfg[cfg.find(&key)? + key.len()..];
            let rest = &rest[rest.find('"')? + 1..];
            Some(rest[..rest.find('"')?].to_string())
        };
        let header = field("header").unwrap_or_else(|| self.header.0.clone());
        let value = field("value").unwrap_or_else(|| self.header.1.clone());
        if header.is_empty() || header.starts_with(':') {
            sdk::log(LogLevel::Critical, "config: header cannot be set");
            return false;
        }
        self.header = Rc::new((header.to_lowercase(), value));
        self.requests = sdk::define_metric(MetricType::Counter, "add_header_rust_requests_total").unwrap_or(0);
        true
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream { header: self.header.clone(), requests: self.requests }))
    }
}

struct Stream {
    header: Rc<(String, String)>,
    requests: u32,
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        if sdk::set_http_request_header(&self.header.0, &self.header.1).is_err() {
            sdk::log(LogLevel::Error, "setting the header failed");
        }
        let _ = sdk::increment_metric(self.requests, 1);
        Action::Continue
    }
}
