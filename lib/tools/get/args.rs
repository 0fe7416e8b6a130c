//! wif-get's command line: its flags, what it prints, and its help as data.

use crate::cli::DocArgs;
use crate::core::help::Example;
use crate::core::settings::key;
use clap::{Parser, ValueEnum};
use serde::Deserialize;
use std::path::PathBuf;

/// The tool's name, starting every line it prints on stderr.
pub(crate) const TOOL: &str = "wif-get";

/// What the manual page says beyond the flags.
pub const PAGE: crate::core::help::Page =
    crate::core::help::Page { examples: EXAMPLES, files: crate::core::help::TOKEN_FILES, environment: &[] };

/// Examples shown in --help and the manual page.
pub const EXAMPLES: &[Example] = &[
    Example {
        about: "Fetch the token over mTLS and keep it in a 0600 file",
        cmd: "wif-get --url https://tokens.internal:8443/get_wif_token --cert client.crt --key client.key --ca ca-chain.crt --out /var/lib/wif/token.txt",
    },
    Example {
        about: "In a Kubernetes pod without a client certificate: present the projected service-account token (wif-serve --bearer-issuers must trust the cluster)",
        cmd: "wif-get --url https://tokens.internal:8443/get_wif_token --bearer-file /var/run/secrets/tokens/wif-token --ca ca-chain.crt --out /var/lib/wif/token.txt",
    },
    Example {
        about: "From cron: fetch only when the token left has less than 10 minutes (plus this host's share of the spread), at a random moment of the next 4 minutes",
        cmd: "*/5 * * * * wif-get --config /etc/wif/get.json --min-ttl 10m --splay 4m </dev/null >/dev/null",
    },
    Example {
        about: "With a PKCS#12 client certificate",
        cmd: "wif-get --url https://tokens.internal:8443/get_wif_token --cert client.p12 --key-password-file client.pass --ca ca-chain.crt --out token.txt",
    },
    Example {
        about: "Use the token in a shell: Terraform's google provider reads GOOGLE_OAUTH_ACCESS_TOKEN",
        cmd: "eval \"$(wif-get --config /etc/wif/get.json --format export)\" && terraform plan",
    },
    Example {
        about: "gcloud reads the token from the file CLOUDSDK_AUTH_ACCESS_TOKEN_FILE names (or --access-token-file)",
        cmd: "eval \"$(wif-get --config /etc/wif/get.json --out ~/.wif/token.txt --format gcloud)\" && gcloud storage ls",
    },
    Example {
        about: "Answer like the GCE metadata server on loopback, for unmodified Google client libraries",
        cmd: "wif-get --config /etc/wif/get.json --metadata-server 127.0.0.1:8989 --service-account app@my-project.iam.gserviceaccount.com --project-id my-project --project-number 123456789012",
    },
    Example {
        about: "The metadata server in a pod, with the projected token (read again before each refresh) instead of a certificate",
        cmd: "wif-get --url https://tokens.internal:8443/get_wif_token --bearer-file /var/run/secrets/tokens/wif-token --ca ca-chain.crt --metadata-server 127.0.0.1:8989 --service-account app@my-project.iam.gserviceaccount.com",
    },
    Example {
        about: "Point a program's Google client library at it (past any HTTP proxy)",
        cmd: "NO_PROXY=127.0.0.1,localhost GCE_METADATA_HOST=127.0.0.1:8989 GCE_METADATA_IP=127.0.0.1:8989 python3 app.py",
    },
    Example {
        about: "Point gcloud at it (it needs --project-number to detect the server)",
        cmd: "GCE_METADATA_ROOT=127.0.0.1:8989 GCE_METADATA_IP=127.0.0.1:8989 gcloud auth print-access-token",
    },
];

/// What to print on stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The wif JSON document with the `fetched` section (no token unless --show-token)
    Json,
    /// The token alone, without a newline
    Token,
    /// `export NAME='TOKEN'` for a POSIX shell
    Export,
    /// A google-auth executable-sourced credential response (subject tokens: JWT or SAML)
    Executable,
    /// `export CLOUDSDK_AUTH_ACCESS_TOKEN_FILE='OUT'` for gcloud (needs --out; prints no token)
    Gcloud,
}

/// What kind of subject token `--format executable` says the token is (google-auth's
/// executable-sourced response format).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
pub enum SubjectTokenType {
    /// urn:ietf:params:oauth:token-type:jwt: a JWT that is not an ID token, e.g. an Azure AD access token
    #[value(name = "jwt")]
    #[serde(rename = "jwt")]
    Jwt,
    /// urn:ietf:params:oauth:token-type:id_token: an OpenID Connect ID token
    #[value(name = "id_token")]
    #[serde(rename = "id_token")]
    IdToken,
    /// urn:ietf:params:oauth:token-type:saml2: a base64 SAML 2.0 assertion
    #[value(name = "saml2")]
    #[serde(rename = "saml2")]
    Saml2,
}

impl SubjectTokenType {
    /// The URN google-auth expects in `token_type`.
    pub fn urn(self) -> &'static str {
        match self {
            SubjectTokenType::Jwt => "urn:ietf:params:oauth:token-type:jwt",
            SubjectTokenType::IdToken => "urn:ietf:params:oauth:token-type:id_token",
            SubjectTokenType::Saml2 => "urn:ietf:params:oauth:token-type:saml2",
        }
    }
}

/// Command line of wif-get.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "wif-get",
    version,
    about = "Fetch the token from wif-serve over mutual TLS (or with a bearer token) and write it atomically",
    long_about = "Fetch the token from wif-serve (or any server publishing it at /get_wif_token) over mutual TLS: \
the client presents --cert/--key (PEM, or PKCS#12 with --key-password-file/--key-password-env), and verifies the \
server's certificate against --ca and the host name in --url.\n\n\
With --bearer-file FILE instead of --cert/--key (which it excludes), wif-get presents no client certificate and \
sends Authorization: Bearer with the JWT in FILE, for servers that accept bearer tokens (wif-serve --bearer-issuers: \
a Kubernetes projected service-account token, a GitHub Actions OIDC token, an Azure AD token). The file is read \
again for each fetch (and before each refresh of --metadata-server), as such tokens rotate: it must be trusted like a \
token file (a regular file, owned by this user or root, writable by nobody else; a symbolic link to one, as Kubernetes \
projects it, is followed), at most 16 KiB, and hold one compact JWT (whitespace around it is dropped); otherwise \
wif-get stops before sending anything, naming the file and never quoting it. A token whose exp has passed by this \
machine's clock gives a warning and is sent anyway (the server judges). The server still proves itself with its \
certificate (--ca). A 401 answer (the server refused the token: its issuer, audience, lifetime or signature) is not \
retried; the error quotes the server's reason. The `fetched` section says auth: bearer and, under bearer, the file \
and the token's iss, sub and expires_at, read without verifying (never the token). A bearer token can be replayed by \
whoever reads it until it expires: keep the file readable by this user only, and its lifetime short.\n\n\
With --out, the token is written atomically with mode 0600 (exactly the token bytes), with FILE.meta.json beside \
it, written first (it also describes the token it replaces, so the pair stays consistent if wif-get is killed \
between the two); a failed fetch leaves the previous file untouched. The expiry comes from the server's \
X-Token-Expires-At header, else from the JWT's exp, else it is assumed: --assume-ttl after the fetch (default 5m, \
the least a token from the seed's Flask server, which sends the bare token, has left: the seed refreshes it every 55 \
minutes and Google's access tokens live 60), with a warning on stderr and expires_from: assumed and \
assumed_ttl_seconds in the `fetched` section. With --min-ttl, nothing is fetched while \
the token in --out is still valid that long, and trusted: both files regular, owned by this user or root, and \
writable by nobody else (otherwise a warning says why and the token is fetched again).\n\n\
A fleet whose hosts got the same token after one rotation holds tokens that expire at the same second; \
--spread (default auto) keeps it from coming back at one moment. With --min-ttl, the token is fetched again \
when its remaining life is at or below --min-ttl plus this host's share of the spread: a fraction fixed by the \
SHA-256 of this host's name and the token (the host: $WIF_HOST_ID if set, else /etc/machine-id, else the host name), \
so repeated runs agree and hosts differ; with auto that share is up to --min-ttl again (never more than half of the \
time from the token's writing to --min-ttl), with a DURATION up to it, with off none. The `fetched` section of a \
skipped run says refresh_after: when this host will fetch that token. --splay DURATION sleeps, before a fetch that \
is not yet urgent, a random time below DURATION (never so long that less than --min-ttl would be left when it \
wakes) and says splay_ms; a missing token, or one with --min-ttl or less left, is fetched at once. WIF_HOST_ID is \
for tests and for hosts cloned with one machine id: it only moves where in the window this host refreshes. \
Spreading only ever moves a refresh earlier, never later: no host holds a token closer to its expiry than without \
it.\n\n\
Connection failures and 5xx answers (503: the server has no fresh token) are retried with exponential backoff and \
jitter, honouring Retry-After, within --retries and --max-time; 4xx answers and TLS verification failures are not. \
The error for a 5xx answer quotes the server's reason when its body is a JSON error (wif-serve's 503 says why it \
has no token), scrubbed of anything shaped like a token and at most 300 characters. \
--max-time bounds the whole fetch: no attempt waits longer than what is left of it.\n\n\
Prints the JSON document (stdin, nothing piped: an empty one) with a `fetched` section: url, status, auth (certificate or bearer), expires_at, \
bytes, sha256, out, fetched_at (and skipped: true with refresh_after when --min-ttl found the token fresh; splay_ms when --splay slept). The token itself is printed \
only with --show-token or --format token/export/executable, and never to a terminal unless --force is given. \
--format executable labels a JWT as an ID token (token-type:id_token) when it has the claims of one (nonce, \
auth_time, at_hash, c_hash, or azp without the marks of an access token) and as token-type:jwt otherwise, e.g. an \
Azure AD access token, which carries azp too but also azpacr, scp, idtyp, appid or a typ: at+jwt header; \
--subject-token-type says it instead. \
--format gcloud prints `export CLOUDSDK_AUTH_ACCESS_TOKEN_FILE=OUT` (the absolute path of --out) for gcloud.\n\n\
With --metadata-server 127.0.0.1:PORT, wif-get keeps running and answers on loopback like the Compute Engine \
metadata server, so that unmodified Google client libraries run with GCE_METADATA_HOST=127.0.0.1:PORT (and, for \
google-auth's detection ping, GCE_METADATA_IP=127.0.0.1:PORT) use the token: \
/computeMetadata/v1/instance/service-accounts/default/token (also under the --service-account email), .../email, \
.../scopes, .../?recursive=true, /computeMetadata/v1/project/project-id and numeric-project-id, and the root probe. \
gcloud and gsutil (GCE_METADATA_ROOT=127.0.0.1:PORT) detect it only by a numeric-project-id, so give --project-number \
(a warning says so otherwise). \
Every answer carries Metadata-Flavor: Google; a request without Metadata-Flavor: Google, or with X-Forwarded-For or \
Forwarded, gets 403 (set NO_PROXY=127.0.0.1,localhost where an HTTP proxy is configured). So does a request a web page could \
have made (DNS rebinding, cross-origin): a Host that is not a loopback address, localhost or metadata.google.internal \
(with this server's port, if any), an Origin header, or a Sec-Fetch-Site other than none; a request \
without a Host gets 400. Refusals are logged on stderr, at most 10 lines a minute. The token route also accepts POST (its \
body is ignored); a request must arrive whole within 10 s; past 128 connections at once the oldest one whose request has \
not fully arrived is closed (503 only when all 128 are being answered). Its first stdout line is {\"event\":\"listening\",\"address\":\"127.0.0.1:PORT\",\"metadata_host\":...}. \
It fetches the token at start and again when less than --min-ttl (default 5m) or a quarter of its lifetime \
is left (by the wall clock, so also right after a suspend), or at once when a client finds no valid token; a \
token whose lifetime is assumed (no expiry from the server) is fetched again after half of it, and never more \
often than every 30 s. With --spread (default auto) each refresh is planned at a random moment of a window that \
ends there and is as wide as that margin (or the --spread DURATION), never more than half way from now; the polls \
near expiry and the retries after failures wait a random time between half and all of their wait; --spread off \
refreshes exactly at the margin. It \
keeps serving the last good token while it is unexpired when a refresh fails; one line on stderr per \
refresh or failure, never the token. If the first fetch is refused (TLS, certificate, 4xx, bad answer) it exits \
with that error; if wif-serve is unreachable or failing it answers 503 for the token and keeps retrying (1 s, \
2 s, ... up to 60 s apart, less the jitter). The line of a refresh says when the next one is and, when spread, \
over which window: next refresh in 1712 s (spread over 1350..2700 s). Requested ?scopes= are not minted: the token has the scopes wif-impersonate gave it. \
SIGTERM or SIGINT stops it (exit 0). Addresses other than loopback are refused.",
    after_help = crate::core::help::after_help("wif-get", EXAMPLES)
)]
pub struct Cli {
    /// Token URL, e.g. https://tokens.internal:8443/get_wif_token
    #[arg(long, value_name = "URL", env = key::GET_URL.env)]
    pub url: Option<String>,
    /// Client certificate (PEM chain), or a PKCS#12 file holding certificate and key (then --key is not needed)
    #[arg(long, value_name = "FILE", env = key::GET_CERT.env)]
    pub cert: Option<PathBuf>,
    /// Client private key: PEM (PKCS#8, PKCS#1, SEC1) or PKCS#12
    #[arg(long, value_name = "FILE", env = key::GET_KEY.env)]
    pub key: Option<PathBuf>,
    /// File whose first line is the PKCS#12 password
    #[arg(long, value_name = "FILE", env = key::GET_KEY_PASSWORD_FILE.env)]
    pub key_password_file: Option<PathBuf>,
    /// Name of the environment variable holding the PKCS#12 password
    #[arg(long, value_name = "VAR", env = key::GET_KEY_PASSWORD_ENV.env)]
    pub key_password_env: Option<String>,
    /// Present no client certificate: send the JWT in FILE as Authorization: Bearer, read again for each fetch (e.g. a Kubernetes projected service-account token); the server must accept bearer tokens (wif-serve --bearer-issuers)
    #[arg(long, value_name = "FILE", env = key::GET_BEARER_FILE.env)]
    pub bearer_file: Option<PathBuf>,
    /// CA certificates (PEM) that issued the server's certificate, e.g. ca-chain.crt
    #[arg(long, value_name = "FILE", env = key::GET_CA.env)]
    pub ca: Option<PathBuf>,
    /// Write the token to FILE (mode 0600, atomically) and FILE.meta.json beside it
    #[arg(long, value_name = "FILE", env = key::GET_OUT.env)]
    pub out: Option<PathBuf>,
    /// Skip the fetch while the token in --out stays valid for at least DURATION, e.g. 10m (--metadata-server: refetch when less is left, default 5m)
    #[arg(long, value_name = "DURATION", env = key::GET_MIN_TTL.env)]
    pub min_ttl: Option<String>,
    /// Spread refreshes of a fleet holding the same token over a window before the refresh margin, at random (metadata server) or by host and token (--min-ttl): auto (as wide as the margin), off (exactly at the margin), or a width such as 10m; never later than the margin [default: auto]
    #[arg(long, value_name = "auto|off|DURATION", env = key::GET_SPREAD.env)]
    pub spread: Option<String>,
    /// With --min-ttl: before a fetch that is not yet urgent (the token in --out still has more than --min-ttl left), sleep a random time below DURATION, never past the point where --min-ttl is left; a missing or low token is fetched at once [default: 0]
    #[arg(long, value_name = "DURATION", env = key::GET_SPLAY.env)]
    pub splay: Option<String>,
    /// Lifetime to assume, from the fetch, when the server sends no X-Token-Expires-At and the token is not a JWT (the seed's Flask server); 0: refuse such a token [default: 5m, the least a token the seed serves has left]
    #[arg(long, value_name = "DURATION", env = key::GET_ASSUME_TTL.env)]
    pub assume_ttl: Option<String>,
    /// What to print on stdout [default: json]
    #[arg(long, value_enum, env = key::GET_FORMAT.env)]
    pub format: Option<Format>,
    /// With --format executable: the subject token type to report [default: from the token's claims]
    #[arg(long, value_enum, value_name = "TYPE", env = key::GET_SUBJECT_TOKEN_TYPE.env)]
    pub subject_token_type: Option<SubjectTokenType>,
    /// With --format export: the variable name [default: GOOGLE_OAUTH_ACCESS_TOKEN, which Terraform reads]
    #[arg(long, value_name = "NAME", env = key::GET_EXPORT_NAME.env)]
    pub export_name: Option<String>,
    /// With --format json: include the token in the `fetched` section
    #[arg(long)]
    pub show_token: bool,
    /// Print the token even when stdout is a terminal
    #[arg(long)]
    pub force: bool,
    /// Time-out for each attempt (connect, handshake, answer) [default: 30s]
    #[arg(long, value_name = "DURATION", env = key::TIMEOUT.env)]
    pub timeout: Option<String>,
    /// Retries after a connection failure or a 5xx answer (never after 4xx) [default: 3]
    #[arg(long, value_name = "N", env = key::RETRIES.env)]
    pub retries: Option<u32>,
    /// Give up once this much time has passed, attempts and retries included [default: 2m]
    #[arg(long, value_name = "DURATION", env = key::GET_MAX_TIME.env)]
    pub max_time: Option<String>,
    /// Keep running and answer like the GCE metadata server on this loopback ADDRESS:PORT (port 0: any free one)
    #[arg(long, value_name = "ADDRESS:PORT", env = key::GET_METADATA_SERVER.env)]
    pub metadata_server: Option<String>,
    /// With --metadata-server: the service account's email the token belongs to
    #[arg(long, value_name = "EMAIL", env = key::GET_SERVICE_ACCOUNT.env)]
    pub service_account: Option<String>,
    /// With --metadata-server: the project id served at /computeMetadata/v1/project/project-id
    #[arg(long, value_name = "ID", env = key::GET_PROJECT_ID.env)]
    pub project_id: Option<String>,
    /// With --metadata-server: the project number served at /computeMetadata/v1/project/numeric-project-id
    #[arg(long, value_name = "NUMBER", env = key::GET_PROJECT_NUMBER.env)]
    pub project_number: Option<String>,
    /// With --metadata-server: the token's scopes, comma-separated [default: https://www.googleapis.com/auth/cloud-platform]
    #[arg(long, value_name = "SCOPES", env = key::GET_SCOPES.env)]
    pub scopes: Option<String>,
    #[command(flatten)]
    pub doc: DocArgs,
}
