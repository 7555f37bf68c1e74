//! What the rate limiters share (the Rust side of
//! plugins/src/internal/common's window.go and counter.go): Kong's
//! periods and their fixed windows, and a window counter in the host's
//! shared data, updated with compare-and-swap. Which store backs shared
//! data (memory, or Redis so replicas share counts) is the host's
//! configuration: policy = "redis" is counted here the same way.
#![allow(dead_code)]

use sluice_proxy_wasm::{self as sdk, json};

/// Kong's windows, shortest first.
pub const PERIODS: [&str; 6] = ["second", "minute", "hour", "day", "month", "year"];

/// Days since 1970-01-01 of a civil date (proleptic Gregorian, UTC).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The civil date (year, month) of a day since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + if m <= 2 { 1 } else { 0 }, m)
}

/// The start and end (unix seconds) of the period's window holding now:
/// fixed windows, months and years calendar ones in UTC, as Kong's.
pub fn window(period: &str, now: i64) -> (i64, i64) {
    match PERIODS.iter().position(|p| *p == period) {
        Some(i) => window_of(i, now),
        None => (now, now),
    }
}

/// window for PERIODS[i] (by index: a request's path compares no names).
pub fn window_of(i: usize, now: i64) -> (i64, i64) {
    let fixed = |d: i64| {
        let s = now.div_euclid(d) * d;
        (s, s + d)
    };
    match i {
        0 => (now, now + 1),
        1 => fixed(60),
        2 => fixed(3600),
        3 => fixed(86400),
        4 | 5 => {
            let (y, m) = civil_from_days(now.div_euclid(86400));
            if i == 4 {
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (days_from_civil(y, m, 1) * 86400, days_from_civil(ny, nm, 1) * 86400)
            } else {
                (days_from_civil(y, 1, 1) * 86400, days_from_civil(y + 1, 1, 1) * 86400)
            }
        }
        _ => (now, now),
    }
}

/// Whole seconds until end, at least 1.
pub fn reset_seconds(end: i64, now: i64) -> i64 {
    (end - now).max(1)
}

/// The host's clock in unix seconds (0, logged, if it cannot be read).
pub fn now_seconds() -> i64 {
    match sdk::get_current_time_nanoseconds() {
        Ok(t) => (t / 1_000_000_000) as i64,
        Err(e) => {
            sdk::log(sdk::LogLevel::Warn, &format!("reading host time: {:?}", e));
            0
        }
    }
}

/// The configured plugin's name (it scopes the counters and names the
/// metrics), or default when the host does not say.
pub fn plugin_name(default: &str) -> String {
    match sdk::get_property(&["plugin_name"]) {
        Ok(Some(n)) if !n.is_empty() => String::from_utf8_lossy(&n).into_owned(),
        _ => default.to_string(),
    }
}

/// Defines a counter, logging a failure (then id 0, which counts nothing).
pub fn counter(plugin: &str, name: &str) -> u32 {
    sdk::define_metric(sdk::MetricType::Counter, name).unwrap_or_else(|e| {
        sdk::log(sdk::LogLevel::Error, &format!("{}: defining {}: {:?}", plugin, name, e));
        0
    })
}

/// The host's shared data: a key-value store with compare-and-swap.
pub trait Store {
    /// None for a missing key.
    fn get(&mut self, key: &str) -> Result<(Option<Vec<u8>>, u32), sdk::Status>;
    /// cas 0 writes unconditionally; otherwise Err(CasMismatch) if the
    /// value changed since get.
    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), sdk::Status>;
}

/// The Store of the host.
pub struct SharedData;

impl Store for SharedData {
    fn get(&mut self, key: &str) -> Result<(Option<Vec<u8>>, u32), sdk::Status> {
        sdk::get_shared_data(key)
    }
    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), sdk::Status> {
        sdk::set_shared_data(key, value, cas)
    }
}

/// Bounds the retries of a contended counter; past it the store counts
/// as failing.
const CAS_ATTEMPTS: usize = 16;

// A window counter is 16 bytes: the window's start (unix seconds), then
// the count, both little-endian (the Go plugins' format, so both read one
// store). One key per identifier and period, not per window, so the
// store does not grow with time.
fn decode_window(b: &[u8]) -> Option<(i64, i64)> {
    if b.len() != 16 {
        return None;
    }
    let mut s = [0u8; 8];
    let mut c = [0u8; 8];
    s.copy_from_slice(&b[..8]);
    c.copy_from_slice(&b[8..]);
    Some((i64::from_le_bytes(s), i64::from_le_bytes(c)))
}

fn encode_window(start: i64, count: i64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&start.to_le_bytes());
    b[8..].copy_from_slice(&count.to_le_bytes());
    b
}

/// What Store::get answered for a key: its value (None if missing) and CAS.
pub type Read = (Option<Vec<u8>>, u32);

/// The count of key in the window starting at window_start.
pub fn usage(s: &mut dyn Store, key: &str, window_start: i64) -> Result<i64, String> {
    usage_read(s, key, window_start).map(|(n, _)| n)
}

/// usage, with what the store answered: [`increment_from`] can start
/// from it instead of reading the key again.
pub fn usage_read(s: &mut dyn Store, key: &str, window_start: i64) -> Result<(i64, Read), String> {
    let r = s.get(key).map_err(|e| format!("reading {:?}: {:?}", key, e))?;
    let n = match r.0.as_deref().and_then(decode_window) {
        Some((start, count)) if start == window_start => count,
        _ => 0,
    };
    Ok((n, r))
}

/// Adds by to key's count in the window starting at window_start, unless
/// that would pass limit (limit <= 0: no limit): the count after the call
/// and whether the increment happened. Concurrent writers are serialised
/// by CAS; the first write of a key is unconditional (the ABI has no
/// create-if-absent).
pub fn increment(s: &mut dyn Store, key: &str, window_start: i64, by: i64, limit: i64) -> Result<(i64, bool), String> {
    increment_from(s, key, window_start, by, limit, None)
}

/// increment, its first attempt from a read of the key already made
/// (usage_read's) when that found a value: the write's CAS still refuses
/// it if the key changed since, and the next attempt reads again. A
/// missing key is read again (its first write is unconditional).
pub fn increment_from(s: &mut dyn Store, key: &str, window_start: i64, by: i64, limit: i64, read: Option<Read>) -> Result<(i64, bool), String> {
    let mut read = read.filter(|(v, _)| v.is_some());
    for _ in 0..CAS_ATTEMPTS {
        let (v, cas) = match read.take() {
            Some(r) => r,
            None => s.get(key).map_err(|e| format!("reading {:?}: {:?}", key, e))?,
        };
        let count = match v.as_deref().and_then(decode_window) {
            Some((start, c)) if start == window_start => c,
            _ => 0,
        };
        let cas = if v.is_none() { 0 } else { cas };
        if limit > 0 && count.wrapping_add(by) > limit {
            return Ok((count, false));
        }
        match s.set(key, &encode_window(window_start, count.wrapping_add(by)), cas) {
            Ok(()) => return Ok((count.wrapping_add(by), true)),
            Err(sdk::Status::CasMismatch) => continue,
            Err(e) => return Err(format!("writing {:?}: {:?}", key, e)),
        }
    }
    Err(format!("updating {:?}: still contended after {} attempts", key, CAS_ATTEMPTS))
}

/// Decodes a *int64 member: null unsets it.
pub fn opt_i64(v: &json::Value, field: &str) -> Result<Option<i64>, String> {
    json::signed(v, field, "int64")
}

/// Checks a member decodes as a Go float64 (Kong's keys sluice accepts
/// and ignores, such as sync_rate).
pub fn float(v: &json::Value, field: &str) -> Result<(), String> {
    match v {
        json::Value::Null => Ok(()),
        json::Value::Number(n) => match n.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(()),
            _ => Err(format!("config: json: cannot unmarshal number {} into Go struct field {} of type float64", n, field)),
        },
        _ => Err(json::type_error(v, field, "float64")),
    }
}

/// An in-memory Store for tests.
#[cfg(test)]
#[derive(Default)]
pub struct MemStore {
    pub m: std::collections::HashMap<String, (Vec<u8>, u32)>,
    pub seq: u32,
    /// How many gets and sets were made.
    pub gets: usize,
    pub sets: usize,
    /// Every call fails with it, when set.
    pub fail: Option<sdk::Status>,
}

#[cfg(test)]
impl Store for MemStore {
    fn get(&mut self, key: &str) -> Result<(Option<Vec<u8>>, u32), sdk::Status> {
        self.gets += 1;
        if let Some(e) = self.fail {
            return Err(e);
        }
        Ok(match self.m.get(key) {
            Some((v, cas)) => (Some(v.clone()), *cas),
            None => (None, 0),
        })
    }
    fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), sdk::Status> {
        self.sets += 1;
        if let Some(e) = self.fail {
            return Err(e);
        }
        if cas != 0 && self.m.get(key).map(|e| e.1) != Some(cas) {
            return Err(sdk::Status::CasMismatch);
        }
        self.seq += 1;
        self.m.insert(key.to_string(), (value.to_vec(), self.seq));
        Ok(())
    }
}

#[cfg(test)]
mod limits_tests {
    use super::*;

    #[test]
    fn windows_as_go() {
        // 2023-11-14T22:13:20Z
        let now = 1_700_000_000;
        assert_eq!(window("second", now), (now, now + 1));
        assert_eq!(window("minute", now), (1_699_999_980, 1_700_000_040));
        assert_eq!(window("hour", now), (1_699_999_200, 1_700_002_800));
        assert_eq!(window("day", now), (1_699_920_000, 1_700_006_400));
        assert_eq!(window("month", now), (1_698_796_800, 1_701_388_800)); // Nov 1 .. Dec 1
        assert_eq!(window("year", now), (1_672_531_200, 1_704_067_200));
        assert_eq!(window("month", 1_703_980_800), (1_701_388_800, 1_704_067_200)); // Dec 31 .. Jan 1
        assert_eq!(window("month", 951_782_400), (949_363_200, 951_868_800)); // Feb 29 2000
        assert_eq!(reset_seconds(10, 20), 1);
    }

    #[test]
    fn counters() {
        let mut s = MemStore::default();
        for i in 1..=3 {
            assert_eq!(increment(&mut s, "k", 60, 1, 3), Ok((i, true)));
        }
        assert_eq!(increment(&mut s, "k", 60, 1, 3), Ok((3, false)));
        assert_eq!(usage(&mut s, "k", 60), Ok(3));
        assert_eq!(increment(&mut s, "k", 120, 1, 3), Ok((1, true)));
        assert_eq!(usage(&mut s, "k", 60), Ok(0));
        assert_eq!(s.m.len(), 1);
        s.fail = Some(sdk::Status::InternalFailure);
        assert!(increment(&mut s, "k", 0, 1, 5).is_err());
        assert!(usage(&mut s, "k", 0).is_err());
    }
}
