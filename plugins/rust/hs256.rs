//! HMAC-SHA-256 for jwt's HS256, the algorithm nearly every HMAC-signed
//! token uses, written out because a new token's check was half this
//! hash: the sha2 crate's portable SHA-256 mirrors the x86 SHA
//! instructions on four-word arrays, which a Wasm guest (no SIMD) runs as
//! shuffles through memory. Here the 64 rounds keep their eight words in
//! locals, and a key's inner and outer padded blocks are hashed once, when
//! the key is read: a token then costs the blocks of its signing input
//! and one more. HS384 and HS512 stay on the crates. The tests check it
//! against the hmac and sha2 crates.

/// A key ready to sign: the SHA-256 states after its inner and outer
/// padded blocks (RFC 2104), and after the first block of the last
/// message signed that had one.
#[derive(Clone)]
pub struct Key {
    inner: [u32; 8],
    outer: [u32; 8],
    /// A token's signing input starts with its JOSE header and the start
    /// of its claims, the same in every token an issuer signs (often
    /// "iss" first): when a message's first block is the last one's, the
    /// state after it is this one. A function of the key and those 64
    /// bytes alone, so a hit is exact; the bytes compared are the
    /// message's, not the key's.
    first: RefCell<Option<([u8; BLOCK], [u32; 8])>>,
}

use std::cell::RefCell;

const BLOCK: usize = 64;

const IV: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be,
    0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa,
    0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85,
    0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
    0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f,
    0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// One 64-byte block into state (FIPS 180-4, 6.2.2). The 64 rounds are
/// written out, every index a constant: the message schedule's ring of
/// 16 words and the eight working words all stay in locals (no memory
/// access but the block's), the constants are immediates, and there is
/// no bounds check. Not inlined: its three callers share one copy.
#[inline(never)]
fn compress(state: &mut [u32; 8], block: &[u8; BLOCK]) {
    // Every index a constant here too: filled by a loop, the ring was an
    // array in memory, zeroed first (a memset call a block).
    let word = |i: usize| u32::from_be_bytes([block[4 * i], block[4 * i + 1], block[4 * i + 2], block[4 * i + 3]]);
    let mut w = [
        word(0), word(1), word(2), word(3), word(4), word(5), word(6), word(7),
        word(8), word(9), word(10), word(11), word(12), word(13), word(14), word(15),
    ];
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    // A round; the words' roles rotate through the names instead of
    // moving between them.
    macro_rules! round {
        ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $i:expr) => {{
            const I: usize = $i;
            let wi = if I < 16 {
                w[I & 15]
            } else {
                let (w15, w2) = (w[(I + 1) & 15], w[(I + 14) & 15]);
                let s0 = w15.rotate_right(7) ^ w15.rotate_right(18) ^ (w15 >> 3);
                let s1 = w2.rotate_right(17) ^ w2.rotate_right(19) ^ (w2 >> 10);
                let v = w[I & 15].wrapping_add(s0).wrapping_add(w[(I + 9) & 15]).wrapping_add(s1);
                w[I & 15] = v;
                v
            };
            let s1 = $e.rotate_right(6) ^ $e.rotate_right(11) ^ $e.rotate_right(25);
            let ch = ($e & $f) ^ (!$e & $g);
            let t1 = $h.wrapping_add(s1).wrapping_add(ch).wrapping_add(K[I]).wrapping_add(wi);
            let s0 = $a.rotate_right(2) ^ $a.rotate_right(13) ^ $a.rotate_right(22);
            let maj = ($a & $b) ^ ($a & $c) ^ ($b & $c);
            $d = $d.wrapping_add(t1);
            $h = t1.wrapping_add(s0).wrapping_add(maj);
        }};
    }
    macro_rules! eight {
        ($i:expr) => {
            round!(a, b, c, d, e, f, g, h, $i);
            round!(h, a, b, c, d, e, f, g, $i + 1);
            round!(g, h, a, b, c, d, e, f, $i + 2);
            round!(f, g, h, a, b, c, d, e, $i + 3);
            round!(e, f, g, h, a, b, c, d, $i + 4);
            round!(d, e, f, g, h, a, b, c, $i + 5);
            round!(c, d, e, f, g, h, a, b, $i + 6);
            round!(b, c, d, e, f, g, h, a, $i + 7);
        };
    }
    eight!(0);
    eight!(8);
    eight!(16);
    eight!(24);
    eight!(32);
    eight!(40);
    eight!(48);
    eight!(56);
    for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *s = s.wrapping_add(v);
    }
}

/// The digest of msg hashed on from state, after `before` bytes (whole
/// blocks) were hashed into it.
fn finish(mut state: [u32; 8], msg: &[u8], before: usize) -> [u8; 32] {
    let mut blocks = msg.chunks_exact(BLOCK);
    for b in &mut blocks {
        compress(&mut state, b.try_into().expect("64 bytes"));
    }
    let rest = blocks.remainder();
    let bits = ((before + msg.len()) as u64).wrapping_mul(8);
    // The padding in one block when the length fits after the rest (a
    // block zeroed, not two), else in two.
    let mut last = [0u8; BLOCK];
    last[..rest.len()].copy_from_slice(rest);
    last[rest.len()] = 0x80;
    if rest.len() >= BLOCK - 8 {
        compress(&mut state, &last);
        last = [0u8; BLOCK];
    }
    last[BLOCK - 8..].copy_from_slice(&bits.to_be_bytes());
    compress(&mut state, &last);
    let mut out = [0u8; 32];
    for (o, s) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&s.to_be_bytes());
    }
    out
}

/// SHA-256 of msg.
pub fn sha256(msg: &[u8]) -> [u8; 32] {
    finish(IV, msg, 0)
}

impl Key {
    pub fn new(key: &[u8]) -> Key {
        // A key longer than a block is its digest (RFC 2104).
        let mut k = [0u8; BLOCK];
        if key.len() > BLOCK {
            k[..32].copy_from_slice(&sha256(key));
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let pad = |x: u8| {
            let mut block = [0u8; BLOCK];
            for (b, k) in block.iter_mut().zip(k) {
                *b = k ^ x;
            }
            let mut state = IV;
            compress(&mut state, &block);
            state
        };
        Key { inner: pad(0x36), outer: pad(0x5c), first: RefCell::new(None) }
    }

    /// HMAC-SHA-256 of msg.
    pub fn sign(&self, msg: &[u8]) -> [u8; 32] {
        let inner = match msg.get(..BLOCK) {
            Some(head) => {
                let head: &[u8; BLOCK] = head.try_into().expect("64 bytes");
                let mut first = self.first.borrow_mut();
                let state = match &*first {
                    Some((h, state)) if h == head => *state,
                    _ => {
                        let mut state = self.inner;
                        compress(&mut state, head);
                        *first = Some((*head, state));
                        state
                    }
                };
                finish(state, &msg[BLOCK..], 2 * BLOCK)
            }
            None => finish(self.inner, msg, BLOCK),
        };
        finish(self.outer, &inner, BLOCK)
    }

    /// Whether sig is msg's MAC, compared in constant time (as Go's
    /// hmac.Equal; the length is not secret).
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        if sig.len() != 32 {
            return false;
        }
        let mac = self.sign(msg);
        mac.iter().zip(sig).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};

    fn bytes(n: usize, seed: usize) -> Vec<u8> {
        (0..n).map(|i| (i.wrapping_mul(131) ^ seed.wrapping_mul(7919) ^ (i >> 3)) as u8).collect()
    }

    // Every message length over three blocks (each padding case) and
    // keys shorter than, as long as and longer than a block, against the
    // crates.
    #[test]
    fn matches_the_crates() {
        for n in 0..200 {
            let msg = bytes(n, n);
            assert_eq!(sha256(&msg)[..], Sha256::digest(&msg)[..], "sha256 of {} bytes", n);
            for klen in [0, 1, 13, 32, 63, 64, 65, 100, 200] {
                let key = bytes(klen, n + klen);
                let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
                m.update(&msg);
                let want = m.finalize().into_bytes();
                let k = Key::new(&key);
                assert_eq!(k.sign(&msg)[..], want[..], "key {} bytes, message {} bytes", klen, n);
                assert!(k.verify(&msg, &want));
                let mut bad = want.to_vec();
                bad[n % 32] ^= 1 << (n % 8);
                assert!(!k.verify(&msg, &bad));
                assert!(!k.verify(&msg, &want[..31]));
            }
        }
        // Messages that share their first block, or not, one after the
        // other under one key: the kept state is used only when it fits.
        let key = Key::new(b"k");
        let base = bytes(150, 1);
        for i in 0..40 {
            let mut msg = base.clone();
            msg[(i * 37) % 150] ^= 1 + i as u8;
            msg.truncate(60 + (i * 13) % 90);
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(b"k").unwrap();
            m.update(&msg);
            assert_eq!(key.sign(&msg)[..], m.finalize().into_bytes()[..], "message {}", i);
        }
        // RFC 4231 test case 2.
        let k = Key::new(b"Jefe");
        let got = k.sign(b"what do ya want for nothing?");
        let want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(got.iter().map(|b| format!("{:02x}", b)).collect::<String>(), want);
    }
}
