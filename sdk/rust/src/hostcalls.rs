//! The proxy-wasm 0.2.1 hostcalls (import module "env") this crate uses.
//! Natively (unit tests) they are stubs answering Unimplemented.

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "env")]
extern "C" {
    pub fn proxy_log(level: u32, msg: *const u8, len: usize) -> u32;
    pub fn proxy_set_effective_context(context_id: u32) -> u32;
    pub fn proxy_get_current_time_nanoseconds(ns: *mut u64) -> u32;
    pub fn proxy_set_tick_period_milliseconds(ms: u32) -> u32;
    pub fn proxy_get_buffer_bytes(t: u32, start: usize, max: usize, data: *mut *mut u8, size: *mut usize) -> u32;
    pub fn proxy_set_buffer_bytes(t: u32, start: usize, size: usize, data: *const u8, len: usize) -> u32;
    pub fn proxy_get_header_map_pairs(t: u32, data: *mut *mut u8, size: *mut usize) -> u32;
    pub fn proxy_set_header_map_pairs(t: u32, data: *const u8, size: usize) -> u32;
    pub fn proxy_get_header_map_value(t: u32, k: *const u8, kl: usize, v: *mut *mut u8, vl: *mut usize) -> u32;
    pub fn proxy_add_header_map_value(t: u32, k: *const u8, kl: usize, v: *const u8, vl: usize) -> u32;
    pub fn proxy_replace_header_map_value(t: u32, k: *const u8, kl: usize, v: *const u8, vl: usize) -> u32;
    pub fn proxy_remove_header_map_value(t: u32, k: *const u8, kl: usize) -> u32;
    pub fn proxy_continue_stream(stream_type: u32) -> u32;
    pub fn proxy_close_stream(stream_type: u32) -> u32;
    pub fn proxy_send_local_response(
        status: u32, details: *const u8, details_len: usize, body: *const u8, body_len: usize,
        headers: *const u8, headers_len: usize, grpc_status: i32,
    ) -> u32;
    pub fn proxy_http_call(
        upstream: *const u8, upstream_len: usize, headers: *const u8, headers_len: usize,
        body: *const u8, body_len: usize, trailers: *const u8, trailers_len: usize,
        timeout_ms: u32, token: *mut u32,
    ) -> u32;
    pub fn proxy_get_shared_data(k: *const u8, kl: usize, v: *mut *mut u8, vl: *mut usize, cas: *mut u32) -> u32;
    pub fn proxy_set_shared_data(k: *const u8, kl: usize, v: *const u8, vl: usize, cas: u32) -> u32;
    pub fn proxy_define_metric(t: u32, name: *const u8, len: usize, id: *mut u32) -> u32;
    pub fn proxy_increment_metric(id: u32, delta: i64) -> u32;
    pub fn proxy_record_metric(id: u32, value: u64) -> u32;
    pub fn proxy_get_metric(id: u32, value: *mut u64) -> u32;
    pub fn proxy_get_property(path: *const u8, len: usize, v: *mut *mut u8, vl: *mut usize) -> u32;
    pub fn proxy_set_property(path: *const u8, len: usize, v: *const u8, vl: usize) -> u32;
    pub fn proxy_call_foreign_function(
        name: *const u8, name_len: usize, args: *const u8, args_len: usize, ret: *mut *mut u8, ret_len: *mut usize,
    ) -> u32;
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    pub unsafe fn proxy_log(_level: u32, _msg: *const u8, _len: usize) -> u32 {
        0
    }
    pub unsafe fn proxy_set_effective_context(_context_id: u32) -> u32 {
        12
    }
    pub unsafe fn proxy_get_current_time_nanoseconds(_ns: *mut u64) -> u32 {
        12
    }
    pub unsafe fn proxy_set_tick_period_milliseconds(_ms: u32) -> u32 {
        12
    }
    pub unsafe fn proxy_get_buffer_bytes(_t: u32, _start: usize, _max: usize, _data: *mut *mut u8, _size: *mut usize) -> u32 {
        12
    }
    pub unsafe fn proxy_set_buffer_bytes(_t: u32, _start: usize, _size: usize, _data: *const u8, _len: usize) -> u32 {
        12
    }
    pub unsafe fn proxy_get_header_map_pairs(_t: u32, _data: *mut *mut u8, _size: *mut usize) -> u32 {
        12
    }
    pub unsafe fn proxy_set_header_map_pairs(_t: u32, _data: *const u8, _size: usize) -> u32 {
        12
    }
    pub unsafe fn proxy_get_header_map_value(_t: u32, _k: *const u8, _kl: usize, _v: *mut *mut u8, _vl: *mut usize) -> u32 {
        12
    }
    pub unsafe fn proxy_add_header_map_value(_t: u32, _k: *const u8, _kl: usize, _v: *const u8, _vl: usize) -> u32 {
        12
    }
    pub unsafe fn proxy_replace_header_map_value(_t: u32, _k: *const u8, _kl: usize, _v: *const u8, _vl: usize) -> u32 {
        12
    }
    pub unsafe fn proxy_remove_header_map_value(_t: u32, _k: *const u8, _kl: usize) -> u32 {
        12
    }
    pub unsafe fn proxy_continue_stream(_stream_type: u32) -> u32 {
        12
    }
    pub unsafe fn proxy_close_stream(_stream_type: u32) -> u32 {
        12
    }
    pub unsafe fn proxy_send_local_response(_status: u32, _details: *const u8, _details_len: usize, _body: *const u8, _body_len: usize, _headers: *const u8, _headers_len: usize, _grpc_status: i32) -> u32 {
        12
    }
    pub unsafe fn proxy_http_call(_upstream: *const u8, _upstream_len: usize, _headers: *const u8, _headers_len: usize, _body: *const u8, _body_len: usize, _trailers: *const u8, _trailers_len: usize, _timeout_ms: u32, _token: *mut u32) -> u32 {
        12
    }
    pub unsafe fn proxy_get_shared_data(_k: *const u8, _kl: usize, _v: *mut *mut u8, _vl: *mut usize, _cas: *mut u32) -> u32 {
        12
    }
    pub unsafe fn proxy_set_shared_data(_k: *const u8, _kl: usize, _v: *const u8, _vl: usize, _cas: u32) -> u32 {
        12
    }
    pub unsafe fn proxy_define_metric(_t: u32, _name: *const u8, _len: usize, _id: *mut u32) -> u32 {
        12
    }
    pub unsafe fn proxy_increment_metric(_id: u32, _delta: i64) -> u32 {
        12
    }
    pub unsafe fn proxy_record_metric(_id: u32, _value: u64) -> u32 {
        12
    }
    pub unsafe fn proxy_get_metric(_id: u32, _value: *mut u64) -> u32 {
        12
    }
    pub unsafe fn proxy_get_property(_path: *const u8, _len: usize, _v: *mut *mut u8, _vl: *mut usize) -> u32 {
        12
    }
    pub unsafe fn proxy_set_property(_path: *const u8, _len: usize, _v: *const u8, _vl: usize) -> u32 {
        12
    }
    pub unsafe fn proxy_call_foreign_function(_name: *const u8, _name_len: usize, _args: *const u8, _args_len: usize, _ret: *mut *mut u8, _ret_len: *mut usize) -> u32 {
        12
    }
}
#[cfg(not(target_arch = "wasm32"))]
pub use native::*;
