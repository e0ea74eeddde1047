//! The plumbing every system client shares: one [`SystemClient`] per system sends each request under the
//! concurrency cap and the rate limit, retries transient failures with backoff, reads bounded bodies and
//! maps statuses to [`AdapterError`]. See the module docs of [`crate::http`] for the rules.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use tokio::sync::Semaphore;
use tracing::Instrument;

use super::limit::RateLimit;
use super::{CallStats, FailureKind, HttpSettings};
use crate::error::{AdapterError, AdapterResult};
use crate::systems::IdempotencyKey;

/// The header that makes a write idempotent (docs/API.md).
pub(crate) const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// How much of an error body is read for its message.
const ERROR_BODY_LIMIT: usize = 4 * 1024;

/// One request, as every attempt rebuilds it.
pub(crate) struct Call<'a> {
    /// What the call is for, for logs (`"person"`); never the URL, which holds identifiers.
    pub(crate) op: &'static str,
    pub(crate) method: Method,
    /// Path segments below the system's base URL; each is percent-encoded.
    pub(crate) segments: &'a [&'a str],
    pub(crate) query: Vec<(&'static str, String)>,
    /// A JSON body, serialised once.
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) key: Option<&'a IdempotencyKey>,
}

/// What one failed attempt tells the retry loop.
struct Failure {
    error: AdapterError,
    /// A `Retry-After` the server asked for.
    retry_after: Option<Duration>,
    /// What kind of failure, for the observer: finer than the error's variant where the client knows more
    /// (a timeout, a refused connection, a 429, a 5xx).
    kind: Option<FailureKind>,
}

impl From<AdapterError> for Failure {
    fn from(error: AdapterError) -> Self {
        Self {
            kind: FailureKind::of(&error),
            error,
            retry_after: None,
        }
    }
}

impl Failure {
    /// The same failure, of a finer kind.
    fn of_kind(mut self, kind: FailureKind) -> Self {
        self.kind = Some(kind);
        self
    }
}

/// The HTTP client of one external system, shared plumbing included.
pub(crate) struct SystemClient {
    system: &'static str,
    http: reqwest::Client,
    base: Url,
    settings: HttpSettings,
    limiter: Option<RateLimit>,
    in_flight: Semaphore,
    stats: Arc<CallStats>,
}

/// The one reqwest client of the process, shared by every system: building a client loads the TLS roots,
/// which is most of a start-up, and one connection pool serves systems behind the same host. Each request
/// carries its system's own timeout.
fn shared_client() -> Result<reqwest::Client, String> {
    static SHARED: std::sync::OnceLock<Result<reqwest::Client, String>> =
        std::sync::OnceLock::new();
    SHARED
        .get_or_init(|| {
            reqwest::Client::builder()
                // A redirect would carry identifiers in its URL to wherever it points; none is expected.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("sdu-adapters/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| e.to_string())
        })
        .clone()
}

impl SystemClient {
    /// Builds the client; fails only on unusable settings.
    pub(crate) fn new(system: &'static str, settings: HttpSettings) -> AdapterResult<Self> {
        let unusable = |detail: String| AdapterError::Permanent {
            system,
            status: 0,
            detail,
        };
        let base = Url::parse(&settings.base_url)
            .map_err(|e| unusable(format!("base URL does not parse: {e}")))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(unusable("base URL must be an http(s) URL".into()));
        }
        if settings.max_concurrency == 0 {
            return Err(unusable("max_concurrency must be at least 1".into()));
        }
        let limiter = match settings.rate_limit_per_sec {
            None => None,
            Some(rate) => {
                let rate = NonZeroU32::new(rate)
                    .ok_or_else(|| unusable("rate_limit_per_sec must be at least 1".into()))?;
                Some(RateLimit::new(rate))
            }
        };
        let http = shared_client()
            .map_err(|e| unusable(format!("HTTP client could not be built: {e}")))?;
        Ok(Self {
            system,
            http,
            base,
            in_flight: Semaphore::new(settings.max_concurrency),
            stats: settings.stats.clone().unwrap_or_default(),
            limiter,
            settings,
        })
    }

    pub(crate) fn system(&self) -> &'static str {
        self.system
    }

    pub(crate) fn stats(&self) -> Arc<CallStats> {
        Arc::clone(&self.stats)
    }

    pub(crate) fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// A `GET` returning parsed JSON.
    pub(crate) async fn get(
        &self,
        op: &'static str,
        segments: &[&str],
        query: Vec<(&'static str, String)>,
    ) -> AdapterResult<Value> {
        self.execute(Call {
            op,
            method: Method::GET,
            segments,
            query,
            body: None,
            key: None,
        })
        .await
    }

    /// An idempotent `POST` of a JSON body, returning parsed JSON.
    pub(crate) async fn post(
        &self,
        op: &'static str,
        segments: &[&str],
        key: &IdempotencyKey,
        body: &impl serde::Serialize,
    ) -> AdapterResult<Value> {
        let body = serde_json::to_vec(body).map_err(|e| AdapterError::Permanent {
            system: self.system,
            status: 0,
            detail: format!("request body could not be serialised: {e}"),
        })?;
        self.execute(Call {
            op,
            method: Method::POST,
            segments,
            query: Vec::new(),
            body: Some(body),
            key: Some(key),
        })
        .await
    }

    /// Runs a call: attempts, backoffs, statistics, all inside a span that names the system only.
    pub(crate) async fn execute(&self, call: Call<'_>) -> AdapterResult<Value> {
        let span = tracing::debug_span!("adapter", system = self.system);
        async {
            let started = crate::clock::now();
            let (result, attempts) = self.with_retries(&call).await;
            let elapsed = started.elapsed();
            self.stats.record(elapsed, attempts, result.as_ref().err());
            if let Some(observer) = &self.settings.observer {
                observer.call_done(self.system, elapsed, result.as_ref().err());
            }
            result
        }
        .instrument(span)
        .await
    }

    async fn with_retries(&self, call: &Call<'_>) -> (AdapterResult<Value>, u32) {
        let policy = &self.settings.retry;
        let max_attempts = policy.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let failure = match self.attempt(call).await {
                Ok(value) => return (Ok(value), attempt),
                Err(failure) => failure,
            };
            if let (Some(observer), Some(kind)) = (&self.settings.observer, failure.kind) {
                observer.attempt_failed(self.system, kind);
            }
            let op = call.op;
            if !failure.error.is_transient() {
                tracing::debug!(op, attempt, error = %failure.error, "call failed");
                return (Err(failure.error), attempt);
            }
            if attempt >= max_attempts {
                tracing::debug!(op, attempt, error = %failure.error, "transient failure; giving up");
                return (Err(self.exhausted(failure.error, attempt)), attempt);
            }
            let wait = match failure.retry_after {
                Some(asked) if asked > policy.max_backoff => {
                    tracing::debug!(
                        op,
                        attempt,
                        retry_after_s = asked.as_secs(),
                        "asked to wait longer than max_backoff; giving up"
                    );
                    return (Err(failure.error), attempt);
                }
                Some(asked) => asked,
                None => full_jitter(policy.backoff_ceiling(attempt)),
            };
            tracing::debug!(op, attempt, wait_ms = wait.as_millis() as u64, error = %failure.error, "transient failure; retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Adds the attempt count to the last transient error.
    fn exhausted(&self, error: AdapterError, attempts: u32) -> AdapterError {
        match error {
            AdapterError::Transient { system, detail } if attempts > 1 => AdapterError::Transient {
                system,
                detail: format!("{detail} (after {attempts} attempts)"),
            },
            other => other,
        }
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        {
            // `new` checked that the base can be a base, so this cannot fail.
            let mut path = url
                .path_segments_mut()
                .expect("base URL checked at construction");
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    /// One attempt: take a slot, wait for the rate limiter, send, read and parse the body.
    async fn attempt(&self, call: &Call<'_>) -> Result<Value, Failure> {
        // The permit is held until the body is read: it caps requests in flight, not requests started.
        let _permit = self
            .in_flight
            .acquire()
            .await
            .expect("the semaphore is never closed");
        if let Some(limiter) = &self.limiter {
            let asked = crate::clock::now();
            limiter.until_ready().await;
            // A request the limiter let through at once is no wait; below a millisecond is the cost of
            // asking, not a hold-up (tokio's timer has millisecond granularity).
            let waited = asked.elapsed();
            if let Some(observer) = &self.settings.observer
                && waited >= Duration::from_millis(1)
            {
                observer.rate_limited(self.system, waited);
            }
        }
        tracing::debug!(op = call.op, "sending");

        let mut request = self
            .http
            .request(call.method.clone(), self.url(call.segments))
            .timeout(self.settings.timeout)
            .header(ACCEPT, "application/json");
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some(key) = call.key {
            let value = HeaderValue::from_str(&key.0).map_err(|_| AdapterError::Permanent {
                system: self.system,
                status: 0,
                detail: "idempotency key is not a valid header value".into(),
            })?;
            request = request.header(IDEMPOTENCY_KEY, value);
        }
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }

        let mut response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        if status.is_success() {
            let body = self.read_body(&mut response).await?;
            return serde_json::from_slice::<Value>(&body).map_err(|e| {
                if too_deep(&e) {
                    // No answer of docs/API.md nests more than a few levels, and asking again gets the
                    // same body: wrong data, not a passing fault.
                    return Failure::from(AdapterError::InvalidData {
                        system: self.system,
                        detail: "body is nested more than 128 levels deep".to_owned(),
                    });
                }
                Failure::from(self.transient(format!(
                    "status {} with a body that is not JSON ({})",
                    status.as_u16(),
                    json_failure(&e)
                )))
            });
        }
        Err(self.status_failure(status, &mut response).await)
    }

    /// Maps a non-success status.
    async fn status_failure(
        &self,
        status: StatusCode,
        response: &mut reqwest::Response,
    ) -> Failure {
        let code = status.as_u16();
        if status == StatusCode::NOT_FOUND {
            return AdapterError::Absent {
                system: self.system,
            }
            .into();
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let detail = match retry_after {
                Some(after) => format!("rate limited (429), retry after {}s", after.as_secs()),
                None => "rate limited (429)".to_owned(),
            };
            return Failure {
                error: self.transient(detail),
                retry_after,
                kind: Some(FailureKind::RateLimited),
            };
        }
        if status.is_server_error() {
            return Failure::from(self.transient(format!("status {code} {}", reason(status))))
                .of_kind(FailureKind::ServerError);
        }
        // A permanent refusal: its message, if the body has one, helps the person who reads the case.
        let detail = match read_capped(response, ERROR_BODY_LIMIT).await {
            Ok((body, _)) => error_message(&body),
            Err(_) => String::new(),
        };
        let detail = if detail.is_empty() {
            reason(status).to_owned()
        } else {
            detail
        };
        AdapterError::Permanent {
            system: self.system,
            status: code,
            detail,
        }
        .into()
    }

    /// Reads a success body, abandoning it past `max_body_bytes`.
    async fn read_body(&self, response: &mut reqwest::Response) -> Result<Vec<u8>, Failure> {
        let limit = self.settings.max_body_bytes;
        let (body, complete) = read_capped(response, limit)
            .await
            .map_err(|e| self.transport(e))?;
        if !complete {
            return Err(self
                .transient(format!("response too large (over {limit} bytes)"))
                .into());
        }
        Ok(body)
    }

    fn transient(&self, detail: String) -> AdapterError {
        AdapterError::Transient {
            system: self.system,
            detail,
        }
    }

    /// Maps an error of reqwest (connecting, sending, reading) to a message without the URL.
    fn transport(&self, error: reqwest::Error) -> Failure {
        let error = error.without_url();
        if error.is_builder() {
            return AdapterError::Permanent {
                system: self.system,
                status: 0,
                detail: format!("request could not be built: {}", root_cause(&error)),
            }
            .into();
        }
        let (what, kind) = if error.is_timeout() {
            (
                format!("timed out after {:?}", self.settings.timeout),
                FailureKind::Timeout,
            )
        } else if error.is_connect() {
            ("connection failed".to_owned(), FailureKind::Connect)
        } else if error.is_body() || error.is_decode() {
            (
                "response body could not be read".to_owned(),
                FailureKind::Transient,
            )
        } else {
            ("request failed".to_owned(), FailureKind::Transient)
        };
        Failure::from(self.transient(format!("{what}: {}", root_cause(&error)))).of_kind(kind)
    }
}

/// Reads at most `limit` bytes of the body chunk by chunk; `complete` is false when the body is longer
/// (what was read is then dropped by the caller, and the rest is never read).
async fn read_capped(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    if let Some(announced) = response.content_length()
        && announced > limit as u64
    {
        return Ok((Vec::new(), false));
    }
    let mut body = Vec::with_capacity(
        response
            .content_length()
            .map_or(8 * 1024, |n| n as usize)
            .min(limit),
    );
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            body.extend_from_slice(&chunk[..limit - body.len()]);
            return Ok((body, false));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, true))
}

/// A uniformly random wait in `0..=ceiling`.
fn full_jitter(ceiling: Duration) -> Duration {
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::random_range(0..=nanos))
}

fn reason(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("unknown status")
}

/// Why a body is not JSON, in words that quote none of it.
fn json_failure(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Eof => "truncated",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Io => "unreadable",
        // `from_slice` into a `Value` accepts any well-formed JSON, so this does not happen.
        serde_json::error::Category::Data => "unexpected content",
    }
}

/// True when serde_json stopped at its nesting limit of 128 levels (its guard against stack overflow), which
/// it reports as a syntax error with no code of its own.
fn too_deep(error: &serde_json::Error) -> bool {
    error.to_string().starts_with("recursion limit exceeded")
}

/// The innermost cause of an error: hyper's and the OS's words, which hold no URL.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// The `error` message of a JSON error body (docs/API.md: `{"error": "..."}`), cleaned for logs: at most
/// 200 characters, long runs of digits (identifiers, phone numbers) masked. Empty when there is none.
fn error_message(body: &[u8]) -> String {
    let message = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => match map.get("error") {
            Some(Value::String(s)) => s.clone(),
            _ => return String::new(),
        },
        _ => return String::new(),
    };
    let short: String = message.chars().take(200).collect();
    mask_digit_runs(&short)
}

/// Masks every number-like run (digits, possibly with spaces, dashes, dots, brackets or a plus between them)
/// that holds seven digits or more, keeping its last four digits: IINs, BINs and phone numbers become
/// `********0013`-like text.
pub(crate) fn mask_digit_runs(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let is_sep = |c: char| matches!(c, ' ' | '-' | '.' | '(' | ')' | '+' | '\u{a0}');
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // A run starts and ends with a digit, separators allowed inside.
        let start = i;
        let mut end = i; // one past the last digit seen
        let mut j = i;
        while j < chars.len() && (chars[j].is_ascii_digit() || is_sep(chars[j])) {
            if chars[j].is_ascii_digit() {
                end = j + 1;
            }
            j += 1;
        }
        let run = &chars[start..end];
        let digits = run.iter().filter(|c| c.is_ascii_digit()).count();
        if digits >= 7 {
            let mut left_to_mask = digits - 4;
            for &c in run {
                if c.is_ascii_digit() && left_to_mask > 0 {
                    out.push('*');
                    left_to_mask -= 1;
                } else {
                    out.push(c);
                }
            }
        } else {
            out.extend(run);
        }
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_digit_runs_are_masked_and_short_ones_kept() {
        assert_eq!(
            mask_digit_runs("person 850214300013 not allowed"),
            "person ********0013 not allowed"
        );
        assert_eq!(
            mask_digit_runs("number +7 701 123 45 67."),
            "number +* *** *** 45 67."
        );
        assert_eq!(
            mask_digit_runs("permit KZ-TS-0001 revoked in 2026"),
            "permit KZ-TS-0001 revoked in 2026"
        );
        assert_eq!(mask_digit_runs("Жаңа 12"), "Жаңа 12");
    }

    #[test]
    fn an_error_body_gives_its_message_only_when_it_is_the_documented_shape() {
        assert_eq!(
            error_message(br#"{"error": "permit revoked"}"#),
            "permit revoked"
        );
        assert_eq!(error_message(b"<html>oops</html>"), "");
        assert_eq!(error_message(br#"{"message": "x"}"#), "");
    }

    #[test]
    fn serde_json_s_nesting_limit_is_told_apart_from_bad_syntax() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(too_deep(&serde_json::from_str::<Value>(&deep).unwrap_err()));
        let shallow = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(serde_json::from_str::<Value>(&shallow).is_ok());
        assert!(!too_deep(
            &serde_json::from_str::<Value>("[1,").unwrap_err()
        ));
        assert!(!too_deep(
            &serde_json::from_str::<Value>("<html>").unwrap_err()
        ));
    }

    #[test]
    fn full_jitter_stays_below_the_ceiling() {
        for _ in 0..1000 {
            assert!(full_jitter(Duration::from_millis(5)) <= Duration::from_millis(5));
        }
        assert_eq!(full_jitter(Duration::ZERO), Duration::ZERO);
    }
}
