//! Kong's transformer operations, shared by the transformer plugins (the
//! Rust side of plugins/src/internal/transform): "name:value" pairs with
//! $(headers.NAME) / $(query_params.NAME) templates, applied in Kong's
//! order (remove, rename, replace, add, append) to header lists and JSON
//! objects. JSON is decoded and encoded as Go's encoding/json does into a
//! map[string]any (members sorted by name, numbers as float64), so bodies
//! come out byte for byte as the Go plugins wrote them.
#![allow(dead_code)]

use crate::common;
use sluice_proxy_wasm::json::{self, Value};
use sluice_proxy_wasm::{self as sdk, HeaderPairs};
use std::collections::BTreeMap;

/// One "name:value" item.
#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    pub name: String,
    pub value: String,
    tmpl: Option<Vec<Piece>>,
}

#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Lit(String),
    Header(String),
    Query(String),
}

/// The operations on one target (headers, json, ...).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ops {
    pub remove: Vec<String>,
    /// value is the new name.
    pub rename: Vec<Pair>,
    pub replace: Vec<Pair>,
    pub add: Vec<Pair>,
    pub append: Vec<Pair>,
}

impl Ops {
    pub fn is_empty(&self) -> bool {
        self.remove.len() + self.rename.len() + self.replace.len() + self.add.len() + self.append.len() == 0
    }

    /// Whether the operations only add and append fixed values (Kong's
    /// usual transformer): then [`Ops::add_in_place`] applies them.
    pub fn additions_only(&self) -> bool {
        // ASCII names: the host lower-cases those as to_lowercase does.
        self.remove.is_empty()
            && self.rename.is_empty()
            && self.replace.is_empty()
            && !self.templated()
            && self.add.iter().chain(self.append.iter()).all(|p| p.name.is_ascii())
    }

    /// Applies [`Ops::additions_only`] operations to the host's header map
    /// with one add hostcall per header added, which is what
    /// [`Ops::headers`] and a whole-map replacement come to (the host
    /// appends, lower-casing the name), without copying the map into the
    /// guest and back. Whether a header is there is asked one header at
    /// a time for a few additions (one proxy_get_header_map_value each),
    /// from the whole map (proxy_get_header_map_pairs, which costs several
    /// single reads on a request of ten fields) for more.
    pub fn add_in_place(&self, plugin: &str, t: sdk::MapType) -> Result<(), sdk::Status> {
        const FEW: usize = 4;
        let h: Option<HeaderPairs> = if self.add.len() > FEW {
            Some(sdk::get_map_pairs(t).unwrap_or_else(|e| {
                sdk::log(sdk::LogLevel::Error, &format!("{}: reading headers: {:?}", plugin, e));
                HeaderPairs::parse(Vec::new())
            }))
        } else {
            None
        };
        for (i, p) in self.add.iter().enumerate() {
            let earlier = self.add[..i].iter().any(|q| q.name.eq_ignore_ascii_case(&p.name));
            let there = || match &h {
                Some(h) => h.get(&p.name).is_some(),
                None => common::map_value(plugin, t, &p.name).is_some(),
            };
            if !earlier && !there() {
                sdk::add_map_value(t, &p.name, &p.value)?;
            }
        }
        for p in &self.append {
            sdk::add_map_value(t, &p.name, &p.value)?;
        }
        Ok(())
    }

    /// Whether any value is a template: only then does applying the
    /// operations need the request as it arrived.
    pub fn templated(&self) -> bool {
        [&self.rename, &self.replace, &self.add, &self.append].iter().any(|ps| ps.iter().any(|p| p.tmpl.is_some()))
    }
}

/// Decodes one of a transformer's lists (the value of "add", "remove",
/// ...: {"headers": [...], ...}) as json.Unmarshal does into the plugin's
/// Lists struct L: null leaves it empty, anything but an object is a type
/// error naming go_type, and each member goes to set with its lower-cased
/// name and its field path ("Lists.add.headers"); set answers false for a
/// member L does not have, refused with the nearest of keys.
pub fn lists<L: Default>(
    v: &Value,
    key: &str,
    go_type: &str,
    keys: &[&str],
    mut set: impl FnMut(&mut L, &str, &Value, &str) -> Result<bool, String>,
) -> Result<L, String> {
    let mut l = L::default();
    let members = match v {
        Value::Null => return Ok(l),
        Value::Object(m) => m,
        _ => return Err(json::type_error(v, &format!("Config.{}", key), go_type)),
    };
    for (k, v) in members {
        let name = json::key_name(k);
        let field = format!("Lists.{}.{}", key, name);
        if !set(&mut l, &name, v, &field)? {
            return Err(json::unknown_field_of(k, keys));
        }
    }
    Ok(l)
}

/// Parses "name:value" items (key names the list in errors).
pub fn parse_pairs(key: &str, items: &[String]) -> Result<Vec<Pair>, String> {
    let mut out = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        // The item is not quoted back: it may hold a credential, and this
        // reason reaches the admin API and the proxy's log.
        let (name, value) = match it.find(':') {
            Some(j) if !it[..j].trim().is_empty() => (it[..j].trim(), &it[j + 1..]),
            Some(_) => return Err(format!("config: {}[{}]: not \"name:value\" (the name is empty)", key, i)),
            None => return Err(format!("config: {}[{}]: not \"name:value\" (no colon)", key, i)),
        };
        let tmpl = parse_template(value).map_err(|e| format!("config: {}[{}]: {}", key, i, e))?;
        out.push(Pair { name: name.to_string(), value: value.to_string(), tmpl });
    }
    Ok(out)
}

/// Parses the five lists of one target.
pub fn parse_ops(target: &str, remove: &[String], rename: &[String], replace: &[String], add: &[String], append: &[String]) -> Result<Ops, String> {
    let mut o = Ops::default();
    for (i, r) in remove.iter().enumerate() {
        if r.trim().is_empty() {
            return Err(format!("config: remove.{}[{}]: empty name", target, i));
        }
        o.remove.push(r.trim().to_string());
    }
    o.rename = parse_pairs(&format!("rename.{}", target), rename)?;
    o.replace = parse_pairs(&format!("replace.{}", target), replace)?;
    o.add = parse_pairs(&format!("add.{}", target), add)?;
    o.append = parse_pairs(&format!("append.{}", target), append)?;
    Ok(o)
}

fn parse_template(mut s: &str) -> Result<Option<Vec<Piece>>, String> {
    if !s.contains("$(") {
        return Ok(None);
    }
    let mut out = Vec::new();
    loop {
        let i = match s.find("$(") {
            Some(i) => i,
            None => {
                if !s.is_empty() {
                    out.push(Piece::Lit(s.to_string()));
                }
                return Ok(Some(out));
            }
        };
        if i > 0 {
            out.push(Piece::Lit(s[..i].to_string()));
        }
        let j = match s[i..].find(')') {
            Some(j) => j,
            // Not the literal before it: it may be a credential.
            None => return Err(format!("template {:?}: missing )", &s[i..])),
        };
        let expr = s[i + 2..i + j].trim();
        let (mut src, mut name, mut ok) = match expr.find('.') {
            Some(k) => (&expr[..k], &expr[k + 1..], true),
            None => ("", "", false),
        };
        if !ok {
            if let Some(k) = expr.find('[') {
                if k > 0 && expr.ends_with(']') {
                    src = &expr[..k];
                    name = expr[k + 1..expr.len() - 1].trim_matches(|c| c == '"' || c == '\'');
                    ok = true;
                }
            }
        }
        if !ok || (src != "headers" && src != "query_params") || name.is_empty() {
            return Err(format!("template {:?}: only $(headers.NAME) and $(query_params.NAME) are supported", &s[i..i + j + 1]));
        }
        out.push(if src == "headers" { Piece::Header(name.to_string()) } else { Piece::Query(name.to_string()) });
        s = &s[i + j + 1..];
    }
}

/// The request as it arrived, for templates.
#[derive(Default)]
pub struct Request {
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, Vec<String>)>,
}

impl Pair {
    pub fn render(&self, r: &Request) -> String {
        let tmpl = match &self.tmpl {
            None => return self.value.clone(),
            Some(t) => t,
        };
        let mut b = String::new();
        for pc in tmpl {
            match pc {
                Piece::Lit(s) => b.push_str(s),
                Piece::Header(n) => {
                    // Underscores match dashes, as Kong's do.
                    let mut v = common::header(&r.headers, &n.replace('_', "-")).unwrap_or("");
                    if v.is_empty() {
                        v = common::header(&r.headers, n).unwrap_or("");
                    }
                    b.push_str(v);
                }
                Piece::Query(n) => {
                    if let Some((_, vs)) = r.query.iter().find(|(k, _)| k == n) {
                        b.push_str(vs.first().map(|s| s.as_str()).unwrap_or(""));
                    }
                }
            }
        }
        b
    }
}

fn remove_header(h: &mut Vec<(String, String)>, name: &str) {
    h.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
}

impl Ops {
    /// Applies the operations to a header list.
    pub fn headers(&self, h: &[(String, String)], r: &Request) -> Vec<(String, String)> {
        let mut out = h.to_vec();
        for name in &self.remove {
            remove_header(&mut out, name);
        }
        for p in &self.rename {
            if let Some(v) = common::header(&out, &p.name).map(|v| v.to_string()) {
                remove_header(&mut out, &p.name);
                out.push((p.value.to_lowercase(), v));
            }
        }
        for p in &self.replace {
            if common::header(&out, &p.name).is_some() {
                remove_header(&mut out, &p.name);
                out.push((p.name.to_lowercase(), p.render(r)));
            }
        }
        for p in &self.add {
            if common::header(&out, &p.name).is_none() {
                out.push((p.name.to_lowercase(), p.render(r)));
            }
        }
        for p in &self.append {
            out.push((p.name.to_lowercase(), p.render(r)));
        }
        out
    }

    /// Applies the operations to a JSON object body; None when the body
    /// is not one (or cannot be written back), which leaves it unchanged.
    pub fn json(&self, body: &[u8], r: &Request, types: &JsonTypes) -> Option<Vec<u8>> {
        let mut m: BTreeMap<String, Value> = BTreeMap::new();
        if !body.iter().all(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r')) {
            match normalize(json::parse_config(body).ok()??)? {
                Value::Object(members) => m.extend(members),
                _ => return None,
            }
        }
        let typ = |list: &[String], i: usize| list.get(i).cloned().unwrap_or_else(|| "string".to_string());
        for name in &self.remove {
            m.remove(name);
        }
        for p in &self.rename {
            if let Some(v) = m.remove(&p.name) {
                m.insert(p.value.clone(), v);
            }
        }
        for (i, p) in self.replace.iter().enumerate() {
            if m.contains_key(&p.name) {
                m.insert(p.name.clone(), convert(&p.render(r), &typ(&types.replace, i))?);
            }
        }
        for (i, p) in self.add.iter().enumerate() {
            if !m.contains_key(&p.name) {
                m.insert(p.name.clone(), convert(&p.render(r), &typ(&types.add, i))?);
            }
        }
        for (i, p) in self.append.iter().enumerate() {
            let v = convert(&p.render(r), &typ(&types.append, i))?;
            let next = match m.remove(&p.name) {
                None | Some(Value::Null) => Value::Array(vec![v]),
                Some(Value::Array(mut a)) => {
                    a.push(v);
                    Value::Array(a)
                }
                Some(old) => Value::Array(vec![old, v]),
            };
            m.insert(p.name.clone(), next);
        }
        let mut out = String::new();
        encode_object(&m.into_iter().collect::<Vec<_>>(), &mut out)?;
        Some(out.into_bytes())
    }
}

/// Values of a query or form, as Go's url.Values.
pub type Values = Vec<(String, Vec<String>)>;

fn set(q: &mut Values, name: &str, v: String) {
    match q.iter_mut().find(|(k, _)| k == name) {
        Some(e) => e.1 = vec![v],
        None => q.push((name.to_string(), vec![v])),
    }
}

impl Ops {
    /// Applies the operations to query (or form) values, as the Go plugin
    /// does to url.Values.
    pub fn query(&self, q: &mut Values, r: &Request) {
        for name in &self.remove {
            q.retain(|(k, _)| k != name);
        }
        for p in &self.rename {
            if let Some(i) = q.iter().position(|(k, _)| *k == p.name) {
                let (_, vs) = q.remove(i);
                match q.iter_mut().find(|(k, _)| *k == p.value) {
                    Some(e) => e.1 = vs,
                    None => q.push((p.value.clone(), vs)),
                }
            }
        }
        for p in &self.replace {
            if q.iter().any(|(k, _)| *k == p.name) {
                set(q, &p.name, p.render(r));
            }
        }
        for p in &self.add {
            if !q.iter().any(|(k, _)| *k == p.name) {
                set(q, &p.name, p.render(r));
            }
        }
        for p in &self.append {
            let v = p.render(r);
            match q.iter_mut().find(|(k, _)| *k == p.name) {
                Some(e) => e.1.push(v),
                None => q.push((p.name.clone(), vec![v])),
            }
        }
    }
}

/// json_types of replace, add and append, by position.
#[derive(Clone, Debug, Default)]
pub struct JsonTypes {
    pub replace: Vec<String>,
    pub add: Vec<String>,
    pub append: Vec<String>,
}

// A value typed as json_types says: a number is kept as written (Go's
// json.Number). None: Go would write a json.Number that is not a JSON
// number (its Marshal fails, and the body stays as it was).
fn convert(v: &str, typ: &str) -> Option<Value> {
    match typ {
        "number" if go_parses_float(v) => {
            let literal = v.trim() == v && matches!(json::parse_config(v.as_bytes()), Ok(Some(Value::Number(_))));
            return if literal { Some(Value::Number(v.to_string())) } else { None };
        }
        "boolean" if v == "true" || v == "false" => return Some(Value::Bool(v == "true")),
        _ => {}
    }
    Some(Value::String(v.to_string()))
}

// Whether strconv.ParseFloat(s, 64) succeeds: Rust's parser takes the same
// decimal forms (a sign, a leading or trailing '.', inf, nan); Go also
// takes hex floats; out of range is an error in Go, infinity in Rust.
fn go_parses_float(s: &str) -> bool {
    let t = s.strip_prefix(|c| c == '+' || c == '-').unwrap_or(s).to_ascii_lowercase();
    if t.starts_with("0x") {
        return true;
    }
    match s.parse::<f64>() {
        Ok(f) => f.is_finite() || t == "inf" || t == "infinity" || t == "nan",
        Err(_) => false,
    }
}

// Numbers as Go holds them after decoding into any (float64), so they are
// written back as Go writes them; None when one does not fit.
fn normalize(v: Value) -> Option<Value> {
    Some(match v {
        Value::Number(n) => Value::Number(go_float(&n)?),
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect::<Option<_>>()?),
        Value::Object(members) => {
            Value::Object(members.into_iter().map(|(k, v)| normalize(v).map(|v| (k, v))).collect::<Option<_>>()?)
        }
        v => v,
    })
}

/// Writes members as Go writes a map[string]any: sorted by name, the last
/// of a repeated name (numbers as normalize left them).
fn encode_object(members: &[(String, Value)], out: &mut String) -> Option<()> {
    let mut sorted: Vec<&(String, Value)> = members.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    // Later duplicates win, as decoding into a map does.
    sorted.dedup_by(|b, a| {
        if a.0 == b.0 {
            *a = *b;
            true
        } else {
            false
        }
    });
    out.push('{');
    for (i, (k, v)) in sorted.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&json::quote(k));
        out.push(':');
        encode(v, out)?;
    }
    out.push('}');
    Some(())
}

fn encode(v: &Value, out: &mut String) -> Option<()> {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::String(s) => out.push_str(&json::quote(s)),
        Value::Number(n) => out.push_str(n),
        Value::Array(items) => {
            out.push('[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                encode(it, out)?;
            }
            out.push(']');
        }
        Value::Object(members) => encode_object(members, out)?,
    }
    Some(())
}

/// A JSON number as Go re-encodes it after decoding into float64
/// (encoding/json's floatEncoder); None when it does not fit a float64
/// (Go's decoding fails).
pub fn go_float(n: &str) -> Option<String> {
    let f: f64 = n.parse().ok()?;
    if f.is_infinite() || f.is_nan() {
        return None;
    }
    let abs = f.abs();
    if abs != 0.0 && (abs < 1e-6 || abs >= 1e21) {
        let s = format!("{:e}", f);
        let (mant, exp) = s.split_at(s.find('e')?);
        let exp = &exp[1..];
        return Some(if exp.starts_with('-') { format!("{}e{}", mant, exp) } else { format!("{}e+{}", mant, exp) });
    }
    Some(format!("{}", f))
}

/// application/json or any +json type.
pub fn is_json(content_type: &str) -> bool {
    let ct = content_type.to_lowercase();
    let ct = ct.split(';').next().unwrap_or("").trim();
    ct == "application/json" || ct.ends_with("+json")
}

/// application/x-www-form-urlencoded.
pub fn is_form(content_type: &str) -> bool {
    let ct = content_type.to_lowercase();
    ct.split(';').next().unwrap_or("").trim() == "application/x-www-form-urlencoded"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn additions_only_when_nothing_else() {
        let items = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let ops = |remove: &[&str], replace: &[&str], add: &[&str], append: &[&str]| {
            parse_ops("headers", &items(remove), &[], &items(replace), &items(add), &items(append)).unwrap()
        };
        assert!(ops(&[], &[], &["x-a:1", "X-B:2"], &["x-a:3"]).additions_only());
        assert!(ops(&[], &[], &[], &[]).additions_only());
        assert!(!ops(&["x-a"], &[], &["x-b:1"], &[]).additions_only());
        assert!(!ops(&[], &["x-a:1"], &[], &[]).additions_only());
        assert!(!ops(&[], &[], &["x-a:$(headers.host)"], &[]).additions_only());
        assert!(!ops(&[], &[], &[], &["x-\u{e9}:1"]).additions_only());
    }

    #[test]
    fn floats_as_go_writes_them() {
        for (n, want) in [
            ("1", "1"), ("1.0", "1"), ("-0", "-0"), ("1e2", "100"), ("0.000001", "0.000001"), ("0.0000001", "1e-7"),
            ("1.5e-7", "1.5e-7"), ("1e21", "1e+21"), ("123456789012345678901", "123456789012345680000"),
            ("12345678901234567890123", "1.2345678901234568e+22"), ("0.1", "0.1"), ("3.14159", "3.14159"), ("1e-100", "1e-100"),
        ] {
            assert_eq!(go_float(n).as_deref(), Some(want), "{}", n);
        }
        assert_eq!(go_float("1e400"), None);
    }

    #[test]
    fn json_ops_as_go() {
        let ops = parse_ops("json", &[], &[], &[], &["n:1.50".into(), "b:true".into(), "s:x".into(), "bad:inf".into()], &[]).unwrap();
        let types = JsonTypes { add: vec!["number".into(), "boolean".into(), "number".into()], ..Default::default() };
        let r = Request::default();
        let out = ops.json(br#"{"z":1.0,"a":{"y":1e21,"x":[2e-7,true,null]},"a":{"k":"v<"}}"#, &r, &types).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"a":{"k":"v\u003c"},"b":true,"bad":"inf","n":1.50,"s":"x","z":1}"#);
        let nested = ops.json(br#"{"a":{"y":1e21,"x":[2e-7,true,null],"y":3}}"#, &r, &JsonTypes::default()).unwrap();
        assert_eq!(String::from_utf8(nested).unwrap(), r#"{"a":{"x":[2e-7,true,null],"y":3},"b":"true","bad":"inf","n":"1.50","s":"x"}"#);
        assert_eq!(ops.json(b"  ", &r, &JsonTypes::default()).map(String::from_utf8), Some(Ok(r#"{"b":"true","bad":"inf","n":"1.50","s":"x"}"#.to_string())));
        for not_object in [&b"null"[..], b"[1]", b"{", b"{\"a\":1e400}", b"{} x"] {
            assert_eq!(ops.json(not_object, &r, &JsonTypes::default()), None, "{:?}", String::from_utf8_lossy(not_object));
        }
        let hex = parse_ops("json", &[], &[], &[], &["h:0x1p-2".into()], &[]).unwrap();
        assert_eq!(hex.json(b"{}", &r, &JsonTypes { add: vec!["number".into()], ..Default::default() }), None);
        // What Go does with each value typed "number".
        for (v, want) in [("1e400x", Some(r#"{"v":"1e400x"}"#)), ("1e400", Some(r#"{"v":"1e400"}"#)), ("inf", None), (" 1", Some(r#"{"v":" 1"}"#)), ("1.", None), ("+1", None)] {
            let o = parse_ops("json", &[], &[], &[], &[format!("v:{}", v)], &[]).unwrap();
            let got = o.json(b"{}", &r, &JsonTypes { add: vec!["number".into()], ..Default::default() });
            assert_eq!(got.map(|b| String::from_utf8(b).unwrap()).as_deref(), want, "{:?}", v);
        }
        let append = parse_ops("json", &[], &[], &[], &[], &["l:c".into(), "o:2".into(), "new:n".into()]).unwrap();
        let out = append.json(br#"{"l":["a"],"o":"x","nil":null}"#, &r, &JsonTypes::default()).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"l":["a","c"],"new":["n"],"nil":null,"o":["x","2"]}"#);
    }

    #[test]
    fn templates() {
        let p = &parse_pairs("add.headers", &["x:a $(headers.user_agent) $(query_params.q) $(headers[\"X-Y\"])".to_string()]).unwrap()[0];
        let r = Request {
            headers: vec![("user-agent".into(), "ua".into()), ("x-y".into(), "y".into())],
            query: vec![("q".into(), vec!["1".into(), "2".into()])],
        };
        assert_eq!(p.render(&r), "a ua 1 y");
        for bad in ["x:$(headers.a", "x:$(cookies.a)", "x:$(headers.)", "x:$(headers)", "novalue", " :v"] {
            assert!(parse_pairs("k", &[bad.to_string()]).is_err(), "{}", bad);
        }
    }

    #[test]
    fn content_types() {
        assert!(is_json("Application/JSON; charset=utf-8") && is_json("application/problem+json") && !is_json("text/json"));
        assert!(is_form("application/x-www-form-urlencoded;charset=utf-8") && !is_form("multipart/form-data"));
    }
}
