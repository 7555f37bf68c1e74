//! A small proxy-wasm SDK (ABI 0.2.1) with no dependencies, for filters
//! that run in sluice (or any proxy-wasm host) built for
//! `wasm32-unknown-unknown` with rustc >= 1.63.
//!
//! A filter implements [`RootContext`] (one per configured plugin) and
//! [`HttpContext`] (one per request), registers a factory with
//! [`set_root_context`] inside [`main!`] (which exports `_initialize`, the
//! hook hosts call before any other), and calls the functions of this crate
//! from its callbacks. The ABI's exports (`proxy_on_*`, `malloc`,
//! `proxy_on_memory_allocate`, `proxy_abi_version_0_2_1`) are defined here.

#![allow(clippy::missing_safety_doc)]

mod hostcalls;
pub mod json;

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// What a stream callback returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Action {
    Continue = 0,
    Pause = 1,
}

/// proxy_status_t values the host returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    NotFound,
    BadArgument,
    SerializationFailure,
    Empty,
    CasMismatch,
    InternalFailure,
    Unimplemented,
    Other(u32),
}

fn check(code: u32) -> Result<(), Status> {
    match code {
        0 => Ok(()),
        1 => Err(Status::NotFound),
        2 => Err(Status::BadArgument),
        3 => Err(Status::SerializationFailure),
        7 => Err(Status::Empty),
        8 => Err(Status::CasMismatch),
        10 => Err(Status::InternalFailure),
        12 => Err(Status::Unimplemented),
        c => Err(Status::Other(c)),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

/// Header maps (proxy_map_type_t).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MapType {
    HttpRequestHeaders = 0,
    HttpRequestTrailers = 1,
    HttpResponseHeaders = 2,
    HttpResponseTrailers = 3,
    HttpCallResponseHeaders = 6,
    HttpCallResponseTrailers = 7,
}

/// Buffers (proxy_buffer_type_t).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum BufferType {
    HttpRequestBody = 0,
    HttpResponseBody = 1,
    DownstreamData = 2,
    UpstreamData = 3,
    HttpCallResponseBody = 4,
    VmConfiguration = 6,
    PluginConfiguration = 7,
}

/// Metric kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MetricType {
    Counter = 0,
    Gauge = 1,
    Histogram = 2,
}

/// One configured plugin (Envoy's root context).
pub trait RootContext {
    /// The VM configuration is read with [`get_vm_configuration`].
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        true
    }
    /// The plugin configuration (JSON in sluice) is read with
    /// [`get_plugin_configuration`]; false refuses it.
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        true
    }
    fn on_tick(&mut self) {}
    fn on_queue_ready(&mut self, _queue_id: u32) {}
    /// Replies to calls the root context made itself.
    fn on_http_call_response(&mut self, _token: u32, _num_headers: usize, _body_size: usize, _num_trailers: usize) {}
    fn on_done(&mut self) -> bool {
        true
    }
    /// A root context that stands in for another until its configuration
    /// says which (a module of several plugins whose root_id chooses one)
    /// hands that one over here, asked after a successful on_configure:
    /// the root's callbacks then go to it directly, not through this one
    /// (which is dropped), saving a call on every stream.
    fn take_delegate(&mut self) -> Option<Box<dyn RootContext>> {
        None
    }
    /// Makes the context of one HTTP stream, or None for a non-HTTP plugin.
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        None
    }
    /// Makes the context of one TCP connection (a network filter), or None
    /// for a plugin without one. Asked at the connection's first callback,
    /// proxy_on_new_connection (the ABI's context_create does not say which
    /// kind of stream it is).
    fn create_stream_context(&self, _context_id: u32) -> Option<Box<dyn StreamContext>> {
        None
    }
}

/// One TCP connection through a network filter.
pub trait StreamContext {
    fn on_new_connection(&mut self) -> Action {
        Action::Continue
    }
    fn on_downstream_data(&mut self, _data_size: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
    fn on_upstream_data(&mut self, _data_size: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
    fn on_downstream_close(&mut self, _peer: u32) {}
    fn on_upstream_close(&mut self, _peer: u32) {}
    /// The connection is complete (access-log time).
    fn on_log(&mut self) {}
}

/// One HTTP stream.
pub trait HttpContext {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
    fn on_http_request_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        Action::Continue
    }
    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
    fn on_http_response_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        Action::Continue
    }
    /// The reply to a [`dispatch_http_call`] this stream made; the stream
    /// is the effective context, so [`resume_http_request`] works here.
    fn on_http_call_response(&mut self, _token: u32, _num_headers: usize, _body_size: usize, _num_trailers: usize) {}
    /// The stream is complete (access-log time).
    fn on_log(&mut self) {}
}

/// Defines the module's `_initialize` export, which hosts call once before
/// any proxy-wasm callback; register the root context factory in it:
///
/// ```ignore
/// sluice_proxy_wasm::main! {
///     sluice_proxy_wasm::set_root_context(|_| Box::new(MyRoot));
/// }
/// ```
#[macro_export]
macro_rules! main {
    ($($body:tt)*) => {
        #[no_mangle]
        pub extern "C" fn _initialize() {
            $($body)*
        }
    };
}

type RootFactory = Box<dyn Fn(u32) -> Box<dyn RootContext>>;

/// Hashes a context id (or token) with one multiply: the ids are the
/// host's, nobody can choose them to collide, and SipHash (std's default)
/// was a visible share of every callback's dispatch.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.0 = (self.0 ^ i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type IdMap<V> = HashMap<u32, V, BuildHasherDefault<IdHasher>>;

fn id_map<V>() -> RefCell<IdMap<V>> {
    RefCell::new(HashMap::default())
}

/// Declares what the module keeps between callbacks, used as
/// thread_locals are (`X.with(|x| ...)`); each is made by a constant
/// expression. An instance is one thread (wasm32 without atomics has no
/// other), so there they are statics read in place ([`InstanceStatic`]):
/// std's thread_local costs an indirect call to its accessor on every
/// access, and a dispatch makes several a callback. Natively (the unit
/// tests run on threads) they are thread_locals.
macro_rules! instance_statics {
    ($($(#[$attr:meta])* static $name:ident: $t:ty = $init:expr;)*) => {
        $(
            $(#[$attr])*
            #[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
            static $name: InstanceStatic<$t> = InstanceStatic(std::cell::UnsafeCell::new($init));
        )*
        #[cfg(not(all(target_arch = "wasm32", not(target_feature = "atomics"))))]
        thread_local! { $($(#[$attr])* static $name: $t = const { $init };)* }
    };
}

/// A static of a single-threaded instance.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
struct InstanceStatic<T: 'static>(std::cell::UnsafeCell<T>);

// Safety: the module runs on one thread (no atomics, no threads), and
// hands out shared references only (the values are Cells and RefCells).
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl<T> Sync for InstanceStatic<T> {}

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
impl<T> InstanceStatic<T> {
    /// f of the value, as LocalKey::with.
    #[inline]
    fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        // Safety: see the Sync impl.
        f(unsafe { &*self.0.get() })
    }
}

/// A stream context and the root context that made it. `ctx` is None when
/// the root made no HTTP context (a network filter's, until
/// proxy_on_new_connection asks for its stream context).
struct StreamEntry {
    ctx: Option<*mut dyn HttpContext>,
    parent: u32,
}

// The instance is single-threaded: these are statics (instance_statics).
//
// Contexts live on the heap (Box::into_raw) and the maps hold pointers to
// them, so a callback runs on its context in place, with one lookup: the
// maps may change meanwhile (a callback may dispatch a call, or a host
// may create a context) without moving it. RUNNING (the contexts whose
// callback runs, innermost last) keeps a context from being entered
// twice at once, and a context deleted while its callback runs is freed
// when the callback returns (DOOMED).
thread_local! {
    static ROOTS: RefCell<IdMap<*mut dyn RootContext>> = id_map();
    static STREAMS: RefCell<IdMap<StreamEntry>> = id_map();
    static CONNECTIONS: RefCell<IdMap<*mut dyn StreamContext>> = id_map();
}

instance_statics! {
    static FACTORY: RefCell<Option<RootFactory>> = RefCell::new(None);
    /// The calls out waiting for a reply: token to the context that made
    /// the call (None until the first; a stream asks at every callback
    /// whether it has one).
    static CALLOUTS: RefCell<Option<IdMap<u32>>> = RefCell::new(None);
    static RUNNING: RefCell<Vec<u32>> = RefCell::new(Vec::new());
    static DOOMED: RefCell<Vec<u32>> = RefCell::new(Vec::new());
    static ACTIVE: Cell<u32> = Cell::new(0);
    /// Whether the running on_configure called skip_callbacks.
    static SKIP_SENT: Cell<bool> = Cell::new(false);
    /// Root contexts found lately, at their id modulo ROOT_SLOTS: a
    /// stream's root is found without hashing. Plugins that share a VM
    /// (sluice's built-ins do) each have a root in every instance, and a
    /// chain of them alternates roots, which one last root would miss at
    /// every filter; their ids are few and consecutive. Cleared whenever
    /// ROOTS changes.
    static ROOT_CACHE: [Cell<Option<(u32, *mut dyn RootContext)>>; ROOT_SLOTS] = [NO_ROOT; ROOT_SLOTS];
}

const ROOT_SLOTS: usize = 32;
#[allow(clippy::declare_interior_mutable_const)]
const NO_ROOT: Cell<Option<(u32, *mut dyn RootContext)>> = Cell::new(None);

fn forget_cached_roots() {
    ROOT_CACHE.with(|c| c.iter().for_each(|r| r.set(None)));
}

/// Registers the factory of root contexts. Call it once, inside [`main!`].
pub fn set_root_context<F>(factory: F)
where
    F: Fn(u32) -> Box<dyn RootContext> + 'static,
{
    FACTORY.with(|f| *f.borrow_mut() = Some(Box::new(factory)));
}

fn set_active(id: u32) {
    ACTIVE.with(|a| a.set(id));
}

fn active() -> u32 {
    ACTIVE.with(|a| a.get())
}

/// Runs f on context id, found at ptr in its map, unless a callback of
/// the same context is already running (None then, as for a context that
/// does not exist).
fn run_in_place<T: ?Sized, R>(id: u32, ptr: *mut T, f: impl FnOnce(&mut T) -> R) -> Option<R> {
    let entered = RUNNING.with(|r| {
        let mut r = r.borrow_mut();
        if r.contains(&id) {
            return false;
        }
        r.push(id);
        true
    });
    if !entered {
        return None;
    }
    // Safety: ptr came from Box::into_raw and is freed only by
    // delete_context, which defers a context listed in RUNNING; RUNNING
    // also keeps this &mut the only one.
    let out = f(unsafe { &mut *ptr });
    RUNNING.with(|r| r.borrow_mut().pop());
    if DOOMED.with(|d| !d.borrow().is_empty()) {
        reap();
    }
    Some(out)
}

fn running(id: u32) -> bool {
    RUNNING.with(|r| r.borrow().contains(&id))
}

/// Frees the contexts deleted while their callbacks ran, once they end.
fn reap() {
    let ready: Vec<u32> = DOOMED.with(|d| {
        let mut d = d.borrow_mut();
        let (ready, keep) = d.iter().partition(|id| !running(**id));
        *d = keep;
        ready
    });
    for id in ready {
        delete_context(id);
    }
}

/// Takes a context out of its map and frees it (later, if its callback
/// runs). Context ids are unique across kinds.
fn delete_context(id: u32) {
    if running(id) {
        DOOMED.with(|d| d.borrow_mut().push(id));
        return;
    }
    // Safety (each free): the pointers came from Box::into_raw, and the
    // map entry was their only owner.
    if let Some(e) = STREAMS.with(|m| m.borrow_mut().remove(&id)) {
        if let Some(p) = e.ctx {
            drop(unsafe { Box::from_raw(p) });
        }
    } else if let Some(p) = CONNECTIONS.with(|m| m.borrow_mut().remove(&id)) {
        drop(unsafe { Box::from_raw(p) });
    } else if let Some(p) = ROOTS.with(|m| m.borrow_mut().remove(&id)) {
        forget_cached_roots();
        drop(unsafe { Box::from_raw(p) });
    }
}

fn with_root<R>(id: u32, f: impl FnOnce(&mut (dyn RootContext + 'static)) -> R) -> Option<R> {
    let p = ROOT_CACHE.with(|c| {
        let slot = &c[id as usize % ROOT_SLOTS];
        match slot.get() {
            Some((cached, p)) if cached == id => Some(p),
            _ => {
                let p = ROOTS.with(|m| m.borrow().get(&id).copied())?;
                slot.set(Some((id, p)));
                Some(p)
            }
        }
    })?;
    run_in_place(id, p, f)
}

fn with_connection<R>(id: u32, f: impl FnOnce(&mut (dyn StreamContext + 'static)) -> R) -> Option<R> {
    set_active(id);
    let p = CONNECTIONS.with(|m| m.borrow().get(&id).copied())?;
    run_in_place(id, p, f)
}

fn with_stream<R>(id: u32, f: impl FnOnce(&mut (dyn HttpContext + 'static)) -> R) -> Option<R> {
    set_active(id);
    let p = STREAMS.with(|m| m.borrow().get(&id).and_then(|e| e.ctx))?;
    run_in_place(id, p, f)
}

// ---- memory ----

/// The host copies data into the guest through this allocation; the
/// buffer is owned (and freed) by the hostcall wrapper that receives it.
#[cfg_attr(target_arch = "wasm32", no_mangle)]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    // The layout take() frees with (a Vec<u8> of capacity len.max(1)),
    // straight from the allocator: no Vec, no capacity-overflow panic; a
    // size it cannot serve answers null, which the host reports.
    match std::alloc::Layout::from_size_align(size.max(1), 1) {
        Ok(l) => unsafe { std::alloc::alloc(l) },
        Err(_) => std::ptr::null_mut(),
    }
}

/// Legacy name of the allocator; hosts look for it first. Exported only
/// on wasm32: natively it would replace libc's malloc.
#[cfg(target_arch = "wasm32")]
#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut u8 {
    proxy_on_memory_allocate(size)
}

/// memcmp for the module: the compiler's own (compiler_builtins) compares
/// a byte a step, about 2.7 ns a byte under wazero, which made comparing
/// a 600-byte JWT with a cached one 1.6 us. This one compares 32 bytes a
/// step while they are equal, then 8, and ends with the last 8 (or 4)
/// bytes read again over what was compared: a 23-byte origin is three
/// word compares, not 23 byte ones. Slice and string equality come here.
/// Natively libc's serves (the unit tests compare [`compare_bytes`] with
/// it).
#[cfg(target_arch = "wasm32")]
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    compare_bytes(a, b, n)
}

/// memcmp's comparison: the sign of the first byte that differs.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
unsafe fn compare_bytes(a: *const u8, b: *const u8, n: usize) -> i32 {
    // The first byte that differs in two little-endian words that do.
    unsafe fn first_diff(a: *const u8, b: *const u8, x: u64, y: u64) -> i32 {
        let k = ((x ^ y).trailing_zeros() / 8) as usize;
        *a.add(k) as i32 - *b.add(k) as i32
    }
    let word = |p: *const u8, i: usize| (p.add(i) as *const u64).read_unaligned();
    if n < 8 {
        if n >= 4 {
            // Two 4-byte words, the second overlapping the first; byte
            // order decides, so compare them big-endian.
            let w = |p: *const u8, i: usize| u32::from_be((p.add(i) as *const u32).read_unaligned());
            let (x, y) = (w(a, 0), w(b, 0));
            if x != y {
                return if x < y { -1 } else { 1 };
            }
            let (x, y) = (w(a, n - 4), w(b, n - 4));
            return if x == y { 0 } else if x < y { -1 } else { 1 };
        }
        let mut i = 0;
        while i < n {
            let (x, y) = (*a.add(i), *b.add(i));
            if x != y {
                return x as i32 - y as i32;
            }
            i += 1;
        }
        return 0;
    }
    let mut i = 0;
    while i + 32 <= n {
        // The farthest word first: wazero checks its bounds and knows
        // the nearer ones are in.
        let d = (word(a, i + 24) ^ word(b, i + 24))
            | (word(a, i + 16) ^ word(b, i + 16))
            | (word(a, i + 8) ^ word(b, i + 8))
            | (word(a, i) ^ word(b, i));
        if d != 0 {
            break;
        }
        i += 32;
    }
    while i + 8 <= n {
        let (x, y) = (word(a, i), word(b, i));
        if x != y {
            return first_diff(a.add(i), b.add(i), x, y);
        }
        i += 8;
    }
    if i < n {
        // The last 8 bytes: those before i are equal.
        let j = n - 8;
        let (x, y) = (word(a, j), word(b, j));
        if x != y {
            return first_diff(a.add(j), b.add(j), x, y);
        }
    }
    0
}

/// memcpy for the module: the compiler's own (compiler_builtins, the
/// MVP has no bulk memory) aligns and shifts its way through, about 260
/// instructions under wazero for a header name. This one copies 8 bytes
/// a step and ends with the last 8 (or 4) copied again. (Bulk memory's
/// memory.copy would serve, but wazero compiles each into a call with
/// every register saved around it: the built-ins' compiled code grows
/// by 5 %.) Natively libc's serves.
#[cfg(target_arch = "wasm32")]
#[no_mangle]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    copy_bytes(dst, src, n);
    dst
}

/// memset for the module, as memcpy.
#[cfg(target_arch = "wasm32")]
#[no_mangle]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    fill_bytes(dst, c as u8, n);
    dst
}

/// memcpy's copy (the regions do not overlap).
#[inline(always)]
unsafe fn copy_bytes(d: *mut u8, s: *const u8, n: usize) {
    if n >= 8 {
        let mut i = 0;
        while i + 8 < n {
            (d.add(i) as *mut u64).write_unaligned((s.add(i) as *const u64).read_unaligned());
            // This loop is memcpy: the fence keeps the compiler from
            // making it a call to memcpy.
            std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
            i += 8;
        }
        (d.add(n - 8) as *mut u64).write_unaligned((s.add(n - 8) as *const u64).read_unaligned());
    } else if n >= 4 {
        (d as *mut u32).write_unaligned((s as *const u32).read_unaligned());
        (d.add(n - 4) as *mut u32).write_unaligned((s.add(n - 4) as *const u32).read_unaligned());
    } else {
        let mut i = 0;
        while i < n {
            *d.add(i) = *s.add(i);
            std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
            i += 1;
        }
    }
}

/// memset's fill.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
unsafe fn fill_bytes(d: *mut u8, c: u8, n: usize) {
    if n >= 8 {
        let v = u64::from_ne_bytes([c; 8]);
        let mut i = 0;
        while i + 8 < n {
            (d.add(i) as *mut u64).write_unaligned(v);
            // As copy_bytes': not a call to memset.
            std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
            i += 8;
        }
        (d.add(n - 8) as *mut u64).write_unaligned(v);
    } else {
        let mut i = 0;
        while i < n {
            *d.add(i) = c;
            std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
            i += 1;
        }
    }
}

/// bcmp (equality only), for code that asks for it by that name.
#[cfg(target_arch = "wasm32")]
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    memcmp(a, b, n)
}

unsafe fn take(ptr: *mut u8, len: usize) -> Vec<u8> {
    if ptr.is_null() {
        return Vec::new();
    }
    Vec::from_raw_parts(ptr, len, len.max(1))
}

// ---- exports ----

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, parent_id: u32) {
    set_active(context_id);
    if parent_id == 0 {
        let root = FACTORY.with(|f| f.borrow().as_ref().map(|f| f(context_id)));
        match root {
            Some(r) => {
                let p = Box::into_raw(r);
                forget_cached_roots();
                if let Some(old) = ROOTS.with(|m| m.borrow_mut().insert(context_id, p)) {
                    forget_replaced(context_id, old);
                }
            }
            None => log(LogLevel::Critical, "no root context factory: call set_root_context"),
        }
        return;
    }
    create_stream(context_id, parent_id);
}

/// Makes the root's context for a stream and keeps it; returns it.
fn create_stream(id: u32, parent: u32) -> Option<*mut dyn HttpContext> {
    let ctx = with_root(parent, |r| r.create_http_context(id)).flatten().map(Box::into_raw);
    if let Some(old) = STREAMS.with(|m| m.borrow_mut().insert(id, StreamEntry { ctx, parent })) {
        if let Some(p) = old.ctx {
            forget_replaced(id, p);
        }
    }
    ctx
}

/// proxy_on_context_create and proxy_on_request_headers in one call:
/// sluice calls this instead of the two (when the plugin does not skip
/// request headers), saving an entry into the module per stream. Other
/// hosts call the two.
#[no_mangle]
pub extern "C" fn sluice_on_context_create_request_headers(id: u32, parent: u32, n: usize, eos: u32) -> u32 {
    set_active(id);
    if eos & LAST_ENTRY != 0 {
        return only_request_headers(id, parent, n, eos);
    }
    let ctx = create_stream(id, parent);
    set_active(id);
    let a = ctx.and_then(|p| run_in_place(id, p, |s| s.on_http_request_headers(n, eos & 1 != 0))).unwrap_or(Action::Continue);
    release_if_last(id, a, eos)
}

/// Bit 1 of a headers callback's end_of_stream on sluice: the callback is
/// the stream's last entry into the guest (see
/// [`callbacks::STREAM_RELEASE`]); bit 8 of its result: the context is
/// freed, sluice calls no proxy_on_delete.
const LAST_ENTRY: u32 = 2;
const RELEASED: u32 = 1 << 8;

/// A stream whose request headers are its only entry into the guest (a
/// plugin that works there alone): its context lives for this call, and
/// goes into the map only if the stream still needs it (it paused, or a
/// call out will answer to it). No context can reach it meanwhile: the
/// host enters the guest again only for the allocator.
fn only_request_headers(id: u32, parent: u32, n: usize, eos: u32) -> u32 {
    let ctx = with_root(parent, |r| r.create_http_context(id)).flatten();
    set_active(id);
    let mut c = match ctx {
        Some(c) => c,
        None => return Action::Continue as u32 | RELEASED,
    };
    let a = c.on_http_request_headers(n, eos & 1 != 0);
    if a == Action::Continue && !has_callout(id) {
        return a as u32 | RELEASED;
    }
    let p = Box::into_raw(c);
    if let Some(old) = STREAMS.with(|m| m.borrow_mut().insert(id, StreamEntry { ctx: Some(p), parent })) {
        if let Some(o) = old.ctx {
            forget_replaced(id, o);
        }
    }
    a as u32
}

fn has_callout(id: u32) -> bool {
    CALLOUTS.with(|m| {
        let m = m.borrow();
        m.as_ref().map_or(false, |m| !m.is_empty() && m.values().any(|c| *c == id))
    })
}

/// A headers callback's result, after freeing the stream's context when
/// sluice said the callback is the stream's last entry into the guest
/// (bit 1 of end_of_stream; see [`callbacks::STREAM_RELEASE`]), the
/// stream goes on and no call out will answer to it: bit 8 of the result
/// then tells sluice, which calls no proxy_on_delete.
fn release_if_last(id: u32, a: Action, eos: u32) -> u32 {
    if eos & LAST_ENTRY == 0 || a != Action::Continue || has_callout(id) {
        return a as u32;
    }
    delete_context(id);
    a as u32 | RELEASED
}

/// Frees a context its id was given to again (a host that reused a live
/// id), unless its callback runs: then it is leaked rather than freed
/// under it.
fn forget_replaced<T: ?Sized>(id: u32, old: *mut T) {
    if !running(id) {
        // Safety: from Box::into_raw; the map no longer holds it.
        drop(unsafe { Box::from_raw(old) });
    }
}

/// A connection's first callback: the context made at context_create
/// was for HTTP; it becomes the root's stream context.
#[no_mangle]
pub extern "C" fn proxy_on_new_connection(id: u32) -> u32 {
    let parent = STREAMS.with(|m| m.borrow().get(&id).map(|e| e.parent));
    if let Some(e) = STREAMS.with(|m| m.borrow_mut().remove(&id)) {
        if let Some(p) = e.ctx {
            forget_replaced(id, p);
        }
    }
    set_active(id);
    if let Some(c) = parent.and_then(|p| with_root(p, |r| r.create_stream_context(id)).flatten()) {
        let p = Box::into_raw(c);
        if let Some(old) = CONNECTIONS.with(|m| m.borrow_mut().insert(id, p)) {
            forget_replaced(id, old);
        }
    }
    set_active(id);
    with_connection(id, |c| c.on_new_connection()).unwrap_or(Action::Continue) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_downstream_data(id: u32, n: usize, eos: u32) -> u32 {
    with_connection(id, |c| c.on_downstream_data(n, eos != 0)).unwrap_or(Action::Continue) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_upstream_data(id: u32, n: usize, eos: u32) -> u32 {
    with_connection(id, |c| c.on_upstream_data(n, eos != 0)).unwrap_or(Action::Continue) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_downstream_connection_close(id: u32, peer: u32) {
    with_connection(id, |c| c.on_downstream_close(peer));
}

#[no_mangle]
pub extern "C" fn proxy_on_upstream_connection_close(id: u32, peer: u32) {
    with_connection(id, |c| c.on_upstream_close(peer));
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(root_id: u32, size: usize) -> u32 {
    set_active(root_id);
    with_root(root_id, |r| r.on_vm_start(size)).unwrap_or(true) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(root_id: u32, size: usize) -> u32 {
    set_active(root_id);
    SKIP_SENT.with(|s| s.set(false));
    let ok = with_root(root_id, |r| r.on_configure(size)).unwrap_or(false);
    if ok && !SKIP_SENT.with(|s| s.get()) {
        // Streams end without proxy_on_done (see callbacks::STREAM_DONE).
        let _ = skip_callbacks(0);
    }
    if ok {
        if let Some(d) = with_root(root_id, |r| r.take_delegate()).flatten() {
            replace_root(root_id, d);
        }
    }
    ok as u32
}

/// Puts root in place of root context id's, dropping the one it replaces
/// (whose callback has returned: none runs between the host's calls).
fn replace_root(id: u32, root: Box<dyn RootContext>) {
    let p = Box::into_raw(root);
    forget_cached_roots();
    if let Some(old) = ROOTS.with(|m| m.borrow_mut().insert(id, p)) {
        forget_replaced(id, old);
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(root_id: u32) {
    set_active(root_id);
    with_root(root_id, |r| r.on_tick());
}

#[no_mangle]
pub extern "C" fn proxy_on_queue_ready(root_id: u32, queue_id: u32) {
    set_active(root_id);
    with_root(root_id, |r| r.on_queue_ready(queue_id));
}

#[no_mangle]
pub extern "C" fn proxy_on_done(context_id: u32) -> u32 {
    set_active(context_id);
    with_root(context_id, |r| r.on_done()).unwrap_or(true) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_log(context_id: u32) {
    if with_stream(context_id, |s| s.on_log()).is_none() {
        with_connection(context_id, |c| c.on_log());
    }
}

/// Forgets the context: an instance holds state only for live streams.
#[no_mangle]
pub extern "C" fn proxy_on_delete(context_id: u32) {
    delete_context(context_id);
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(id: u32, n: usize, eos: u32) -> u32 {
    let a = with_stream(id, |s| s.on_http_request_headers(n, eos & 1 != 0)).unwrap_or(Action::Continue);
    release_if_last(id, a, eos)
}

#[no_mangle]
pub extern "C" fn proxy_on_request_body(id: u32, n: usize, eos: u32) -> u32 {
    with_stream(id, |s| s.on_http_request_body(n, eos != 0)).unwrap_or(Action::Continue) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_request_trailers(id: u32, n: usize) -> u32 {
    with_stream(id, |s| s.on_http_request_trailers(n)).unwrap_or(Action::Continue) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(id: u32, n: usize, eos: u32) -> u32 {
    let a = with_stream(id, |s| s.on_http_response_headers(n, eos & 1 != 0)).unwrap_or(Action::Continue);
    release_if_last(id, a, eos)
}

#[no_mangle]
pub extern "C" fn proxy_on_response_body(id: u32, n: usize, eos: u32) -> u32 {
    with_stream(id, |s| s.on_http_response_body(n, eos != 0)).unwrap_or(Action::Continue) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_response_trailers(id: u32, n: usize) -> u32 {
    with_stream(id, |s| s.on_http_response_trailers(n)).unwrap_or(Action::Continue) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_http_call_response(root_id: u32, token: u32, nh: usize, bs: usize, nt: usize) {
    let caller = CALLOUTS.with(|m| m.borrow_mut().as_mut().and_then(|m| m.remove(&token))).unwrap_or(root_id);
    let live = STREAMS.with(|m| m.borrow().get(&caller).map_or(false, |e| e.ctx.is_some()));
    if caller != root_id && live {
        // Act as the stream that made the call, so it can resume itself.
        unsafe { hostcalls::proxy_set_effective_context(caller) };
        with_stream(caller, |s| s.on_http_call_response(token, nh, bs, nt));
        return;
    }
    set_active(root_id);
    with_root(root_id, |r| r.on_http_call_response(token, nh, bs, nt));
}

// ---- logging, time, ticks ----

pub fn log(level: LogLevel, msg: &str) {
    unsafe { hostcalls::proxy_log(level as u32, msg.as_ptr(), msg.len()) };
}

pub fn get_current_time_nanoseconds() -> Result<u64, Status> {
    let mut t = 0u64;
    check(unsafe { hostcalls::proxy_get_current_time_nanoseconds(&mut t) })?;
    Ok(t)
}

pub fn set_tick_period_milliseconds(ms: u32) -> Result<(), Status> {
    check(unsafe { hostcalls::proxy_set_tick_period_milliseconds(ms) })
}

pub fn set_effective_context(context_id: u32) -> Result<(), Status> {
    check(unsafe { hostcalls::proxy_set_effective_context(context_id) })?;
    set_active(context_id);
    Ok(())
}

// ---- foreign functions ----

/// Calls a host function outside the ABI by name; Ok(None) when it
/// returned nothing.
pub fn call_foreign_function(name: &str, args: &[u8]) -> Result<Option<Vec<u8>>, Status> {
    let mut p: *mut u8 = std::ptr::null_mut();
    let mut n: usize = 0;
    check(unsafe { hostcalls::proxy_call_foreign_function(name.as_ptr(), name.len(), args.as_ptr(), args.len(), &mut p, &mut n) })?;
    Ok(if p.is_null() { None } else { Some(unsafe { take(p, n) }) })
}

/// Stream callbacks, as bits of [`skip_callbacks`]' mask.
pub mod callbacks {
    pub const REQUEST_HEADERS: u32 = 1 << 0;
    pub const REQUEST_BODY: u32 = 1 << 1;
    pub const REQUEST_TRAILERS: u32 = 1 << 2;
    pub const RESPONSE_HEADERS: u32 = 1 << 3;
    pub const RESPONSE_BODY: u32 = 1 << 4;
    pub const RESPONSE_TRAILERS: u32 = 1 << 5;
    pub const LOG: u32 = 1 << 6;
    /// The plugin's HTTP stream contexts answer proxy_on_done true and do
    /// nothing else, so a stream ends with proxy_on_delete alone. Always
    /// true of this crate's [`HttpContext`](super::HttpContext) (it has no
    /// on_done), so [`skip_callbacks`](super::skip_callbacks) always sends
    /// it.
    pub const STREAM_DONE: u32 = 1 << 7;
    /// This crate frees a stream's context itself when sluice says a
    /// headers callback is the stream's last entry into the guest (every
    /// later callback skipped) and the stream goes on, so sluice calls no
    /// proxy_on_delete for it. Always sent, as [`STREAM_DONE`] is.
    pub const STREAM_RELEASE: u32 = 1 << 8;
}

/// Tells sluice that this plugin's streams do nothing in the callbacks of
/// `mask` ([`callbacks`] bits), so the host answers them Continue without
/// entering the guest (sluice's foreign function sluice_skip_callbacks).
/// Call it from [`RootContext::on_configure`]; it holds for the plugin in
/// this instance, and 0 restores every callback. Other hosts do not have
/// the function (Err(NotFound)) and call everything, which is harmless.
///
/// [`callbacks::STREAM_DONE`] is always added: this crate answers a
/// stream's proxy_on_done itself, so the host need not call it; and
/// [`callbacks::STREAM_RELEASE`]: it frees a stream's context itself. A root
/// context whose on_configure does not call this function gets that bit
/// alone, sent after it configures.
pub fn skip_callbacks(mask: u32) -> Result<(), Status> {
    SKIP_SENT.with(|s| s.set(true));
    call_foreign_function("sluice_skip_callbacks", &(mask | callbacks::STREAM_DONE | callbacks::STREAM_RELEASE).to_le_bytes()).map(|_| ())
}

/// What [`verify_signature`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureCheck {
    Valid,
    /// The signature does not verify (or the message was altered).
    Invalid,
    /// The key cannot verify this algorithm: it does not parse, or it is
    /// of another type (the reason, for a log line or a refused config).
    UnusableKey(String),
}

/// Verifies a public-key signature in the host, with Go's crypto
/// (sluice's foreign function sluice_verify_signature): `alg` is a JWS
/// name (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA),
/// `key` a PEM public key ("PUBLIC KEY" or "RSA PUBLIC KEY") or one JWK as
/// JSON, `signature` in JWS form (r||s for ECDSA). The host parses a key
/// once and caches it by its bytes, so pass the same key every time. An
/// empty signature checks the key alone (Invalid if it parses): do that
/// from on_configure to refuse a bad key early. Err(NotFound) from a host
/// without the function; Err(BadArgument) for an unknown algorithm.
pub fn verify_signature(alg: &str, key: &[u8], message: &[u8], signature: &[u8]) -> Result<SignatureCheck, Status> {
    let mut args = Vec::with_capacity(16 + alg.len() + key.len() + message.len() + signature.len());
    for f in [alg.as_bytes(), key, message, signature] {
        args.extend_from_slice(&(f.len() as u32).to_le_bytes());
        args.extend_from_slice(f);
    }
    let out = call_foreign_function("sluice_verify_signature", &args)?.unwrap_or_default();
    match out.first() {
        Some(1) => Ok(SignatureCheck::Valid),
        Some(0) => Ok(SignatureCheck::Invalid),
        Some(2) => Ok(SignatureCheck::UnusableKey(String::from_utf8_lossy(&out[1..]).into_owned())),
        _ => Err(Status::InternalFailure),
    }
}

// ---- response headers decided at request time ----

/// Declares, from [`RootContext::on_configure`], that this plugin's
/// streams decide their response headers at request time and hand them
/// over with [`defer_response_headers`] (sluice's foreign function
/// sluice_defer_response_headers). True on sluice: it then applies them
/// where on_http_response_headers would run, and the plugin may skip that
/// callback ([`callbacks::RESPONSE_HEADERS`] in [`skip_callbacks`]), so
/// its streams enter the guest once instead of twice. False on other
/// hosts (Envoy: NotFound): the plugin edits the response headers in
/// on_http_response_headers as usual, and must not skip it. Call it once
/// per configure (it is the probe too: the answer holds for the root).
pub fn enable_deferred_response_headers() -> bool {
    call_foreign_function(DEFER_RESPONSE_HEADERS, &[]).is_ok()
}

const DEFER_RESPONSE_HEADERS: &str = "sluice_defer_response_headers";

/// Response-header edits decided at request time, in order (see
/// [`defer_response_headers`]).
#[derive(Default)]
pub struct ResponseHeaderEdits {
    /// The argument of sluice_defer_response_headers, written as the
    /// edits come: a run of one pair per edit (a u32 op, 0 add or 1
    /// replace, then the pair in the map serialization), so each key and
    /// value is copied once.
    args: Vec<u8>,
}

impl ResponseHeaderEdits {
    /// Adds a header, as [`add_map_value`] would at the response headers.
    pub fn add(&mut self, key: &str, value: &[u8]) {
        self.push(0, key, value);
    }

    /// Replaces a header, as [`replace_map_value`] would at the response
    /// headers.
    pub fn replace(&mut self, key: &str, value: &[u8]) {
        self.push(1, key, value);
    }

    fn push(&mut self, op: u32, key: &str, value: &[u8]) {
        let (k, v) = (key.as_bytes(), value);
        let n = 18 + k.len() + v.len();
        let b = &mut self.args;
        b.reserve(n);
        // One reservation and the bytes written in place: a rate limiter
        // defers five headers a request, and each extend_from_slice and
        // push would check the capacity again.
        // Safety: reserve made room for the n bytes written past len.
        unsafe {
            let p = b.as_mut_ptr().add(b.len());
            let head = [op.to_le(), 1u32.to_le(), (k.len() as u32).to_le(), (v.len() as u32).to_le()];
            (p as *mut [u32; 4]).write_unaligned(head);
            // copy_bytes inline: a name or a value is a few words, and a
            // call to memcpy each would cost more than the copy.
            copy_bytes(p.add(16), k.as_ptr(), k.len());
            *p.add(16 + k.len()) = 0;
            copy_bytes(p.add(17 + k.len()), v.as_ptr(), v.len());
            *p.add(17 + k.len() + v.len()) = 0;
            b.set_len(b.len() + n);
        }
    }
}

instance_statics! {
    /// Reused by every call: a stream's deferral allocates nothing once
    /// it has grown.
    static DEFERRED: RefCell<ResponseHeaderEdits> = RefCell::new(ResponseHeaderEdits { args: Vec::new() });
}

/// Hands sluice the response-header edits `f` makes, from a stream's
/// request callbacks of a plugin for which
/// [`enable_deferred_response_headers`] answered true: sluice applies
/// them, in order, where this filter's on_http_response_headers would run
/// (after the edits of the filters after it, before those of the filters
/// before it, as the callback's would be), also when that callback is
/// skipped. A reply sent locally does not run the response callbacks, so
/// nothing deferred is applied to it. No edits: no hostcall. Errors:
/// BadArgument when the plugin did not declare, or the response headers
/// have passed this filter; ResultMismatch past sluice's bound (16 KiB of
/// edits a stream); NotFound from other hosts. On an error nothing of the
/// call is kept.
pub fn defer_response_headers(f: impl FnOnce(&mut ResponseHeaderEdits)) -> Result<(), Status> {
    DEFERRED.with(|d| {
        let edits = &mut *d.borrow_mut();
        edits.args.clear();
        f(edits);
        if edits.args.is_empty() {
            return Ok(());
        }
        call_foreign_function(DEFER_RESPONSE_HEADERS, &edits.args).map(|_| ())
    })
}

// ---- configuration and buffers ----

pub fn get_buffer(t: BufferType, start: usize, max: usize) -> Result<Option<Vec<u8>>, Status> {
    let mut p: *mut u8 = std::ptr::null_mut();
    let mut n: usize = 0;
    match check(unsafe { hostcalls::proxy_get_buffer_bytes(t as u32, start, max, &mut p, &mut n) }) {
        Ok(()) => Ok(Some(unsafe { take(p, n) })),
        Err(Status::NotFound) | Err(Status::Empty) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces `size` bytes at `start` (0, usize::MAX replaces all; usize::MAX,
/// 0 appends; 0, 0 prepends).
pub fn set_buffer(t: BufferType, start: usize, size: usize, data: &[u8]) -> Result<(), Status> {
    check(unsafe { hostcalls::proxy_set_buffer_bytes(t as u32, start, size, data.as_ptr(), data.len()) })
}

pub fn get_plugin_configuration() -> Result<Option<Vec<u8>>, Status> {
    get_buffer(BufferType::PluginConfiguration, 0, i32::MAX as usize)
}

pub fn get_vm_configuration() -> Result<Option<Vec<u8>>, Status> {
    get_buffer(BufferType::VmConfiguration, 0, i32::MAX as usize)
}

pub fn get_http_request_body(start: usize, max: usize) -> Result<Option<Vec<u8>>, Status> {
    get_buffer(BufferType::HttpRequestBody, start, max)
}

pub fn get_http_response_body(start: usize, max: usize) -> Result<Option<Vec<u8>>, Status> {
    get_buffer(BufferType::HttpResponseBody, start, max)
}

pub fn set_http_request_body(body: &[u8]) -> Result<(), Status> {
    set_buffer(BufferType::HttpRequestBody, 0, i32::MAX as usize, body)
}

pub fn set_http_response_body(body: &[u8]) -> Result<(), Status> {
    set_buffer(BufferType::HttpResponseBody, 0, i32::MAX as usize, body)
}

// ---- header maps ----

/// Encodes pairs in the ABI's map format (values of text or bytes).
pub fn serialize_map<V: AsRef<[u8]>>(pairs: &[(&str, V)]) -> Vec<u8> {
    serialize_map_bytes(pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_ref())))
}

/// [`serialize_map`] for byte-slice pairs (what [`HeaderPairs`] yields),
/// in one allocation of the exact size.
pub fn serialize_map_bytes<'a, I>(pairs: I) -> Vec<u8>
where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let mut b = Vec::new();
    serialize_map_into(&mut b, pairs);
    b
}

/// [`serialize_map_bytes`] appended to `b`, reserving the exact size.
fn serialize_map_into<'a, I>(b: &mut Vec<u8>, pairs: I)
where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let (mut n, mut size) = (0usize, 4usize);
    for (k, v) in pairs.clone() {
        n += 1;
        size += 8 + k.len() + v.len() + 2;
    }
    b.reserve_exact(size);
    b.extend_from_slice(&(n as u32).to_le_bytes());
    for (k, v) in pairs.clone() {
        b.extend_from_slice(&(k.len() as u32).to_le_bytes());
        b.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        b.extend_from_slice(k);
        b.push(0);
        b.extend_from_slice(v);
        b.push(0);
    }
}

/// Decodes the ABI's map format; malformed input yields what could be
/// read. Bytes that are not UTF-8 become U+FFFD. Allocates two Strings
/// per pair: [`HeaderPairs`] reads the same in place.
pub fn deserialize_map(b: &[u8]) -> Vec<(String, String)> {
    HeaderPairs::parse(b).to_owned_pairs()
}

/// deserialize_map keeping names and values as bytes (a Vec per field;
/// [`HeaderPairs`] has the same as slices of one buffer).
pub fn deserialize_map_bytes(b: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    HeaderPairs::parse(b).iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
}

/// Bytes as text, borrowed when they are UTF-8 (invalid sequences become
/// U+FFFD, as String::from_utf8_lossy does).
pub fn lossy(b: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// Bytes the host allocated as a String, without a copy when they are
/// UTF-8 (else as String::from_utf8_lossy makes them).
fn into_string(b: Vec<u8>) -> String {
    match String::from_utf8(b) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// A header map as the host serialized it, read in place: the host's one
/// buffer, with each name and value a byte slice of it. Looking a header
/// up or walking the pairs allocates nothing.
pub struct HeaderPairs<B = Vec<u8>> {
    buf: B,
    /// How many pairs are whole (malformed input keeps those before the
    /// first bad one, as deserialize_map does).
    n: usize,
    /// Where the names and values start, after the size table.
    data: usize,
}

impl<B: AsRef<[u8]>> HeaderPairs<B> {
    /// Wraps serialized pairs (the ABI's map format).
    pub fn parse(buf: B) -> Self {
        let (n, data) = whole_pairs(buf.as_ref());
        HeaderPairs { buf, n, data }
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The pairs, in the host's order.
    pub fn iter(&self) -> PairsIter<'_> {
        PairsIter { b: self.buf.as_ref(), i: 0, n: self.n, off: self.data }
    }

    /// The first value of a header, its name matched ASCII
    /// case-insensitively.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let name = name.as_bytes();
        self.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// [`HeaderPairs::get`] as text (borrowed unless it is not UTF-8).
    pub fn get_str(&self, name: &str) -> Option<Cow<'_, str>> {
        self.get(name).map(lossy)
    }

    /// Owned pairs, as [`get_map`] returns them.
    pub fn to_owned_pairs(&self) -> Vec<(String, String)> {
        self.iter().map(|(k, v)| (lossy(k).into_owned(), lossy(v).into_owned())).collect()
    }

    /// The serialized form.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }
}

fn u32_at(b: &[u8], i: usize) -> usize {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize
}

/// How many pairs are whole, and where their bytes start.
fn whole_pairs(b: &[u8]) -> (usize, usize) {
    if b.len() < 4 {
        return (0, 0);
    }
    let n = u32_at(b, 0);
    if n > (b.len() - 4) / 8 {
        return (0, 0);
    }
    let mut off = 4 + 8 * n;
    for i in 0..n {
        let (kl, vl) = (u32_at(b, 4 + 8 * i), u32_at(b, 8 + 8 * i));
        // Checked: lengths come from the host, and wrapping would let a
        // bad one pass.
        match off.checked_add(kl).and_then(|o| o.checked_add(vl)).and_then(|o| o.checked_add(2)) {
            Some(end) if end <= b.len() => off = end,
            _ => return (i, 4 + 8 * n),
        }
    }
    (n, 4 + 8 * n)
}

/// The pairs of a [`HeaderPairs`]: (name, value) byte slices.
#[derive(Clone)]
pub struct PairsIter<'a> {
    b: &'a [u8],
    i: usize,
    n: usize,
    off: usize,
}

impl<'a> Iterator for PairsIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.i >= self.n {
            return None;
        }
        let (kl, vl) = (u32_at(self.b, 4 + 8 * self.i), u32_at(self.b, 8 + 8 * self.i));
        let k = &self.b[self.off..self.off + kl];
        let v = &self.b[self.off + kl + 1..self.off + kl + 1 + vl];
        self.off += kl + vl + 2;
        self.i += 1;
        Some((k, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.n - self.i, Some(self.n - self.i))
    }
}

/// A header map read in place (one hostcall, one buffer, no String per
/// field); the cheap form of [`get_map`].
pub fn get_map_pairs(t: MapType) -> Result<HeaderPairs, Status> {
    let mut p: *mut u8 = std::ptr::null_mut();
    let mut n: usize = 0;
    check(unsafe { hostcalls::proxy_get_header_map_pairs(t as u32, &mut p, &mut n) })?;
    Ok(HeaderPairs::parse(unsafe { take(p, n) }))
}

pub fn get_map(t: MapType) -> Result<Vec<(String, String)>, Status> {
    Ok(get_map_pairs(t)?.to_owned_pairs())
}

/// get_map without the conversion to String: names and values as the
/// host holds them (a header value need not be UTF-8, and a filter that
/// matches or echoes it may need its bytes). A Vec per field:
/// [`get_map_pairs`] gives the same bytes without copying them.
pub fn get_map_bytes(t: MapType) -> Result<Vec<(Vec<u8>, Vec<u8>)>, Status> {
    Ok(get_map_pairs(t)?.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect())
}

/// replace_map_value with a value of bytes.
pub fn replace_map_value_bytes(t: MapType, key: &str, value: &[u8]) -> Result<(), Status> {
    check(unsafe {
        hostcalls::proxy_replace_header_map_value(t as u32, key.as_ptr(), key.len(), value.as_ptr(), value.len())
    })
}

pub fn set_map(t: MapType, pairs: &[(&str, &str)]) -> Result<(), Status> {
    set_map_bytes(t, &serialize_map(pairs))
}

/// Replaces a header map with pairs already serialized (by
/// [`serialize_map_bytes`], or a [`HeaderPairs`]' bytes).
pub fn set_map_bytes(t: MapType, serialized: &[u8]) -> Result<(), Status> {
    check(unsafe { hostcalls::proxy_set_header_map_pairs(t as u32, serialized.as_ptr(), serialized.len()) })
}

/// A header's value as bytes: the host's buffer itself, nothing copied.
pub fn get_map_value_bytes(t: MapType, key: &str) -> Result<Option<Vec<u8>>, Status> {
    let mut p: *mut u8 = std::ptr::null_mut();
    let mut n: usize = 0;
    match check(unsafe { hostcalls::proxy_get_header_map_value(t as u32, key.as_ptr(), key.len(), &mut p, &mut n) }) {
        Ok(()) => Ok(Some(unsafe { take(p, n) })),
        Err(Status::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A header's value as text; the host's buffer becomes the String when
/// it is UTF-8 (no copy).
pub fn get_map_value(t: MapType, key: &str) -> Result<Option<String>, Status> {
    Ok(get_map_value_bytes(t, key)?.map(into_string))
}

pub fn add_map_value(t: MapType, key: &str, value: &str) -> Result<(), Status> {
    check(unsafe { hostcalls::proxy_add_header_map_value(t as u32, key.as_ptr(), key.len(), value.as_ptr(), value.len()) })
}

pub fn replace_map_value(t: MapType, key: &str, value: &str) -> Result<(), Status> {
    check(unsafe {
        hostcalls::proxy_replace_header_map_value(t as u32, key.as_ptr(), key.len(), value.as_ptr(), value.len())
    })
}

pub fn remove_map_value(t: MapType, key: &str) -> Result<(), Status> {
    check(unsafe { hostcalls::proxy_remove_header_map_value(t as u32, key.as_ptr(), key.len()) })
}

/// Adds several headers to a map, in order, as many [`add_map_value`]
/// calls would, in one hostcall on sluice (its foreign function
/// sluice_add_headers). On a host without the function (Envoy) it makes
/// the single calls, stopping at the first error. On sluice an error
/// (BadArgument: no such map here) changes nothing.
///
/// It pays when the module is built with bulk memory (rustc `-C
/// target-feature=+bulk-memory`): the pairs are copied into one buffer,
/// and the MVP's memcpy, a loop in the module, costs more than the
/// hostcalls saved.
pub fn add_map_values<K: AsRef<[u8]>, V: AsRef<[u8]>>(t: MapType, pairs: &[(K, V)]) -> Result<(), Status> {
    edit_map_values(t, pairs, false)
}

/// [`replace_map_value`] for several headers, in order, in one hostcall
/// on sluice (sluice_replace_headers); elsewhere the single calls, as
/// [`add_map_values`].
pub fn replace_map_values<K: AsRef<[u8]>, V: AsRef<[u8]>>(t: MapType, pairs: &[(K, V)]) -> Result<(), Status> {
    edit_map_values(t, pairs, true)
}

instance_statics! {
    /// Whether the host has sluice's batched header edits (None: not yet
    /// known), and the buffer their arguments are encoded into.
    static BATCHED_EDITS: Cell<Option<bool>> = Cell::new(None);
    static EDIT_ARGS: RefCell<Vec<u8>> = RefCell::new(Vec::new());
}

fn edit_map_values<K: AsRef<[u8]>, V: AsRef<[u8]>>(t: MapType, pairs: &[(K, V)], replace: bool) -> Result<(), Status> {
    let singles = || {
        for (k, v) in pairs {
            let (k, v, t) = (k.as_ref(), v.as_ref(), t as u32);
            check(unsafe {
                if replace {
                    hostcalls::proxy_replace_header_map_value(t, k.as_ptr(), k.len(), v.as_ptr(), v.len())
                } else {
                    hostcalls::proxy_add_header_map_value(t, k.as_ptr(), k.len(), v.as_ptr(), v.len())
                }
            })?;
        }
        Ok(())
    };
    // One pair: the single hostcall is as cheap and copies nothing.
    if pairs.len() < 2 || BATCHED_EDITS.with(|b| b.get()) == Some(false) {
        return singles();
    }
    let batched = if replace { "sluice_replace_headers" } else { "sluice_add_headers" };
    let r = EDIT_ARGS.with(|buf| {
        let mut b = buf.borrow_mut();
        b.clear();
        b.extend_from_slice(&(t as u32).to_le_bytes());
        serialize_map_into(&mut b, pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
        let (mut p, mut n): (*mut u8, usize) = (std::ptr::null_mut(), 0);
        check(unsafe { hostcalls::proxy_call_foreign_function(batched.as_ptr(), batched.len(), b.as_ptr(), b.len(), &mut p, &mut n) })
    });
    match r {
        // NotFound: a host without the function (Unimplemented: natively).
        Err(Status::NotFound) | Err(Status::Unimplemented) => {
            BATCHED_EDITS.with(|b| b.set(Some(false)));
            singles()
        }
        r => {
            BATCHED_EDITS.with(|b| b.set(Some(true)));
            r
        }
    }
}

pub fn get_http_request_header(key: &str) -> Result<Option<String>, Status> {
    get_map_value(MapType::HttpRequestHeaders, key)
}

pub fn get_http_request_header_bytes(key: &str) -> Result<Option<Vec<u8>>, Status> {
    get_map_value_bytes(MapType::HttpRequestHeaders, key)
}

pub fn get_http_request_headers_pairs() -> Result<HeaderPairs, Status> {
    get_map_pairs(MapType::HttpRequestHeaders)
}

pub fn add_http_request_header(key: &str, value: &str) -> Result<(), Status> {
    add_map_value(MapType::HttpRequestHeaders, key, value)
}

pub fn set_http_request_header(key: &str, value: &str) -> Result<(), Status> {
    replace_map_value(MapType::HttpRequestHeaders, key, value)
}

pub fn remove_http_request_header(key: &str) -> Result<(), Status> {
    remove_map_value(MapType::HttpRequestHeaders, key)
}

pub fn get_http_response_header(key: &str) -> Result<Option<String>, Status> {
    get_map_value(MapType::HttpResponseHeaders, key)
}

pub fn get_http_response_header_bytes(key: &str) -> Result<Option<Vec<u8>>, Status> {
    get_map_value_bytes(MapType::HttpResponseHeaders, key)
}

pub fn get_http_response_headers_pairs() -> Result<HeaderPairs, Status> {
    get_map_pairs(MapType::HttpResponseHeaders)
}

pub fn add_http_response_header(key: &str, value: &str) -> Result<(), Status> {
    add_map_value(MapType::HttpResponseHeaders, key, value)
}

pub fn set_http_response_header(key: &str, value: &str) -> Result<(), Status> {
    replace_map_value(MapType::HttpResponseHeaders, key, value)
}

pub fn remove_http_response_header(key: &str) -> Result<(), Status> {
    remove_map_value(MapType::HttpResponseHeaders, key)
}

// ---- stream control ----

pub fn resume_http_request() -> Result<(), Status> {
    check(unsafe { hostcalls::proxy_continue_stream(0) })
}

pub fn resume_http_response() -> Result<(), Status> {
    check(unsafe { hostcalls::proxy_continue_stream(1) })
}

/// Closes the client's side of a TCP connection (a network filter's
/// refusal).
pub fn close_downstream() -> Result<(), Status> {
    check(unsafe { hostcalls::proxy_close_stream(2) })
}

/// Closes the backend's side of a TCP connection.
pub fn close_upstream() -> Result<(), Status> {
    check(unsafe { hostcalls::proxy_close_stream(3) })
}

/// Answers the request locally; return Action::Pause from the callback.
pub fn send_http_response(status: u32, headers: &[(&str, &str)], body: &[u8]) -> Result<(), Status> {
    let h = serialize_map(headers);
    check(unsafe {
        hostcalls::proxy_send_local_response(status, std::ptr::null(), 0, body.as_ptr(), body.len(), h.as_ptr(), h.len(), -1)
    })
}

/// send_http_response with header values of bytes (a value echoed from
/// the request need not be UTF-8) and a gRPC status: grpc_status >= 0
/// makes the reply a gRPC one (the host adds grpc-status), -1 a plain one.
pub fn send_local_response(status: u32, headers: &[(&str, &[u8])], body: &[u8], grpc_status: i32) -> Result<(), Status> {
    let h = serialize_map(headers);
    check(unsafe {
        hostcalls::proxy_send_local_response(status, std::ptr::null(), 0, body.as_ptr(), body.len(), h.as_ptr(), h.len(), grpc_status)
    })
}

/// Calls a cluster; the reply goes to the calling context's
/// `on_http_call_response`. `headers` must hold :method, :path, :authority.
pub fn dispatch_http_call(
    cluster: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    trailers: &[(&str, &str)],
    timeout_ms: u32,
) -> Result<u32, Status> {
    let h = serialize_map(headers);
    let t = if trailers.is_empty() { Vec::new() } else { serialize_map(trailers) };
    let mut token = 0u32;
    check(unsafe {
        hostcalls::proxy_http_call(
            cluster.as_ptr(), cluster.len(), h.as_ptr(), h.len(), body.as_ptr(), body.len(),
            t.as_ptr(), t.len(), timeout_ms, &mut token,
        )
    })?;
    CALLOUTS.with(|m| m.borrow_mut().get_or_insert_with(IdMap::default).insert(token, active()));
    Ok(token)
}

pub fn get_http_call_response_headers() -> Result<Vec<(String, String)>, Status> {
    get_map(MapType::HttpCallResponseHeaders)
}

pub fn get_http_call_response_body(start: usize, max: usize) -> Result<Option<Vec<u8>>, Status> {
    get_buffer(BufferType::HttpCallResponseBody, start, max)
}

// ---- shared data ----

/// Returns the value and its CAS, or None.
pub fn get_shared_data(key: &str) -> Result<(Option<Vec<u8>>, u32), Status> {
    let mut p: *mut u8 = std::ptr::null_mut();
    let mut n: usize = 0;
    let mut cas = 0u32;
    match check(unsafe { hostcalls::proxy_get_shared_data(key.as_ptr(), key.len(), &mut p, &mut n, &mut cas) }) {
        Ok(()) => Ok((Some(unsafe { take(p, n) }), cas)),
        Err(Status::NotFound) => Ok((None, 0)),
        Err(e) => Err(e),
    }
}

/// Writes a value; cas 0 is unconditional, otherwise Err(CasMismatch) if
/// it changed since get_shared_data.
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
    check(unsafe { hostcalls::proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) })
}

// ---- metrics ----

pub fn define_metric(t: MetricType, name: &str) -> Result<u32, Status> {
    let mut id = 0u32;
    check(unsafe { hostcalls::proxy_define_metric(t as u32, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn increment_metric(id: u32, delta: i64) -> Result<(), Status> {
    check(unsafe { hostcalls::proxy_increment_metric(id, delta) })
}

pub fn record_metric(id: u32, value: u64) -> Result<(), Status> {
    check(unsafe { hostcalls::proxy_record_metric(id, value) })
}

pub fn get_metric(id: u32) -> Result<u64, Status> {
    let mut v = 0u64;
    check(unsafe { hostcalls::proxy_get_metric(id, &mut v) })?;
    Ok(v)
}

// ---- properties ----

/// Calls f with the path's segments joined by NULs: one segment as it is,
/// a short path (the usual `["source", "address"]`) joined on the stack,
/// only a long one in a Vec.
fn with_property_path<R>(path: &[&str], f: impl FnOnce(&[u8]) -> R) -> R {
    if let [one] = path {
        return f(one.as_bytes());
    }
    let len = path.iter().map(|s| s.len() + 1).sum::<usize>().saturating_sub(1);
    if len > 128 {
        return f(&path.join("\0").into_bytes());
    }
    // Not zeroed first (a memset of the whole array on every read of
    // source.address): only the len bytes written below are read.
    let mut stack = std::mem::MaybeUninit::<[u8; 128]>::uninit();
    let p = stack.as_mut_ptr() as *mut u8;
    let mut off = 0;
    for (i, s) in path.iter().enumerate() {
        // Safety: off + s.len() (+ 1) <= len <= 128.
        unsafe {
            if i > 0 {
                *p.add(off) = 0;
                off += 1;
            }
            std::ptr::copy_nonoverlapping(s.as_ptr(), p.add(off), s.len());
        }
        off += s.len();
    }
    // Safety: the len bytes from p were written.
    f(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Reads a property by path segments, e.g. `&["request", "path"]`.
pub fn get_property(path: &[&str]) -> Result<Option<Vec<u8>>, Status> {
    let mut v: *mut u8 = std::ptr::null_mut();
    let mut n: usize = 0;
    let code = with_property_path(path, |p| unsafe { hostcalls::proxy_get_property(p.as_ptr(), p.len(), &mut v, &mut n) });
    match check(code) {
        Ok(()) => Ok(Some(unsafe { take(v, n) })),
        Err(Status::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads an integer property (8-byte little-endian, as Envoy encodes them).
pub fn get_property_int(path: &[&str]) -> Result<Option<i64>, Status> {
    Ok(get_property(path)?.and_then(|b| {
        if b.len() == 8 {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b);
            Some(i64::from_le_bytes(a))
        } else {
            None
        }
    }))
}

pub fn set_property(path: &[&str], value: &[u8]) -> Result<(), Status> {
    check(with_property_path(path, |p| unsafe { hostcalls::proxy_set_property(p.as_ptr(), p.len(), value.as_ptr(), value.len()) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Natively no host has sluice_add_headers (the stubs answer
    /// Unimplemented): the pairs go one by one and the first error is
    /// returned; the batch is not tried again.
    #[test]
    fn batched_edits_fall_back_to_single_calls() {
        let pairs = [("x-a", "1"), ("x-b", "2")];
        assert_eq!(add_map_values(MapType::HttpResponseHeaders, &pairs), Err(Status::Unimplemented));
        assert_eq!(BATCHED_EDITS.with(|b| b.get()), Some(false));
        assert_eq!(replace_map_values(MapType::HttpResponseHeaders, &pairs), Err(Status::Unimplemented));
        assert_eq!(add_map_values::<&str, &str>(MapType::HttpResponseHeaders, &[]), Ok(()));
    }

    /// One run per edit, its pair serialized as the map format has it;
    /// natively no host has the function.
    #[test]
    fn deferred_edits_encode_runs() {
        let mut e = ResponseHeaderEdits::default();
        e.replace("a", b"1");
        e.add("vary", b"Origin");
        e.replace("b", b"");
        let mut want = Vec::new();
        for (op, pair) in [(1u32, ("a", "1")), (0, ("vary", "Origin")), (1, ("b", ""))] {
            want.extend_from_slice(&op.to_le_bytes());
            want.extend_from_slice(&serialize_map(&[pair]));
        }
        assert_eq!(e.args, want);
        assert!(!enable_deferred_response_headers());
        assert_eq!(defer_response_headers(|_| {}), Ok(()));
        assert_eq!(defer_response_headers(|e| e.add("x", b"y")), Err(Status::Unimplemented));
    }

    #[test]
    fn copy_and_fill_bytes() {
        let src: Vec<u8> = (0..80u32).map(|i| (i * 37 % 251) as u8).collect();
        for n in 0..=src.len() {
            let mut d = vec![0xeeu8; 90];
            unsafe { copy_bytes(d.as_mut_ptr().add(3), src.as_ptr(), n) };
            assert_eq!(&d[3..3 + n], &src[..n], "n={}", n);
            assert!(d[..3].iter().chain(&d[3 + n..]).all(|b| *b == 0xee), "n={}: wrote outside", n);
            let mut d = vec![0xeeu8; 90];
            unsafe { fill_bytes(d.as_mut_ptr().add(3), 7, n) };
            assert!(d[3..3 + n].iter().all(|b| *b == 7), "n={}", n);
            assert!(d[..3].iter().chain(&d[3 + n..]).all(|b| *b == 0xee), "n={}: wrote outside", n);
        }
    }

    #[test]
    fn compare_bytes_as_memcmp() {
        // Every length to 80, equal and with one byte changed at each
        // place (up and down): the sign as slice ordering's.
        let a: Vec<u8> = (0..80u32).map(|i| (i * 37 % 251) as u8).collect();
        for n in 0..=a.len() {
            let want = |x: &[u8], y: &[u8]| x.cmp(y) as i32;
            let got = |x: &[u8], y: &[u8]| unsafe { compare_bytes(x.as_ptr(), y.as_ptr(), n) }.signum();
            assert_eq!(got(&a[..n], &a[..n]), 0, "n={}", n);
            for i in 0..n {
                for d in [1u8, 255] {
                    let mut b = a[..n].to_vec();
                    b[i] = b[i].wrapping_add(d);
                    assert_eq!(got(&a[..n], &b), want(&a[..n], &b), "n={} i={} d={}", n, i, d);
                    assert_eq!(got(&b, &a[..n]), want(&b, &a[..n]), "n={} i={} d={}", n, i, d);
                }
            }
        }
    }

    #[test]
    fn serialize_map_into_appends() {
        let mut b = vec![9u8];
        serialize_map_into(&mut b, [(&b"k"[..], &b"v"[..])].into_iter());
        assert_eq!(b, [&[9u8][..], &serialize_map(&[("k", "v")])].concat());
        assert_eq!(deserialize_map(&b[1..]), vec![("k".to_string(), "v".to_string())]);
    }

    /// What the dispatcher did to the test's contexts.
    #[derive(Default)]
    struct Seen {
        headers: Cell<u32>,
        dropped: Cell<u32>,
    }

    /// A stream that, in its request headers, may delete itself or enter
    /// its own callback again (as a host could).
    struct Probe {
        id: u32,
        seen: std::rc::Rc<Seen>,
        delete_self: bool,
        reenter: bool,
    }

    impl HttpContext for Probe {
        fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
            self.seen.headers.set(self.seen.headers.get() + 1);
            if self.reenter {
                // Not run: the context is in its callback.
                assert_eq!(proxy_on_request_headers(self.id, 0, 0), Action::Continue as u32);
            }
            if self.delete_self {
                proxy_on_delete(self.id);
                // Still here: freed when this callback returns.
                assert_eq!(self.seen.dropped.get(), 0);
            }
            Action::Pause
        }
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            self.seen.dropped.set(self.seen.dropped.get() + 1);
        }
    }

    struct ProbeRoot {
        seen: std::rc::Rc<Seen>,
        delete_self: bool,
        reenter: bool,
    }

    impl RootContext for ProbeRoot {
        fn create_http_context(&self, id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Probe { id, seen: self.seen.clone(), delete_self: self.delete_self, reenter: self.reenter }))
        }
    }

    fn probe_root(delete_self: bool, reenter: bool) -> std::rc::Rc<Seen> {
        let seen = std::rc::Rc::new(Seen::default());
        let s = seen.clone();
        set_root_context(move |_| Box::new(ProbeRoot { seen: s.clone(), delete_self, reenter }));
        proxy_on_context_create(1, 0);
        seen
    }

    /// A root that hands over to a ProbeRoot once configured.
    struct StandIn {
        delegate: Option<Box<dyn RootContext>>,
        configured: std::rc::Rc<Cell<bool>>,
    }

    impl RootContext for StandIn {
        fn on_configure(&mut self, _size: usize) -> bool {
            self.configured.set(true);
            true
        }
        fn take_delegate(&mut self) -> Option<Box<dyn RootContext>> {
            self.delegate.take()
        }
    }

    #[test]
    fn a_root_hands_over_to_its_delegate_after_configure() {
        let seen = std::rc::Rc::new(Seen::default());
        let configured = std::rc::Rc::new(Cell::new(false));
        let (s, c) = (seen.clone(), configured.clone());
        set_root_context(move |_| {
            let d: Box<dyn RootContext> = Box::new(ProbeRoot { seen: s.clone(), delete_self: false, reenter: false });
            Box::new(StandIn { delegate: Some(d), configured: c.clone() })
        });
        proxy_on_context_create(1, 0);
        // Before: the stand-in makes no stream context.
        assert_eq!(sluice_on_context_create_request_headers(2, 1, 0, 1), Action::Continue as u32);
        assert_eq!(seen.headers.get(), 0);
        proxy_on_delete(2);
        assert_eq!(proxy_on_configure(1, 0), 1);
        assert!(configured.get());
        // After: the delegate's streams.
        assert_eq!(sluice_on_context_create_request_headers(3, 1, 0, 1), Action::Pause as u32);
        assert_eq!(seen.headers.get(), 1);
        proxy_on_delete(3);
        assert_eq!(seen.dropped.get(), 1);
        proxy_on_delete(1);
        ROOTS.with(|m| assert!(m.borrow().is_empty()));
    }

    #[test]
    fn contexts_run_in_place_and_are_freed_once() {
        let seen = probe_root(false, false);
        proxy_on_context_create(2, 1);
        assert_eq!(proxy_on_request_headers(2, 0, 1), Action::Pause as u32);
        assert_eq!(proxy_on_request_headers(2, 0, 1), Action::Pause as u32);
        assert_eq!(seen.headers.get(), 2);
        proxy_on_delete(2);
        assert_eq!(seen.dropped.get(), 1);
        // Gone: the SDK's default answer, nothing run, nothing freed twice.
        assert_eq!(proxy_on_request_headers(2, 0, 1), Action::Continue as u32);
        proxy_on_delete(2);
        assert_eq!((seen.headers.get(), seen.dropped.get()), (2, 1));

        // Created with its request headers in one call.
        assert_eq!(sluice_on_context_create_request_headers(3, 1, 0, 1), Action::Pause as u32);
        assert_eq!(seen.headers.get(), 3);
        proxy_on_delete(3);
        assert_eq!(seen.dropped.get(), 2);
        proxy_on_delete(1);
        STREAMS.with(|m| assert!(m.borrow().is_empty()));
        ROOTS.with(|m| assert!(m.borrow().is_empty()));
    }

    #[test]
    fn a_context_deleted_in_its_callback_is_freed_after_it() {
        let seen = probe_root(true, false);
        assert_eq!(sluice_on_context_create_request_headers(2, 1, 0, 1), Action::Pause as u32);
        assert_eq!((seen.headers.get(), seen.dropped.get()), (1, 1));
        assert_eq!(proxy_on_request_headers(2, 0, 1), Action::Continue as u32);
        assert_eq!(seen.headers.get(), 1);
        DOOMED.with(|d| assert!(d.borrow().is_empty()));
    }

    #[test]
    fn a_context_is_not_entered_twice_at_once() {
        let seen = probe_root(false, true);
        proxy_on_context_create(2, 1);
        assert_eq!(proxy_on_request_headers(2, 0, 1), Action::Pause as u32);
        assert_eq!(seen.headers.get(), 1);
        RUNNING.with(|r| assert!(r.borrow().is_empty()));
        proxy_on_delete(2);
        assert_eq!(seen.dropped.get(), 1);
    }

    #[test]
    fn map_round_trip() {
        let pairs = [(":path", "/a"), ("x-empty", ""), ("k", "v")];
        let got = deserialize_map(&serialize_map(&pairs));
        let want: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(got, want);
        assert!(deserialize_map(&[200, 0, 0, 0]).is_empty());
    }

    #[test]
    fn pairs_in_place() {
        let b = serialize_map(&[(":path", "/a"), ("X-Key", "v1"), ("x-key", "v2"), ("x-bad", "\u{e9}")]);
        let h = HeaderPairs::parse(&b[..]);
        assert_eq!(h.len(), 4);
        assert_eq!(h.get("x-KEY"), Some(&b"v1"[..]));
        assert_eq!(h.get_str(":path").as_deref(), Some("/a"));
        assert_eq!(h.get("missing"), None);
        let got: Vec<(&[u8], &[u8])> = h.iter().collect();
        assert_eq!(got[3], (&b"x-bad"[..], "\u{e9}".as_bytes()));
        assert_eq!(serialize_map_bytes(h.iter()), b);
        assert_eq!(h.to_owned_pairs(), deserialize_map(&b));

        // A value that is not UTF-8 reads as from_utf8_lossy makes it.
        let raw = serialize_map_bytes([(&b"k"[..], &[0xff, b'a'][..])].iter().copied());
        assert_eq!(HeaderPairs::parse(&raw[..]).get_str("k").as_deref(), Some("\u{fffd}a"));
        assert_eq!(into_string(vec![0xff, b'a']), "\u{fffd}a");
    }

    #[test]
    fn malformed_pairs_keep_the_whole_ones() {
        let mut b = serialize_map(&[("a", "1"), ("b", "2")]);
        b.truncate(b.len() - 1);
        let h = HeaderPairs::parse(&b[..]);
        assert_eq!(h.len(), 1);
        assert_eq!(h.get("a"), Some(&b"1"[..]));
        assert_eq!(h.get("b"), None);
        assert_eq!(deserialize_map(&b), vec![("a".to_string(), "1".to_string())]);
        // A length that would wrap the offset is refused, not read.
        let mut w = serialize_map(&[("a", "1")]);
        w[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(HeaderPairs::parse(&w[..]).is_empty());
        for short in [&[][..], &[1, 0, 0][..], &[1, 0, 0, 0][..]] {
            assert!(HeaderPairs::parse(short).is_empty());
        }
    }

    #[test]
    fn allocations_the_host_hands_back() {
        for n in [0usize, 1, 16, 4096] {
            let p = proxy_on_memory_allocate(n);
            assert!(!p.is_null(), "{}", n);
            unsafe { std::ptr::write_bytes(p, 7, n) };
            let v = unsafe { take(p, n) };
            assert_eq!(v, vec![7u8; n]);
        }
        assert!(proxy_on_memory_allocate(usize::MAX).is_null());
    }

    #[test]
    fn property_paths() {
        let joined = |p: &[&str]| with_property_path(p, |b| b.to_vec());
        assert_eq!(joined(&["sluice.consumer"]), b"sluice.consumer");
        assert_eq!(joined(&["source", "address"]), b"source\0address");
        assert_eq!(joined(&["a", "", "b"]), b"a\0\0b");
        assert_eq!(joined(&[]), b"");
        let long = ["x".repeat(100), "y".repeat(100)];
        let want = [long[0].as_bytes(), long[1].as_bytes()].join(&0u8);
        assert_eq!(joined(&[&long[0], &long[1]]), want);
        assert_eq!(joined(&[&long[0], &long[1]]), [&long[0][..], &long[1][..]].join("\0").into_bytes());
    }
}
