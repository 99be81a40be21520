//! HTTP from the tests: plain GETs with reqwest, `/metrics` scrapes, and `curl` for HTTPS
//! (reqwest is built without TLS here).

use std::fs;
use std::time::Duration;

use serde_json::Value;

use super::pki::s;
use super::process::run;

/// A blocking client with a `timeout` on every request.
pub fn http_client(timeout: Duration) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(timeout)
        .build()
        .expect("http client")
}

/// GET `url` with `query`: the body of a 2xx response, else an error text.
pub fn get_text(url: &str, query: &[(&str, &str)]) -> Result<String, String> {
    let response = http_client(Duration::from_secs(5))
        .get(url)
        .query(query)
        .send()
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status();
    let body = response
        .text()
        .map_err(|e| format!("GET {url}: body: {e}"))?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("GET {url}: {status}: {body}"))
    }
}

/// [`get_text`] parsed as JSON.
pub fn get_json(url: &str, query: &[(&str, &str)]) -> Result<Value, String> {
    let body = get_text(url, query)?;
    serde_json::from_str(&body).map_err(|e| format!("GET {url}: not JSON ({e}): {body}"))
}

/// `GET http://127.0.0.1:<port><path>`: the body of a 2xx response.
pub fn http_get(port: u16, path: &str) -> Result<String, String> {
    get_text(&format!("http://127.0.0.1:{port}{path}"), &[])
}

/// One HTTP response from `/metrics`.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// HTTP status code.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: String,
}

/// `GET http://127.0.0.1:<port>/metrics`.
pub fn try_scrape(port: u16) -> Result<Scrape, String> {
    let response = http_client(Duration::from_secs(5))
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.text().map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("HTTP {status}: {body}"));
    }
    Ok(Scrape {
        status,
        content_type,
        body,
    })
}

/// The body of `/metrics` on `port`; panics if the scrape fails.
pub fn scrape(port: u16) -> String {
    try_scrape(port)
        .unwrap_or_else(|e| panic!("scrape of port {port} failed: {e}"))
        .body
}

/// The outcome of one `curl` call.
#[derive(Debug)]
pub struct CurlReply {
    /// The HTTP status, or `None` when no HTTP answer came (TLS or connection failure).
    pub status: Option<u16>,
    /// The response headers as received.
    pub headers: String,
    /// The body.
    pub body: String,
    /// curl's stderr, for messages.
    pub error: String,
}

/// Runs `curl` with `args` plus the output plumbing; never panics on HTTP errors.
pub fn curl(args: &[&str]) -> CurlReply {
    let dir = tempfile::tempdir().unwrap();
    let (headers, body) = (dir.path().join("h"), dir.path().join("b"));
    let mut all = vec![
        "-sS",
        "--max-time",
        "60",
        "-D",
        s(&headers),
        "-o",
        s(&body),
        "-w",
        "%{http_code}",
    ];
    all.extend_from_slice(args);
    let out = run("curl", &all);
    let code = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|c| *c != 0);
    CurlReply {
        status: code.filter(|_| out.status.success()),
        headers: fs::read_to_string(&headers).unwrap_or_default(),
        body: fs::read_to_string(&body).unwrap_or_default(),
        error: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
