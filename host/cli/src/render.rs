//! Output: JSON documents, tables, tokens and headers in each format, outcome lines.

use std::io::Write;

use qlam_host::api::CacheControl;
use qlam_host::Outcome;
use serde_json::{json, Map, Value};

use crate::args::TokenFormat;

use crate::app::Ctx;
use crate::commands::auth::KubeExecInfo;
use crate::exit::Exit;

pub(crate) fn print_json(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, v);
    let _ = writeln!(out);
}

pub(crate) fn outcome_json(o: &Outcome) -> Value {
    let mut v = json!({"provider": o.provider, "ok": o.result.is_ok()});
    match &o.result {
        Ok(done) => v["done"] = json!(done),
        Err(e) => v["error"] = json!({"kind": e.kind_name(), "message": e.message()}),
    }
    v["warnings"] = json!(o.warnings);
    v
}

/// Prints best-effort outcomes; exit 1 when any failed.
pub(crate) fn report(
    ctx: &Ctx,
    outcomes: &[Outcome],
    verb: &str,
    done_text: &str,
    not_done_text: &str,
    detail: &dyn Fn(&str) -> String,
) -> Exit {
    for o in outcomes {
        for w in &o.warnings {
            eprintln!("warning: {}: {w}", o.provider);
        }
        match &o.result {
            Ok(true) => eprintln!("{done_text} `{}`{}", o.provider, detail(&o.provider)),
            Ok(false) => eprintln!("`{}`: {not_done_text}", o.provider),
            Err(e) => eprintln!("error: {verb} `{}` failed: {}", o.provider, e.message()),
        }
    }
    if ctx.json() {
        print_json(&Value::Array(outcomes.iter().map(outcome_json).collect()));
    }
    if outcomes.iter().any(|o| o.result.is_err()) {
        Exit::Error
    } else {
        Exit::Ok
    }
}

/// ` at github.com as octocat`: which site and account a login reached, as `gh auth login`
/// says, from the provider's auth context (`site`; `username`, else `email`, else `subject`).
pub(crate) fn account_detail(context: Option<Map<String, Value>>) -> String {
    let Some(c) = context else {
        return String::new();
    };
    let text = |k: &str| c.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let mut out = String::new();
    if let Some(site) = text("site") {
        out.push_str(&format!(" at {site}"));
    }
    if let Some(who) = text("username").or(text("email")).or(text("subject")) {
        out.push_str(&format!(" as {who}"));
    }
    out
}

pub(crate) fn expires_at(c: CacheControl) -> Value {
    match c {
        CacheControl::Until(t) => json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        _ => Value::Null,
    }
}

pub(crate) fn print_token(
    json_output: bool,
    t: &qlam_host::api::Token,
    format: Option<TokenFormat>,
) {
    let format = format.unwrap_or(if json_output {
        TokenFormat::Json
    } else {
        TokenFormat::Raw
    });
    match format {
        TokenFormat::Raw => outln!("{}", t.token.expose()),
        TokenFormat::Json => {
            print_json(&json!({"token": t.token.expose(), "expires_at": expires_at(t.cache)}))
        }
        // Answered from the credential model instead (`aws_process`).
        TokenFormat::AwsProcess => unreachable!("aws-process is not a token format"),
        TokenFormat::ExecCredential => {
            let mut status = json!({"token": t.token.expose()});
            let exp = expires_at(t.cache);
            if !exp.is_null() {
                status["expirationTimestamp"] = exp;
            }
            print_json(&json!({
                "apiVersion": KubeExecInfo::from_env().api_version,
                "kind": "ExecCredential",
                "status": status,
            }))
        }
    }
}

pub(crate) fn print_headers(json_output: bool, h: &qlam_host::api::Headers) {
    if json_output {
        let map: serde_json::Map<String, Value> = h
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), json!(v.expose())))
            .collect();
        print_json(&Value::Object(map));
    } else {
        let mut out = std::io::stdout().lock();
        for (k, v) in &h.headers {
            let _ = writeln!(out, "{k}: {}", v.expose());
        }
    }
}

pub(crate) fn print_table<const N: usize>(headers: &[&str; N], rows: &[[String; N]]) {
    let mut widths = headers.map(|h| h.chars().count());
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_owned()
    };
    // The whole table in one write (stdout writes line by line: 100 writes for 100 rows).
    let mut table = line(headers.to_vec()) + "\n";
    for r in rows {
        table += &line(r.iter().map(String::as_str).collect());
        table.push('\n');
    }
    let _ = std::io::stdout().lock().write_all(table.as_bytes());
}
