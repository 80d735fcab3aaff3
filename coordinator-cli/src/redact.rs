//! Keeping secrets out of everything the binary prints.
//!
//! Two layers: URLs are shown with their password and signing parameters
//! replaced by `***` ([`url()`]); and every line printed (stdout and stderr)
//! passes through [`text`], which replaces the value of every registered
//! secret: the password of the store URL, and the value of every
//! environment variable whose name says it holds a credential
//! (`AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AZURE_STORAGE_ACCOUNT_KEY`,
//! anything with `SECRET`, `TOKEN`, `PASSWORD`, `CREDENTIAL` or `KEY` in its
//! name). Store errors quote the URL they were given, so the second layer is
//! what keeps a password in `s3://user:pass@bucket` out of an error message.

use std::sync::{Mutex, PoisonError};

/// The placeholder for a removed secret.
pub(crate) const MASK: &str = "***";

static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Whether an environment variable's name says it holds a credential.
pub(crate) fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "KEY", "SAS", "SIGNATURE"]
        .iter()
        .any(|word| upper.contains(word))
        // Key ids and names of files are not secrets; their values are
        // shown as they are.
        && !upper.ends_with("_KEY_ID")
        && !upper.ends_with("_PATH")
        && !upper.ends_with("_FILE")
}

/// Registers a secret value (ignored when shorter than 6 bytes: masking
/// `test`, moto's dummy key, everywhere would garble output without
/// protecting anything).
pub(crate) fn register(secret: &str) {
    if secret.len() < 6 {
        return;
    }
    let mut secrets = SECRETS.lock().unwrap_or_else(PoisonError::into_inner);
    if !secrets.iter().any(|s| s == secret) {
        secrets.push(secret.to_owned());
        // Longest first, so a secret containing another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Registers the values of the credential variables of the environment.
pub(crate) fn register_env() {
    for (name, value) in std::env::vars() {
        if is_secret_name(&name) {
            register(&value);
        }
    }
}

/// `message` with every registered secret replaced by [`MASK`].
pub(crate) fn text(message: &str) -> String {
    let secrets = SECRETS.lock().unwrap_or_else(PoisonError::into_inner);
    let mut out = message.to_owned();
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    out
}

/// Query parameters that carry a signature or a credential.
fn is_secret_param(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("x-amz-")
        || [
            "sig",
            "signature",
            "token",
            "secret",
            "password",
            "key",
            "sas",
            "credential",
        ]
        .iter()
        .any(|word| lower.contains(word))
}

/// A URL fit to print: the password (and a user name that came with one)
/// and any signing or credential parameter become [`MASK`], and each is
/// registered so that it is masked wherever else it appears. A string that
/// is not a URL is returned as it is.
pub(crate) fn url(raw: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(raw) else {
        return raw.to_owned();
    };
    if let Some(password) = parsed.password() {
        let decoded = percent_decoded(password);
        register(password);
        register(&decoded);
        let _ = parsed.set_password(Some(MASK));
    }
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if pairs.iter().any(|(k, _)| is_secret_param(k)) {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &pairs {
            if is_secret_param(k) {
                register(v);
                query.append_pair(k, MASK);
            } else {
                query.append_pair(k, v);
            }
        }
        parsed.set_query(Some(&query.finish()));
    }
    parsed.to_string()
}

fn percent_decoded(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_passwords_and_signatures() {
        let shown = url("s3://user:hunter2hunter2@bucket/prefix?endpoint=http://x:9000&X-Amz-Signature=abcdef123");
        assert!(!shown.contains("hunter2hunter2"), "{shown}");
        assert!(!shown.contains("abcdef123"), "{shown}");
        assert!(shown.contains("endpoint="), "{shown}");
        // Registered: masked in any later text too.
        assert_eq!(text("error at hunter2hunter2!"), "error at ***!");
    }

    #[test]
    fn secret_names() {
        assert!(is_secret_name("AWS_SECRET_ACCESS_KEY"));
        assert!(is_secret_name("AWS_SESSION_TOKEN"));
        assert!(is_secret_name("AZURE_STORAGE_ACCOUNT_KEY"));
        assert!(!is_secret_name("AWS_ACCESS_KEY_ID"));
        assert!(!is_secret_name("AWS_REGION"));
        assert!(!is_secret_name("GOOGLE_SERVICE_ACCOUNT_PATH"));
    }
}
