//! The module's allocator: small blocks from free lists by size class,
//! the rest from std's (dlmalloc).
//!
//! A request's path allocates a few small blocks and frees them (a
//! stream's context, the host's copy of each header value or property it
//! reads, a shared-data value), about ten on the Kong route's four
//! plugins. dlmalloc spent 60-100 ns on each allocation and free under
//! wazero, binning, splitting and coalescing chunks; a block of a size
//! class comes off and goes back on its list in a few instructions. The
//! lists keep what they were given (a class never shrinks), which bounds
//! them by the most blocks of each class live at once: a stream's worth
//! per concurrent stream.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Classes of 8 << i bytes: 8 to 2048.
const CLASSES: usize = 9;
const MAX_CLASS: usize = 8 << (CLASSES - 1);
/// Blocks are carved from chunks of this many bytes, taken from System.
const CHUNK: usize = 16 << 10;
/// Every block is aligned to its class's size or to ALIGN, whichever is
/// smaller; a layout asking for more goes to System.
const ALIGN: usize = 16;

pub struct Classes {
    /// The first free block of each class (each free block holds the
    /// next's address), 0 for none.
    free: [Cell<usize>; CLASSES],
    /// The unused rest of the current chunk.
    next: Cell<usize>,
    end: Cell<usize>,
}

// Safety: the module is single-threaded (wasm32 without threads).
unsafe impl Sync for Classes {}

impl Classes {
    pub const fn new() -> Classes {
        const EMPTY: Cell<usize> = Cell::new(0);
        Classes { free: [EMPTY; CLASSES], next: Cell::new(0), end: Cell::new(0) }
    }
}

/// The class of a layout, None when System serves it. A block of class i
/// is 8 << i bytes, aligned to min(8 << i, ALIGN): enough for any layout
/// whose size and alignment are at most that.
fn class(l: Layout) -> Option<usize> {
    let n = l.size().max(l.align());
    if n > MAX_CLASS || l.align() > ALIGN {
        return None;
    }
    // 8 << i >= n.
    let i = (n.max(8).next_power_of_two().trailing_zeros() - 3) as usize;
    Some(i)
}

unsafe impl GlobalAlloc for Classes {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let i = match class(l) {
            Some(i) => i,
            None => return System.alloc(l),
        };
        let head = self.free[i].get();
        if head != 0 {
            self.free[i].set(*(head as *const usize));
            return head as *mut u8;
        }
        let size = 8 << i;
        let align = size.min(ALIGN);
        let mut at = (self.next.get() + align - 1) & !(align - 1);
        if at + size > self.end.get() {
            // A new chunk; the old one's rest is left (at most a block).
            let chunk = System.alloc(Layout::from_size_align_unchecked(CHUNK, ALIGN));
            if chunk.is_null() {
                return chunk;
            }
            at = chunk as usize;
            self.end.set(at + CHUNK);
        }
        self.next.set(at + size);
        at as *mut u8
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        match class(l) {
            Some(i) => {
                *(p as *mut usize) = self.free[i].get();
                self.free[i].set(p as usize);
            }
            None => System.dealloc(p, l),
        }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        let new = Layout::from_size_align_unchecked(new_size, l.align());
        match (class(l), class(new)) {
            // The block has the room already.
            (Some(a), Some(b)) if a == b => p,
            (None, None) => System.realloc(p, l, new_size),
            _ => {
                let q = self.alloc(new);
                if !q.is_null() {
                    std::ptr::copy_nonoverlapping(p, q, l.size().min(new_size));
                    self.dealloc(p, l);
                }
                q
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_fit_their_layouts() {
        for size in 0..=MAX_CLASS + 1 {
            for align in [1, 2, 4, 8, 16, 32] {
                let l = Layout::from_size_align(size, align).unwrap();
                match class(l) {
                    Some(i) => {
                        let block = 8usize << i;
                        assert!(block >= size && block >= align && block.min(ALIGN) >= align, "{:?}", l);
                        assert!(i == 0 || (8usize << (i - 1)) < size.max(align), "{:?}: class {} is not the smallest", l, i);
                    }
                    None => assert!(size.max(align) > MAX_CLASS || align > ALIGN, "{:?}", l),
                }
            }
        }
    }

    /// Blocks are distinct, aligned, writable, and reused after a free,
    /// class by class; reallocation keeps the bytes.
    #[test]
    fn blocks_come_back() {
        let a = Classes::new();
        unsafe {
            let mut live = Vec::new();
            for round in 0..3 {
                for size in [1usize, 7, 8, 9, 16, 24, 100, 512, 600, 2048, 2049, 5000] {
                    for align in [1usize, 8, 16] {
                        let l = Layout::from_size_align(size, align).unwrap();
                        let p = a.alloc(l);
                        assert!(!p.is_null() && p as usize % align == 0, "{:?}", l);
                        std::ptr::write_bytes(p, (size + round) as u8, size);
                        live.push((p, l));
                    }
                }
                let mut addrs: Vec<usize> = live.iter().map(|(p, _)| *p as usize).collect();
                addrs.sort_unstable();
                addrs.dedup();
                assert_eq!(addrs.len(), live.len(), "a block handed out twice");
                for (p, l) in &live {
                    assert!(std::slice::from_raw_parts(*p, l.size()).iter().all(|b| *b == (l.size() + round) as u8));
                }
                for (p, l) in live.drain(..) {
                    a.dealloc(p, l);
                }
            }
            let l = Layout::from_size_align(20, 4).unwrap();
            let p = a.alloc(l);
            std::ptr::copy_nonoverlapping(b"abcdefghijklmnopqrst".as_ptr(), p, 20);
            let q = a.realloc(p, l, 30);
            assert_eq!(q, p, "30 bytes fit the 32-byte block");
            let r = a.realloc(q, Layout::from_size_align(30, 4).unwrap(), 3000);
            assert_eq!(std::slice::from_raw_parts(r, 20), b"abcdefghijklmnopqrst");
            let s = a.realloc(r, Layout::from_size_align(3000, 4).unwrap(), 10);
            assert_eq!(std::slice::from_raw_parts(s, 10), b"abcdefghij");
            a.dealloc(s, Layout::from_size_align(10, 4).unwrap());
        }
    }
}
