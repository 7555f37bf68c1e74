//! A benchmark guest on the Rust crate: each proxy_on_request_headers
//! makes N header hostcalls of one kind, named by the plugin
//! configuration "OP N" (OP: none, get, get-bytes, add, replace, remove,
//! pairs, pairs-view, pairs-raw, add5, replace5), so the host's cost per
//! hostcall is the callback's time over N. add5 and replace5 edit five
//! headers in one call (sluice_add_headers, sluice_replace_headers), N/5
//! times: their cost per header is comparable with add's and replace's. pairs decodes the map as the crate's get_map
//! does (a String per key and value); pairs-view reads it in place with
//! get_map_pairs and looks one header up; pairs-raw makes the bare
//! hostcall and frees the buffer, the host's share. get-bytes is get
//! without making the value a String.

use sluice_proxy_wasm::{self as sdk, Action, HttpContext, MapType, RootContext};

sdk::main! {
    sdk::set_root_context(|_| Box::new(Root { op: Op::None, n: 0 }));
}

#[derive(Clone, Copy)]
enum Op {
    None,
    Get,
    GetBytes,
    Add,
    Replace,
    Remove,
    Pairs,
    PairsView,
    PairsRaw,
    Add5,
    Replace5,
}

const FIVE: [(&str, &str); 5] = [("x-wasm-1", "1"), ("x-wasm-2", "2"), ("x-wasm-3", "3"), ("x-wasm-4", "4"), ("x-wasm-5", "5")];

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(t: u32, data: *mut *mut u8, size: *mut usize) -> u32;
}

/// The bare hostcall: the host's encoding, handed over and freed.
fn pairs_raw(t: MapType) -> bool {
    let mut p: *mut u8 = std::ptr::null_mut();
    let mut n: usize = 0;
    if unsafe { proxy_get_header_map_pairs(t as u32, &mut p, &mut n) } != 0 || p.is_null() {
        return true;
    }
    // The crate's allocator hands out Vec<u8> buffers of capacity n.
    drop(unsafe { Vec::from_raw_parts(p, n, n.max(1)) });
    n < 4
}

struct Root {
    op: Op,
    n: u32,
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let cfg = match sdk::get_plugin_configuration() {
            Ok(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
            _ => return false,
        };
        let mut it = cfg.split_whitespace();
        self.op = match it.next() {
            Some("none") => Op::None,
            Some("get") => Op::Get,
            Some("get-bytes") => Op::GetBytes,
            Some("add") => Op::Add,
            Some("replace") => Op::Replace,
            Some("remove") => Op::Remove,
            Some("pairs") => Op::Pairs,
            Some("pairs-view") => Op::PairsView,
            Some("pairs-raw") => Op::PairsRaw,
            Some("add5") => Op::Add5,
            Some("replace5") => Op::Replace5,
            _ => return false,
        };
        self.n = match it.next().map(str::parse) {
            Some(Ok(n)) => n,
            _ => return false,
        };
        true
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream { op: self.op, n: self.n }))
    }
}

struct Stream {
    op: Op,
    n: u32,
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let t = MapType::HttpRequestHeaders;
        let mut bad = false;
        let n = match self.op {
            Op::Add5 | Op::Replace5 => self.n / 5,
            _ => self.n,
        };
        for _ in 0..n {
            bad |= match self.op {
                Op::None => false,
                Op::Get => sdk::get_map_value(t, "user-agent").map(|v| v.is_none()).unwrap_or(true),
                Op::GetBytes => sdk::get_map_value_bytes(t, "user-agent").map(|v| v.is_none()).unwrap_or(true),
                Op::Add => sdk::add_map_value(t, "x-wasm", "1").is_err(),
                Op::Replace => sdk::replace_map_value(t, "x-wasm", "1").is_err(),
                Op::Remove => sdk::remove_map_value(t, "x-absent").is_err(),
                Op::Pairs => sdk::get_map(t).map(|p| p.is_empty()).unwrap_or(true),
                Op::PairsView => sdk::get_map_pairs(t).map(|p| p.get("user-agent").is_none()).unwrap_or(true),
                Op::PairsRaw => pairs_raw(t),
                Op::Add5 => sdk::add_map_values(t, &FIVE).is_err(),
                Op::Replace5 => sdk::replace_map_values(t, &FIVE).is_err(),
            };
        }
        if bad {
            // The benchmark fails on a paused stream.
            return Action::Pause;
        }
        Action::Continue
    }
}
