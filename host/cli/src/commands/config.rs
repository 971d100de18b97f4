//! `qlam config …`: where the file is, and whether every provider of every context is valid.

use qlam_host::{AuthClient, Error};
use serde_json::json;

use crate::args::ConfigCommand;
use crate::exit::Exit;

use super::context::load_config_file;
use crate::app::Ctx;
use crate::render::print_json;

pub(crate) fn config_cmd(ctx: &Ctx, cmd: &ConfigCommand) -> Result<Exit, Error> {
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
            Ok(Exit::Ok)
        }
        ConfigCommand::Validate => {
            let config = load_config_file(ctx)?;
            let client = AuthClient::builder()
                .config(config.clone())
                .load_plugins_on_one_cpu();
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
                .map(|p| Exit::of(&p.error))
                .max()
                .unwrap_or(Exit::Ok))
        }
    }
}
