//! Uniform random numbers for weighted picks (canary's split, fault's
//! percentages), where the Go plugins use math/rand. A wasm32-unknown-
//! unknown guest has no entropy source; the generator (splitmix64) is
//! seeded from the host's clock at first use, which is all a traffic
//! split needs (nothing secret depends on it).
#![allow(dead_code)]

use sluice_proxy_wasm as sdk;
use std::cell::Cell;

thread_local! {
    static STATE: Cell<u64> = Cell::new(0);
}

fn next_u64() -> u64 {
    STATE.with(|s| {
        let mut x = s.get();
        if x == 0 {
            x = sdk::get_current_time_nanoseconds().unwrap_or(0) | 1;
        }
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// A uniform number in [0, 1), as Go's rand.Float64.
pub fn float64() -> f64 {
    (next_u64() >> 11) as f64 / (1u64 << 53) as f64
}
