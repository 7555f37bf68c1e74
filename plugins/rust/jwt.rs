//! The jwt plugin (wasm = "builtin:jwt"): Kong's jwt, plus issuer and
//! audience checks, clock skew, JWKS and RS/ES/EdDSA. A bearer token in a
//! header, query parameter or cookie is verified, its claims checked, its
//! consumer and selected claims passed upstream; otherwise 401 with
//! WWW-Authenticate as RFC 6750 says.
//!
//! The Rust port of plugins/src/jwt: same keys, messages and headers. HS*
//! is verified here (Debian's hmac and sha2 crates); RS*, ES* and EdDSA by
//! the host (sluice_verify_signature, Go's crypto), which parses each key
//! once, so the module carries no public-key code.

use crate::common;
use hmac::{Hmac, Mac};
use sha2::{Sha384, Sha512};
use sluice_proxy_wasm::{self as sdk, json, Action, HttpContext, LogLevel, RootContext, SignatureCheck};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// The plugin's root_id.
pub const NAME: &str = "jwt";

pub const HEADER_CONSUMER_USERNAME: &str = "x-consumer-username";
pub const HEADER_CONSUMER_ID: &str = "x-consumer-id";
pub const HEADER_ANONYMOUS: &str = "x-anonymous-consumer";

/// Bounds one JWKS fetch.
const JWKS_TIMEOUT_MS: u32 = 5000;

/// The supported JWS algorithms.
pub const ALGORITHMS: &[&str] = &["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA"];

fn supported(alg: &str) -> bool {
    ALGORITHMS.contains(&alg)
}

/// Verifies a public-key signature: sdk::verify_signature in a module;
/// tests pass their own (natively there is no host).
pub type PublicKeyVerifier = fn(&str, &[u8], &[u8], &[u8]) -> Result<SignatureCheck, sdk::Status>;

// Only jwt uses it (lib.rs lists the plugins and what they share).
#[path = "hs256.rs"]
mod hs256;

/// An HMAC secret, keyed once for each hash (the keyed state is cloned
/// per token: two compression rounds fewer each time).
#[derive(Clone)]
struct Secret {
    s256: hs256::Key,
    s384: Hmac<Sha384>,
    s512: Hmac<Sha512>,
}

impl Secret {
    fn new(raw: Vec<u8>) -> Secret {
        // HMAC takes a key of any length.
        Secret {
            s256: hs256::Key::new(&raw),
            s384: <Hmac<Sha384> as Mac>::new_from_slice(&raw).expect("HMAC key"),
            s512: <Hmac<Sha512> as Mac>::new_from_slice(&raw).expect("HMAC key"),
        }
    }

    /// Checks sig over input, in constant time (as Go's hmac.Equal).
    fn verify(&self, alg: &str, input: &[u8], sig: &[u8]) -> bool {
        macro_rules! check {
            ($m:expr) => {{
                let mut m = $m.clone();
                m.update(input);
                m.verify_slice(sig).is_ok()
            }};
        }
        match alg {
            "HS256" => self.s256.verify(input, sig),
            "HS384" => check!(self.s384),
            "HS512" => check!(self.s512),
            _ => false,
        }
    }
}

/// One verification key: an HMAC secret, or a public key as the host
/// reads it (PEM text or one JWK).
#[derive(Clone)]
enum Material {
    Secret(Box<Secret>),
    Public(Vec<u8>),
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Material::Secret(_) => f.write_str("Secret(..)"),
            Material::Public(k) => write!(f, "Public({})", String::from_utf8_lossy(k)),
        }
    }
}

#[derive(Debug, Clone)]
struct Key {
    kid: String,
    /// "" when the key does not pin one (a JWK without alg).
    alg: String,
    material: Material,
}

impl Key {
    /// Checks sig over input under alg (Go's key.verify).
    fn verify(&self, pk: PublicKeyVerifier, alg: &str, input: &[u8], sig: &[u8]) -> bool {
        if !self.alg.is_empty() && self.alg != alg {
            return false;
        }
        match (&self.material, alg) {
            (Material::Secret(s), "HS256" | "HS384" | "HS512") => s.verify(alg, input, sig),
            (Material::Public(k), "RS256" | "RS384" | "RS512" | "ES256" | "ES384" | "EdDSA") => {
                // An empty signature would ask the host for a key check only.
                !sig.is_empty() && pk(alg, k, input, sig) == Ok(SignatureCheck::Valid)
            }
            _ => false,
        }
    }
}

/// Asks the host whether a public key parses (configure time).
fn check_public_key(pk: PublicKeyVerifier, key: &[u8]) -> Result<(), String> {
    match pk("RS256", key, b"", b"") {
        Ok(SignatureCheck::UnusableKey(why)) => Err(why),
        Ok(_) => Ok(()),
        Err(sdk::Status::NotFound) => Err("public keys need sluice's sluice_verify_signature, which this host does not have".into()),
        Err(e) => Err(format!("checking the key: {:?}", e)),
    }
}

/// Go's base64 decoding: `padded` for StdEncoding (the '=' padding must
/// be right), otherwise RawURLEncoding (no '=' at all). \r and \n are
/// skipped; the unused bits of the last character are not checked.
fn base64_decode(s: &str, url: bool, padded: bool) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    base64_decode_into(s, url, padded, &mut out)?;
    Ok(out)
}

/// base64_decode appending to out (a token's parts go into one reused
/// buffer: no allocation per part). \r and \n are rare (a PEM-style
/// secret): the input is read as it is, and only a failure looks for
/// them and reads it again without them.
fn base64_decode_into(s: &str, url: bool, padded: bool, out: &mut Vec<u8>) -> Result<(), String> {
    let start = out.len();
    if decode_groups(s.as_bytes(), url, padded, out) {
        return Ok(());
    }
    out.truncate(start);
    let chars = s.as_bytes();
    if chars.iter().any(|c| *c == b'\r' || *c == b'\n') {
        let filtered = chars.iter().copied().filter(|c| *c != b'\r' && *c != b'\n').collect::<Vec<u8>>();
        if decode_groups(&filtered, url, padded, out) {
            return Ok(());
        }
        out.truncate(start);
    }
    Err("illegal base64 data".to_string())
}

/// Decodes chars (no \r or \n: they are not in the alphabet) onto out;
/// false if they are not base64.
fn decode_groups(mut chars: &[u8], url: bool, padded: bool, out: &mut Vec<u8>) -> bool {
    if padded {
        if chars.len() % 4 != 0 {
            return false;
        }
        let pad = chars.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 {
            return false;
        }
        chars = &chars[..chars.len() - pad];
    }
    const BAD: u8 = 0xff;
    // Values of the standard (0) and URL (1) alphabets' characters.
    static TABLE: [[u8; 256]; 2] = {
        let mut t = [[BAD; 256]; 2];
        let alpha = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut j = 0;
        while j < 62 {
            t[0][alpha[j] as usize] = j as u8;
            t[1][alpha[j] as usize] = j as u8;
            j += 1;
        }
        t[0][b'+' as usize] = 62;
        t[0][b'/' as usize] = 63;
        t[1][b'-' as usize] = 62;
        t[1][b'_' as usize] = 63;
        t
    };
    let table = &TABLE[url as usize];
    let tail = chars.len() % 4;
    if tail == 1 {
        return false;
    }
    // Whole groups of four written in place, then the tail (2 or 3
    // characters: 1 or 2 bytes). A character's value is < 64, so BAD
    // shows in the OR of them all, checked once at the end.
    let (whole, rest) = chars.split_at(chars.len() - tail);
    let n = whole.len() / 4 * 3;
    let total = n + tail.saturating_sub(1);
    // Written into the spare capacity, not zeroed first (a memset of the
    // whole output on every token part).
    out.reserve(total);
    let (body, end) = out.spare_capacity_mut()[..total].split_at_mut(n);
    let mut seen = 0u8;
    for (g, o) in whole.chunks_exact(4).zip(body.chunks_exact_mut(3)) {
        let (a, b, c, d) = (table[g[0] as usize], table[g[1] as usize], table[g[2] as usize], table[g[3] as usize]);
        seen |= a | b | c | d;
        let v = (a as u32) << 18 | (b as u32) << 12 | (c as u32) << 6 | d as u32;
        o[0].write((v >> 16) as u8);
        o[1].write((v >> 8) as u8);
        o[2].write(v as u8);
    }
    let mut v = 0u32;
    for (i, c) in rest.iter().enumerate() {
        let x = table[*c as usize];
        seen |= x;
        v |= (x as u32) << (18 - 6 * i);
    }
    for (i, o) in end.iter_mut().enumerate() {
        o.write((v >> (16 - 8 * i)) as u8);
    }
    // Safety: the loops above wrote all total bytes (n in groups of
    // three, the tail's tail - 1).
    unsafe { out.set_len(out.len() + total) };
    seen & 0xc0 == 0
}

/// A token part: RawURLEncoding after trailing '=' are trimmed.
fn b64(s: &str) -> Result<Vec<u8>, String> {
    base64_decode(s.trim_end_matches('='), true, false)
}

/// b64 appending to out.
fn b64_into(s: &str, out: &mut Vec<u8>) -> Result<(), String> {
    base64_decode_into(s.trim_end_matches('='), true, false, out)
}

/// A credential: its key, algorithm and consumer.
#[derive(Debug)]
struct Credential {
    key: Key,
    alg: String,
    consumer: String,
}

/// A validated configuration.
pub struct Verifier {
    uri_params: Vec<String>,
    cookies: Vec<String>,
    headers: Vec<String>,
    verify_exp: bool,
    verify_nbf: bool,
    key_claim: String,
    max_exp: i64,
    preflight: bool,
    anonymous: String,
    realm: String,
    creds: common::NameMap<Credential>,
    issuer: String,
    audiences: Vec<String>,
    skew: i64,
    jwks: Vec<Key>,
    /// JWKS fetching: the cluster ("" for none), :path, :authority, and
    /// the refresh period in nanoseconds.
    jwks_cluster: String,
    jwks_path: String,
    jwks_authority: String,
    jwks_refresh_ns: i64,
    /// (claim, header), sorted by claim.
    claim_headers: Vec<(String, String)>,
    pk: PublicKeyVerifier,
    verified: VerifiedTokens,
    /// A new token's claims and signature, decoded (reused: no
    /// allocation per token once it has grown).
    decoded: RefCell<Vec<u8>>,
    jose: JoseHeaders,
}

/// The last JOSE header read, by its encoded form: an issuer signs every
/// token with the same header ({"alg":"HS256","typ":"JWT"}, or with its
/// key's kid), so a new token's header is nearly always the one before's
/// and needs no base64 or JSON. What it holds follows from those bytes
/// alone.
#[derive(Default)]
struct JoseHeaders {
    last: RefCell<Option<JoseHeader>>,
}

struct JoseHeader {
    encoded: String,
    alg: String,
    kid: String,
}

impl JoseHeaders {
    /// Makes part (a token's first) the last header read; false if it is
    /// not a JOSE header (the last one read stays).
    fn read(&self, part: &str) -> bool {
        if matches!(&*self.last.borrow(), Some(h) if h.encoded == part) {
            return true;
        }
        let hb = match b64(part) {
            Ok(b) => b,
            Err(_) => return false,
        };
        // The header as json.Unmarshal reads it into a struct: one value
        // (null allowed), an object, string members; only the members
        // that can match alg, kid or typ are built.
        let jose = |k: &str| !k.is_ascii() || ["alg", "kid", "typ"].iter().any(|f| k.eq_ignore_ascii_case(f));
        let (alg, kid) = match json::parse_value_members(&hb, &jose) {
            Ok(json::Value::Null) => (String::new(), String::new()),
            Ok(json::Value::Object(m)) => match (header_field(&m, "alg"), header_field(&m, "kid"), header_field(&m, "typ")) {
                (Ok(a), Ok(k), Ok(_)) => (a, k),
                _ => return false,
            },
            _ => return false,
        };
        *self.last.borrow_mut() = Some(JoseHeader { encoded: part.to_string(), alg, kid });
        true
    }
}

/// Tokens whose signature this configuration found valid, with what
/// was read from them, so the same token on a client's next request
/// skips the base64, the JSON and the HMAC or the host's public-key
/// check (a client sends one token until it expires; Envoy's jwt_authn
/// keeps verified tokens for the same reason). An entry is the whole
/// token, compared byte for byte, so a hit is exact; everything an entry
/// holds follows from the token and the configuration alone, and what
/// depends on the time (exp, nbf) is checked on every request. New keys
/// from jwks_uri empty it. Only tokens with a valid signature are kept,
/// one per slot (chosen by the signature's last characters; a new token
/// replaces the one in its slot), and only tokens of at most
/// VERIFIED_MAX_TOKEN bytes: a few tens of KiB an instance at most.
#[derive(Default)]
struct VerifiedTokens {
    slots: RefCell<Vec<Option<VerifiedToken>>>,
}

struct VerifiedToken {
    token: Vec<u8>,
    /// What its claims decide.
    facts: Facts,
    consumer: Consumer,
}

/// A consumer's name, shared by the cache of verified tokens and each
/// request's outcome (no copy per request); empty for none.
#[derive(Clone, Default)]
pub struct Consumer(Option<Rc<str>>);

impl Consumer {
    fn new(s: &str) -> Consumer {
        Consumer(if s.is_empty() { None } else { Some(Rc::from(s)) })
    }
}

impl std::ops::Deref for Consumer {
    type Target = str;
    fn deref(&self) -> &str {
        self.0.as_deref().unwrap_or_default()
    }
}

impl PartialEq for Consumer {
    fn eq(&self, other: &Consumer) -> bool {
        **self == **other
    }
}

impl PartialEq<&str> for Consumer {
    fn eq(&self, other: &&str) -> bool {
        &**self == *other
    }
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

const VERIFIED_SLOTS: usize = 32;
const VERIFIED_MAX_TOKEN: usize = 1024;

impl VerifiedTokens {
    fn slot(token: &[u8]) -> usize {
        let mut last = [0u8; 8];
        let n = token.len().min(8);
        last[..n].copy_from_slice(&token[token.len() - n..]);
        (u64::from_le_bytes(last).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 59) as usize % VERIFIED_SLOTS
    }

    /// f of token's entry, None when it has none.
    fn with<R>(&self, token: &[u8], f: impl FnOnce(&VerifiedToken) -> R) -> Option<R> {
        let slots = self.slots.borrow();
        // The signature's end first: an issuer's tokens share their
        // header and first claims, so a new token in an occupied slot
        // would otherwise be compared over a hundred bytes or so.
        let tail = token.len().saturating_sub(8);
        match slots.get(Self::slot(token)) {
            Some(Some(t)) if t.token.len() == token.len() && t.token[tail..] == token[tail..] && t.token == token => Some(f(t)),
            _ => None,
        }
    }

    /// Keeps a token whose signature was found valid.
    fn put(&self, token: &[u8], facts: Facts, consumer: Consumer) {
        if token.len() > VERIFIED_MAX_TOKEN {
            return;
        }
        let mut slots = self.slots.borrow_mut();
        if slots.len() < VERIFIED_SLOTS {
            slots.resize_with(VERIFIED_SLOTS, || None);
        }
        // The entry replaced lends its token's buffer.
        let slot = &mut slots[Self::slot(token)];
        let mut t = slot.take().map(|old| old.token).unwrap_or_default();
        t.clear();
        t.extend_from_slice(token);
        *slot = Some(VerifiedToken { token: t, facts, consumer });
    }

    fn clear(&self) {
        self.slots.borrow_mut().clear();
    }
}

/// Every key of the configuration, nested ones too: a misspelt one is
/// refused with the nearest of them.
const CONFIG_KEYS: &[&str] = &[
    "algorithm", "anonymous", "audiences", "claims_to_headers", "claims_to_verify", "clock_skew", "consumer", "cookie_names",
    "credentials", "header_names", "issuer", "jwks", "jwks_cluster", "jwks_file", "jwks_refresh", "jwks_uri", "key",
    "key_claim_name", "maximum_expiration", "public_key", "realm", "rsa_public_key", "run_on_preflight", "secret",
    "secret_is_base64", "uri_param_names",
];

/// Decodes a []string that may stay nil (None): null sets it back to nil.
fn opt_list(v: &json::Value, field: &str) -> Result<Option<Vec<String>>, String> {
    match v {
        json::Value::Null => Ok(None),
        _ => json::string_list(v, field).map(Some),
    }
}

#[derive(Default)]
struct CredentialConfig {
    key: String,
    algorithm: String,
    secret: String,
    rsa_public_key: String,
    public_key: String,
    consumer: String,
}

fn credentials(v: &json::Value) -> Result<Vec<CredentialConfig>, String> {
    let items = match v {
        json::Value::Null => return Ok(Vec::new()),
        json::Value::Array(items) => items,
        _ => return Err(json::type_error(v, "Config.credentials", "[]jwt.Credential")),
    };
    let mut out = Vec::new();
    for it in items {
        let mut c = CredentialConfig::default();
        match it {
            json::Value::Null => {}
            json::Value::Object(members) => {
                for (k, v) in members {
                    let f = |name: &str| format!("Credential.{}", name);
                    match json::key_name(k).as_str() {
                        "key" => c.key = json::string(v, &f("key"))?.unwrap_or(c.key),
                        "algorithm" => c.algorithm = json::string(v, &f("algorithm"))?.unwrap_or(c.algorithm),
                        "secret" => c.secret = json::string(v, &f("secret"))?.unwrap_or(c.secret),
                        "rsa_public_key" => c.rsa_public_key = json::string(v, &f("rsa_public_key"))?.unwrap_or(c.rsa_public_key),
                        "public_key" => c.public_key = json::string(v, &f("public_key"))?.unwrap_or(c.public_key),
                        "consumer" => c.consumer = json::string(v, &f("consumer"))?.unwrap_or(c.consumer),
                        _ => return Err(json::unknown_field_of(k, CONFIG_KEYS)),
                    }
                }
            }
            _ => return Err(json::type_error(it, "Config.credentials", "jwt.Credential")),
        }
        out.push(c);
    }
    Ok(out)
}

/// Validates a configuration; read_file reads jwks_file, pk checks public
/// keys (and verifies them later).
pub fn parse(data: &[u8], read_file: impl Fn(&str, &str) -> Result<Vec<u8>, String>, pk: PublicKeyVerifier) -> Result<Verifier, String> {
    let (mut uri_params, mut cookies, mut headers) = (None, Vec::new(), None);
    let mut claims_to_verify = Vec::new();
    let (mut key_claim, mut anonymous, mut realm, mut issuer) = (String::new(), String::new(), String::new(), String::new());
    let (mut secret_b64, mut max_exp, mut preflight, mut skew) = (false, 0i64, None, 0i64);
    let mut creds = Vec::new();
    let mut audiences = Vec::new();
    let mut jwks: Option<json::Value> = None;
    let (mut jwks_file, mut jwks_uri, mut jwks_cluster, mut jwks_refresh) = (String::new(), String::new(), String::new(), String::new());
    let mut claims_to_headers: Vec<(String, String)> = Vec::new();
    if let Some(v) = json::parse_config(data)? {
        for (k, v) in json::object(&v, "jwt.Config")? {
            let f = |name: &str| format!("Config.{}", name);
            match json::key_name(k).as_str() {
                "uri_param_names" => uri_params = opt_list(v, &f("uri_param_names"))?,
                "cookie_names" => cookies = json::string_list(v, &f("cookie_names"))?,
                "header_names" => headers = opt_list(v, &f("header_names"))?,
                "claims_to_verify" => claims_to_verify = json::string_list(v, &f("claims_to_verify"))?,
                "key_claim_name" => key_claim = json::string(v, &f("key_claim_name"))?.unwrap_or(key_claim),
                "secret_is_base64" => secret_b64 = json::boolean(v, &f("secret_is_base64"))?.unwrap_or(secret_b64),
                "maximum_expiration" => max_exp = json::signed(v, &f("maximum_expiration"), "int64")?.unwrap_or(max_exp),
                "run_on_preflight" => preflight = json::boolean(v, &f("run_on_preflight"))?,
                "anonymous" => anonymous = json::string(v, &f("anonymous"))?.unwrap_or(anonymous),
                "realm" => realm = json::string(v, &f("realm"))?.unwrap_or(realm),
                "credentials" => creds = credentials(v)?,
                "issuer" => issuer = json::string(v, &f("issuer"))?.unwrap_or(issuer),
                "audiences" => audiences = json::string_list(v, &f("audiences"))?,
                "clock_skew" => skew = json::signed(v, &f("clock_skew"), "int64")?.unwrap_or(skew),
                "jwks" => jwks = Some(v.clone()),
                "jwks_file" => jwks_file = json::string(v, &f("jwks_file"))?.unwrap_or(jwks_file),
                "jwks_uri" => jwks_uri = json::string(v, &f("jwks_uri"))?.unwrap_or(jwks_uri),
                "jwks_cluster" => jwks_cluster = json::string(v, &f("jwks_cluster"))?.unwrap_or(jwks_cluster),
                "jwks_refresh" => jwks_refresh = json::string(v, &f("jwks_refresh"))?.unwrap_or(jwks_refresh),
                "claims_to_headers" => json::merge_string_map(v, &f("claims_to_headers"), &mut claims_to_headers)?,
                _ => return Err(json::unknown_field_of(k, CONFIG_KEYS)),
            }
        }
    }
    if key_claim.is_empty() {
        key_claim = "iss".into();
    }
    if realm.is_empty() {
        realm = "sluice".into();
    }
    let mut v = Verifier {
        uri_params: uri_params.unwrap_or_else(|| vec!["jwt".into()]),
        cookies,
        headers: headers.unwrap_or_else(|| vec!["authorization".into()]),
        verify_exp: false,
        verify_nbf: false,
        key_claim,
        max_exp,
        preflight: preflight.unwrap_or(true),
        anonymous,
        realm,
        creds: common::NameMap::default(),
        issuer,
        audiences,
        skew,
        jwks: Vec::new(),
        jwks_cluster: String::new(),
        jwks_path: String::new(),
        jwks_authority: String::new(),
        jwks_refresh_ns: 0,
        claim_headers: Vec::new(),
        pk,
        verified: VerifiedTokens::default(),
        decoded: RefCell::new(Vec::new()),
        jose: JoseHeaders::default(),
    };
    if v.skew < 0 || v.max_exp < 0 {
        return Err("config: clock_skew and maximum_expiration must not be negative".into());
    }
    for (i, cl) in claims_to_verify.iter().enumerate() {
        match cl.as_str() {
            "exp" => v.verify_exp = true,
            "nbf" => v.verify_nbf = true,
            _ => return Err(format!("config: claims_to_verify[{}]: {:?} is not exp or nbf", i, cl)),
        }
    }
    if v.max_exp > 0 && !v.verify_exp {
        return Err("config: maximum_expiration needs \"exp\" in claims_to_verify".into());
    }
    for (i, cr) in creds.into_iter().enumerate() {
        let at = format!("config: credentials[{}]", i);
        let alg = if cr.algorithm.is_empty() { "HS256".to_string() } else { cr.algorithm };
        if !supported(&alg) {
            return Err(format!("{}.algorithm: {:?} is not one of {}", at, alg, ALGORITHMS.join(", ")));
        }
        if cr.key.is_empty() {
            return Err(format!("{}.key: required (the value of the {:?} claim)", at, v.key_claim));
        }
        let material = if alg.starts_with("HS") {
            if cr.secret.is_empty() {
                return Err(format!("{}.secret: required for {}", at, alg));
            }
            if secret_b64 {
                Material::Secret(Box::new(Secret::new(
                    base64_decode(&cr.secret, false, true)
                        .map_err(|e| format!("{}.secret: not base64 (secret_is_base64 is set): {}", at, e))?,
                )))
            } else {
                Material::Secret(Box::new(Secret::new(cr.secret.into_bytes())))
            }
        } else {
            let p = if cr.public_key.is_empty() { cr.rsa_public_key } else { cr.public_key };
            if !p.trim_start().starts_with("-----BEGIN") {
                return Err(format!("{}.public_key: not a PEM public key", at));
            }
            check_public_key(pk, p.as_bytes()).map_err(|e| format!("{}.public_key: {}", at, e))?;
            Material::Public(p.into_bytes())
        };
        // Kong's model: the credential's algorithm is checked against the
        // token's before its key is used, so the key pins none itself.
        let key = Key { kid: String::new(), alg: String::new(), material };
        v.creds.insert(cr.key, Credential { key, alg, consumer: cr.consumer });
    }
    if let Some(j) = &jwks {
        v.jwks = parse_jwks_value(j, pk).map_err(|e| format!("config: jwks: {}", e))?;
    }
    if !jwks_file.is_empty() {
        let b = read_file("jwks_file", &jwks_file).map_err(|e| format!("config: {}", e))?;
        let keys = parse_jwks(&b, pk).map_err(|e| format!("config: jwks_file {}: {}", jwks_file, e))?;
        v.jwks.extend(keys);
    }
    if !jwks_uri.is_empty() {
        let (authority, path) = match split_url(&jwks_uri) {
            Some(x) => x,
            None => return Err(format!("config: jwks_uri: {:?} is not an absolute URL", jwks_uri)),
        };
        if jwks_cluster.is_empty() {
            return Err("config: jwks_uri needs jwks_cluster, the cluster that serves it".into());
        }
        v.jwks_cluster = jwks_cluster;
        v.jwks_authority = authority;
        v.jwks_path = path;
        v.jwks_refresh_ns = 5 * 60 * 1_000_000_000;
        if !jwks_refresh.is_empty() {
            match common::parse_duration(&jwks_refresh) {
                Some(d) if d >= 1_000_000_000 => v.jwks_refresh_ns = d,
                _ => return Err(format!("config: jwks_refresh: {:?} is not a duration of at least 1s", jwks_refresh)),
            }
        }
    } else if !jwks_cluster.is_empty() || !jwks_refresh.is_empty() {
        return Err("config: jwks_cluster and jwks_refresh need jwks_uri".into());
    }
    for (claim, h) in claims_to_headers {
        if claim.is_empty() || h.is_empty() || h.starts_with(':') {
            return Err(format!("config: claims_to_headers: {:?} = {:?} is not claim = header", claim, h));
        }
        v.claim_headers.push((claim, h.to_lowercase()));
    }
    v.claim_headers.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}

/// Splits an absolute URL (as Go's url.Parse reads one) into the
/// authority and the request URI; None if it has no scheme or host.
fn split_url(u: &str) -> Option<(String, String)> {
    let u = u.split('#').next().unwrap_or("");
    let colon = u.find(':')?;
    let scheme = &u[..colon];
    let mut sc = scheme.bytes();
    if !sc.next()?.is_ascii_alphabetic() || !sc.all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'-' || c == b'.') {
        return None;
    }
    let rest = &u[colon + 1..];
    let (rest, query) = match rest.find('?') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let rest = rest.strip_prefix("//")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = match authority.rfind('@') {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    if host.is_empty() || host.bytes().any(|c| c <= b' ' || c == 0x7f) {
        return None;
    }
    let mut uri = if path.is_empty() { "/".to_string() } else { path.to_string() };
    if let Some(q) = query {
        if !q.is_empty() {
            uri.push('?');
            uri.push_str(q);
        }
    }
    Some((host.to_string(), uri))
}

fn parse_jwks(b: &[u8], pk: PublicKeyVerifier) -> Result<Vec<Key>, String> {
    let v = json::parse_value(b).map_err(|e| format!("JWKS: {}", e))?;
    parse_jwks_value(&v, pk)
}

/// Reads a JWK Set; keys for other uses or of unknown types are skipped,
/// as RFC 7517 asks.
fn parse_jwks_value(v: &json::Value, pk: PublicKeyVerifier) -> Result<Vec<Key>, String> {
    let members = match v {
        json::Value::Null => return Ok(Vec::new()),
        json::Value::Object(m) => m,
        _ => return Err(format!("JWKS: json: cannot unmarshal {} into Go value of type struct {{ Keys []jwt.jwk \"json:\\\"keys\\\"\" }}", v.kind())),
    };
    let mut keys: &[json::Value] = &[];
    for (k, v) in members {
        if json::key_name(k) == "keys" {
            keys = match v {
                json::Value::Null => &[],
                json::Value::Array(items) => items,
                _ => return Err(format!("JWKS: json: cannot unmarshal {} into Go struct field .keys of type []jwt.jwk", v.kind())),
            };
        }
    }
    let mut out = Vec::new();
    for (i, j) in keys.iter().enumerate() {
        let mut f: HashMap<&str, String> = HashMap::new();
        match j {
            json::Value::Null => {}
            json::Value::Object(m) => {
                for (k, v) in m {
                    let name = json::key_name(k);
                    const FIELDS: &[&str] = &["kty", "kid", "alg", "use", "k", "n", "e", "crv", "x", "y"];
                    if let Some(field) = FIELDS.iter().find(|x| **x == name) {
                        match v {
                            json::Value::Null => {}
                            json::Value::String(s) => {
                                f.insert(field, s.clone());
                            }
                            _ => return Err(format!("JWKS: json: cannot unmarshal {} into Go struct field jwk.keys.{} of type string", v.kind(), field)),
                        }
                    }
                }
            }
            _ => return Err(format!("JWKS: json: cannot unmarshal {} into Go struct field .keys of type jwt.jwk", j.kind())),
        }
        let get = |n: &str| f.get(n).cloned().unwrap_or_default();
        let usage = get("use");
        if !usage.is_empty() && usage != "sig" {
            continue;
        }
        let kid = get("kid");
        if let Some(k) = jwk_key(&get, pk).map_err(|e| format!("JWKS keys[{}] (kid {:?}): {}", i, kid, e))? {
            out.push(Key { kid, alg: get("alg"), material: k });
        }
    }
    Ok(out)
}

/// One JWK's key: None for a type or curve that is skipped.
fn jwk_key(get: &dyn Fn(&str) -> String, pk: PublicKeyVerifier) -> Result<Option<Material>, String> {
    let q = |s: &str| json::quote(s);
    let jwk = match get("kty").as_str() {
        "oct" => return Ok(Some(Material::Secret(Box::new(Secret::new(b64(&get("k"))?))))),
        "RSA" => {
            b64(&get("n"))?;
            if b64(&get("e"))?.len() > 4 {
                return Err("RSA exponent too large".into());
            }
            format!("{{\"kty\":\"RSA\",\"n\":{},\"e\":{}}}", q(&get("n")), q(&get("e")))
        }
        "EC" => {
            let size = match get("crv").as_str() {
                "P-256" => 32,
                "P-384" => 48,
                _ => return Ok(None),
            };
            let (x, y) = (b64(&get("x"))?, b64(&get("y"))?);
            if x.len() != size || y.len() != size {
                return Err("EC coordinates of the wrong size".into());
            }
            format!("{{\"kty\":\"EC\",\"crv\":{},\"x\":{},\"y\":{}}}", q(&get("crv")), q(&get("x")), q(&get("y")))
        }
        "OKP" => {
            if get("crv") != "Ed25519" {
                return Ok(None);
            }
            match b64(&get("x")) {
                Ok(x) if x.len() == 32 => {}
                _ => return Err("bad Ed25519 key".into()),
            }
            format!("{{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":{}}}", q(&get("x")))
        }
        _ => return Ok(None),
    };
    check_public_key(pk, jwk.as_bytes())?;
    Ok(Some(Material::Public(jwk.into_bytes())))
}

/// What to do with a request.
#[derive(Default, Debug)]
pub struct Outcome {
    /// Boxed: an outcome is moved on every request, and a reply only on
    /// a refusal.
    pub reply: Option<Box<common::Reply>>,
    pub skip: bool,
    pub consumer: Consumer,
    pub anonymous: bool,
    /// Go upstream (claims_to_headers).
    pub set_headers: Vec<(String, String)>,
    /// The token can only be checked once the JWKS arrives.
    pub need_keys: bool,
}

impl std::fmt::Debug for common::Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?} {}", self.status, self.headers, self.body)
    }
}

/// A numeric claim (a number's text) as Go's int64(float64) gives it
/// (out of range: the minimum, as Go's conversion on wasm and amd64 does).
fn numeric_str(n: &str) -> Option<i64> {
    // A whole number of up to 15 digits (exp and nbf are) is exact as a
    // float64: read as an integer, without the float parser, on every
    // request of a token with exp or nbf checked.
    let digits = n.strip_prefix('-').unwrap_or(n);
    if !digits.is_empty() && digits.len() <= 15 && digits.bytes().all(|c| c.is_ascii_digit()) {
        return n.parse().ok();
    }
    let f: f64 = n.parse().ok()?;
    if !f.is_finite() {
        return None;
    }
    Some(if f >= -9.223372036854775808e18 && f < 9.223372036854775808e18 { f as i64 } else { i64::MIN })
}

/// What a token's claims decide, read once (a new token's claims are
/// read by [`Verifier::read_claims`]); the cache of verified tokens keeps
/// it, so a token sent again checks only what depends on the time.
#[derive(Default)]
struct Facts {
    /// exp and nbf as numeric gives them (None: missing, or not a number).
    exp: Option<i64>,
    nbf: Option<i64>,
    /// The issuer or the audience refused (checked after exp and nbf).
    refused: Option<&'static str>,
    /// claims_to_headers: (header, value), in the configuration's order.
    set_headers: Vec<(String, String)>,
}

/// What [`Verifier::read_claims`] read: the facts, and the claims that
/// find the consumer (views of the decoded claims where they can be).
#[derive(Default)]
struct Claims<'a> {
    facts: Facts,
    /// key_claim_name's claim and sub, as strings ("" for another kind).
    key: std::borrow::Cow<'a, str>,
    sub: std::borrow::Cow<'a, str>,
}

/// numeric_str of a member.
fn numeric_text(m: &json::Member<'_>) -> Option<i64> {
    match m {
        json::Member::Number(n) => numeric_str(n),
        _ => None,
    }
}

/// A claim's value as a header value (Go's claimString).
fn claim_member_string(m: &json::Member<'_>) -> Option<String> {
    match m {
        json::Member::String(s) => Some(s.to_string()),
        json::Member::Number(n) => Some(n.to_string()),
        json::Member::Bool(b) => Some(if *b { "true" } else { "false" }.to_string()),
        json::Member::Null => None,
        json::Member::Other(v) => Some(json::marshal(v)),
    }
}

/// A JOSE header's string member, decoded as into Go's struct field (the
/// last member whose name matches case-insensitively); Err for another kind.
fn header_field(members: &[(String, json::Value)], name: &str) -> Result<String, ()> {
    let mut out = String::new();
    for (k, v) in members {
        // key_name (Unicode folding) only for a name that needs it.
        let matches = if k.is_ascii() { k.eq_ignore_ascii_case(name) } else { json::key_name(k) == name };
        if matches {
            match v {
                json::Value::String(s) => out = s.clone(),
                json::Value::Null => {}
                _ => return Err(()),
            }
        }
    }
    Ok(out)
}

/// s[from..] without the whitespace around it, in s's own buffer when
/// it has one (a header value read from the host): no allocation.
fn trimmed_from(s: std::borrow::Cow<'_, str>, from: usize) -> String {
    let (start, end) = {
        let t = s[from..].trim();
        let start = t.as_ptr() as usize - s.as_ptr() as usize;
        (start, start + t.len())
    };
    match s {
        std::borrow::Cow::Owned(mut o) => {
            o.truncate(end);
            o.drain(..start);
            o
        }
        std::borrow::Cow::Borrowed(b) => b[start..end].to_string(),
    }
}

/// A request's token: a header value's bytes (the host's buffer, not
/// copied), with the whitespace around it left out.
pub struct Token<'a> {
    buf: std::borrow::Cow<'a, [u8]>,
    start: usize,
    end: usize,
}

impl<'a> Token<'a> {
    fn of(s: String) -> Token<'a> {
        let end = s.len();
        Token { buf: std::borrow::Cow::Owned(s.into_bytes()), start: 0, end }
    }

    /// buf[from..] trimmed as str::trim trims the text: ASCII
    /// whitespace in place; a token that a byte past ASCII ends (a
    /// Unicode space, or bytes that are not UTF-8, read as U+FFFD) takes
    /// the text's own path.
    fn trimmed(buf: std::borrow::Cow<'a, [u8]>, from: usize) -> Token<'a> {
        // char::is_whitespace of ASCII: \t, \n, \v, \f, \r and space.
        let ws = |c: &u8| matches!(c, b'\t'..=b'\r' | b' ');
        let start = from + buf[from..].iter().position(|c| !ws(c)).unwrap_or(buf.len() - from);
        let end = start + buf[start..].iter().rposition(|c| !ws(c)).map_or(0, |i| i + 1);
        if start < end && (buf[start] >= 0x80 || buf[end - 1] >= 0x80) {
            return Token::of(trimmed_from(sdk::lossy(&buf), from));
        }
        Token { buf, start, end }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
}

/// Reads a cookie's value from a Cookie header.
fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    for part in header.split(';') {
        let part = part.trim();
        if let Some(i) = part.find('=') {
            if &part[..i] == name {
                return Some(&part[i + 1..]);
            }
        }
    }
    None
}

impl Verifier {
    /// Verifies the request's token at unix time now (seconds).
    pub fn check<H: common::Headers + ?Sized>(&self, headers: &H, now: i64) -> Outcome {
        if !self.preflight && headers.first(":method").as_deref() == Some("OPTIONS") {
            return Outcome { skip: true, ..Default::default() };
        }
        let token = self.find_token(headers);
        if token.as_bytes().is_empty() {
            return self.fail("", "Unauthorized");
        }
        // A token verified before: only what depends on the time is
        // checked again.
        if let Some(r) = self.verified.with(token.as_bytes(), |t| self.finish(&t.facts, t.consumer.clone(), now)) {
            return r;
        }
        let bad = || self.fail("invalid_token", "Bad token; invalid JSON");
        // Bytes that are not UTF-8 cannot be base64 (read as text, as
        // before, they would be U+FFFD, which base64 refuses too).
        let token = match std::str::from_utf8(token.as_bytes()) {
            Ok(t) => t,
            Err(_) => return bad(),
        };
        let mut parts = token.split('.');
        let (p0, p1, p2) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c), None) => (a, b, c),
            _ => return bad(),
        };
        if !self.jose.read(p0) {
            return bad();
        }
        let jose = self.jose.last.borrow();
        let (alg, kid) = match &*jose {
            Some(h) => (h.alg.as_str(), h.kid.as_str()),
            None => return bad(),
        };
        let mut decoded = self.decoded.borrow_mut();
        decoded.clear();
        if b64_into(p1, &mut decoded).is_err() {
            return bad();
        }
        let claims_end = decoded.len();
        if b64_into(p2, &mut decoded).is_err() {
            return bad();
        }
        let (pb, sig) = decoded.split_at(claims_end);
        // The claims as json.Decoder reads them into a map: the first
        // value, which must be an object.
        // Only the claims this configuration reads are built (each one a
        // name and a value allocated, and freed when the cache slot is
        // reused).
        let by_sub = !self.jwks.is_empty() || !self.jwks_cluster.is_empty();
        let wanted = |k: &str| {
            let checked = match k {
                "exp" => self.verify_exp,
                "nbf" => self.verify_nbf,
                "iss" => !self.issuer.is_empty(),
                "aud" => !self.audiences.is_empty(),
                // The consumer of a token checked by a JWK Set.
                "sub" => by_sub,
                _ => false,
            };
            checked || k == self.key_claim || self.claim_headers.iter().any(|(c, _)| c == k)
        };
        let claims = match self.read_claims(pb, &wanted) {
            Some(c) => c,
            None => return bad(),
        };
        if !supported(alg) {
            return self.fail("invalid_token", "Invalid algorithm");
        }
        let input = &token.as_bytes()[..p0.len() + 1 + p1.len()];

        let key_claim: &str = &claims.key;
        let consumer;
        match self.creds.get(key_claim) {
            Some(cr) if !key_claim.is_empty() => {
                if cr.alg != alg {
                    return self.fail("invalid_token", "Invalid algorithm");
                }
                if !cr.key.verify(self.pk, alg, input, sig) {
                    return self.fail("invalid_token", "Invalid signature");
                }
                consumer = Consumer::new(if cr.consumer.is_empty() { key_claim } else { &cr.consumer });
            }
            _ if !self.jwks.is_empty() || !self.jwks_cluster.is_empty() => {
                if self.jwks.is_empty() {
                    return Outcome { need_keys: true, ..Default::default() };
                }
                let ok = self.jwks.iter().any(|k| (kid.is_empty() || k.kid.is_empty() || k.kid == kid) && k.verify(self.pk, alg, input, sig));
                if !ok {
                    return self.fail("invalid_token", "Invalid signature");
                }
                consumer = Consumer::new(&claims.sub);
            }
            _ => {
                if key_claim.is_empty() {
                    return self.fail("invalid_token", &format!("No mandatory '{}' in claims", self.key_claim));
                }
                return self.fail("invalid_token", &format!("No credentials found for given '{}'", self.key_claim));
            }
        }
        let facts = claims.facts;
        let r = self.finish(&facts, consumer.clone(), now);
        self.verified.put(token.as_bytes(), facts, consumer);
        r
    }

    /// A token's claims (JSON), read in one pass as json.Decoder reads
    /// them into a map: the first value, which must be an object (None
    /// otherwise, or for JSON the full parse refuses). Of the members
    /// only those wanted are looked at, each name's last (a Go map keeps
    /// the last), and nothing is built for a string, number or literal.
    fn read_claims<'a>(&self, pb: &'a [u8], wanted: &dyn Fn(&str) -> bool) -> Option<Claims<'a>> {
        let mut c = Claims::default();
        // (iss, aud) as read, decided once every member is.
        let mut iss: std::borrow::Cow<'a, str> = "".into();
        let mut aud_ok = false;
        let mut headers: Vec<Option<String>> = vec![None; self.claim_headers.len()];
        let text = |m: &json::Member<'a>| match m {
            json::Member::String(s) => s.clone(),
            _ => "".into(),
        };
        let mut visit = |k: &str, m: json::Member<'a>| {
            // A claim can have several roles (key_claim iss, a header of
            // exp): each is the member's.
            match k {
                "exp" if self.verify_exp => c.facts.exp = numeric_text(&m),
                "nbf" if self.verify_nbf => c.facts.nbf = numeric_text(&m),
                "iss" if !self.issuer.is_empty() => iss = text(&m),
                "aud" if !self.audiences.is_empty() => aud_ok = self.audience_allowed(&m),
                _ => {}
            }
            if k == "sub" {
                c.sub = text(&m);
            }
            if k == self.key_claim {
                c.key = text(&m);
            }
            for (i, (name, _)) in self.claim_headers.iter().enumerate() {
                if name == k {
                    headers[i] = claim_member_string(&m);
                }
            }
        };
        match json::visit_first_members(pb, wanted, &mut visit) {
            Ok(true) => {}
            _ => return None,
        }
        if !self.issuer.is_empty() && iss != self.issuer.as_str() {
            c.facts.refused = Some("Invalid issuer");
        } else if !self.audiences.is_empty() && !aud_ok {
            c.facts.refused = Some("Invalid audience");
        }
        for ((_, h), v) in self.claim_headers.iter().zip(headers) {
            if let Some(v) = v {
                c.facts.set_headers.push((h.clone(), v));
            }
        }
        Some(c)
    }

    /// Whether an aud claim (a string, or an array whose strings count)
    /// names one of the audiences.
    fn audience_allowed(&self, m: &json::Member<'_>) -> bool {
        match m {
            json::Member::String(s) => self.audiences.iter().any(|a| a == s),
            json::Member::Other(json::Value::Array(items)) => {
                items.iter().any(|x| matches!(x, json::Value::String(s) if self.audiences.contains(s)))
            }
            _ => false,
        }
    }

    /// The outcome for a token whose signature is valid: its claims
    /// checked at now, the consumer and the claims to forward.
    fn finish(&self, facts: &Facts, consumer: Consumer, now: i64) -> Outcome {
        if let Some(msg) = self.check_claims(facts, now) {
            return self.fail("invalid_token", msg);
        }
        Outcome { consumer, set_headers: facts.set_headers.clone(), ..Default::default() }
    }

    fn check_claims(&self, facts: &Facts, t: i64) -> Option<&'static str> {
        if self.verify_exp {
            // A token without a numeric exp cannot be shown valid.
            let exp = match facts.exp {
                Some(e) => e,
                None => return Some("token expired"),
            };
            if t > exp.wrapping_add(self.skew) {
                return Some("token expired");
            }
            if self.max_exp > 0 && exp.wrapping_sub(t) > self.max_exp {
                return Some("The exp claim has a value exceeding the maximum allowed");
            }
        }
        if self.verify_nbf {
            match facts.nbf {
                Some(nbf) if t.wrapping_add(self.skew) >= nbf => {}
                _ => return Some("token not valid yet"),
            }
        }
        facts.refused
    }

    /// The token, from the first source that has one; a source is read
    /// only when the configuration names it (each read a hostcall).
    fn find_token<'h, H: common::Headers + ?Sized>(&self, headers: &'h H) -> Token<'h> {
        // Only a path with a query can carry the token: it is read as
        // text (lossily, as a header's first value is) only then.
        let path = if self.uri_params.is_empty() { None } else { headers.first_bytes(":path") };
        let path = match path {
            Some(p) if p.contains(&b'?') => common::into_string(p.into_owned()),
            _ => String::new(),
        };
        let (_, raw) = common::split_path(&path);
        if !raw.is_empty() {
            if let Ok(q) = common::parse_query(raw) {
                for n in &self.uri_params {
                    if let Some((_, vs)) = q.iter().find(|(k, _)| k == n) {
                        if !vs[0].is_empty() {
                            return Token::of(vs[0].clone());
                        }
                    }
                }
            }
        }
        if !self.cookies.is_empty() {
            let ch = headers.first("cookie").unwrap_or_default();
            for n in &self.cookies {
                if let Some(t) = cookie(&ch, n) {
                    if !t.is_empty() {
                        return Token::of(t.to_string());
                    }
                }
            }
        }
        for n in &self.headers {
            let h = match headers.first_bytes(n) {
                Some(h) => h,
                None => continue,
            };
            if h.len() > 7 && h[..7].eq_ignore_ascii_case(b"bearer ") {
                return Token::trimmed(h, 7);
            }
            if !n.eq_ignore_ascii_case("authorization") && !h.is_empty() {
                return Token::trimmed(h, 0);
            }
        }
        Token::of(String::new())
    }

    /// The 401, or the anonymous consumer.
    fn fail(&self, code: &str, msg: &str) -> Outcome {
        if !self.anonymous.is_empty() {
            return Outcome { consumer: Consumer::new(&self.anonymous), anonymous: true, ..Default::default() };
        }
        // RFC 6750 section 3: no error code when the request had no token.
        let mut auth = format!("Bearer realm=\"{}\"", self.realm);
        if !code.is_empty() {
            auth.push_str(&format!(", error=\"{}\", error_description=\"{}\"", code, msg.replace('"', "'")));
        }
        Outcome { reply: Some(Box::new(common::json_reply(401, msg, &[("www-authenticate", &auth)]))), ..Default::default() }
    }

    /// The unix time check needs (0 without exp or nbf to verify: the
    /// clock is a hostcall).
    fn now(&self) -> i64 {
        if self.verify_exp || self.verify_nbf {
            now_seconds()
        } else {
            0
        }
    }

    /// Replaces the keys fetched from jwks_uri.
    fn set_jwks(&mut self, b: &[u8]) -> Result<(), String> {
        let keys = parse_jwks(b, self.pk)?;
        if keys.is_empty() {
            return Err("JWKS has no usable signing keys".into());
        }
        self.jwks = keys;
        self.verified.clear();
        Ok(())
    }
}

// ---- glue ----

/// A root context of the plugin, configured by on_configure.
pub fn root() -> Box<dyn RootContext> {
    Box::new(Plugin { state: None })
}

/// What the root and its streams share: the verifier (its JWKS replaced
/// by fetches) and the streams that wait for the first keys.
struct State {
    v: Verifier,
    /// This root context's JWKS fetch is in flight.
    fetching: bool,
    /// When the keys are refreshed (host clock, ns).
    next_fetch: i64,
    waiting: Vec<(u32, Vec<(String, String)>)>,
    /// The shared data keys of this key set (see SharedJwks).
    shared: SharedJwks,
    /// When the keys in use were fetched (0: none yet), and the last
    /// failed fetch this root context has answered its waiting streams
    /// for.
    keys_at: i64,
    failure_seen: i64,
}

type Shared = Rc<RefCell<State>>;

struct Plugin {
    state: Option<Shared>,
}

fn now_nanos() -> i64 {
    match sdk::get_current_time_nanoseconds() {
        Ok(t) => t as i64,
        Err(e) => {
            sdk::log(LogLevel::Warn, &format!("reading host time: {:?}", e));
            0
        }
    }
}

fn now_seconds() -> i64 {
    now_nanos().div_euclid(1_000_000_000)
}

/// A JWKS fetched from jwks_uri is shared, through the host's shared
/// data, by every root context configured with the same source: each
/// instance of the plugin's VM has its own (one per core, a new one when
/// the pool grows or the compiled module replaces the interpreter), and
/// each fetching for itself multiplied the IdP's load by them. As with
/// Envoy's jwt_authn, whose workers share what the main thread fetched,
/// one fetch per key set and refresh period serves them all.
///
/// Two entries, by the source (cluster, authority, path):
/// - "... keys": when the keys were fetched (i64 LE, host clock, ns), then
///   the JWKS as fetched. Root contexts adopt it when it is newer than
///   theirs: at configure time, on a tick, or when a request needs keys.
/// - "... fetch": a lease, until when one root context's fetch is in
///   flight (i64 LE; bounded by the fetch's timeout, so a lease whose
///   instance went away lapses), and when a fetch last failed. A root
///   context fetches only when it takes the lease (compare-and-swap:
///   one of those whose keys are due wins), and gives it back when the
///   answer comes, or when its root context goes (proxy_on_done).
///
/// Any filter could write these entries, but a filter in the chain can
/// set the consumer headers itself: the keys trust nothing a filter did
/// not already have.
struct SharedJwks {
    keys: String,
    lease: String,
}

/// How long a fetch may hold the lease: its timeout and a second.
const LEASE_NS: i64 = JWKS_TIMEOUT_MS as i64 * 1_000_000 + 1_000_000_000;
/// How long after a failed fetch the next is tried.
const RETRY_NS: i64 = 1_000_000_000;
/// The tick while a root context has no keys: it polls the shared
/// entries for the keys (or the failure) another root context fetched.
const POLL_MS: u32 = 50;

fn i64_at(b: &[u8], at: usize) -> i64 {
    b.get(at..at + 8).map_or(0, |x| i64::from_le_bytes(x.try_into().expect("8 bytes")))
}

impl SharedJwks {
    fn new(v: &Verifier) -> SharedJwks {
        let base = format!("sluice.jwt.jwks {} {}{}", v.jwks_cluster, v.jwks_authority, v.jwks_path);
        SharedJwks { keys: format!("{} keys", base), lease: format!("{} fetch", base) }
    }

    /// (until, failed_at) of the lease, and its cas.
    fn lease(&self) -> ((i64, i64), u32) {
        match sdk::get_shared_data(&self.lease) {
            Ok((Some(b), cas)) => ((i64_at(&b, 0), i64_at(&b, 8)), cas),
            _ => ((0, 0), 0),
        }
    }

    fn set_lease(&self, until: i64, failed_at: i64, cas: u32) -> bool {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&until.to_le_bytes());
        b[8..].copy_from_slice(&failed_at.to_le_bytes());
        sdk::set_shared_data(&self.lease, &b, cas).is_ok()
    }

    /// Takes the lease at now unless another fetch holds it.
    fn take(&self, now: i64) -> bool {
        let ((until, failed_at), cas) = self.lease();
        until <= now && self.set_lease(now + LEASE_NS, failed_at, cas)
    }

    /// Gives the lease back: at once, or after RETRY_NS when the fetch
    /// failed (at now).
    fn give_back(&self, now: i64, failed: bool) {
        let ((_, failed_at), _) = self.lease();
        if failed {
            self.set_lease(now + RETRY_NS, now, 0);
        } else {
            self.set_lease(0, failed_at, 0);
        }
    }
}

impl RootContext for Plugin {
    fn on_configure(&mut self, _size: usize) -> bool {
        let v = match common::load_config(NAME, |b| parse(b, common::read_file, sdk::verify_signature)) {
            Some(v) => v,
            None => return false,
        };
        common::skip_all_but_request_headers();
        let fetch = !v.jwks_cluster.is_empty();
        let shared = SharedJwks::new(&v);
        let st = Rc::new(RefCell::new(State { v, fetching: false, next_fetch: 0, waiting: Vec::new(), shared, keys_at: 0, failure_seen: 0 }));
        self.state = Some(st.clone());
        if fetch {
            // Keys another root context fetched, or a fetch of our own.
            // Ticks drive refreshes and poll for keys until there are some.
            if !adopt(&st) {
                // Failures before now are not this root context's to answer.
                let failed_at = st.borrow().shared.lease().0 .1;
                st.borrow_mut().failure_seen = failed_at;
                try_fetch(&st);
            }
            set_tick(&st);
        }
        true
    }

    fn on_tick(&mut self) {
        if let Some(st) = &self.state {
            if st.borrow().v.jwks_cluster.is_empty() || st.borrow().fetching {
                return;
            }
            if adopt(st) {
                set_tick(st);
                release(st, true);
            } else if st.borrow().keys_at == 0 {
                // A fetch elsewhere failed: the streams waiting here are
                // answered as that root context answered its own.
                let failed_at = st.borrow().shared.lease().0 .1;
                if failed_at > st.borrow().failure_seen {
                    st.borrow_mut().failure_seen = failed_at;
                    release(st, false);
                }
            }
            if now_nanos() >= st.borrow().next_fetch {
                try_fetch(st);
            }
        }
    }

    fn on_http_call_response(&mut self, _token: u32, nh: usize, bs: usize, _nt: usize) {
        if let Some(st) = &self.state {
            on_jwks(st, nh, bs);
        }
    }

    /// A fetch in flight gives its lease back: its answer would come to
    /// no one, and another root context fetches at its next tick.
    fn on_done(&mut self) -> bool {
        if let Some(st) = &self.state {
            let mut s = st.borrow_mut();
            if s.fetching {
                s.fetching = false;
                s.shared.give_back(0, false);
            }
        }
        true
    }

    fn create_http_context(&self, id: u32) -> Option<Box<dyn HttpContext>> {
        self.state.clone().map(|st| Box::new(Stream { st, id }) as Box<dyn HttpContext>)
    }
}

/// The tick: the refresh period's tenth (at most 10 s) once there are
/// keys, POLL_MS before.
fn set_tick(st: &Shared) {
    let (have, refresh) = {
        let s = st.borrow();
        (s.keys_at != 0, s.v.jwks_refresh_ns)
    };
    let ms = if have { (refresh / 10 / 1_000_000).min(10_000) as u32 } else { POLL_MS };
    common::must(NAME, "setting the JWKS refresh tick", sdk::set_tick_period_milliseconds(ms));
}

/// Takes keys from the shared entry when they are newer than ours;
/// true if it did.
fn adopt(st: &Shared) -> bool {
    let key = st.borrow().shared.keys.clone();
    let b = match sdk::get_shared_data(&key) {
        Ok((Some(b), _)) if b.len() > 8 => b,
        _ => return false,
    };
    let at = i64_at(&b, 0);
    let mut s = st.borrow_mut();
    if at <= s.keys_at {
        return false;
    }
    // Whatever the outcome, these keys are not read again.
    s.keys_at = at;
    if let Err(e) = s.v.set_jwks(&b[8..]) {
        sdk::log(LogLevel::Warn, &format!("{}: shared JWKS: {}", NAME, e));
        return false;
    }
    s.next_fetch = at + s.v.jwks_refresh_ns;
    true
}

/// Fetches the keys if this root context takes the lease.
fn try_fetch(st: &Shared) {
    let now = now_nanos();
    if !st.borrow().fetching && st.borrow().shared.take(now) {
        start_fetch(st);
    }
}

fn start_fetch(st: &Shared) {
    let (cluster, path, authority) = {
        let s = st.borrow();
        (s.v.jwks_cluster.clone(), s.v.jwks_path.clone(), s.v.jwks_authority.clone())
    };
    let headers = [(":method", "GET"), (":path", path.as_str()), (":authority", authority.as_str()), ("accept", "application/json")];
    match sdk::dispatch_http_call(&cluster, &headers, &[], &[], JWKS_TIMEOUT_MS) {
        Ok(_) => st.borrow_mut().fetching = true,
        Err(e) => {
            sdk::log(LogLevel::Warn, &format!("{}: fetching JWKS from cluster {:?}: {:?}", NAME, cluster, e));
            let now = now_nanos();
            {
                let mut s = st.borrow_mut();
                s.next_fetch = now + RETRY_NS;
                s.failure_seen = now;
                s.shared.give_back(now, true);
            }
            release(st, false);
        }
    }
}

/// The JWKS fetch's reply (to the root, or to the stream that started it).
fn on_jwks(st: &Shared, nh: usize, bs: usize) {
    st.borrow_mut().fetching = false;
    let cluster = st.borrow().v.jwks_cluster.clone();
    let status = sdk::get_http_call_response_headers().ok().and_then(|h| common::header(&h, ":status").map(str::to_string));
    let now = now_nanos();
    let ok = if nh == 0 {
        sdk::log(LogLevel::Warn, &format!("{}: JWKS fetch from cluster {:?} failed", NAME, cluster));
        false
    } else if status.as_deref() != Some("200") {
        sdk::log(LogLevel::Warn, &format!("{}: JWKS fetch answered {}", NAME, status.unwrap_or_default()));
        false
    } else {
        let body = sdk::get_http_call_response_body(0, bs).ok().flatten().unwrap_or_default();
        let r = st.borrow_mut().v.set_jwks(&body);
        match r {
            Ok(()) => {
                // Shared before the lease is given back: a root context
                // that finds the lease free finds these keys too.
                let mut entry = Vec::with_capacity(8 + body.len());
                entry.extend_from_slice(&now.to_le_bytes());
                entry.extend_from_slice(&body);
                let s = st.borrow();
                if let Err(e) = sdk::set_shared_data(&s.shared.keys, &entry, 0) {
                    sdk::log(LogLevel::Warn, &format!("{}: sharing the JWKS: {:?}", NAME, e));
                }
                true
            }
            Err(e) => {
                sdk::log(LogLevel::Warn, &format!("{}: {}", NAME, e));
                false
            }
        }
    };
    {
        let mut s = st.borrow_mut();
        s.shared.give_back(now, !ok);
        if ok {
            s.keys_at = now;
        } else {
            s.failure_seen = now;
        }
        s.next_fetch = now + if ok { s.v.jwks_refresh_ns } else { RETRY_NS };
    }
    set_tick(st);
    release(st, ok);
}

/// Resumes (or refuses) the streams that waited for the keys.
fn release(st: &Shared, have_keys: bool) {
    let waiting = std::mem::take(&mut st.borrow_mut().waiting);
    for (id, headers) in waiting {
        if sdk::set_effective_context(id).is_err() {
            continue;
        }
        if !have_keys {
            common::json_reply(503, "Unable to fetch the keys to verify the token", &[]).send();
            continue;
        }
        let r = {
            let s = st.borrow();
            s.v.check(&headers, s.v.now())
        };
        if apply(&r) {
            common::must(NAME, "resuming the request", sdk::resume_http_request());
        }
    }
}

/// Acts on an outcome for the current request; true if it may go on.
fn apply(r: &Outcome) -> bool {
    if r.skip {
        return true;
    }
    if let Some(reply) = &r.reply {
        reply.send();
        return false;
    }
    // Values a client sent for the consumer headers must not survive.
    // Removing an absent header is Ok and costs what asking whether it
    // is there would; once removed, setting one is an add.
    for h in [HEADER_CONSUMER_USERNAME, HEADER_CONSUMER_ID, HEADER_ANONYMOUS] {
        if let Err(e) = sdk::remove_http_request_header(h) {
            sdk::log(LogLevel::Error, &format!("{}: removing {}: {:?}", NAME, h, e));
        }
    }
    let add = |h: &str, v: &str| sdk::add_map_value(sdk::MapType::HttpRequestHeaders, h, v);
    if r.anonymous {
        common::must(NAME, "setting anonymous", add(HEADER_ANONYMOUS, "true"));
    }
    if !r.consumer.is_empty() {
        common::must(NAME, "setting consumer", add(HEADER_CONSUMER_USERNAME, &r.consumer));
        common::set_consumer(NAME, &r.consumer);
        common::must(NAME, "setting consumer id", add(HEADER_CONSUMER_ID, &r.consumer));
    }
    for (h, v) in &r.set_headers {
        if let Err(e) = sdk::set_http_request_header(h, v) {
            sdk::log(LogLevel::Error, &format!("{}: setting {}: {:?}", NAME, h, e));
        }
    }
    true
}

struct Stream {
    st: Shared,
    id: u32,
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        // Only the token's sources are read, one hostcall each.
        let r = {
            let s = self.st.borrow();
            s.v.check(&common::HostRequestHeaders { plugin: NAME }, s.v.now())
        };
        if r.need_keys {
            // Keys another root context fetched meanwhile; else the
            // request waits for them and is checked again then, from its
            // headers as they are now.
            if adopt(&self.st) {
                set_tick(&self.st);
                // Streams that waited here go on too; then this one is
                // checked with the keys.
                release(&self.st, true);
                common::must(NAME, "returning to the stream", sdk::set_effective_context(self.id));
                return self.on_http_request_headers(_n, _eos);
            }
            let h = common::request_header_pairs(NAME);
            self.st.borrow_mut().waiting.push((self.id, h.to_owned_pairs()));
            try_fetch(&self.st);
            return Action::Pause;
        }
        if apply(&r) {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    fn on_http_call_response(&mut self, _token: u32, nh: usize, bs: usize, _nt: usize) {
        on_jwks(&self.st, nh, bs);
    }
}

impl Drop for Stream {
    /// Forgets a stream whose client left while it waited.
    fn drop(&mut self) {
        if let Ok(mut s) = self.st.try_borrow_mut() {
            s.waiting.retain(|(id, _)| *id != self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Sha256;

    fn no_file(_: &str, _: &str) -> Result<Vec<u8>, String> {
        Err("no files here".into())
    }

    /// Natively there is no host: keys that start "good" parse, and a
    /// signature "ok" verifies.
    fn fake_pk(_alg: &str, key: &[u8], _msg: &[u8], sig: &[u8]) -> Result<SignatureCheck, sdk::Status> {
        if !String::from_utf8_lossy(key).contains("good") {
            return Ok(SignatureCheck::UnusableKey("not a good key".into()));
        }
        Ok(if sig == b"ok" { SignatureCheck::Valid } else { SignatureCheck::Invalid })
    }

    fn enc(b: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for c in b.chunks(3) {
            let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..=c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }

    fn hs256(secret: &[u8], header: &str, claims: &str) -> String {
        let input = format!("{}.{}", enc(header.as_bytes()), enc(claims.as_bytes()));
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap();
        m.update(input.as_bytes());
        format!("{}.{}", input, enc(&m.finalize().into_bytes()))
    }

    fn req(token: &str) -> Vec<(String, String)> {
        common::owned(&[(":method", "GET"), (":path", "/api/v2/orders"), ("authorization", &format!("Bearer {}", token))])
    }

    const NOW: i64 = 1_700_000_000;

    // plugins/src/jwt's TestHS256AndClaims.
    // A token kept is found again, exactly; another token in the same
    // slot is not; clear forgets them all; a long token is not kept.
    #[test]
    fn verified_tokens() {
        let v = VerifiedTokens::default();
        let consumer = |t: &[u8]| v.with(t, |e| e.consumer.clone());
        assert_eq!(consumer(b"a.b.signature1"), None);
        v.put(b"a.b.signature1", Facts::default(), Consumer::new("alice"));
        assert_eq!(consumer(b"a.b.signature1").as_deref(), Some("alice"));
        assert_eq!(VerifiedTokens::slot(b"a.b.signature1"), VerifiedTokens::slot(b"x.b.signature1"));
        assert_eq!(consumer(b"x.b.signature1"), None, "same slot, another token");
        assert_eq!(consumer(b"a.b.signature2"), None);
        v.put(b"x.b.signature1", Facts::default(), Consumer::new("bob"));
        assert_eq!(consumer(b"a.b.signature1"), None, "replaced in its slot");
        assert_eq!(consumer(b"x.b.signature1").as_deref(), Some("bob"));
        v.clear();
        assert_eq!(consumer(b"x.b.signature1"), None, "cleared");
        let long = vec![b'a'; VERIFIED_MAX_TOKEN + 1];
        v.put(&long, Facts::default(), Consumer::new("carol"));
        assert_eq!(consumer(&long), None, "a long token is not kept");
    }

    #[test]
    fn hs256_and_claims() {
        let v = parse(
            br#"{"claims_to_verify":["exp","nbf"],"clock_skew":30,
                "credentials":[{"key":"https://id.example.com","secret":"s3cret","consumer":"orders-app"}],
                "claims_to_headers":{"sub":"X-User","scope":"x-scope"}}"#,
            no_file,
            fake_pk,
        )
        .unwrap();
        let claims = |exp: Option<i64>, nbf: i64, iss: Option<&str>| {
            let mut c = format!(r#"{{"sub":"u1","nbf":{},"scope":"read""#, nbf);
            if let Some(e) = exp {
                c.push_str(&format!(r#","exp":{}"#, e));
            }
            if let Some(i) = iss {
                c.push_str(&format!(r#","iss":"{}""#, i));
            }
            c.push('}');
            c
        };
        let hdr = r#"{"alg":"HS256","typ":"JWT"}"#;
        let good = claims(Some(NOW + 60), NOW - 1, Some("https://id.example.com"));
        let tok = |c: &str| hs256(b"s3cret", hdr, c);
        let cases: Vec<(&str, Vec<(String, String)>, u32, &str)> = vec![
            ("valid", req(&tok(&good)), 0, ""),
            ("no token", common::owned(&[(":path", "/")]), 401, "Unauthorized"),
            ("garbage", req("a.b"), 401, "Bad token"),
            ("wrong secret", req(&hs256(b"nope", hdr, &good)), 401, "Invalid signature"),
            ("expired", req(&tok(&claims(Some(NOW - 31), NOW - 1, Some("https://id.example.com")))), 401, "token expired"),
            ("expired within skew", req(&tok(&claims(Some(NOW - 29), NOW - 1, Some("https://id.example.com")))), 0, ""),
            ("no exp", req(&tok(&claims(None, NOW - 1, Some("https://id.example.com")))), 401, "token expired"),
            ("not yet", req(&tok(&claims(Some(NOW + 60), NOW + 31, Some("https://id.example.com")))), 401, "not valid yet"),
            ("unknown iss", req(&tok(&claims(Some(NOW + 60), NOW - 1, Some("other")))), 401, "No credentials found for given 'iss'"),
            ("no iss", req(&tok(&claims(Some(NOW + 60), NOW - 1, None))), 401, "No mandatory 'iss'"),
            ("alg none", req(&hs256(b"s3cret", r#"{"alg":"none"}"#, &good)), 401, "Invalid algorithm"),
            ("query param", common::owned(&[(":path", &format!("/x?jwt={}", tok(&good)))]), 0, ""),
            ("trailing claims data", req(&tok(&format!("{} trailing", good))), 0, ""),
            ("header with trailing data", req(&hs256(b"s3cret", r#"{"alg":"HS256"} x"#, &good)), 401, "Bad token"),
        ];
        for (name, h, status, msg) in cases {
            let r = v.check(&h, NOW);
            let got = r.reply.as_ref().map(|r| r.status).unwrap_or(0);
            assert_eq!(got, status, "{}: {:?}", name, r.reply);
            if let Some(reply) = &r.reply {
                assert!(reply.body.contains(msg), "{}: body {}", name, reply.body);
                let auth = common::header(&reply.headers, "www-authenticate").unwrap();
                assert!(auth.starts_with("Bearer realm=\"sluice\""), "{}: {}", name, auth);
                assert_eq!(name == "no token", !auth.contains("error="), "{}: {}", name, auth);
            } else {
                assert_eq!(r.consumer, "orders-app", "{}", name);
            }
        }
        let r = v.check(&req(&tok(&good)), NOW);
        assert_eq!(r.set_headers, common::owned(&[("x-scope", "read"), ("x-user", "u1")]));
    }

    // The last header read is kept by its encoding: another header is
    // read afresh (its alg and kid, or its error), and the kept one is
    // still right after a header that failed.
    #[test]
    fn jose_header_kept_by_its_encoding() {
        let v = parse(br#"{"credentials":[{"key":"a","secret":"s"},{"key":"b","secret":"t","algorithm":"HS384"}]}"#, no_file, fake_pk).unwrap();
        let (hs, claims) = (r#"{"alg":"HS256","typ":"JWT"}"#, r#"{"iss":"a","n":"#);
        let tok = |hdr: &str, n: u32| hs256(b"s", hdr, &format!("{}{}}}", claims, n));
        let body = |t: &str| v.check(&req(t), NOW).reply.map(|r| r.body).unwrap_or_default();
        assert_eq!(body(&tok(hs, 1)), "");
        assert!(v.jose.last.borrow().as_ref().map_or(false, |h| h.alg == "HS256"));
        assert_eq!(body(&tok(hs, 2)), "", "the same header, kept");
        assert!(body(&tok(r#"{"alg":"HS384"}"#, 3)).contains("Invalid algorithm"), "another header is read");
        assert!(body(&tok(r#"{"alg":"HS256","typ":7}"#, 4)).contains("Bad token"));
        assert!(body(&tok(hs, 5).replacen('e', "!", 1)).contains("Bad token"));
        assert_eq!(body(&tok(hs, 6)), "", "read again after the others");
        assert!(body(&tok(r#"{"ALG":"none"}"#, 7)).contains("Invalid algorithm"));
    }

    #[test]
    fn public_keys_go_to_the_host() {
        let v = parse(
            br#"{"audiences":["orders"],"issuer":"issuer","credentials":[{"key":"issuer","algorithm":"RS256","public_key":"-----BEGIN PUBLIC KEY----- good"}]}"#,
            no_file,
            fake_pk,
        )
        .unwrap();
        let input = format!("{}.{}", enc(br#"{"alg":"RS256"}"#), enc(br#"{"iss":"issuer","aud":["orders"],"sub":"u9"}"#));
        assert!(v.check(&req(&format!("{}.{}", input, enc(b"ok"))), NOW).reply.is_none());
        assert_eq!(v.check(&req(&format!("{}.{}", input, enc(b"no"))), NOW).reply.unwrap().status, 401);
        assert_eq!(v.check(&req(&format!("{}.", input)), NOW).reply.unwrap().status, 401);
        let hs = format!("{}.{}.{}", enc(br#"{"alg":"HS256"}"#), enc(br#"{"iss":"issuer"}"#), enc(b"ok"));
        assert!(v.check(&req(&hs), NOW).reply.unwrap().body.contains("Invalid algorithm"));
        let e = parse(br#"{"credentials":[{"key":"a","algorithm":"ES256","public_key":"-----BEGIN PUBLIC KEY----- bad"}]}"#, no_file, fake_pk).err().unwrap();
        assert_eq!(e, "config: credentials[0].public_key: not a good key");
    }

    #[test]
    fn jwks_keys() {
        let jwks = r#"{"keys":[{"kty":"EC","kid":"ec1","crv":"P-256","x":"good","y":"good"},{"kty":"oct","kid":"h","alg":"HS256","k":"c2VjcmV0"},{"kty":"RSA","kid":"enc","use":"enc","n":"!!","e":"AQAB"},{"kty":"EC","crv":"P-521","x":"!","y":"!"}]}"#;
        // x and y decode to 3 bytes: the wrong size for P-256.
        assert!(parse(format!(r#"{{"jwks":{}}}"#, jwks).as_bytes(), no_file, fake_pk).err().unwrap().contains("wrong size"));
        let jwks = r#"{"keys":[{"kty":"oct","kid":"h","alg":"HS256","k":"c2VjcmV0"},{"kty":"RSA","kid":"enc","use":"enc","n":"!!","e":"AQAB"},{"kty":"EC","crv":"P-521","x":"!","y":"!"}]}"#;
        let v = parse(format!(r#"{{"jwks":{},"issuer":"i"}}"#, jwks).as_bytes(), no_file, fake_pk).unwrap();
        assert_eq!(v.jwks.len(), 1);
        let kid = |k: &str| format!(r#"{{"alg":"HS256","kid":"{}"}}"#, k);
        let r = v.check(&req(&hs256(b"secret", &kid("h"), r#"{"iss":"i","sub":"alice"}"#)), NOW);
        assert!(r.reply.is_none() && r.consumer == "alice", "{:?}", r);
        assert_eq!(v.check(&req(&hs256(b"secret", &kid("other"), r#"{"iss":"i"}"#)), NOW).reply.unwrap().status, 401);
        assert_eq!(v.check(&req(&hs256(b"secret", &kid("h"), r#"{"iss":"evil"}"#)), NOW).reply.unwrap().status, 401);

        let mut f = parse(br#"{"jwks_uri":"https://id.example.com/.well-known/jwks.json?x=1#f","jwks_cluster":"idp"}"#, no_file, fake_pk).unwrap();
        assert_eq!((f.jwks_path.as_str(), f.jwks_authority.as_str(), f.jwks_refresh_ns), ("/.well-known/jwks.json?x=1", "id.example.com", 300_000_000_000));
        assert!(f.check(&req(&hs256(b"secret", &kid("h"), "{}")), NOW).need_keys);
        f.set_jwks(jwks.as_bytes()).unwrap();
        assert!(f.check(&req(&hs256(b"secret", &kid("h"), "{}")), NOW).reply.is_none());
        assert!(f.set_jwks(br#"{"keys":[]}"#).is_err());
    }

    // plugins/src/jwt's TestAnonymousAndParseErrors.
    #[test]
    fn anonymous_and_parse_errors() {
        let v = parse(br#"{"anonymous":"guest"}"#, no_file, fake_pk).unwrap();
        let r = v.check(&common::owned(&[(":path", "/")]), NOW);
        assert!(r.anonymous && r.consumer == "guest");
        for cfg in [
            r#"{"claims_to_verify":["iat"]}"#,
            r#"{"credentials":[{"key":"a","algorithm":"HS999","secret":"x"}]}"#,
            r#"{"credentials":[{"key":"a"}]}"#,
            r#"{"credentials":[{"key":"a","algorithm":"RS256","public_key":"nope"}]}"#,
            r#"{"jwks_uri":"https://x/jwks"}"#,
            r#"{"jwks_uri":"/relative","jwks_cluster":"c"}"#,
            r#"{"jwks_cluster":"c"}"#,
            r#"{"jwks":{"keys":[{"kty":"RSA","n":"!!","e":"AQAB"}]}}"#,
            r#"{"maximum_expiration":60}"#,
            r#"{"jwks_file":"x.json"}"#,
            r#"{"issuers":"x"}"#,
            r#"{"clock_skew":-1}"#,
            r#"{"clock_skew":1.5}"#,
            r#"{"jwks_uri":"https://x/j","jwks_cluster":"c","jwks_refresh":"500ms"}"#,
            r#"{"claims_to_headers":{"sub":":path"}}"#,
            r#"{"secret_is_base64":true,"credentials":[{"key":"a","secret":"YQ"}]}"#,
        ] {
            assert!(parse(cfg.as_bytes(), no_file, fake_pk).is_err(), "parse({}) succeeded", cfg);
        }
        let v = parse(br#"{"secret_is_base64":true,"credentials":[{"key":"a","secret":"YQ=="}]}"#, no_file, fake_pk).unwrap();
        let tok = hs256(b"a", r#"{"alg":"HS256"}"#, r#"{"iss":"a"}"#);
        assert!(v.check(&req(&tok), NOW).reply.is_none(), "the secret is YQ== decoded");
    }

    #[test]
    fn trimmed_in_place() {
        use std::borrow::Cow;
        for (s, from, want) in [("Bearer  abc ", 7, "abc"), ("Bearer abc", 7, "abc"), (" x ", 0, "x"), ("Bearer   ", 7, ""), ("é tok\t", 0, "é tok")] {
            assert_eq!(trimmed_from(Cow::Owned(s.to_string()), from), want, "{:?}", s);
            assert_eq!(trimmed_from(Cow::Borrowed(s), from), want, "{:?}", s);
        }
    }

    #[test]
    fn tokens_from_cookies_and_headers() {
        let v = parse(br#"{"cookie_names":["tok"],"header_names":["authorization","x-token"],"uri_param_names":[]}"#, no_file, fake_pk).unwrap();
        let tok = |h: &[(&str, &str)]| String::from_utf8(v.find_token(&common::owned(h)).as_bytes().to_vec()).unwrap();
        assert_eq!(tok(&[(":path", "/?jwt=a")]), "");
        assert_eq!(tok(&[(":path", "/"), ("cookie", "a=1; tok=t.o.k ")]), "t.o.k");
        assert_eq!(tok(&[(":path", "/"), ("authorization", "Basic x"), ("x-token", " raw ")]), "raw");
        assert_eq!(tok(&[(":path", "/"), ("authorization", "BEARER  abc ")]), "abc");
        assert_eq!(tok(&[(":path", "/"), ("authorization", "Bearer \u{b}\u{c}abc\t\r\n ")]), "abc");
        assert_eq!(tok(&[(":path", "/"), ("authorization", "Bearer \u{a0}abc\u{2003}")]), "abc", "Unicode spaces, as str::trim");
        assert_eq!(tok(&[(":path", "/"), ("authorization", "Bearer a\u{a0}bc ")]), "a\u{a0}bc");
        assert_eq!(tok(&[(":path", "/"), ("authorization", "Bearer \u{1c}abc")]), "\u{1c}abc", "not White_Space");
        assert_eq!(tok(&[(":path", "/"), ("authorization", "Bearer    ")]), "");
    }

    #[test]
    fn base64_round_trips_and_refuses_every_bad_character() {
        for n in 0..40usize {
            let raw: Vec<u8> = (0..n).map(|i| (i * 37 + n) as u8).collect();
            let e = enc(&raw);
            assert_eq!(b64(&e).unwrap(), raw, "{}", e);
            for i in 0..e.len() {
                let mut bad = e.clone().into_bytes();
                bad[i] = b'+';
                assert!(b64(std::str::from_utf8(&bad).unwrap()).is_err(), "{:?}", bad);
            }
            let std = e.replace('-', "+").replace('_', "/");
            let pad = "=".repeat((4 - std.len() % 4) % 4);
            assert_eq!(base64_decode(&format!("{}{}", std, pad), false, true).unwrap(), raw);
            assert_eq!(base64_decode(&format!("{}\r\n{}", std, pad), false, true).unwrap(), raw);
        }
    }

    #[test]
    fn go_helpers() {
        assert_eq!(b64("YWJj").unwrap(), b"abc");
        assert_eq!(b64("YWI=").unwrap(), b"ab");
        assert!(b64("Y").is_err());
        assert!(b64("YW+j").is_err());
        assert_eq!(base64_decode("YWI=", false, true).unwrap(), b"ab");
        assert!(base64_decode("YWI", false, true).is_err());
        assert!(base64_decode("Y===", false, true).is_err());
        assert_eq!(common::parse_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(common::parse_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(common::parse_duration("5"), None);
        assert_eq!(split_url("http://u@h:8080"), Some(("h:8080".into(), "/".into())));
        assert_eq!(split_url("x"), None);
        assert_eq!(numeric_str("1e300"), Some(i64::MIN));
        assert_eq!(numeric_str("1e400"), None);
        assert_eq!(numeric_str("12.9"), Some(12));
        // Whole numbers read as integers give what the float path gives.
        for n in ["0", "-0", "7", "-7", "1700000000", "999999999999999", "-999999999999999", "9999999999999999", "1e3", "-1.5e1", "12.0"] {
            let f: f64 = n.parse().unwrap();
            assert_eq!(numeric_str(n), Some(f as i64), "{}", n);
        }
        let v = json::parse_value(br#"{"a":[1,{"z":"<","b":null}]}"#).unwrap();
        assert_eq!(claim_member_string(&json::Member::Other(v)).unwrap(), r#"{"a":[1,{"b":null,"z":"\u003c"}]}"#);
    }
}
