//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Authentication for command-line tools, SDKs and services: log in, see status, get tokens
/// and headers from provider plugins.
#[derive(Debug, Parser)]
#[command(name = "qlam", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Configuration file [default: $XDG_CONFIG_HOME/qlam/config.toml]
    #[arg(long, global = true, env = "QLAM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Context to use instead of the file's current_context
    #[arg(long, global = true, env = "QLAM_CONTEXT", value_name = "NAME")]
    pub context: Option<String>,

    /// Search this folder for plugins first (repeatable)
    #[arg(long = "plugin-dir", global = true, value_name = "DIR")]
    pub plugin_dirs: Vec<PathBuf>,

    /// Output format of the command's result
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// More detail on stderr (-v debug, -vv trace); `QLAM_LOG` sets a filter
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in and out, show status, get tokens and headers
    #[command(subcommand)]
    Auth(AuthCommand),
    /// List, show and select configuration contexts
    #[command(subcommand)]
    Context(ContextCommand),
    /// List and inspect provider plugins
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Show and check the configuration file
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Answer other tools' credential requests from qlam's providers (see README)
    #[command(subcommand)]
    CredentialHelper(HelperCommand),
    /// Print a shell completion script
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Log in to a provider, or to every provider that supports login
    Login {
        /// Provider name (as configured)
        provider: Option<String>,
        /// Login flow, for providers that have several
        #[arg(long, value_enum)]
        flow: Option<Flow>,
        /// Print the URL instead of opening a browser
        #[arg(long)]
        no_browser: bool,
    },
    /// Forget (and where supported revoke) a provider's credentials, or every provider's
    Logout {
        /// Provider name
        provider: Option<String>,
    },
    /// Show the providers of the context and their status
    Status,
    /// Print a provider's access token
    Token {
        /// Provider name
        provider: String,
        /// Output format [default: raw, or json with --output json]
        #[arg(long, value_enum)]
        format: Option<TokenFormat>,
    },
    /// Print a provider's HTTP headers (`Name: value` lines, or a JSON object)
    Headers {
        /// Provider name
        provider: String,
    },
    /// Refresh credentials without interaction
    Refresh {
        /// Provider name; every refreshable provider when absent
        provider: Option<String>,
        /// Refresh even when the credentials are still valid
        #[arg(long)]
        force: bool,
    },
    /// Print a provider's credential model as JSON (secrets redacted)
    Credential {
        /// Provider name
        provider: String,
        /// Show secret values instead of REDACTED
        #[arg(long)]
        show_secrets: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Flow {
    Browser,
    Device,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenFormat {
    Raw,
    Json,
    ExecCredential,
    /// AWS `credential_process` JSON, for providers whose credential is of type `aws`
    AwsProcess,
}

#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// List the contexts
    List,
    /// Print the current context
    Current,
    /// Make a context the current one (rewrites current_context, keeping comments)
    Use(UseArgs),
}

#[derive(Debug, Args)]
pub struct UseArgs {
    /// Context name
    pub name: String,
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Every library on the plugin search path: loaded with its provider types, or why not
    List,
    /// Load one library file and show everything about it
    Inspect {
        /// The library file
        file: PathBuf,
    },
    /// Check a library in a separate process, then copy it into your plugin folder
    Install {
        /// The library file (.so / .dylib / .dll)
        file: PathBuf,
        /// Also pin its SHA-256 in `trusted_plugins` of the configuration file
        #[arg(long)]
        pin: bool,
        /// Run its providers in a process of their own (lists it in `isolated_plugins`)
        #[arg(long)]
        isolate: bool,
    },
    /// Remove a library from your plugin folder (and its pin), by file or provider type name
    Remove {
        /// A file name in your plugin folder (`libacme.so`, `acme`) or a provider type
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the path of the configuration file in use
    Path,
    /// Check the configuration: syntax, contexts, provider types and provider settings
    Validate,
}

#[derive(Debug, Subcommand)]
pub enum HelperCommand {
    /// git's credential helper protocol: `git config credential.helper '!qlam credential-helper git'`
    Git {
        /// What git asks: `get`, `store` or `erase` (others are ignored, as git expects)
        action: String,
    },
    /// Docker's credential helper protocol (install as `docker-credential-qlam`, a link to qlam)
    Docker {
        /// What docker asks: `get`, `store`, `erase` or `list`
        action: String,
    },
    /// Cargo's credential-provider protocol: `credential-provider = ["qlam"]` (cargo runs `qlam --cargo-plugin`)
    Cargo {
        /// Added by cargo when it runs a credential provider
        #[arg(long)]
        cargo_plugin: bool,
    },
}
