//! The `qlam` command: runs one command and returns its exit code.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{CommandFactory, Parser};
use qlam_host::plugins::{LibraryOutcome, Registry};
use qlam_host::{paths, AuthClient, Error};
use serde_json::json;

use crate::args::{Cli, Command, OutputFormat};
use crate::exit::Exit;

use crate::commands;
use crate::logging::init_logging;
use crate::render::print_json;

/// Runs the command in this process's arguments (the `qlam` front handed it over).
pub fn main() -> i32 {
    // An isolated provider's process (`isolation = "process"`): the parent speaks to it over
    // stdin and stdout, so nothing else of the CLI runs.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == qlam_host::CHILD_SUBCOMMAND)
    {
        return qlam_host::serve_isolated_plugin();
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
        Ok(exit) => exit.code(),
        Err(e) => {
            eprintln!("error: {}", e.message());
            if output == OutputFormat::Json {
                print_json(&json!({"error": {"kind": e.kind_name(), "message": e.message()}}));
            }
            Exit::of(&e).code()
        }
    }
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
        // A command is a short-lived process: see the builder's note.
        b = b.load_plugins_on_one_cpu();
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

fn run(cli: Cli) -> Result<Exit, Error> {
    let ctx = Ctx { cli };
    match &ctx.cli.command {
        Command::Auth(cmd) => commands::auth::auth(&ctx, cmd),
        Command::Context(cmd) => commands::context::context(&ctx, cmd),
        Command::Plugins(cmd) => commands::plugins::plugins(&ctx, cmd),
        Command::Config(cmd) => commands::config::config_cmd(&ctx, cmd),
        Command::CredentialHelper(cmd) => commands::helpers::run(&ctx, cmd),
        Command::Completions { shell } => {
            // Into memory first: clap_complete panics on a write error (`| head`).
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "qlam", &mut script);
            let _ = std::io::stdout().lock().write_all(&script);
            Ok(Exit::Ok)
        }
    }
}
