//! Log output from plugins: what providers send through `HostServices::log`, and the records of
//! a plugin library's own `log`/`tracing` copies (handed over through the log sink the host
//! installs when it loads the library). Both go through the host's `tracing` filters under the
//! target `qlam::plugin`, after redaction.
//!
//! Redaction is a second line of defence: providers must never log a secret, but the crates
//! they use (HTTP clients, TLS) were not written for our rules. Values that look like
//! credentials are replaced with `[REDACTED]`: the word after `Bearer`/`Basic`/`Negotiate`,
//! and the value of any key or header whose name says token, secret, password, key, code,
//! assertion, cookie, session or authorization.

use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::LazyLock;

use qlam_plugin_api::ffi::FfiLogSink;
use qlam_plugin_api::LogLevel;
use regex::Regex;

const MARK: &str = "[REDACTED]";

static SCHEME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(bearer|basic|negotiate|digest|dpop)(\s+)[A-Za-z0-9._~+/=\-]{4,}")
        .expect("valid pattern")
});

static KEY_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r#"(?i)((?:^|[^A-Za-z0-9])"?[A-Za-z0-9_\-]*"#,
        r"(?:token|secret|passw(?:or)?d|pwd|api[_\-]?key|apikey|private[_\-]?key|assertion|cookie|session|authorization|credential|code|verifier)",
        r#"[A-Za-z0-9_\-]*"?\s*[:=]\s*"?)([^\s"&,;}\]]+)"#
    ))
    .expect("valid pattern")
});

/// `message` with anything that looks like a credential replaced by `[REDACTED]`.
pub fn redact(message: &str) -> Cow<'_, str> {
    let step = SCHEME.replace_all(message, |c: &regex::Captures<'_>| {
        format!("{}{}{MARK}", &c[1], &c[2])
    });
    match KEY_VALUE.replace_all(&step, |c: &regex::Captures<'_>| {
        let value = &c[2];
        let scheme = ["bearer", "basic", "negotiate", "digest", "dpop"]
            .iter()
            .any(|w| value.eq_ignore_ascii_case(w));
        if scheme || value.starts_with(MARK) {
            c[0].to_owned()
        } else {
            format!("{}{MARK}", &c[1])
        }
    }) {
        Cow::Borrowed(_) => step,
        Cow::Owned(s) => Cow::Owned(s),
    }
}

/// Emits one plugin log line through the host's `tracing` subscriber.
pub(crate) fn emit(level: LogLevel, source: &str, message: &str) {
    let redacted = redact(message);
    let message = crate::boundary::validate::escape(&redacted);
    let source = crate::boundary::validate::escape(source);
    if let Some(&max) = FORWARD.get() {
        // An isolated plugin's process: one line per record on stderr, which the parent
        // reads and logs under its own filter (`level<TAB>source<TAB>message`).
        if level.code() >= max {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "{}\t{source}\t{message}", level.code());
        }
        return;
    }
    match level {
        LogLevel::Trace => tracing::trace!(target: "qlam::plugin", "{source}: {message}"),
        LogLevel::Debug => tracing::debug!(target: "qlam::plugin", "{source}: {message}"),
        LogLevel::Info => tracing::info!(target: "qlam::plugin", "{source}: {message}"),
        LogLevel::Warn => tracing::warn!(target: "qlam::plugin", "{source}: {message}"),
        LogLevel::Error => tracing::error!(target: "qlam::plugin", "{source}: {message}"),
    }
}

extern "C" fn sink(
    level: u8,
    target: abi_stable::std_types::RStr<'_>,
    message: abi_stable::std_types::RStr<'_>,
) {
    // Called from plugin code through `extern "C"`: a panic here must not unwind.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        emit(
            LogLevel::from_code(level),
            target.as_str(),
            message.as_str(),
        )
    }));
}

/// In an isolated plugin's process: the most verbose level (a [`LogLevel`] code) the parent
/// wants; records go to stderr as lines (see [`emit`]).
static FORWARD: std::sync::OnceLock<u8> = std::sync::OnceLock::new();

/// Makes this process forward plugin log records to stderr (an isolated plugin's process).
pub(crate) fn forward_to_stderr(max_level: u8) {
    let _ = FORWARD.set(max_level);
}

/// The most verbose level the host's filter lets through, as a [`LogLevel`] code (5: none).
pub(crate) fn max_level() -> u8 {
    use tracing::level_filters::LevelFilter;
    if let Some(&max) = FORWARD.get() {
        return max;
    }
    match LevelFilter::current() {
        LevelFilter::TRACE => LogLevel::Trace.code(),
        LevelFilter::DEBUG => LogLevel::Debug.code(),
        LevelFilter::INFO => LogLevel::Info.code(),
        LevelFilter::WARN => LogLevel::Warn.code(),
        LevelFilter::ERROR => LogLevel::Error.code(),
        _ => 5,
    }
}

/// Logs a line an isolated plugin's process wrote to stderr: a record forwarded by [`emit`]
/// there, or anything else it printed (the runtime's last words before an abort), at debug.
pub(crate) fn emit_child_line(source: &str, line: &str) {
    let mut parts = line.splitn(3, '\t');
    match (
        parts.next().and_then(|l| l.parse::<u8>().ok()),
        parts.next(),
        parts.next(),
    ) {
        (Some(level), Some(from), Some(message)) if level <= 4 => {
            emit(LogLevel::from_code(level), from, message)
        }
        _ => emit(LogLevel::Debug, source, line),
    }
}

/// The sink for a newly loaded library, asking for what the host's filter lets through.
pub(crate) fn sink_for_plugins() -> FfiLogSink {
    FfiLogSink {
        max_level: max_level(),
        log: sink,
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn credentials_are_redacted() {
        let cases = [
            (
                "Authorization: Bearer abc.def-ghi",
                "Authorization: Bearer [REDACTED]",
            ),
            (
                "sending bearer eyJhbGciOi.x.y now",
                "sending bearer [REDACTED] now",
            ),
            (
                "body access_token=CANARY1&x=1",
                "body access_token=[REDACTED]&x=1",
            ),
            (
                r#"{"refresh_token":"CANARY2","expires_in":3}"#,
                r#"{"refresh_token":"[REDACTED]","expires_in":3}"#,
            ),
            ("password: hunter2", "password: [REDACTED]"),
            ("client_secret = s3cr3t", "client_secret = [REDACTED]"),
            (
                "GET /cb?code=CANARY3&state=s",
                "GET /cb?code=[REDACTED]&state=s",
            ),
            ("x-api-key: k-123", "x-api-key: [REDACTED]"),
            ("Cookie: sid=1", "Cookie: [REDACTED]"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "input: {input}");
        }
    }

    #[test]
    fn ordinary_text_is_untouched() {
        for s in [
            "connecting to 127.0.0.1:443",
            "discovery: GET https://idp/.well-known/openid-configuration",
            "refreshing the access token (expires in 30 s)",
            "token endpoint answered 200",
        ] {
            assert_eq!(redact(s), s);
        }
    }
}
