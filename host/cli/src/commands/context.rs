//! `qlam context …`: list, show and switch contexts.

use qlam_host::config::{self, Config};
use qlam_host::Error;
use serde_json::{json, Value};

use crate::args::ContextCommand;
use crate::exit::Exit;

use crate::app::Ctx;
use crate::render::print_json;

pub(crate) fn load_config_file(ctx: &Ctx) -> Result<Config, Error> {
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

pub(crate) fn context(ctx: &Ctx, cmd: &ContextCommand) -> Result<Exit, Error> {
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
            Ok(Exit::Ok)
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
            Ok(Exit::Ok)
        }
        ContextCommand::Use(args) => {
            let config = load_config_file(ctx)?;
            let path = config.path.clone().expect("loaded from a file");
            config::set_current_context(&path, &args.name)?;
            eprintln!("Switched to context `{}`", args.name);
            if ctx.json() {
                print_json(&json!({"current_context": args.name}));
            }
            Ok(Exit::Ok)
        }
    }
}
