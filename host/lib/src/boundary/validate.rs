//! What a provider returns is input. The rules every value meets before the host caches,
//! prints or hands it to another tool:
//!
//! - **Rejected** when wrong, because another program acts on them: header names (RFC 9110
//!   tokens), header values (no control character but tab: a CR/LF would be a second header),
//!   tokens (no control character, not empty: a line feed in a token is a forged `password=`
//!   line for git, as in git's CVE-2020-5260), every string of a credential model (usernames
//!   reach git and docker), provider type names (the config's name rules).
//! - **Escaped** when shown, because only a person reads them: descriptions, error messages,
//!   warnings, extra info and auth context. A control character becomes `\n`, `\u{1b}`…, so
//!   no provider can forge a line or move the cursor of the terminal it is shown on.
//!
//! A rejection says what is wrong and where (`header #2's name`), never the value: a rejected
//! value may well be a secret.

use std::borrow::Cow;

use qlam_plugin_api::{Credential, Headers, Interaction, Token};
use serde_json::{Map, Value};

/// The bytes RFC 9110 §5.6.2 allows in a token (a header name), besides letters and digits.
const TCHAR_SYMBOLS: &str = "!#$%&'*+-.^_`|~";

/// Why a header name is not one: `None` when it is.
pub(crate) fn header_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || TCHAR_SYMBOLS.contains(c))
    {
        None
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        Some("is not an HTTP token (RFC 9110: letters, digits and !#$%&'*+-.^_`|~)")
    }
}

/// The first control character in `s`, allowing tab where `tab_ok`.
fn control_char(s: &str, tab_ok: bool) -> Option<char> {
    s.chars()
        .find(|&c| c.is_control() && !(tab_ok && c == '\t'))
}

/// How a control character is named in messages: `CR`, `LF`, `NUL` or `U+001B`.
fn char_name(c: char) -> String {
    match c {
        '\r' => "CR".into(),
        '\n' => "LF".into(),
        '\0' => "NUL".into(),
        '\t' => "tab".into(),
        c => format!("U+{:04X}", c as u32),
    }
}

/// Checks a provider's headers: names are tokens, values carry no control character but
/// tab, and no name appears twice (names compare without case, as HTTP does). Merging
/// duplicates would need a rule per header (`Cookie` joins with `; `, most with `, `,
/// `Set-Cookie` never), so a provider that sends one twice gets an error instead.
pub(crate) fn headers(h: &Headers) -> Result<(), String> {
    for (i, (name, value)) in h.headers.iter().enumerate() {
        if let Some(why) = header_name_problem(name) {
            return Err(format!("header #{}'s name {why}", i + 1));
        }
        if let Some(c) = control_char(value.expose(), true) {
            return Err(format!(
                "the value of header `{name}` contains a control character ({})",
                char_name(c)
            ));
        }
        if h.headers[..i]
            .iter()
            .any(|(earlier, _)| earlier.eq_ignore_ascii_case(name))
        {
            return Err(format!(
                "header `{name}` appears more than once (qlam does not merge headers)"
            ));
        }
    }
    Ok(())
}

/// Checks a provider's token: not empty, no control character (tab included).
pub(crate) fn token(t: &Token) -> Result<(), String> {
    let t = t.token.expose();
    if t.is_empty() {
        return Err("the token is empty".into());
    }
    match control_char(t, false) {
        Some(c) => Err(format!(
            "the token contains a control character ({})",
            char_name(c)
        )),
        None => Ok(()),
    }
}

/// Checks every string of a credential model, secrets included: usernames and tokens from it
/// reach git, docker and AWS tools. The error names the field.
pub(crate) fn credential(c: &Credential) -> Result<(), String> {
    let v = serde_json::to_value(c).map_err(|_| "the credential cannot be read".to_owned())?;
    match first_control_char(&v, "") {
        Some((field, ch)) => Err(format!(
            "credential field `{field}` contains a control character ({})",
            char_name(ch)
        )),
        None => Ok(()),
    }
}

/// The path and character of the first string (or object key) in `v` with a control
/// character.
fn first_control_char(v: &Value, at: &str) -> Option<(String, char)> {
    let join = |key: &str| {
        if at.is_empty() {
            key.to_owned()
        } else {
            format!("{at}.{key}")
        }
    };
    match v {
        Value::String(s) => control_char(s, false).map(|c| (at.to_owned(), c)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| first_control_char(x, &join(&i.to_string()))),
        Value::Object(m) => m.iter().find_map(|(k, x)| match control_char(k, false) {
            Some(c) => Some((escape(k).into_owned(), c)),
            None => first_control_char(x, &join(k)),
        }),
        _ => None,
    }
}

/// Provider type names appear in config files, file names and command lines: the same rules
/// as provider names (a letter or digit first, then letters, digits, `-`, `_`, `.`), at most
/// 64 characters.
pub(crate) fn type_name_problem(name: &str) -> Option<&'static str> {
    let mut chars = name.chars();
    if name.is_empty() {
        Some("is empty")
    } else if name.len() > 64 {
        Some("is longer than 64 characters")
    } else if !(chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        Some("must start with a letter or digit and contain only letters, digits, `-`, `_` and `.`")
    } else {
        None
    }
}

/// Display text from a provider, safe for a terminal and a log line: control characters
/// written as escapes (`\n`, `\r`, `\t`, `\u{1b}`), the rest unchanged.
pub(crate) fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Multi-line display text (a loader's report): each line escaped, the line breaks kept.
pub(crate) fn escape_lines(s: &str) -> String {
    s.lines().map(escape).collect::<Vec<_>>().join("\n")
}

/// A provider's request to the user, safe to show: text escaped; the URLs it asks to show or
/// open must be `http(s)` and free of control characters and spaces (a browser, or a
/// `$BROWSER` command, gets them).
pub(crate) fn interaction(request: &Interaction) -> Result<Interaction, String> {
    let url = |what: &str, u: &str| -> Result<String, String> {
        let lower = u.to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://")) {
            return Err(format!("{what} is not an http(s) URL"));
        }
        if u.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!("{what} contains spaces or control characters"));
        }
        Ok(u.to_owned())
    };
    let text = |s: &str| escape(s).into_owned();
    Ok(match request {
        Interaction::ShowVerification {
            verification_uri,
            user_code,
            verification_uri_complete,
        } => Interaction::ShowVerification {
            verification_uri: url("the verification URI", verification_uri)?,
            user_code: text(user_code),
            verification_uri_complete: verification_uri_complete
                .as_deref()
                .map(|u| url("the complete verification URI", u))
                .transpose()?,
        },
        Interaction::OpenUrl { url: u } => Interaction::OpenUrl {
            url: url("the URL to open", u)?,
        },
        Interaction::PromptText { prompt } => Interaction::PromptText {
            prompt: text(prompt),
        },
        Interaction::PromptSecret { prompt } => Interaction::PromptSecret {
            prompt: text(prompt),
        },
        Interaction::Progress { message, done } => Interaction::Progress {
            message: text(message),
            done: *done,
        },
        other => other.clone(),
    })
}

/// A JSON object of display-only facts (extra info, auth context) with every string and key
/// escaped.
pub(crate) fn escape_object(m: Map<String, Value>) -> Map<String, Value> {
    m.into_iter()
        .map(|(k, v)| (escape(&k).into_owned(), escape_value(v)))
        .collect()
}

fn escape_value(v: Value) -> Value {
    match v {
        Value::String(s) => match escape(&s) {
            Cow::Borrowed(_) => Value::String(s),
            Cow::Owned(e) => Value::String(e),
        },
        Value::Array(a) => Value::Array(a.into_iter().map(escape_value).collect()),
        Value::Object(m) => Value::Object(escape_object(m)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qlam_plugin_api::{
        BasicCredential, CacheControl, CredentialDetails, CredentialStatus, Secret,
    };
    use serde_json::json;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        Headers {
            headers: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Secret::new((*v).to_owned())))
                .collect(),
            cache: CacheControl::Never,
        }
    }

    #[test]
    fn header_names_are_tokens() {
        assert!(headers(&h(&[("Authorization", "Bearer x"), ("X-A.b_c~1", "v")])).is_ok());
        for bad in ["", "X B", "X:B", "X-B\r\nEvil", "Ümlaut", "X(B)"] {
            let e = headers(&h(&[("Ok", "1"), (bad, "v")])).unwrap_err();
            assert!(e.starts_with("header #2's name "), "{bad:?}: {e}");
            assert!(!e.contains("Evil"), "the value is not repeated: {e}");
        }
    }

    #[test]
    fn header_values_carry_no_line_breaks() {
        assert!(headers(&h(&[("A", "tab\tand ünïcode are fine")])).is_ok());
        let e = headers(&h(&[("X-B", "v\r\nEvil: 1")])).unwrap_err();
        assert_eq!(
            e,
            "the value of header `X-B` contains a control character (CR)"
        );
        assert!(headers(&h(&[("X-B", "v\0")])).unwrap_err().contains("NUL"));
        assert!(headers(&h(&[("X-B", "v\u{7f}")])).is_err());
        assert!(headers(&h(&[("X-B", "v\u{9b}2J")])).is_err(), "C1 CSI");
    }

    #[test]
    fn duplicate_header_names_are_refused() {
        let e = headers(&h(&[("X-A", "1"), ("x-a", "2")])).unwrap_err();
        assert!(e.contains("`x-a` appears more than once"), "{e}");
    }

    #[test]
    fn tokens_are_one_printable_line() {
        let t = |s: &str| Token {
            token: Secret::new(s.into()),
            cache: CacheControl::Never,
        };
        assert!(token(&t("eyJ.abc-_~+/=")).is_ok());
        assert_eq!(
            token(&t("tok\nusername=attacker")).unwrap_err(),
            "the token contains a control character (LF)"
        );
        assert!(token(&t("a\tb")).is_err());
        assert_eq!(token(&t("")).unwrap_err(), "the token is empty");
    }

    #[test]
    fn credential_strings_are_checked_and_the_field_named() {
        let c = |username: &str| {
            Credential::new(
                "p",
                CredentialStatus::Authenticated,
                CredentialDetails::Basic(BasicCredential {
                    username: username.into(),
                    ..Default::default()
                }),
            )
        };
        assert!(credential(&c("ann")).is_ok());
        assert_eq!(
            credential(&c("me\npassword=stolen")).unwrap_err(),
            "credential field `username` contains a control character (LF)"
        );
    }

    #[test]
    fn type_names_follow_the_config_rules() {
        assert_eq!(type_name_problem("acme-sso.v2"), None);
        for bad in ["", "-x", "bad\nname", "a b", &"x".repeat(65)] {
            assert!(type_name_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn display_text_is_escaped() {
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
        assert_eq!(
            escape("a\nerror: forged\r\u{1b}[2J"),
            "a\\nerror: forged\\r\\u{1b}[2J"
        );
        let m = json!({"k\n": ["x\ny", {"z": "\u{7}"}], "n": 1});
        let Value::Object(m) = m else { unreachable!() };
        assert_eq!(
            Value::Object(escape_object(m)),
            json!({"k\\n": ["x\\ny", {"z": "\\u{7}"}], "n": 1})
        );
    }
}
