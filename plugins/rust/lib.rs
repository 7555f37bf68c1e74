//! sluice's built-in plugins, one proxy-wasm module for all of them
//! (builtins.wasm): each configured plugin is a root context, and its
//! root_id (the built-in's name; sluice sets it from wasm =
//! "builtin:NAME") chooses which plugin that root context runs.
//!
//! One module rather than one per plugin because what they share (the
//! crate, std's allocator and formatting, the JSON reader, the regex
//! crate for cors, canary and fault) is most of each module: compiled
//! once, every built-in together is less code than the three regex users
//! were on their own (plugins/README.md has the figures).

mod common;
mod goregexp;
mod headermatch;
mod limits;
mod random;
mod small_alloc;
mod transform;

/// Small blocks by size class (see small_alloc.rs); natively (the unit
/// tests) the system's allocator.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: small_alloc::Classes = small_alloc::Classes::new();

#[path = "add-header.rs"]
mod add_header;
mod canary;
mod cors;
mod fault;
#[path = "ip-restriction.rs"]
mod ip_restriction;
mod jwt;
#[path = "key-auth.rs"]
mod key_auth;
#[path = "rate-limiting.rs"]
mod rate_limiting;
#[path = "request-transformer.rs"]
mod request_transformer;
#[path = "response-ratelimiting.rs"]
mod response_ratelimiting;
#[path = "response-transformer.rs"]
mod response_transformer;

use sluice_proxy_wasm::{self as sdk, HttpContext, LogLevel, RootContext, StreamContext};

/// Every built-in by name (its root_id), with the maker of its root
/// context. plugins.go's names list the same; TestNamesMatchModules
/// (plugins/realhost) keeps the two in step.
pub const PLUGINS: &[(&str, fn() -> Box<dyn RootContext>)] = &[
    (add_header::NAME, add_header::root),
    (canary::NAME, canary::root),
    (cors::NAME, cors::root),
    (fault::NAME, fault::root),
    (ip_restriction::NAME, ip_restriction::root),
    (jwt::NAME, jwt::root),
    (key_auth::NAME, key_auth::root),
    (rate_limiting::NAME, rate_limiting::root),
    (request_transformer::NAME, request_transformer::root),
    (response_ratelimiting::NAME, response_ratelimiting::root),
    (response_transformer::NAME, response_transformer::root),
];

sdk::main! {
    sdk::set_root_context(|_| Box::new(Builtin { plugin: None }));
}

/// A root context that becomes the built-in its root_id names, at its
/// first callback (vm_start or configure: the host answers
/// plugin_root_id for a root context from then on).
struct Builtin {
    plugin: Option<Box<dyn RootContext>>,
}

impl Builtin {
    /// The plugin root_id names, made at the first call; None (and
    /// nothing made) when the host names no built-in.
    fn plugin(&mut self) -> Option<&mut Box<dyn RootContext>> {
        if self.plugin.is_none() {
            let id = sdk::get_property(&["plugin_root_id"]).ok().flatten().unwrap_or_default();
            self.plugin = PLUGINS.iter().find(|(name, _)| name.as_bytes() == id.as_slice()).map(|(_, root)| root());
        }
        self.plugin.as_mut()
    }
}

impl RootContext for Builtin {
    fn on_vm_start(&mut self, size: usize) -> bool {
        // A root_id that names no built-in is refused by on_configure,
        // with the reason.
        self.plugin().map_or(true, |p| p.on_vm_start(size))
    }

    fn on_configure(&mut self, size: usize) -> bool {
        if let Some(p) = self.plugin() {
            return p.on_configure(size);
        }
        let id = sdk::get_property(&["plugin_root_id"]).ok().flatten().unwrap_or_default();
        let names: Vec<&str> = PLUGINS.iter().map(|(n, _)| *n).collect();
        sdk::log(LogLevel::Critical, &format!("no built-in plugin {:?}: root_id names one of {}", sdk::lossy(&id), names.join(", ")));
        false
    }

    fn on_tick(&mut self) {
        if let Some(p) = &mut self.plugin {
            p.on_tick();
        }
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        if let Some(p) = &mut self.plugin {
            p.on_queue_ready(queue_id);
        }
    }

    fn on_http_call_response(&mut self, token: u32, num_headers: usize, body_size: usize, num_trailers: usize) {
        if let Some(p) = &mut self.plugin {
            p.on_http_call_response(token, num_headers, body_size, num_trailers);
        }
    }

    fn on_done(&mut self) -> bool {
        self.plugin.as_mut().map_or(true, |p| p.on_done())
    }

    /// Once configured, the built-in is the root context itself: a
    /// stream's context is made without going through this one.
    fn take_delegate(&mut self) -> Option<Box<dyn RootContext>> {
        self.plugin.take()
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        self.plugin.as_ref().and_then(|p| p.create_http_context(context_id))
    }

    fn create_stream_context(&self, context_id: u32) -> Option<Box<dyn StreamContext>> {
        self.plugin.as_ref().and_then(|p| p.create_stream_context(context_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugins_sorted_and_distinct() {
        for w in PLUGINS.windows(2) {
            assert!(w[0].0 < w[1].0, "PLUGINS: {:?} before {:?}", w[0].0, w[1].0);
        }
    }
}
