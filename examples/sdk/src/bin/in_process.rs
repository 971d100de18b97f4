//! Registers an in-process provider type with `register_factory` and answers its prompts
//! with a custom (non-terminal) interaction handler — what a GUI or a notebook would do.
//!
//! `cargo run -p qlam-examples --bin in_process`

use std::sync::Arc;

use qlam_host::api::{
    BuildRequest, CacheControl, Capabilities, Credential, Error, Headers, HostServices,
    HttpHeaders, Interaction, InteractionReply, LoginLogout, LoginOptions, LogoutReport, Provider,
    ProviderFactory, Result, Secret,
};
use qlam_host::config::Config;
use qlam_host::{AuthClient, UserInteraction};
use serde_json::{Map, Value};

struct DemoFactory;

impl ProviderFactory for DemoFactory {
    fn name(&self) -> &str {
        "demo-key"
    }
    fn description(&self) -> String {
        "An API key kept in qlam's store".into()
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            headers: true,
            login: true,
            ..Default::default()
        }
    }
    fn build(&self, req: BuildRequest) -> Result<Box<dyn Provider>> {
        Ok(Box::new(Demo {
            services: req.services,
        }))
    }
}

struct Demo {
    services: HostServices,
}

impl Provider for Demo {
    fn description(&self) -> String {
        "demo API key".into()
    }
    fn is_authenticated(&self) -> bool {
        matches!(self.services.secret_load("key"), Ok(Some(_)))
    }
    fn auth_context(&self) -> Result<Map<String, Value>> {
        Ok(Map::new())
    }
    fn credential(&self) -> Result<Option<Credential>> {
        Ok(None)
    }
    fn http_headers(&self) -> Option<&dyn HttpHeaders> {
        Some(self)
    }
    fn login_logout(&self) -> Option<&dyn LoginLogout> {
        Some(self)
    }
}

impl HttpHeaders for Demo {
    fn headers(&self) -> Result<Headers> {
        let key = self
            .services
            .secret_load("key")?
            .ok_or_else(|| Error::not_authenticated("log in first"))?;
        Ok(Headers {
            headers: vec![("X-Demo-Key".into(), key)],
            cache: CacheControl::Session,
        })
    }
}

impl LoginLogout for Demo {
    fn login(&self, _: &LoginOptions) -> Result<()> {
        let key = self.services.prompt_secret("Demo API key")?;
        self.services.secret_store("key", &key)
    }
    fn logout(&self) -> Result<LogoutReport> {
        self.services.secret_delete("key")?;
        Ok(LogoutReport::default())
    }
}

/// An application's own way of asking the user: here, canned answers.
struct CannedAnswers;

impl UserInteraction for CannedAnswers {
    fn interact(&self, provider: &str, request: &Interaction) -> Result<InteractionReply> {
        match request {
            Interaction::PromptSecret { prompt } => {
                println!("[{provider}] the application answers `{prompt}`");
                Ok(InteractionReply::Text {
                    text: Secret::new("demo-key-123".into()),
                })
            }
            _ => Ok(InteractionReply::Done),
        }
    }
    fn is_interactive(&self) -> bool {
        true
    }
}

fn main() -> anyhow::Result<()> {
    let store = std::env::temp_dir().join(format!("qlam-example-{}", std::process::id()));
    let config = Config::parse(
        "[contexts.app]\n[[contexts.app.auth_providers]]\nname = \"demo\"\nprovider = \"demo-key\"\n",
        std::path::Path::new("inline.toml"),
    )?;
    let client = AuthClient::builder()
        .ignore_environment()
        .no_default_plugin_dirs()
        .config(config)
        .store_dir(&store)
        .interaction(Arc::new(CannedAnswers))
        .register_factory(DemoFactory)
        .build()?;
    client.login(Some("demo"), &LoginOptions::default())?;
    let headers = client.headers("demo")?;
    println!("headers: {:?}", headers.headers); // values print as REDACTED
    client.logout(Some("demo"))?;
    std::fs::remove_dir_all(&store).ok();
    Ok(())
}
