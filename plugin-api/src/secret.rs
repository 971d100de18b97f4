//! A wrapper that keeps secret values out of `Debug`, logs and error messages.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret value: a token, a password, a refresh token, a client secret.
///
/// `Secret` has no `Display`, and its `Debug` prints `REDACTED`, so a secret that ends up in a
/// `{:?}` (a log line, a panic message, a derived `Debug` of a struct that holds it) does not
/// leak. Reading the value is explicit: [`Secret::expose`].
///
/// It serializes as the bare value, because credentials cross the plugin boundary as JSON;
/// the host redacts them before showing a credential to a person.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The secret value. Call this only where the value is sent or stored.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.0
    }

    /// Transforms the value without exposing it to formatting.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Secret<U> {
        Secret(f(self.0))
    }
}

impl Secret<String> {
    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret<String> {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("REDACTED")
    }
}

impl<T: Serialize> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("canary-7f3a".to_string());
        assert_eq!(format!("{s:?}"), "REDACTED");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            token: Secret<String>,
            other: Option<Secret<String>>,
        }
        let h = Holder {
            token: s.clone(),
            other: Some(s),
        };
        let text = format!("{h:?} {h:#?}");
        assert!(!text.contains("canary"), "{text}");
    }

    #[test]
    fn serializes_as_bare_value() {
        let s = Secret::new("v".to_string());
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"v\"");
        let back: Secret<String> = serde_json::from_str("\"v\"").unwrap();
        assert_eq!(back.expose(), "v");
    }
}
