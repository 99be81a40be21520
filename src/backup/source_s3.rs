//! S3-compatible object stores: the newest object whose key starts with a prefix, by
//! last-modified time, through `object_store` (its signing, retries and the standard AWS
//! environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`).

use std::time::Duration;

use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, RetryConfig};

use super::{CheckError, Found, Reason};
use crate::config::{is_loopback_url, S3Options};
use crate::target::{read_password_file, PasswordSource, Secret};

/// The newest object under `bucket`/`prefix`. `prefix` need not end at a `/`: `db/orders-`
/// matches `db/orders-2024.rdb`.
pub async fn newest(
    bucket: &str,
    prefix: &str,
    options: &S3Options,
    timeout: Duration,
) -> Result<Found, CheckError> {
    let secret = match &options.secret_access_key {
        Some(source) => Some(read_secret(source)?),
        None => None,
    };
    let scrub = |message: String| match &secret {
        Some(secret) if !secret.expose().is_empty() => {
            message.replace(secret.expose(), "<redacted>")
        }
        _ => message,
    };
    let store = builder(bucket, options, secret.as_ref(), timeout)
        .build()
        .map_err(|e| classify(&e, &scrub))?;
    // List the folder holding the prefix and filter by the whole prefix: object_store lists
    // whole path segments only.
    let folder = prefix.rsplit_once('/').map_or("", |(folder, _)| folder);
    let folder = if folder.is_empty() {
        None
    } else {
        Some(Path::parse(folder).map_err(|e| {
            CheckError::new(
                Reason::Other,
                format!("prefix {prefix:?} is not a valid key: {e}"),
            )
        })?)
    };
    let mut listing = store.list(folder.as_ref());
    // S3 keeps `LastModified` to the second, so two backups written within one second tie;
    // the greater key wins then, because backup names carry their time and sort by it.
    let mut newest: Option<(Found, String)> = None;
    while let Some(item) = listing.next().await {
        let meta = item.map_err(|e| classify(&e, &scrub))?;
        if !meta.location.as_ref().starts_with(prefix) {
            continue;
        }
        let found = Found {
            modified_unix: meta.last_modified.timestamp_millis() as f64 / 1000.0,
            size_bytes: meta.size,
        };
        let key = meta.location.as_ref();
        let newer = newest.as_ref().is_none_or(|(n, newest_key)| {
            (found.modified_unix, key) > (n.modified_unix, newest_key.as_str())
        });
        if newer {
            newest = Some((found, key.to_owned()));
        }
    }
    newest.map(|(found, _)| found).ok_or_else(|| {
        CheckError::new(
            Reason::NotFound,
            format!("no object under s3://{bucket}/{prefix}"),
        )
    })
}

fn builder(
    bucket: &str,
    options: &S3Options,
    secret: Option<&Secret>,
    timeout: Duration,
) -> AmazonS3Builder {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        // One attempt per check: the next check is refresh_interval away anyway, and the
        // default (10 retries over 3 minutes) would outlast the check's timeout.
        .with_retry(RetryConfig {
            max_retries: 0,
            retry_timeout: timeout,
            ..RetryConfig::default()
        })
        .with_client_options(ClientOptions::new().with_timeout(timeout));
    if let Some(endpoint) = &options.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &options.region {
        builder = builder.with_region(region);
    }
    if let (Some(id), Some(secret)) = (&options.access_key_id, secret) {
        builder = builder
            .with_access_key_id(id)
            .with_secret_access_key(secret.expose());
    }
    // Plain HTTP only to this machine (a local test server): never across a network.
    let endpoint = options
        .endpoint
        .clone()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .or_else(|| std::env::var("AWS_ENDPOINT").ok());
    let loopback_http = endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://") && is_loopback_url(e));
    builder.with_allow_http(options.allow_http || loopback_http)
}

fn read_secret(source: &PasswordSource) -> Result<Secret, CheckError> {
    match source {
        PasswordSource::Inline(secret) => Ok(secret.clone()),
        PasswordSource::File(path) => read_password_file(path).map_err(|e| {
            CheckError::new(
                Reason::Auth,
                format!("secret_access_key_file {}: {e}", path.display()),
            )
        }),
        PasswordSource::Env(name) => std::env::var(name).map(Secret::new).map_err(|_| {
            CheckError::new(
                Reason::Auth,
                format!("secret_access_key_env {name} is not set"),
            )
        }),
    }
}

/// Maps a store error to its bounded reason. S3 list errors arrive as `Generic` with the
/// HTTP status and the S3 error code in the text, hence the text match.
fn classify(error: &object_store::Error, scrub: &dyn Fn(String) -> String) -> CheckError {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    let reason = match error {
        object_store::Error::NotFound { .. } => Reason::NotFound,
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => Reason::Auth,
        _ => reason_from_text(&text),
    };
    // Bodies can be long XML; the first few hundred characters carry the code and message.
    let text: String = scrub(text).chars().take(400).collect();
    CheckError::new(reason, text)
}

fn reason_from_text(text: &str) -> Reason {
    const AUTH: &[&str] = &[
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "ExpiredToken",
        "403 Forbidden",
        "401 Unauthorized",
    ];
    if text.contains("NoSuchBucket") || text.contains("404 Not Found") {
        Reason::NotFound
    } else if AUTH.iter().any(|code| text.contains(code)) {
        Reason::Auth
    } else if text.contains("timed out") || text.contains("timeout") {
        Reason::Timeout
    } else if text.contains("error sending request")
        || text.contains("connect")
        || text.contains("HTTP error")
    {
        Reason::Io
    } else {
        Reason::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_error_codes_map_to_bounded_reasons() {
        for (text, reason) in [
            (
                "Client error with status 404 Not Found: <Code>NoSuchBucket</Code>",
                Reason::NotFound,
            ),
            ("<Code>InvalidAccessKeyId</Code>", Reason::Auth),
            ("<Code>SignatureDoesNotMatch</Code>", Reason::Auth),
            ("error sending request: client error (Connect)", Reason::Io),
            ("operation timed out", Reason::Timeout),
            ("something odd", Reason::Other),
        ] {
            assert_eq!(reason_from_text(text), reason, "{text}");
        }
    }

    #[test]
    fn a_missing_secret_says_where_without_a_value() {
        let error =
            read_secret(&PasswordSource::Env("BACKUP_TEST_UNSET_VARIABLE".into())).unwrap_err();
        assert_eq!(error.reason, Reason::Auth);
        assert!(error.message.contains("BACKUP_TEST_UNSET_VARIABLE"));
    }
}
