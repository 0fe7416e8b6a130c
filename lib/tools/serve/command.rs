//! wif-serve's command line, and its manual page as data.

use crate::cli::DocArgs;
use crate::core::help::Example;
use crate::core::settings::key;
use clap::Parser;
use std::path::PathBuf;

/// The tool's name, in messages.
pub const TOOL: &str = "wif-serve";

/// What the manual page says beyond the flags.
pub const PAGE: crate::core::help::Page =
    crate::core::help::Page { examples: EXAMPLES, files: FILES, environment: ENVIRONMENT };

/// The files of the manual page.
const FILES: &[(&str, &str)] = &[
    ("wif_token.txt", "the token file given with --token; served byte for byte, re-read when it changes"),
    (
        "wif_token.txt.meta.json",
        "beside it: the token's expiry (sent as X-Token-Expires-At); past it, or when it describes another token, the answer is 503; without it the expiry is the token file's modification time + --assume-ttl",
    ),
    ("/etc/wif/wif.json", "conventional place for the config file given with --config"),
    (
        "/etc/wif/policy.json",
        "conventional place for the policy given with --policy (trusted only when owned by wif-serve's user or root and not writable by others); its format is in docs/POLICY.md",
    ),
    (
        "/etc/wif/bearer-issuers.json",
        "conventional place for the trusted bearer-token issuers given with --bearer-issuers (read at start only; trusted on the policy's terms); its format is in docs/BEARER.md",
    ),
    ("ledger.jsonl", "the issuance ledger given with --ledger: appended, one JSON line per credential handed out, mode 0600"),
];

/// The manual page's environment variables beyond the options' own.
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "GLIBC_TUNABLES",
        "when neither it nor MALLOC_ARENA_MAX nor LD_PRELOAD is set, wif-serve executes its own program once more at start (same arguments, process id and name) with glibc.malloc.arena_max set to the CPUs it may run on and glibc.malloc.tcache_count=0: one allocator arena per CPU and no per-thread caches of freed memory, which a thread per connection would otherwise hold on to; the variable is removed again (with WIF_SERVE_TUNED, which says it was done), so nothing wif-serve starts inherits it. Not done for a privileged process (setuid, file capabilities) or one started through the dynamic loader; if the execution fails, a warning says so and the server runs untuned. Set GLIBC_TUNABLES (or MALLOC_ARENA_MAX) yourself to choose other tunables",
    ),
    ("WIF_NO_ORDER_FILE", "set while building (cargo build --release): link wif-serve without bin/wif-serve.order, the order that places the code it runs together"),
];

/// Examples shown in --help and the manual page.
pub const EXAMPLES: &[Example] = &[
    Example {
        about: "Serve the token written by wif-impersonate --token-out to clients of the internal CA",
        cmd: "wif-serve --listen 0.0.0.0:8443 --cert server-chain.crt --key server.key --client-ca ca-chain.crt --token /var/lib/wif/wif_token.txt",
    },
    Example {
        about: "Only for two workloads (by SPIFFE ID and by common name), with a revocation list",
        cmd: "wif-serve --listen 127.0.0.1:8443 --cert server-chain.crt --key server.key --client-ca ca-chain.crt --token wif_token.txt --crl crl.pem --allow uri:spiffe://example.org/batch --allow cn:report-host",
    },
    Example {
        about: "Fetch the token as the seed's Python client does",
        cmd: "python3 -c 'import requests; print(requests.get(\"https://localhost:8443/get_wif_token\", cert=(\"client.crt\", \"client.key\"), verify=\"ca-chain.crt\").text)'",
    },
    Example {
        about: "With Prometheus metrics on loopback, for a local agent or node's scraper",
        cmd: "wif-serve --listen 0.0.0.0:8443 --cert server-chain.crt --key server.key --client-ca ca-chain.crt --token wif_token.txt --metrics-listen 127.0.0.1:9464",
    },
    Example {
        about: "A credential broker: each client's certificate picks its rule in policy.json; boundaries are applied at Google's STS",
        cmd: "wif-serve --listen 0.0.0.0:8443 --cert server-chain.crt --key server.key --client-ca ca-chain.crt --policy /etc/wif/policy.json --ledger /var/log/wif/ledger.jsonl",
    },
    Example {
        about: "Also serve Kubernetes pods and GitHub Actions jobs that have no certificate, by their bearer tokens (only the report service account)",
        cmd: "wif-serve --listen 0.0.0.0:8443 --cert server-chain.crt --key server.key --client-ca ca-chain.crt --token wif_token.txt --bearer-issuers /etc/wif/bearer-issuers.json --allow uri:spiffe://example.org/batch --allow bearer:k8s-prod:system:serviceaccount:batch:report --allow bearer:github",
    },
    Example {
        about: "Re-read certificates, CRLs and the token now (they are also picked up when they change)",
        cmd: "kill -HUP $(pidof wif-serve)",
    },
];

/// Command line of wif-serve.
#[derive(Parser, Debug)]
#[command(
    name = "wif-serve",
    version,
    about = "Serve the token file over mutual TLS at GET /get_wif_token",
    long_about = "Serve the token file over HTTPS to clients holding a certificate from the given CA (mutual TLS), \
at GET /get_wif_token: exactly the token's bytes, with Cache-Control: no-store, X-Token-Expires-At and X-Token-Type (from the metadata). \
GET /healthz tells whether a token can be served and until when, never the token.\n\n\
A client certificate is required and verified in the TLS handshake (TLS 1.3 or 1.2): it must chain to \
--client-ca, be within its validity, carry the clientAuth extended key usage and not be revoked by a --crl. \
Clients that fail are refused in the handshake and logged. With --allow, a verified client that matches no listed \
identity is answered 403 to its first request and the connection is closed at once (logged with its identity).\n\n\
A client stays verified only as long as its certificate: when the CA bundle or a CRL changes (the files are looked at \
every second, and on SIGHUP) every open connection's client is verified again before its next request, and a client \
whose certificate has expired, or that is now revoked or no longer trusted, is cut off without an answer. No connection \
lives longer than --max-connection-age.\n\n\
Connection slots are guarded: a request head must arrive whole within --header-timeout of its first byte; at \
--max-connections a new client takes the slot of a refused connection, a handshake waiting for its client (not one the server has yet to process), an idle connection, or \
one whose request or answer has taken over a second (oldest first), never a client in its first second or one taking \
its answer; one client certificate holds at most --max-connections-per-client connections (its newest over the limit \
gets 503 with Retry-After), and --max-connections-per-address limits one address likewise. Under a herd of new \
connections, when --max-handshake-queue handshakes are waiting for CPU (accepted and not yet read by their thread, or \
their client's bytes in hand and not yet processed; a silent or slow client never counts), a new connection is shed: a handshake that asks for no client certificate, \
then 503 with a JSON error (overloaded) and Retry-After: 1 to 5 s at random, never a token, and a connection_shed log \
line.\n\n\
The token's expiry comes from its metadata (FILE.meta.json, written by --token-out). A token file without \
metadata, as the seed's Java generator writes it, is served until its modification time plus --assume-ttl \
(default 55m: the seed rewrites the file every 55 minutes and Google's access tokens live 60, so the token is \
then at least 5 minutes from expiry; a JWT's own exp, if sooner), one trailing line end not being part of the \
token; a warning on stderr says so at start and whenever the file changes, and X-Token-Expires-At and /healthz \
(expires_from: assumed) give the assumed expiry. Metadata that appears or disappears is noticed like any other \
change: the pair is read again. The token is never served when its file is missing, empty or expired, when its \
metadata exists but does not match it (edited in place), or when either file is not trusted (not a regular file, \
owned by another user than wif-serve's or root, or writable by others): 503 with a JSON error whose message says why \
(without the server's paths, which are in the log) instead. The token, certificates, key, client CA and CRLs are re-read when \
their files change (also when a new file is renamed over the old one) and on SIGHUP, without a restart and \
without dropping connections. SIGTERM or SIGINT stop accepting, let requests in progress finish, and exit 0.\n\n\
With --policy FILE, wif-serve is a credential broker: each verified (and allowed) client gets only the credential its \
identity entitles it to. The policy (JSON, \"version\": 1) names token sources (\"tokens\": NAME → token file, one per \
service account, each written by its own pipeline; \"default\" is --token) and ordered rules; the first rule whose \
\"match\" fits the client certificate (cn, dns, uri such as a SPIFFE ID, spki_sha256 or cert_sha256 pins; every key \
given must match, a list matches when one value does; or \"any\": true) picks a token source and, optionally, an \
\"access_boundary\" (Google's Credential Access Boundary: up to 10 rules on Cloud Storage buckets with inRole: roles \
and optional CEL conditions). A boundary is applied by downscoping the source token at --sts-endpoint, as google-auth's \
downscoped.Credentials does; the narrowed token is cached per rule for the source token it came from (until a minute \
before it expires, or until it expires when that is its source's expiry), concurrent requests for one rule make one STS \
call, a new source token or a new policy drops what depended on the old one. It fails closed: when the narrowed token \
cannot be minted the client gets 503 with Retry-After: 5 (a failure is remembered for 5 s per rule), never the broader \
token. A client no rule matches gets 403 (logged with its identity). Answers carry X-Wif-Rule and, when narrowed, \
X-Wif-Access-Boundary (a digest of the boundary). The policy is re-read when its file changes (looked at every second) \
and on SIGHUP: a policy that cannot be read or is not valid is refused with a policy_refused log line and the one in \
force stays; a new one logs policy_loaded. Every credential handed out (GET answered 200) is one line of the issuance \
ledger: time, peer, client identity (subject, CNs, SANs, SPKI and certificate SHA-256), rule, token source, SHA-256 \
prefixes of the source and issued tokens, the boundary's digest, expiry and via (file, cache or sts); never a token. \
It goes to --ledger FILE, else, with a policy, to stdout. Without --policy nothing changes.\n\n\
With --bearer-issuers FILE (off by default), a client that cannot hold a certificate may show a bearer token instead: \
the handshake then no longer requires a client certificate (one that is presented is verified exactly as without the \
option, and its client is served as before, any Authorization header ignored). A client without a certificate must \
send Authorization: Bearer <JWT> with every request (every route, /healthz too), from an issuer the file trusts (JSON, \
\"version\": 1; issuer URL, audience, JWKS by URL or file, algorithms, maximum lifetime, leeway, identity claims; read at \
start only). The token is verified on every request: a compact JWS signed with one of the issuer's published keys by an \
asymmetric algorithm (never none, never HMAC), the exact iss, an aud naming this server, exp, nbf and iat with the \
leeway, and a lifetime no longer than the issuer's maximum; never taken from the query string. Its client is the \
issuer's name plus the token's sub (with the identity claims kept): the first one verified binds the connection, \
another on the same connection is refused (identity_changed), and --max-connections-per-client counts it as \
bearer:ISSUER:SUB. --allow bearer:ISSUER and bearer:ISSUER:SUB, and the policy's issuer, sub and claims keys, match \
bearer clients; certificate forms never do, and bearer forms never match certificate clients. A refusal is 401 (503 \
with Retry-After: 5 when the issuer's keys cannot be loaded) with a JSON error and WWW-Authenticate: Bearer \
(RFC 6750), and the connection is closed; the log's request line has auth, the bearer identity (issuer, sub, jti and \
the token's SHA-256 prefix, never the token) and the refusal's code. JWKS files are re-read when they change and on \
SIGHUP; JWKS URLs are fetched at start, hourly, and at once for an unknown key id (at most once a minute). A bearer \
token can be replayed by whoever holds it until it expires: keep lifetimes short and audiences bound to this server.\n\n\
Stdout is a JSON-lines log: first {\"event\":\"listening\",\"address\":…,\"url\":…}, then one line per request \
(time, peer, client certificate subject and SHA-256 fingerprint, or for bearer clients auth and bearer, method, path, status, bytes, duration_ms), \
refused handshakes and connections, reloads and shutdown. The token is never logged.\n\n\
With --metrics-listen, Prometheus metrics (text format 0.0.4) are served at GET /metrics on a second, plain-HTTP \
listener, each connection on a thread of its own (up to 64; the request head within 2 s; at the cap the oldest \
connection that has not sent its request is closed), so neither scrapers nor idle sockets hold up probes or token \
clients; the first log line then also has metrics_address and metrics_url. The same listener answers GET /healthz \
(200 with the token's expiry when a token can be served, else 503 with why; never the token) and GET /livez (200 \
while the process answers), for kubelet probes and load-balancer health checks that cannot present a client \
certificate. Metrics: wif_serve_requests_total{route,status}, \
wif_serve_handshakes_refused_total{reason} (no_certificate, unknown_ca, expired, bad_eku, revoked, not_allowed, timeout, \
other: the same words as the code of the log's handshake_failed lines), wif_serve_reloads_total{what} and wif_serve_reload_failures_total{what} (token, tls), wif_serve_open_connections, \
wif_serve_connections_total, wif_serve_connections_refused_total, wif_serve_connections_evicted_total, \
wif_serve_connections_shed_total, wif_serve_handshakes_waiting, \
wif_serve_requests_timed_out_total, wif_serve_token_available, wif_serve_token_expiry_timestamp_seconds, \
wif_serve_token_expires_in_seconds, wif_serve_token_age_seconds, wif_serve_build_info{version}, \
wif_serve_start_time_seconds and wif_serve_scrapes_total; with --policy also wif_serve_policy_rules, \
wif_serve_policy_reloads_total{result}, wif_serve_grants_total{rule,outcome}, wif_serve_downscope_calls_total{rule,result}, \
wif_serve_downscope_cache_hits_total{rule}, wif_serve_source_available{source} and \
wif_serve_source_expires_in_seconds{source}, and the refusal reason no_policy_match; with --bearer-issuers also \
wif_serve_bearer_accepted_total{issuer}, wif_serve_bearer_refused_total{reason}, wif_serve_jwks_fetches_total{issuer,result}, \
wif_serve_jwks_keys{issuer} and wif_serve_jwks_age_seconds{issuer}. They hold no token and no client identity, but have no \
authentication either: a non-loopback address draws a warning.",
    after_help = crate::core::help::after_help("wif-serve", EXAMPLES)
)]
pub struct Cli {
    /// Address and port to listen on, e.g. 0.0.0.0:8443 or 127.0.0.1:0 (any free port)
    #[arg(long, value_name = "ADDR:PORT", env = key::LISTEN.env)]
    pub listen: Option<String>,
    /// Server certificate chain (PEM, leaf first)
    #[arg(long, value_name = "CHAIN.pem", env = key::SERVE_CERT.env)]
    pub cert: Option<PathBuf>,
    /// Server private key (PEM: PKCS#8, PKCS#1 or SEC1)
    #[arg(long, value_name = "KEY.pem", env = key::SERVE_KEY.env)]
    pub key: Option<PathBuf>,
    /// CA certificates (root and intermediates, PEM) that client certificates must chain to
    #[arg(long, value_name = "CA_CHAIN.pem", env = key::CLIENT_CA.env)]
    pub client_ca: Option<PathBuf>,
    /// The token file to serve (written by --token-out, with FILE.meta.json beside it); with --policy, the token source called "default"
    #[arg(long, value_name = "FILE", env = key::TOKEN_FILE.env)]
    pub token: Option<PathBuf>,
    /// Lifetime assumed for a token file without FILE.meta.json (as the seed's generator writes it), counted from its modification time; 0: never serve such a file [default: 55m, the seed's refresh period]
    #[arg(long, value_name = "DURATION", env = key::SERVE_ASSUME_TTL.env)]
    pub assume_ttl: Option<String>,
    /// Certificate revocation list (PEM or DER) of a client CA; repeatable. Certificates whose issuer has no CRL here are not checked
    #[arg(long, value_name = "FILE")]
    pub crl: Vec<PathBuf>,
    /// Only serve clients with this identity: cn:NAME, dns:NAME, uri:URI, spki-sha256:HEX or cert-sha256:HEX for certificate clients, bearer:ISSUER or bearer:ISSUER:SUB (an issuer of --bearer-issuers; the sub may hold colons) for bearer clients; repeatable
    #[arg(long, value_name = "IDENTITY")]
    pub allow: Vec<String>,
    /// Time a client has to complete the TLS handshake [default: 10s]
    #[arg(long, value_name = "DURATION", env = key::HANDSHAKE_TIMEOUT.env)]
    pub handshake_timeout: Option<String>,
    /// Time a connection may stay silent before (or while) sending a request [default: 30s]
    #[arg(long, value_name = "DURATION", env = key::IDLE_TIMEOUT.env)]
    pub idle_timeout: Option<String>,
    /// Time a client has, from the first byte of a request, to send its request line and headers (the request must also be complete within --idle-timeout) [default: 5s]
    #[arg(long, value_name = "DURATION", env = key::HEADER_TIMEOUT.env)]
    pub header_timeout: Option<String>,
    /// Longest a connection stays open, however active: after it the connection is closed after its current answer, and the client reconnects and is verified afresh [default: 10m]
    #[arg(long, value_name = "DURATION", env = key::MAX_CONNECTION_AGE.env)]
    pub max_connection_age: Option<String>,
    /// Most connections open at once. At the limit a new client takes the slot of a connection refused after its handshake, else one in its handshake waiting for its client (never one whose client's bytes the server has not yet read or processed: that work is not thrown away), else one idle between requests, else one whose request or answer has taken over a second (oldest first); a client's first second after its handshake, and answers it takes at once, are never cut. When no connection can give way the new one is closed at once. Both are logged [default: 256]
    #[arg(long, value_name = "N", env = key::MAX_CONNECTIONS.env)]
    pub max_connections: Option<usize>,
    /// Most connections one verified client (one certificate, or one bearer issuer and sub) may hold at once. Beyond it one of the client's own connections gives way by the rules of --max-connections, else the new connection is answered 503 with Retry-After: 1 and closed. A fleet of hosts sharing one certificate that fetch at the same moment needs room for its burst [default: a quarter of --max-connections]
    #[arg(long, value_name = "N", env = key::MAX_CONNECTIONS_PER_CLIENT.env)]
    pub max_connections_per_client: Option<usize>,
    /// Most connections from one IP address at once, counted from accept. Beyond it that address's own oldest waiting connection gives way, else the new one is closed. Off by default: clients behind NAT or a load balancer share an address [default: no limit]
    #[arg(long, value_name = "N", env = key::MAX_CONNECTIONS_PER_ADDRESS.env)]
    pub max_connections_per_address: Option<usize>,
    /// Handshakes waiting for CPU (accepted and not yet read by their thread, or client bytes in hand and not yet processed; a silent or slow client never counts) at which a new connection is shed: a cheap handshake that asks for no client certificate, then 503 with Retry-After: 1 to 5 s at random and a JSON error, never a token. Shed connections count towards --max-connections like any other [default: 64 per CPU wif-serve may run on]
    #[arg(long, value_name = "N", env = key::MAX_HANDSHAKE_QUEUE.env)]
    pub max_handshake_queue: Option<usize>,
    /// On SIGTERM, how long requests in progress may take to finish [default: 10s]
    #[arg(long, value_name = "DURATION", env = key::SHUTDOWN_TIMEOUT.env)]
    pub shutdown_timeout: Option<String>,
    /// Also serve Prometheus metrics (GET /metrics) and health checks (GET /healthz, /livez) on this address, over plain HTTP without authentication, e.g. 127.0.0.1:9464 [default: off]. Keep it on loopback or a management network: another address draws a warning on stderr
    #[arg(long, value_name = "ADDR:PORT", env = key::SERVE_METRICS_LISTEN.env)]
    pub metrics_listen: Option<String>,
    /// Per-client credentials: a JSON policy whose first rule matching the client (its certificate, or its bearer token's issuer, sub and claims) picks a token source and an optional Credential Access Boundary, applied by downscoping at --sts-endpoint; a client no rule matches gets 403. Re-read when it changes and on SIGHUP (a bad new policy is refused, the old one stays) [default: every allowed client gets the --token file]
    #[arg(long, value_name = "FILE", env = key::SERVE_POLICY.env)]
    pub policy: Option<PathBuf>,
    /// The STS token endpoint that downscopes tokens for --policy rules with an access_boundary [default: https://sts.googleapis.com/v1/token]
    #[arg(long, value_name = "URL", env = key::SERVE_STS_ENDPOINT.env)]
    pub sts_endpoint: Option<String>,
    /// CA bundle (PEM) to trust for --sts-endpoint instead of the built-in Mozilla roots
    #[arg(long, value_name = "FILE", env = key::SERVE_STS_CA_FILE.env)]
    pub sts_ca_file: Option<PathBuf>,
    /// Time-out of one downscoping call at --sts-endpoint (one quick retry within it); past it the client gets 503 with Retry-After [default: 10s]
    #[arg(long, value_name = "DURATION", env = key::SERVE_STS_TIMEOUT.env)]
    pub sts_timeout: Option<String>,
    /// Issuance ledger: append one JSON line per credential handed out (client identity, rule, token digests, boundary digest, expiry, cache or STS; never a token) to FILE, created 0600 [default: with --policy, on stdout among the log lines; without, none]
    #[arg(long, value_name = "FILE", env = key::SERVE_LEDGER.env)]
    pub ledger: Option<PathBuf>,
    /// Also serve clients without a certificate that send Authorization: Bearer <JWT> from an issuer trusted in this JSON file (issuer, audience, JWKS URL or file, algorithms, lifetime; see docs/BEARER.md). Read at start only; a flaw stops the start [default: off: every client needs a certificate]
    #[arg(long, value_name = "FILE", env = key::SERVE_BEARER_ISSUERS.env)]
    pub bearer_issuers: Option<PathBuf>,
    #[command(flatten)]
    pub doc: DocArgs,
}
