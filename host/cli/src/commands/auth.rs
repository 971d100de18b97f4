//! `qlam auth …`: log in and out, status, tokens and headers (kubectl's exec credential and
//! AWS credential_process formats included), refresh, the credential model.

use qlam_host::api::LoginOptions;
use qlam_host::{AuthClient, Error};
use serde_json::{json, Value};

use crate::args::{AuthCommand, Flow, TokenFormat};
use crate::exit::Exit;

use crate::app::Ctx;
use crate::render::{account_detail, print_headers, print_json, print_table, print_token, report};

pub(crate) fn auth(ctx: &Ctx, cmd: &AuthCommand) -> Result<Exit, Error> {
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
                return Ok(Exit::Ok);
            }
        }
        AuthCommand::Headers { provider } => {
            if let Some(h) = client.cached_headers(provider) {
                print_headers(ctx.json(), &h);
                return Ok(Exit::Ok);
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
            Ok(Exit::Ok)
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
            Ok(Exit::Ok)
        }
        AuthCommand::Headers { provider } => {
            print_headers(ctx.json(), &client.headers(provider)?);
            Ok(Exit::Ok)
        }
        AuthCommand::Credential {
            provider,
            show_secrets,
        } => {
            let c = client.get_credential(provider)?;
            let mut json = c.map(|c| c.to_json(*show_secrets)).unwrap_or(Value::Null);
            with_granted_scopes(&client, provider, &mut json);
            print_json(&json);
            Ok(Exit::Ok)
        }
    }
}

/// An OAuth credential is shown with the scopes the server granted (its auth context's
/// `scopes`), which may be fewer than the configuration asks for. The credential model has no
/// field for them (it is the Python library's, and vendors build it); the provider's auth
/// context has them, so they are added here. Best effort: without them the model is shown.
fn with_granted_scopes(client: &AuthClient, provider: &str, json: &mut Value) {
    let Some(obj) = json.as_object_mut() else {
        return;
    };
    if obj.get("kind").and_then(Value::as_str) != Some("oauth") || obj.contains_key("scopes") {
        return;
    }
    if let Ok(context) = client.auth_context(provider) {
        if let Some(scopes) = context.get("scopes").filter(|s| s.is_array()) {
            obj.insert("scopes".into(), scopes.clone());
        }
    }
}

/// `qlam auth token P --format aws-process`: the AWS CLI/SDK `credential_process` document,
/// from a provider whose credential model is of type `aws` (`access_key_id` and `expiration`
/// among its fields, `secret_access_key` and `session_token` among its secrets).
pub(crate) fn aws_process(client: &AuthClient, provider: &str) -> Result<Exit, Error> {
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
    Ok(Exit::Ok)
}

/// What kubectl tells an exec credential plugin in `KUBERNETES_EXEC_INFO`: the API version to
/// answer in, and whether the user's terminal is attached (`spec.interactive`).
pub(crate) struct KubeExecInfo {
    pub(crate) api_version: &'static str,
    pub(crate) interactive: bool,
}

impl KubeExecInfo {
    pub(crate) fn from_env() -> KubeExecInfo {
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
