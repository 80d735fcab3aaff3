//! Validated names: namespaces, worker ids and process incarnations.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest namespace or worker id accepted, in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// Why a namespace or worker id was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The id is empty.
    #[error("{what} is empty; give a short name such as `orders` or `worker-1`")]
    Empty {
        /// `"namespace"` or `"worker id"`.
        what: &'static str,
    },
    /// The id is longer than [`MAX_ID_BYTES`].
    #[error("{what} `{value}…` is {len} bytes; the limit is {MAX_ID_BYTES}")]
    TooLong {
        /// `"namespace"` or `"worker id"`.
        what: &'static str,
        /// The first characters of the id.
        value: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The id contains a character that would break the key layout.
    #[error("{what} `{value}` contains {problem}; use letters, digits, `-`, `_`, `.` or `:`")]
    BadCharacter {
        /// `"namespace"` or `"worker id"`.
        what: &'static str,
        /// The id as given (control characters escaped).
        value: String,
        /// What is wrong (`"/"`, `".."`, a control character).
        problem: &'static str,
    },
}

fn validate(what: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { what });
    }
    if value.len() > MAX_ID_BYTES {
        let prefix: String = value.chars().take(32).collect();
        return Err(IdError::TooLong {
            what,
            value: prefix,
            len: value.len(),
        });
    }
    let problem = if value.contains('/') || value.contains('\\') {
        Some("a path separator")
    } else if value.contains("..") || value == "." {
        Some("`..` or `.`, which could escape the namespace")
    } else if value.chars().any(char::is_control) {
        Some("a control character")
    } else if value.chars().any(char::is_whitespace) {
        Some("whitespace")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(IdError::BadCharacter {
            what,
            value: value.escape_default().to_string(),
            problem,
        }),
        None => Ok(()),
    }
}

macro_rules! validated_id {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `value`.
            ///
            /// # Errors
            /// [`IdError`] if it is empty, longer than [`MAX_ID_BYTES`], or
            /// contains `/`, `\`, `..`, whitespace or a control character.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                validate($what, &value)?;
                Ok(Self(value))
            }

            /// The id as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(value: &str) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::new(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

validated_id!(
    /// A namespace: one election, one roster, one key prefix.
    ///
    /// ```
    /// use coordinator_core::Namespace;
    /// assert!(Namespace::new("orders").is_ok());
    /// assert!(Namespace::new("../etc").is_err());
    /// ```
    Namespace,
    "namespace"
);

validated_id!(
    /// A worker's stable name, unique among the live workers of a namespace
    /// (two processes sharing one is detected and logged, see
    /// [`Event::DuplicateWorkerId`](crate::Event::DuplicateWorkerId)).
    ///
    /// ```
    /// use coordinator_core::WorkerId;
    /// assert!(WorkerId::new("worker-1").is_ok());
    /// assert!(WorkerId::new("a/b").is_err());
    /// ```
    WorkerId,
    "worker id"
);

/// A random number drawn once per process: tells apart two processes that
/// were (wrongly) given the same worker id, and a restarted process from its
/// previous life.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Incarnation(pub u64);

impl fmt::Debug for Incarnation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Display for Incarnation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Who a process is: its worker id plus its incarnation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Identity {
    /// The stable, configured name.
    pub worker_id: WorkerId,
    /// This process's random incarnation.
    pub incarnation: Incarnation,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_would_break_the_layout() {
        assert!(matches!(Namespace::new(""), Err(IdError::Empty { .. })));
        assert!(matches!(
            WorkerId::new("x".repeat(129)),
            Err(IdError::TooLong { len: 129, .. })
        ));
        assert!(WorkerId::new("x".repeat(128)).is_ok());
        for bad in ["a/b", "..", "a..b", "a\nb", "a\u{7f}", "a b", ".", "a\\b"] {
            let err = WorkerId::new(bad).unwrap_err();
            assert!(
                matches!(err, IdError::BadCharacter { .. }),
                "{bad:?}: {err}"
            );
        }
        for good in ["worker-1", "pod_7.node:3", "été"] {
            assert!(Namespace::new(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn errors_name_the_field_and_serde_validates() {
        let msg = Namespace::new("a/b").unwrap_err().to_string();
        assert!(msg.contains("namespace") && msg.contains("a/b"), "{msg}");
        assert!(serde_json::from_str::<WorkerId>("\"ok\"").is_ok());
        assert!(serde_json::from_str::<WorkerId>("\"../x\"").is_err());
    }
}
