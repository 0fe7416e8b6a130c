//! The client: one ureq agent with the project's policies, and the one retry loop.

use super::failure::{Status, Trouble, Wording};
use super::headers::check_request_headers;
use super::response::Response;
use super::tls::{ClientIdentity, Roots};
use super::url::{check_url, redact_query};
use crate::core::diag::{self, Retry};
use crate::core::error::{Error, Kind, Result};
use crate::core::secret::Secret;
use std::io::Read;
use std::time::{Duration, Instant};

/// Largest response body read; token responses are a few kilobytes.
pub const MAX_BODY_BYTES: u64 = 1 << 20;

/// Longest wait for the TCP connection of one attempt (within the attempt's time-out).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Client settings.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// Time-out for one whole attempt (connect, send, receive).
    pub timeout: Duration,
    /// Longest wait for the TCP connection of one attempt (capped by `timeout`).
    pub connect_timeout: Duration,
    /// Retries after the first attempt for connection errors, 429 and 5xx.
    pub retries: u32,
    /// Give up retrying once this much time has passed since the first attempt.
    pub max_total: Duration,
    /// How `max_total` ends the retries.
    pub give_up: GiveUp,
    /// The CAs trusted for HTTPS.
    pub roots: Roots,
    /// The client certificate presented (mutual TLS), if any.
    pub identity: Option<ClientIdentity>,
    /// Largest body read; a longer one is cut (see [`Response::cut_at`]).
    pub max_body: u64,
    /// The `User-Agent` header.
    pub user_agent: &'static str,
    /// Tool name for retry messages on stderr.
    pub tool: String,
    /// How transport failures are put in words.
    pub wording: &'static Wording,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: Duration::from_secs(30),
            connect_timeout: CONNECT_TIMEOUT,
            retries: 3,
            max_total: Duration::from_secs(120),
            give_up: GiveUp::Quietly,
            roots: Roots::Public(None),
            identity: None,
            max_body: MAX_BODY_BYTES,
            user_agent: concat!("wif/", env!("CARGO_PKG_VERSION")),
            tool: "wif".into(),
            wording: &Wording::SERVICE,
        }
    }
}

/// How the time bound on retries (`max_total`) is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveUp {
    /// No retry starts that would begin past it; the last outcome is returned as it is.
    Quietly,
    /// No attempt runs past it either (each gets what is left, at most `timeout`), and the
    /// error says how many attempts were made and names the flag that set the bound.
    Firmly {
        /// The flag that set the bound, e.g. `--max-time`.
        flag: &'static str,
    },
}

/// A request body.
pub enum Body<'a> {
    /// No body (GET).
    Empty,
    /// `application/x-www-form-urlencoded` fields.
    Form(&'a [(&'a str, &'a str)]),
    /// A JSON body.
    Json(&'a serde_json::Value),
}

/// One request. Its `Debug` shows the method, the URL without its query and the header
/// names: never a header value, the bearer token or the body.
pub struct Request<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    /// The URL (checked by `check_url`).
    pub url: &'a str,
    /// Extra headers; values are not logged.
    pub headers: Vec<(&'a str, String)>,
    /// `Authorization: Bearer` token.
    pub bearer: Option<&'a Secret>,
    /// The body.
    pub body: Body<'a>,
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| *n).collect();
        let body = match self.body {
            Body::Empty => "empty",
            Body::Form(_) => "form",
            Body::Json(_) => "json",
        };
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &redact_query(self.url))
            .field("headers", &names)
            .field("bearer", &self.bearer.is_some())
            .field("body", &body)
            .finish()
    }
}

/// What one attempt came to, as the caller's judge of an answer sees it.
pub enum Attempt<T> {
    /// Final: this is the result.
    Done(Result<T>),
    /// Worth another attempt: `why` goes in the retry line on stderr, `retry_after` is the
    /// server's `Retry-After`, and `last` is the result if no attempt is left.
    Again {
        /// Why this attempt failed, for the retry line.
        why: String,
        /// Seconds the server asked to wait.
        retry_after: Option<u64>,
        /// The result when no retry is left.
        last: Result<T>,
    },
}

/// An HTTP client with the project's policies built in.
pub struct Client {
    agent: ureq::Agent,
    opts: HttpOptions,
}

impl Client {
    /// Builds a client; fails if the CA file cannot be read, or the CA certificates or the
    /// client certificate and key cannot be used.
    pub fn new(opts: HttpOptions) -> Result<Client> {
        crate::core::tls::install_crypto_provider();
        let tls = super::tls::config(&opts.roots, opts.identity.as_ref(), opts.wording)?;
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(opts.timeout.min(opts.connect_timeout)))
            .timeout_global(Some(opts.timeout))
            .user_agent(opts.user_agent)
            .build()
            .new_agent();
        Ok(Client { agent, opts })
    }

    /// Sends a request, retrying connection failures, 429 and 5xx with exponential backoff
    /// and jitter (honouring `Retry-After`) within the configured bounds. Returns the final
    /// response whatever its status; transport failures become `Unavailable` errors.
    pub fn send(&self, req: &Request<'_>) -> Result<Response> {
        self.exchange(req, |resp| match resp.cut_at {
            Some(limit) => {
                let err = Error::new(Kind::Unavailable, format!("the response body is larger than {limit} bytes"))
                    .hint("is the URL right? token endpoints answer with a few kilobytes");
                Attempt::Again { why: err.cause().to_string(), retry_after: None, last: Err(err) }
            }
            None if Status::of(resp.status).retries() => {
                Attempt::Again { why: format!("HTTP {}", resp.status), retry_after: resp.retry_after, last: Ok(resp) }
            }
            None => Attempt::Done(Ok(resp)),
        })
    }

    /// Whether a retry ending at `end` (from the first attempt) would pass `max_total`: a firm
    /// bound is never reached, a quiet one only never passed.
    fn past_bound(&self, end: Duration) -> bool {
        match self.opts.give_up {
            GiveUp::Firmly { .. } => end >= self.opts.max_total,
            GiveUp::Quietly => end > self.opts.max_total,
        }
    }

    /// Sends a request and lets `judge` say what each answer comes to; transport failures
    /// are classified once (see [`Trouble`]) and retried when the service may come back.
    /// This is the one retry loop: the bounds are `retries` and `max_total` (see [`GiveUp`]),
    /// and each retry is announced by [`diag::retrying`].
    pub fn exchange<T>(&self, req: &Request<'_>, mut judge: impl FnMut(Response) -> Attempt<T>) -> Result<T> {
        check_url(req.url)?;
        check_request_headers(&req.headers, req.bearer)?;
        let start = Instant::now();
        let mut attempt = 0u32;
        loop {
            let timeout = self.attempt_timeout(start);
            let outcome = match self.send_once(req, timeout) {
                Ok(resp) => judge(resp),
                Err(trouble) => {
                    let err = trouble.error(self.opts.wording);
                    if err.kind() == Kind::Unavailable {
                        Attempt::Again { why: err.to_string(), retry_after: None, last: Err(err) }
                    } else {
                        Attempt::Done(Err(err))
                    }
                }
            };
            let (why, retry_after, last) = match outcome {
                Attempt::Done(result) => return result,
                Attempt::Again { why, retry_after, last } => (why, retry_after, last),
            };
            if attempt >= self.opts.retries {
                return last;
            }
            let delay = backoff(attempt, retry_after);
            if self.past_bound(start.elapsed() + delay) {
                return self.give_up(last, attempt, start);
            }
            attempt += 1;
            let what = format!("{} {}", req.method, redact_query(req.url));
            diag::retrying(&self.opts.tool, &what, &why, Retry { attempt, of: Some(self.opts.retries), delay });
            std::thread::sleep(delay);
        }
    }

    /// The time-out of the next attempt: `timeout`, or with [`GiveUp::Firmly`] never more
    /// than what is left of `max_total`.
    fn attempt_timeout(&self, start: Instant) -> Duration {
        match self.opts.give_up {
            GiveUp::Quietly => self.opts.timeout,
            GiveUp::Firmly { .. } => {
                self.opts.timeout.min(self.opts.max_total.saturating_sub(start.elapsed())).max(Duration::from_millis(1))
            }
        }
    }

    fn give_up<T>(&self, last: Result<T>, attempt: u32, start: Instant) -> Result<T> {
        match self.opts.give_up {
            GiveUp::Quietly => last,
            GiveUp::Firmly { flag } => last.map_err(|e| {
                e.hint(format!(
                    "gave up after {} attempts in {:.0} s ({flag})",
                    attempt + 1,
                    start.elapsed().as_secs_f64()
                ))
            }),
        }
    }

    fn send_once(&self, req: &Request<'_>, timeout: Duration) -> std::result::Result<Response, Trouble> {
        let bearer = req.bearer.map(|b| format!("Bearer {}", b.expose()));
        let connect = Some(timeout.min(self.opts.connect_timeout));
        let result = match req.method {
            "GET" => {
                let mut r =
                    self.agent.get(req.url).config().timeout_global(Some(timeout)).timeout_connect(connect).build();
                for (k, v) in &req.headers {
                    r = r.header(*k, v.as_str());
                }
                if let Some(b) = &bearer {
                    r = r.header("Authorization", b.as_str());
                }
                r.call()
            }
            _ => {
                let mut r =
                    self.agent.post(req.url).config().timeout_global(Some(timeout)).timeout_connect(connect).build();
                for (k, v) in &req.headers {
                    r = r.header(*k, v.as_str());
                }
                if let Some(b) = &bearer {
                    r = r.header("Authorization", b.as_str());
                }
                match req.body {
                    Body::Empty => r.send_empty(),
                    Body::Form(fields) => r.send_form(fields.iter().copied()),
                    Body::Json(v) => r.send_json(v),
                }
            }
        };
        let mut resp = result.map_err(|e| Trouble::of(e, timeout))?;
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let mut answer = Response { status: resp.status().as_u16(), headers, ..Default::default() };
        answer.content_type = answer.header("content-type").map(str::to_string);
        answer.retry_after = answer.header("retry-after").and_then(|v| v.parse::<u64>().ok());
        let limit = self.opts.max_body;
        resp.body_mut().as_reader().take(limit + 1).read_to_end(&mut answer.body).map_err(Trouble::BodyRead)?;
        if answer.body.len() as u64 > limit {
            answer.cut_at = Some(limit);
        }
        Ok(answer)
    }
}

/// Backoff before retry `attempt` (0-based): 0.5 s, 1 s, 2 s, … capped at 8 s, with ±25 %
/// jitter; a server's `Retry-After` (capped at 60 s) wins.
pub fn backoff(attempt: u32, retry_after: Option<u64>) -> Duration {
    if let Some(s) = retry_after {
        return Duration::from_secs(s.min(60));
    }
    let base_ms = (500u64 << attempt.min(4)).min(8_000);
    let mut r = [0u8; 2];
    let _ = aws_lc_rs::rand::fill(&mut r);
    let jitter = u16::from_le_bytes(r) as u64 % (base_ms / 2 + 1);
    Duration::from_millis(base_ms - base_ms / 4 + jitter)
}
