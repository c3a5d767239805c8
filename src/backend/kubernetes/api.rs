//! A small Kubernetes REST client: the few calls the backend makes, with retries.
//!
//! Conflicts (409) and server errors (5xx, 429) and timeouts are retried with exponential backoff;
//! after the last attempt the error is returned, naming the URL and what the server said. The
//! bearer token is held in a [`Secret`], which has no `Display` and whose `Debug` is redacted:
//! it goes into the `Authorization` header and nowhere else (errors carry URLs, never headers).

use std::time::Duration;

use serde_json::Value;

/// A credential: usable in a header, impossible to print by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// How to reach the API server.
#[derive(Clone, Debug)]
pub struct Connection {
    /// `http://127.0.0.1:8001` for `kubectl proxy`, or the cluster's server URL.
    pub base_url: String,
    pub token: Option<Secret>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Attempts per call (>= 1), and the first backoff (doubled each retry).
    pub attempts: u32,
    pub backoff: Duration,
}

impl Connection {
    pub fn new(base_url: &str, token: Option<Secret>) -> Connection {
        Connection {
            base_url: base_url.trim_end_matches('/').to_string(),
            token,
            timeout: Duration::from_secs(10),
            attempts: 4,
            backoff: Duration::from_millis(200),
        }
    }
}

/// Why a call failed after its retries.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// The server answered with this status (after retries, for retryable ones).
    Status { method: &'static str, url: String, status: u16, message: String, attempts: u32 },
    /// No answer: refused, reset, timed out.
    Unreachable { method: &'static str, url: String, message: String, attempts: u32 },
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Status { method, url, status, message, attempts } => {
                write!(f, "{method} {url}: HTTP {status} after {attempts} attempt(s): {message}")
            }
            ApiError::Unreachable { method, url, message, attempts } => {
                write!(f, "{method} {url}: no answer after {attempts} attempt(s): {message}")
            }
        }
    }
}

fn retryable(status: u16) -> bool {
    status == 409 || status == 429 || status >= 500
}

pub struct ApiClient {
    conn: Connection,
    agent: ureq::Agent,
}

impl ApiClient {
    pub fn new(conn: Connection) -> ApiClient {
        let agent = ureq::AgentBuilder::new().timeout(conn.timeout).build();
        ApiClient { conn, agent }
    }

    pub fn base_url(&self) -> &str {
        &self.conn.base_url
    }

    pub fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.retrying("GET", path, &mut |_| Some(None))
    }

    /// PUT with a body rebuilt for every attempt (after a 409 the object changed, so `body`
    /// re-reads it); `body` returning `None` gives up.
    pub fn put_with(&self, path: &str, body: &mut dyn FnMut(u32) -> Option<Value>) -> Result<Value, ApiError> {
        self.retrying("PUT", path, &mut |n| body(n).map(Some))
    }

    fn retrying(
        &self,
        method: &'static str,
        path: &str,
        body: &mut dyn FnMut(u32) -> Option<Option<Value>>,
    ) -> Result<Value, ApiError> {
        let url = format!("{}{}", self.conn.base_url, path);
        let mut last = None;
        for attempt in 1..=self.conn.attempts.max(1) {
            if attempt > 1 {
                std::thread::sleep(self.conn.backoff * 2u32.pow(attempt - 2));
            }
            let Some(b) = body(attempt) else { break };
            match self.send(method, &url, b.as_ref()) {
                Ok(v) => return Ok(v),
                Err((err, retry)) => {
                    last = Some(with_attempts(err, attempt));
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(last.unwrap_or(ApiError::Unreachable {
            method,
            url,
            message: "gave up before sending".into(),
            attempts: 0,
        }))
    }

    /// One request; the error says whether it is worth retrying.
    fn send(&self, method: &'static str, url: &str, body: Option<&Value>) -> Result<Value, (ApiError, bool)> {
        let mut req = self.agent.request(method, url).set("Accept", "application/json");
        if let Some(t) = &self.conn.token {
            req = req.set("Authorization", &format!("Bearer {}", t.expose()));
        }
        let result = match body {
            Some(b) => req.set("Content-Type", "application/json").send_string(&b.to_string()),
            None => req.call(),
        };
        match result {
            Ok(resp) => {
                let text = resp.into_string().map_err(|e| {
                    (ApiError::Unreachable { method, url: url.into(), message: e.to_string(), attempts: 1 }, true)
                })?;
                serde_json::from_str(&text).map_err(|e| {
                    (
                        ApiError::Status {
                            method,
                            url: url.into(),
                            status: 200,
                            message: format!("answer is not JSON: {e}"),
                            attempts: 1,
                        },
                        false,
                    )
                })
            }
            Err(ureq::Error::Status(status, resp)) => {
                // A Kubernetes error is a `Status` object; its `message` says what went wrong.
                let text = resp.into_string().unwrap_or_default();
                let message = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["message"].as_str().map(str::to_string))
                    .unwrap_or_else(|| text.chars().take(200).collect());
                Err((ApiError::Status { method, url: url.into(), status, message, attempts: 1 }, retryable(status)))
            }
            Err(ureq::Error::Transport(t)) => Err((
                ApiError::Unreachable { method, url: url.into(), message: t.kind().to_string(), attempts: 1 },
                true,
            )),
        }
    }
}

fn with_attempts(e: ApiError, n: u32) -> ApiError {
    match e {
        ApiError::Status { method, url, status, message, .. } => {
            ApiError::Status { method, url, status, message, attempts: n }
        }
        ApiError::Unreachable { method, url, message, .. } => {
            ApiError::Unreachable { method, url, message, attempts: n }
        }
    }
}

/// CPU quantity (`250m`, `1`, `0.5`, `53124567n`, `1500u`) in cores.
pub fn parse_cpu_cores(q: &str) -> Option<f64> {
    let q = q.trim();
    let (num, scale) = match q.as_bytes().last()? {
        b'n' => (&q[..q.len() - 1], 1e-9),
        b'u' => (&q[..q.len() - 1], 1e-6),
        b'm' => (&q[..q.len() - 1], 1e-3),
        _ => (q, 1.0),
    };
    num.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0).map(|v| v * scale)
}

/// Memory quantity (`64Mi`, `31234Ki`, `1Gi`, `128974848`, `100M`) in MiB.
pub fn parse_memory_mib(q: &str) -> Option<f64> {
    let q = q.trim();
    const UNITS: [(&str, f64); 8] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let (num, mult) = UNITS.iter().find_map(|(u, m)| q.strip_suffix(u).map(|n| (n, *m))).unwrap_or((q, 1.0));
    num.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0).map(|v| v * mult / 1048576.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_cpu_cores("250m"), Some(0.25));
        assert_eq!(parse_cpu_cores("2"), Some(2.0));
        assert!((parse_cpu_cores("53124567n").unwrap() - 0.053124567).abs() < 1e-12);
        assert!((parse_cpu_cores("1500u").unwrap() - 0.0015).abs() < 1e-12);
        assert_eq!(parse_cpu_cores("lots"), None);
        assert_eq!(parse_cpu_cores("-1"), None);
        assert_eq!(parse_memory_mib("64Mi"), Some(64.0));
        assert_eq!(parse_memory_mib("1Gi"), Some(1024.0));
        assert_eq!(parse_memory_mib("2048Ki"), Some(2.0));
        assert_eq!(parse_memory_mib("1048576"), Some(1.0));
    }

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        let c = Connection::new("http://x/", Some(s));
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.base_url, "http://x");
    }
}
