//! The `qlam` command: runs one command and returns its exit code.

/// `println!` for command results: a closed stdout (`qlam … | head`) is not an error worth a
/// panic; the command's exit code still says how it went.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{CommandFactory, Parser};
use qlam_host::api::{CacheControl, LoginOptions};
use qlam_host::config::{self, Config};
use qlam_host::plugins::hashes::PluginHashes;
use qlam_host::plugins::{LibraryOutcome, Registry};
use qlam_host::{paths, AuthClient, Error, Outcome};
use serde_json::{json, Map, Value};

use crate::args::{
    AuthCommand, Cli, Command, ConfigCommand, ContextCommand, Flow, OutputFormat, PluginsCommand,
    TokenFormat,
};
use crate::{helpers, plugin_admin};

pub fn main() -> i32 {
    // An isolated provider's process (`isolation = "process"`): the parent speaks to it over
    // stdin and stdout, so nothing else of the CLI runs.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == qlam_host::CHILD_SUBCOMMAND)
    {
        return qlam_host::serve_isolated_plugin();
    }
    if let Some(code) = help_fast_path().or_else(fast_path) {
        return code;
    }
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Docker runs credential helpers as `docker-credential-NAME ACTION`: a link named
    // `docker-credential-qlam` to qlam is `qlam credential-helper docker ACTION`.
    if args
        .first()
        .and_then(|a| std::path::Path::new(a).file_stem())
        == Some(std::ffi::OsStr::new("docker-credential-qlam"))
    {
        args.splice(1..1, ["credential-helper".into(), "docker".into()]);
    }
    // Cargo runs a credential provider as `PROGRAM --cargo-plugin` (the rest of its
    // `credential-provider` setting comes in each request's `args`).
    if args.get(1).is_some_and(|a| a == "--cargo-plugin") {
        args.splice(1..1, ["credential-helper".into(), "cargo".into()]);
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    init_logging(cli.verbose);
    let output = cli.output;
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", e.message());
            if output == OutputFormat::Json {
                print_json(&json!({"error": {"kind": e.kind_name(), "message": e.message()}}));
            }
            e.exit_code()
        }
    }
}

/// `qlam --help` and `qlam -h`, as clap renders them for a pipe (no colour, 100 columns),
/// stored in the source (a test keeps the copies equal to clap's output): building clap's
/// command tree and rendering is most of such a run. Not taken for a terminal (colours, its
/// width) or when `COLUMNS` or `CLICOLOR_FORCE` would change the output.
fn help_fast_path() -> Option<i32> {
    use std::io::IsTerminal;
    let mut args = std::env::args_os().skip(1);
    let text = match args.next()?.to_str()? {
        "--help" => HELP_LONG,
        "-h" => HELP_SHORT,
        _ => return None,
    };
    if args.next().is_some()
        || std::io::stdout().is_terminal()
        || std::env::var_os("COLUMNS").is_some()
        || std::env::var_os("CLICOLOR_FORCE").is_some()
    {
        return None;
    }
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Some(0)
}

/// What `qlam --help` prints to a pipe.
const HELP_LONG: &str = include_str!("help-long.txt");
/// What `qlam -h` prints to a pipe.
const HELP_SHORT: &str = include_str!("help-short.txt");

/// `qlam [global options] auth token|headers NAME [--format F]` with an answer still valid:
/// served before clap (whose command tree is a third of the work of such a run), from
/// configuration and store alone. Anything else, or any doubt, returns `None` and the normal
/// path runs (and reports errors properly).
fn fast_path() -> Option<i32> {
    if std::env::var_os("QLAM_LOG").is_some() {
        return None;
    }
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string().ok())
        .collect::<Option<_>>()?;
    let (mut config, mut context, mut output, mut format) = (None, None, None, None);
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
            _ => (a.as_str(), None),
        };
        let mut value = || inline.clone().or_else(|| it.next().cloned());
        match name {
            "--config" => config = Some(value()?),
            "--context" => context = Some(value()?),
            "--plugin-dir" => drop(value()?),
            "--output" => output = Some(value()?),
            "--format" => format = Some(value()?),
            s if s.starts_with('-') => return None,
            _ => positional.push(a.as_str()),
        }
    }
    let json_output = match output.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(_) => return None,
    };
    let ["auth", command, provider] = positional.as_slice() else {
        return None;
    };
    let mut b = AuthClient::builder();
    if let Some(c) = config {
        b = b.config_file(c);
    }
    if let Some(c) = context {
        b = b.context(c);
    }
    let client = b.build().ok()?;
    match (*command, format.as_deref()) {
        ("token", f) => {
            let format = match f {
                None => None,
                Some("raw") => Some(TokenFormat::Raw),
                Some("json") => Some(TokenFormat::Json),
                Some("exec-credential") => Some(TokenFormat::ExecCredential),
                Some(_) => return None,
            };
            print_token(json_output, &client.cached_token(provider)?, format);
        }
        ("headers", None) => print_headers(json_output, &client.cached_headers(provider)?),
        _ => return None,
    }
    Some(0)
}

fn init_logging(verbose: u8) {
    let filter = std::env::var("QLAM_LOG")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            match verbose {
                0 => "warn",
                1 => "debug",
                _ => "trace",
            }
            .to_owned()
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .event_format(Plain {
            show_target: verbose > 1,
        })
        .try_init();
}

/// Log lines like the CLI's own messages: `warning: …`, `debug: …` (with the target at -vv).
struct Plain {
    show_target: bool,
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Plain
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            tracing::Level::INFO => "info",
            tracing::Level::DEBUG => "debug",
            tracing::Level::TRACE => "trace",
        };
        write!(writer, "{level}: ")?;
        if self.show_target {
            write!(writer, "{}: ", event.metadata().target())?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

pub(crate) fn print_json(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, v);
    let _ = writeln!(out);
}

pub(crate) struct Ctx {
    pub(crate) cli: Cli,
}

impl Ctx {
    pub(crate) fn json(&self) -> bool {
        self.cli.output == OutputFormat::Json
    }

    pub(crate) fn client(&self, no_browser: bool) -> Result<AuthClient, Error> {
        let mut b =
            AuthClient::builder().interaction(Arc::new(qlam_host::Terminal::new(no_browser)));
        if let Some(c) = &self.cli.config {
            b = b.config_file(c);
        }
        if let Some(c) = &self.cli.context {
            b = b.context(c);
        }
        for d in &self.cli.plugin_dirs {
            b = b.plugin_dir(d);
        }
        b.build()
    }

    /// Loads the plugins and reports each one that failed, one line each (full detail at -v).
    pub(crate) fn loaded<'a>(&self, client: &'a AuthClient) -> &'a Registry {
        let registry = client.registry();
        self.warn_problems(registry);
        registry
    }

    pub(crate) fn warn_problems(&self, registry: &Registry) {
        for line in registry.problems() {
            eprintln!("warning: {line}");
        }
        if self.cli.verbose > 0 {
            for lib in registry.libraries() {
                if let LibraryOutcome::Refused(e) = &lib.outcome {
                    if !e.detail.is_empty() {
                        eprintln!("detail for `{}`:\n{}", lib.path.display(), e.detail);
                    }
                }
            }
        }
    }

    pub(crate) fn config_path(&self) -> Option<PathBuf> {
        self.cli.config.clone().or_else(paths::default_config_file)
    }
}

fn run(cli: Cli) -> Result<i32, Error> {
    let ctx = Ctx { cli };
    match &ctx.cli.command {
        Command::Auth(cmd) => auth(&ctx, cmd),
        Command::Context(cmd) => context(&ctx, cmd),
        Command::Plugins(cmd) => plugins(&ctx, cmd),
        Command::Config(cmd) => config_cmd(&ctx, cmd),
        Command::CredentialHelper(cmd) => helpers::run(&ctx, cmd),
        Command::Completions { shell } => {
            // Into memory first: clap_complete panics on a write error (`| head`).
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "qlam", &mut script);
            let _ = std::io::stdout().lock().write_all(&script);
            Ok(0)
        }
    }
}

fn outcome_json(o: &Outcome) -> Value {
    let mut v = json!({"provider": o.provider, "ok": o.result.is_ok()});
    match &o.result {
        Ok(done) => v["done"] = json!(done),
        Err(e) => v["error"] = json!({"kind": e.kind_name(), "message": e.message()}),
    }
    v["warnings"] = json!(o.warnings);
    v
}

/// Prints best-effort outcomes; exit 1 when any failed.
fn report(
    ctx: &Ctx,
    outcomes: &[Outcome],
    verb: &str,
    done_text: &str,
    not_done_text: &str,
    detail: &dyn Fn(&str) -> String,
) -> i32 {
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
        1
    } else {
        0
    }
}

/// ` at github.com as octocat`: which site and account a login reached, as `gh auth login`
/// says, from the provider's auth context (`site`; `username`, else `email`, else `subject`).
fn account_detail(context: Option<Map<String, Value>>) -> String {
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

fn expires_at(c: CacheControl) -> Value {
    match c {
        CacheControl::Until(t) => json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        _ => Value::Null,
    }
}

fn auth(ctx: &Ctx, cmd: &AuthCommand) -> Result<i32, Error> {
    let no_browser = matches!(
        cmd,
        AuthCommand::Login {
            no_browser: true,
            ..
        }
    );
    let client = ctx.client(no_browser)?;
    // The fast path: an answer still valid is served from configuration and store alone,
    // without loading any plugin.
    match cmd {
        AuthCommand::Token { provider, format } if *format != Some(TokenFormat::AwsProcess) => {
            if let Some(t) = client.cached_token(provider) {
                print_token(ctx.json(), &t, *format);
                return Ok(0);
            }
        }
        AuthCommand::Headers { provider } => {
            if let Some(h) = client.cached_headers(provider) {
                print_headers(ctx.json(), &h);
                return Ok(0);
            }
        }
        _ => {}
    }
    ctx.loaded(&client);
    let context_name = client.context().map(|c| c.name.clone());
    let none_msg = |what: &str| match &context_name {
        Some(c) => format!("no provider in context `{c}` supports {what}"),
        None => "no context is configured; `qlam config path` shows where the config file goes"
            .to_string(),
    };
    match cmd {
        AuthCommand::Login {
            provider,
            flow,
            no_browser,
        } => {
            let options = LoginOptions {
                flow: flow.map(|f| match f {
                    Flow::Browser => "browser".to_owned(),
                    Flow::Device => "device".to_owned(),
                }),
                no_browser: *no_browser,
            };
            let outcomes = client.login(provider.as_deref(), &options)?;
            if outcomes.is_empty() {
                eprintln!("{}", none_msg("login"));
            }
            Ok(report(
                ctx,
                &outcomes,
                "login to",
                "Logged in to",
                "not logged in",
                &|p| account_detail(client.auth_context(p).ok()),
            ))
        }
        AuthCommand::Logout { provider } => {
            let outcomes = client.logout(provider.as_deref())?;
            if outcomes.is_empty() {
                eprintln!("{}", none_msg("logout"));
            }
            Ok(report(
                ctx,
                &outcomes,
                "logout from",
                "Logged out of",
                "not logged out",
                &|_| String::new(),
            ))
        }
        AuthCommand::Refresh { provider, force } => {
            let outcomes = client.refresh_credentials(provider.as_deref(), *force)?;
            if outcomes.is_empty() {
                eprintln!("{}", none_msg("refresh"));
            }
            Ok(report(
                ctx,
                &outcomes,
                "refresh of",
                "Refreshed",
                "still valid; nothing to refresh",
                &|_| String::new(),
            ))
        }
        AuthCommand::Status => {
            let list = client.list_providers()?;
            // `-v`: each usable provider's auth context too (who is logged in, the granted
            // scopes, the expiry), like `gh auth status`.
            let context_of = |p: &qlam_host::ProviderInfo| {
                let usable = matches!(
                    p.status,
                    qlam_host::ProviderStatus::Authenticated | qlam_host::ProviderStatus::Available
                );
                (ctx.cli.verbose > 0 && usable)
                    .then(|| client.auth_context(&p.name).ok())
                    .flatten()
            };
            if ctx.json() {
                let rows: Vec<Value> = list
                    .iter()
                    .map(|p| {
                        let mut v = json!({
                            "name": p.name,
                            "type": p.provider_type,
                            "status": p.status.as_str(),
                            "description": p.description,
                            "capabilities": p.capabilities.names(),
                            "extra_info": p.extra_info,
                            "store": p.store,
                        });
                        if let qlam_host::ProviderStatus::Error(m)
                        | qlam_host::ProviderStatus::Timeout(m) = &p.status
                        {
                            v["error"] = json!(m);
                        }
                        if let Some(c) = context_of(p) {
                            v["auth_context"] = Value::Object(c);
                        }
                        v
                    })
                    .collect();
                print_json(&Value::Array(rows));
            } else if list.is_empty() {
                match &context_name {
                    Some(c) => eprintln!("no providers are configured in context `{c}`"),
                    None => eprintln!("{}", none_msg("anything")),
                }
            } else {
                let rows: Vec<[String; 6]> = list
                    .iter()
                    .map(|p| {
                        let extra = p
                            .extra_info
                            .iter()
                            .map(|(k, v)| match v {
                                Value::String(s) => format!("{k}={s}"),
                                v => format!("{k}={v}"),
                            })
                            .collect::<Vec<_>>()
                            .join(" ");
                        [
                            p.name.clone(),
                            p.provider_type.clone(),
                            p.status.to_string(),
                            p.description.clone(),
                            p.store.to_owned(),
                            extra,
                        ]
                    })
                    .collect();
                print_table(
                    &["NAME", "TYPE", "STATUS", "DESCRIPTION", "STORE", "EXTRA"],
                    &rows,
                );
                for p in &list {
                    let Some(c) = context_of(p) else { continue };
                    outln!("{}:", p.name);
                    for (k, v) in &c {
                        match v {
                            Value::String(s) => outln!("  {k}: {s}"),
                            Value::Array(a) => outln!(
                                "  {k}: {}",
                                a.iter()
                                    .map(|x| x
                                        .as_str()
                                        .map_or_else(|| x.to_string(), str::to_owned))
                                    .collect::<Vec<_>>()
                                    .join(" ")
                            ),
                            v => outln!("  {k}: {v}"),
                        }
                    }
                }
            }
            Ok(0)
        }
        AuthCommand::Token {
            provider,
            format: Some(TokenFormat::AwsProcess),
        } => aws_process(&client, provider),
        AuthCommand::Token { provider, format } => {
            let token = match client.token(provider) {
                Err(e)
                    if e.is_not_authenticated()
                        && *format == Some(TokenFormat::ExecCredential)
                        && KubeExecInfo::from_env().interactive =>
                {
                    // kubectl ran us interactively (stdin is the user's): log in, as
                    // kubectl's own OIDC plugins do, then answer.
                    eprintln!("Not logged in to `{provider}`; logging in for kubectl");
                    client.login(Some(provider), &LoginOptions::default())?;
                    client.token(provider)?
                }
                Err(e) if *format == Some(TokenFormat::ExecCredential) => {
                    return Err(if e.is_not_authenticated() {
                        Error::provider(qlam_host::api::Error::not_authenticated(format!(
                            "{}; kubectl runs qlam without a terminal here, so run `qlam auth login {provider}` in a shell",
                            e.message()
                        )))
                    } else {
                        e
                    })
                }
                r => r?,
            };
            print_token(ctx.json(), &token, *format);
            Ok(0)
        }
        AuthCommand::Headers { provider } => {
            print_headers(ctx.json(), &client.headers(provider)?);
            Ok(0)
        }
        AuthCommand::Credential {
            provider,
            show_secrets,
        } => {
            let c = client.get_credential(provider)?;
            print_json(&c.map(|c| c.to_json(*show_secrets)).unwrap_or(Value::Null));
            Ok(0)
        }
    }
}

fn print_token(json_output: bool, t: &qlam_host::api::Token, format: Option<TokenFormat>) {
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

/// `qlam auth token P --format aws-process`: the AWS CLI/SDK `credential_process` document,
/// from a provider whose credential model is of type `aws` (`access_key_id` and `expiration`
/// among its fields, `secret_access_key` and `session_token` among its secrets).
fn aws_process(client: &AuthClient, provider: &str) -> Result<i32, Error> {
    use qlam_host::api::{CredentialDetails, CredentialStatus};
    let unsupported = || {
        Error::provider(qlam_host::api::Error::unsupported(format!(
            "provider `{provider}` does not give AWS credentials: `--format aws-process` needs a provider whose credential is of type `aws` (access_key_id, secret_access_key, session_token)"
        )))
    };
    let c = client.get_credential(provider)?.ok_or_else(unsupported)?;
    let CredentialDetails::Vendor(v) = &c.details else {
        return Err(unsupported());
    };
    if v.type_name != "aws" {
        return Err(unsupported());
    }
    let key_id = v.fields.get("access_key_id").and_then(Value::as_str);
    let secret = v.secrets.get("secret_access_key");
    let (Some(key_id), Some(secret), CredentialStatus::Authenticated) = (key_id, secret, c.status)
    else {
        return Err(Error::provider(qlam_host::api::Error::not_authenticated(
            format!(
            "provider `{provider}` has no usable AWS credentials; run `qlam auth login {provider}`"
        ),
        )));
    };
    let mut doc = json!({"Version": 1, "AccessKeyId": key_id, "SecretAccessKey": secret.expose()});
    if let Some(t) = v.secrets.get("session_token") {
        doc["SessionToken"] = json!(t.expose());
    }
    if let Some(e) = v.fields.get("expiration").and_then(Value::as_str) {
        doc["Expiration"] = json!(e);
    }
    print_json(&doc);
    Ok(0)
}

/// What kubectl tells an exec credential plugin in `KUBERNETES_EXEC_INFO`: the API version to
/// answer in, and whether the user's terminal is attached (`spec.interactive`).
struct KubeExecInfo {
    api_version: &'static str,
    interactive: bool,
}

impl KubeExecInfo {
    fn from_env() -> KubeExecInfo {
        const V1: &str = "client.authentication.k8s.io/v1";
        const V1BETA1: &str = "client.authentication.k8s.io/v1beta1";
        let info: Value = std::env::var("KUBERNETES_EXEC_INFO")
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(Value::Null);
        KubeExecInfo {
            api_version: match info["apiVersion"].as_str() {
                Some(V1BETA1) => V1BETA1,
                _ => V1,
            },
            interactive: info["spec"]["interactive"].as_bool().unwrap_or(false),
        }
    }
}

fn print_headers(json_output: bool, h: &qlam_host::api::Headers) {
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

fn print_table<const N: usize>(headers: &[&str; N], rows: &[[String; N]]) {
    let mut widths = headers.map(|h| h.chars().count());
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
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
    let _ = writeln!(out, "{}", line(headers.to_vec()));
    for r in rows {
        let _ = writeln!(out, "{}", line(r.iter().map(String::as_str).collect()));
    }
}

fn load_config_file(ctx: &Ctx) -> Result<Config, Error> {
    let path = ctx.config_path().ok_or_else(|| {
        Error::config("cannot find a configuration folder (no home folder); pass `--config FILE`")
    })?;
    if !path.exists() {
        return Err(Error::config(format!(
            "there is no config file at `{}`; create one (see README) or pass `--config FILE`",
            path.display()
        )));
    }
    Config::load(&path)
}

fn context(ctx: &Ctx, cmd: &ContextCommand) -> Result<i32, Error> {
    match cmd {
        ContextCommand::List => {
            let config = load_config_file(ctx)?;
            let current = config
                .select_context(ctx.cli.context.as_deref())
                .ok()
                .flatten()
                .map(|c| c.name.clone());
            if ctx.json() {
                print_json(&Value::Array(
                    config
                        .contexts
                        .iter()
                        .map(|c| {
                            json!({
                                "name": c.name,
                                "current": Some(&c.name) == current.as_ref(),
                                "providers": c.auth_providers.iter().map(|p| &p.name).collect::<Vec<_>>(),
                            })
                        })
                        .collect(),
                ));
            } else {
                for c in &config.contexts {
                    let mark = if Some(&c.name) == current.as_ref() {
                        "*"
                    } else {
                        " "
                    };
                    outln!("{mark} {}", c.name);
                }
            }
            Ok(0)
        }
        ContextCommand::Current => {
            let config = load_config_file(ctx)?;
            let current = config
                .select_context(ctx.cli.context.as_deref())?
                .ok_or_else(|| {
                    Error::config(format!(
                        "`{}` defines no context",
                        config
                            .path
                            .as_ref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default()
                    ))
                })?;
            if ctx.json() {
                print_json(&json!({"current_context": current.name}));
            } else {
                outln!("{}", current.name);
            }
            Ok(0)
        }
        ContextCommand::Use(args) => {
            let config = load_config_file(ctx)?;
            let path = config.path.clone().expect("loaded from a file");
            config::set_current_context(&path, &args.name)?;
            eprintln!("Switched to context `{}`", args.name);
            if ctx.json() {
                print_json(&json!({"current_context": args.name}));
            }
            Ok(0)
        }
    }
}

fn plugins(ctx: &Ctx, cmd: &PluginsCommand) -> Result<i32, Error> {
    match cmd {
        PluginsCommand::List => {
            let client = match ctx.client(false) {
                Ok(c) => c,
                Err(e)
                    if e.kind() == qlam_host::ErrorKind::Config
                        || e.kind() == qlam_host::ErrorKind::Usage =>
                {
                    // Listing plugins must work while the configuration is broken.
                    eprintln!(
                        "warning: {}; listing plugins without the context's plugin_dirs",
                        e.message()
                    );
                    let mut b = AuthClient::builder().config(Config::default());
                    for d in &ctx.cli.plugin_dirs {
                        b = b.plugin_dir(d);
                    }
                    b.build()?
                }
                Err(e) => return Err(e),
            };
            let registry = client.registry();
            let pins = &client.config().trusted_plugins;
            let mut hashes = PluginHashes::open(PluginHashes::default_path());
            let mut pin_of = |path: &std::path::Path| {
                let sha = hashes.sha256(path);
                let pinned = sha.as_ref().is_some_and(|h| {
                    pins.iter()
                        .any(|(p, want)| p == path && want.eq_ignore_ascii_case(h))
                });
                (sha, pinned)
            };
            if ctx.json() {
                let libraries: Vec<Value> = registry
                    .libraries()
                    .iter()
                    .map(|l| library_json(l, pin_of(&l.path)))
                    .collect();
                print_json(&json!({
                    "api_version": qlam_host::api::API_VERSION,
                    "search_path": client.search_path().iter().map(|d| json!({
                        "path": d.path, "source": d.source.as_str(), "exists": d.path.is_dir()
                    })).collect::<Vec<_>>(),
                    "libraries": libraries,
                    "duplicates": registry.duplicates().iter().map(|d| json!({
                        "provider_type": d.name, "kept": d.kept.to_string(), "ignored": d.ignored.to_string()
                    })).collect::<Vec<_>>(),
                    "problems": registry.problems(),
                }));
            } else {
                eprintln!(
                    "qlam-plugin-api {} (loads {})",
                    qlam_host::api::API_VERSION,
                    qlam_host::api::ffi::compatible_range()
                );
                for d in client.search_path() {
                    let note = if d.path.is_dir() { "" } else { " (missing)" };
                    eprintln!(
                        "searched {} ({}){note}",
                        d.path.display(),
                        d.source.as_str()
                    );
                }
                let rows: Vec<[String; 6]> = registry
                    .libraries()
                    .iter()
                    .map(|l| {
                        let (sha, pinned) = pin_of(&l.path);
                        let sha = sha.map_or_else(|| "-".to_owned(), |h| h[..12].to_owned());
                        let pinned = if pinned { "yes" } else { "no" }.to_owned();
                        let path = l.path.display().to_string();
                        match &l.outcome {
                            LibraryOutcome::Loaded {
                                api_version,
                                provider_types,
                                errors,
                            } => {
                                let mut types = provider_types.join(", ");
                                if !errors.is_empty() {
                                    types.push_str(&format!(
                                        " ({} failed: {})",
                                        errors.len(),
                                        errors.join("; ")
                                    ));
                                }
                                [
                                    "loaded".into(),
                                    path,
                                    api_version.clone(),
                                    sha,
                                    pinned,
                                    types,
                                ]
                            }
                            LibraryOutcome::Refused(e) => [
                                library_status(e).into(),
                                path,
                                e.api_version.clone().unwrap_or_else(|| "-".into()),
                                sha,
                                pinned,
                                e.summary.clone(),
                            ],
                        }
                    })
                    .collect();
                if rows.is_empty() {
                    eprintln!("no plugin libraries found");
                } else {
                    print_table(
                        &[
                            "STATUS",
                            "PATH",
                            "API",
                            "SHA256",
                            "PINNED",
                            "PROVIDER TYPES / REASON",
                        ],
                        &rows,
                    );
                }
                for d in registry.duplicates() {
                    eprintln!(
                        "note: provider type `{}` from {} is ignored; {} provides it first",
                        d.name, d.ignored, d.kept
                    );
                }
                for line in registry.diagnostics() {
                    eprintln!("warning: {}", line.message);
                }
                if ctx.cli.verbose > 0 {
                    ctx.warn_problems(registry);
                }
            }
            hashes.save();
            Ok(0)
        }
        PluginsCommand::Install { file, pin, isolate } => {
            plugin_admin::install(ctx, file, *pin, *isolate)
        }
        PluginsCommand::Remove { name } => plugin_admin::remove(ctx, name),
        PluginsCommand::Inspect { file, ignore_pins } => {
            // Under the configuration's trust rules: a file they refuse (its pin, its
            // permissions) is reported, never loaded.
            let mut registry = ctx.client(true)?.new_registry();
            if *ignore_pins {
                registry.ignore_pins();
            }
            registry.load_file(file);
            let lib = &registry.libraries()[0];
            let size = std::fs::metadata(&lib.path).map(|m| m.len()).ok();
            let sha256 = PluginHashes::open(None).sha256(&lib.path);
            match &lib.outcome {
                LibraryOutcome::Loaded {
                    api_version,
                    errors,
                    ..
                } => {
                    let types: Vec<Value> = registry
                        .types()
                        .map(|t| json!({"name": t.name, "description": t.description, "capabilities": t.capabilities.names()}))
                        .collect();
                    if ctx.json() {
                        print_json(&json!({
                            "path": lib.path, "size": size, "sha256": sha256, "status": "loaded", "api_version": api_version,
                            "host_api_version": qlam_host::api::API_VERSION, "provider_types": types, "errors": errors,
                        }));
                    } else {
                        outln!("path:         {}", lib.path.display());
                        if let Some(s) = size {
                            outln!("size:         {s} bytes");
                        }
                        if let Some(h) = &sha256 {
                            outln!("sha256:       {h}");
                        }
                        outln!("status:       loaded");
                        outln!(
                            "plugin api:   {api_version} (this qlam: {})",
                            qlam_host::api::API_VERSION
                        );
                        for t in registry.types() {
                            outln!(
                                "provider:     {} — {} [{}]",
                                t.name,
                                t.description,
                                t.capabilities.names().join(", ")
                            );
                        }
                        for e in errors {
                            outln!("failed:       {e}");
                        }
                    }
                    Ok(if errors.is_empty() { 0 } else { 4 })
                }
                LibraryOutcome::Refused(e) => {
                    if ctx.json() {
                        print_json(&json!({
                            "path": lib.path, "size": size, "sha256": sha256, "status": library_status(e), "api_version": e.api_version,
                            "host_api_version": qlam_host::api::API_VERSION,
                            "error": e.summary, "error_kind": format!("{:?}", e.kind), "detail": e.detail,
                        }));
                    } else {
                        outln!("path:         {}", lib.path.display());
                        if let Some(s) = size {
                            outln!("size:         {s} bytes");
                        }
                        if let Some(h) = &sha256 {
                            outln!("sha256:       {h}");
                        }
                        outln!("status:       {}", library_status(e));
                        outln!(
                            "plugin api:   {} (this qlam: {})",
                            e.api_version.as_deref().unwrap_or("unknown"),
                            qlam_host::api::API_VERSION
                        );
                        outln!("reason:       {}", e.summary);
                        if !e.detail.is_empty() {
                            outln!("detail:\n{}", e.detail);
                        }
                    }
                    Ok(4)
                }
            }
        }
    }
}

fn config_cmd(ctx: &Ctx, cmd: &ConfigCommand) -> Result<i32, Error> {
    match cmd {
        ConfigCommand::Path => {
            let path = ctx.config_path().ok_or_else(|| {
                Error::config("cannot find a configuration folder (no home folder)")
            })?;
            let exists = path.exists();
            if ctx.json() {
                print_json(&json!({"path": path, "exists": exists}));
            } else {
                outln!("{}", path.display());
                if !exists {
                    eprintln!("(the file does not exist yet)");
                }
            }
            Ok(0)
        }
        ConfigCommand::Validate => {
            let config = load_config_file(ctx)?;
            let client = AuthClient::builder().config(config.clone());
            let client = ctx
                .cli
                .plugin_dirs
                .iter()
                .fold(client, |b, d| b.plugin_dir(d));
            let client = client.build()?;
            let problems = client.validate_all_contexts();
            let providers: usize = config.contexts.iter().map(|c| c.auth_providers.len()).sum();
            let path = config.path.clone().unwrap_or_default();
            for p in &problems {
                eprintln!("error: {}", p.message);
            }
            if ctx.json() {
                print_json(&json!({
                    "path": path,
                    "valid": problems.is_empty(),
                    "contexts": config.contexts.len(),
                    "providers": providers,
                    "problems": problems.iter().map(|p| json!({
                        "context": p.context, "provider": p.provider, "kind": p.error.kind_name(), "message": p.message
                    })).collect::<Vec<_>>(),
                }));
            } else if problems.is_empty() {
                eprintln!(
                    "`{}` is valid: {} contexts, {providers} providers",
                    path.display(),
                    config.contexts.len()
                );
            }
            Ok(problems
                .iter()
                .map(|p| p.error.exit_code())
                .max()
                .unwrap_or(0))
        }
    }
}

/// `loaded`, `refused` (by the trust policy: ownership, permissions, links, pins) or
/// `failed` (the file is not a usable plugin).
fn library_status(e: &qlam_host::api::ffi::LoadError) -> &'static str {
    if e.kind == qlam_host::api::ffi::LoadErrorKind::Untrusted {
        "refused"
    } else {
        "failed"
    }
}

/// One library for `plugins list --output json`; `pin` is its SHA-256 and whether it is pinned.
fn library_json(l: &qlam_host::plugins::LibraryReport, pin: (Option<String>, bool)) -> Value {
    let (sha256, pinned) = pin;
    match &l.outcome {
        LibraryOutcome::Loaded {
            api_version,
            provider_types,
            errors,
        } => json!({
            "path": l.path, "status": "loaded", "api_version": api_version,
            "provider_types": provider_types, "errors": errors,
            "sha256": sha256, "pinned": pinned,
        }),
        LibraryOutcome::Refused(e) => json!({
            "path": l.path, "status": library_status(e), "api_version": e.api_version,
            "error": e.summary, "error_kind": format!("{:?}", e.kind),
            "sha256": sha256, "pinned": pinned,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap's rendering of `args` for a pipe: 100 columns, no colour.
    fn clap_help(flag: &str) -> String {
        let e = Cli::command()
            .term_width(100)
            .try_get_matches_from(["qlam", flag])
            .unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
        e.render().to_string()
    }

    /// The stored help texts are clap's. After changing the command line, run
    /// `QLAM_BLESS=1 cargo test -p qlam help_texts` to store the new ones.
    #[test]
    fn help_texts_are_claps() {
        for (flag, file, stored) in [
            ("--help", "help-long.txt", HELP_LONG),
            ("-h", "help-short.txt", HELP_SHORT),
        ] {
            let fresh = clap_help(flag);
            if std::env::var_os("QLAM_BLESS").is_some() {
                let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("src")
                    .join(file);
                std::fs::write(path, &fresh).unwrap();
                continue;
            }
            assert_eq!(
                stored, fresh,
                "host/cli/src/{file} is stale: run `QLAM_BLESS=1 cargo test -p qlam help_texts`"
            );
        }
    }
}
