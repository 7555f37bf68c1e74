# The sluice config make bench measures (bench/run.sh) and bench/memory.sh
# weighs: every built-in plugin, the five-filter chain, two Go SDK filters
# and the routes the bench drives. Sourced; write_sluice_config writes
# $work/sluice.toml (with the filters and keys it needs beside it) for
# ADMIN_PORT, SLUICE_PORT, UP_PORT and GRPC_UP_PORT, and sets JWT and
# JWT_RS, the tokens the jwt routes accept.
write_sluice_config() {
# The SDK's own overhead: the same header filter with our SDK and against
# the bare ABI (issue 4), both loaded from files like a user's filter.
(cd sdk && GOOS=wasip1 GOARCH=wasm go build -trimpath -buildmode=c-shared -o "$work/sdk.wasm" ./testdata/bench/sdk \
        && GOOS=wasip1 GOARCH=wasm go build -trimpath -buildmode=c-shared -o "$work/raw.wasm" ./testdata/bench/raw)

# JWTs with an hour to live: HS256 with the secret below (the jwt row);
# RS256 with a key made here, as Kong users sign with RSA keys (the
# jwt-rs row and the Kong chain; the host verifies the signature). The
# p-jwt-rs route is listed before p-jwt, whose path prefix it shares.
JWT=$(python3 - <<'PY'
import base64, hmac, hashlib, json, time
enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = enc(b'{"alg":"HS256","typ":"JWT"}')
body = enc(json.dumps({"iss": "bench-issuer", "exp": int(time.time()) + 3600}).encode())
sig = hmac.new(b"bench-secret", (head + "." + body).encode(), hashlib.sha256).digest()
print(head + "." + body + "." + enc(sig))
PY
)

openssl genrsa -out "$work/jwt-rs.key" 2048 2>/dev/null
openssl rsa -in "$work/jwt-rs.key" -pubout -out "$work/jwt-rs.pub" 2>/dev/null
JWT_RS=$(python3 - "$work/jwt-rs.key" <<'PY'
import base64, json, subprocess, sys, time
enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = enc(b'{"alg":"RS256","typ":"JWT"}')
body = enc(json.dumps({"iss": "bench-issuer", "exp": int(time.time()) + 3600}).encode())
sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", sys.argv[1]],
                     input=(head + "." + body).encode(), capture_output=True, check=True).stdout
print(head + "." + body + "." + enc(sig))
PY
)

cat > "$work/sluice.toml" <<CONF
[admin]
address = "127.0.0.1:$ADMIN_PORT"
[server]
watch_config = false
[access_log]
disabled = true
[[listeners]]
name = "bench"
address = "127.0.0.1:$SLUICE_PORT"
protocols = ["http1", "h2c"]
[wasm]
cache_dir = "${SLUICE_WASM_CACHE:-$HOME/.cache/sluice-wasm}"

[[plugins]]
name = "hdr1"
wasm = "builtin:add-header"
config = { request_headers = { "x-bench-1" = "1" } }
[[plugins]]
name = "hdr2"
wasm = "builtin:add-header"
config = { request_headers = { "x-bench-2" = "1" } }
[[plugins]]
name = "hdr3"
wasm = "builtin:add-header"
config = { request_headers = { "x-bench-3" = "1" } }
[[plugins]]
name = "hdr4"
wasm = "builtin:add-header"
config = { request_headers = { "x-bench-4" = "1" } }
[[plugins]]
name = "hdr5"
wasm = "builtin:add-header"
config = { request_headers = { "x-bench-5" = "1" } }
[[plugins]]
name = "sdk-hdr"
wasm = "$work/sdk.wasm"
[[plugins]]
name = "raw-hdr"
wasm = "$work/raw.wasm"
[[plugins]]
name = "key-auth"
wasm = "builtin:key-auth"
config = { keys = [ { key = "bench-key", consumer = "bench" } ] }
[[plugins]]
name = "jwt"
wasm = "builtin:jwt"
config = { claims_to_verify = ["exp"], credentials = [ { key = "bench-issuer", algorithm = "HS256", secret = "bench-secret" } ] }
[[plugins]]
name = "jwt-rs"
wasm = "builtin:jwt"
config = { claims_to_verify = ["exp"], credentials = [ { key = "bench-issuer", algorithm = "RS256", public_key = """
$(cat "$work/jwt-rs.pub")
""" } ] }
[[plugins]]
name = "rate-limiting"
wasm = "builtin:rate-limiting"
config = { second = 1000000000 }
[[plugins]]
name = "response-ratelimiting"
wasm = "builtin:response-ratelimiting"
config = { limits = { sms = { second = 1000000000 } } }
[[plugins]]
name = "cors"
wasm = "builtin:cors"
config = { origins = ["https://app.example.com"] }
[[plugins]]
name = "request-transformer"
wasm = "builtin:request-transformer"
config = { add = { headers = ["X-Request-Source:external"] } }
[[plugins]]
name = "response-transformer"
wasm = "builtin:response-transformer"
config = { add = { headers = ["X-Served-By:sluice"] } }
[[plugins]]
name = "ip-restriction"
wasm = "builtin:ip-restriction"
config = { allow = ["127.0.0.0/8"] }
[[plugins]]
name = "canary"
wasm = "builtin:canary"
config = { http = [ { route = [ { destination = { host = "up", subset = "v1" }, weight = 100 } ] } ] }
[[plugins]]
name = "fault"
wasm = "builtin:fault"
config = { abort = { http_status = 503, percentage = { value = 0.0 } } }

[[routes]]
name = "one"
match = { path_prefix = "/one" }
plugins = ["hdr1"]
backends = [ { cluster = "up" } ]
[[routes]]
name = "five"
match = { path_prefix = "/five" }
plugins = ["hdr1", "hdr2", "hdr3", "hdr4", "hdr5"]
backends = [ { cluster = "up" } ]
[[routes]]
name = "sdk"
match = { path_prefix = "/sdk" }
plugins = ["sdk-hdr"]
backends = [ { cluster = "up" } ]
[[routes]]
name = "raw"
match = { path_prefix = "/raw" }
plugins = ["raw-hdr"]
backends = [ { cluster = "up" } ]
[[routes]]
name = "kong"
match = { path_prefix = "/kong" }
plugins = ["cors", "jwt-rs", "rate-limiting", "request-transformer"]
backends = [ { cluster = "up" } ]
$(for p in key-auth jwt-rs jwt rate-limiting response-ratelimiting cors request-transformer response-transformer ip-restriction canary fault; do
  printf '[[routes]]\nname = "p-%s"\nmatch = { path_prefix = "/p/%s" }\nplugins = ["%s"]\nbackends = [ { cluster = "up" } ]\n' "$p" "$p" "$p"
done)
[[routes]]
name = "grpc"
match = { path_prefix = "/grpc.testing.TestService/" }
backends = [ { cluster = "grpc" } ]
[[routes]]
name = "plain"
backends = [ { cluster = "up" } ]
[[clusters]]
name = "up"
endpoints = ["127.0.0.1:$UP_PORT"]
[[clusters]]
name = "grpc"
protocol = "h2c"
endpoints = ["127.0.0.1:$GRPC_UP_PORT"]
CONF
}
