//! `qlam`, the front: `qlam --help`/`-h` from stored text, and `qlam auth token|headers NAME`
//! with an answer still valid, served from configuration and store alone; every other
//! command is the commands library's (bench/README.md has the numbers that justify each).
//!
//! What the front links is what these need: the configuration, the answer files, the output
//! of tokens and headers. Not clap, not the plugin loader, not the keyring: a process start is
//! most of what a cached token costs, and the dynamic loader's relocation of a large
//! executable was most of that.

use std::io::Write;

use qlam_host::AuthClient;

use crate::args::TokenFormat;

use crate::render::{print_headers, print_token};

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

/// The front's whole work: the help text, a still-valid answer, or the full command.
pub fn main() -> i32 {
    if let Some(code) = help_fast_path().or_else(fast_path) {
        return code;
    }
    hand_over()
}

/// Every other command. On Linux, from the commands library beside this executable
/// (`libqlam_commands.so`), loaded into this process: a process start and a relocation of
/// the whole program, which the front was made to avoid, are paid only here (bench/README.md
/// compares this with starting a second executable: 0.6 ms more). Elsewhere the commands are
/// linked into the front.
#[cfg(target_os = "linux")]
fn hand_over() -> i32 {
    match commands_library() {
        Ok(run) => run(),
        Err(why) => {
            eprintln!(
                "error: {why}; qlam's installation is incomplete (`qlam` and `libqlam_commands.so` belong in one folder)"
            );
            1
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn hand_over() -> i32 {
    crate::run()
}

/// `qlam_commands_main` of the commands library beside this executable (links resolved, so a
/// `qlam` linked into `PATH`, or named `docker-credential-qlam`, finds it).
#[cfg(target_os = "linux")]
fn commands_library() -> Result<extern "C" fn() -> std::ffi::c_int, String> {
    use std::os::unix::ffi::OsStrExt;
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find where qlam is installed: {e}"))?;
    let path = exe
        .parent()
        .unwrap_or(std::path::Path::new("/"))
        .join(COMMANDS_LIBRARY);
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("`{}` has a NUL byte", path.display()))?;
    let loader_error = || {
        // SAFETY: dlerror returns a thread-local C string or null.
        let e = unsafe { libc::dlerror() };
        if e.is_null() {
            "unknown error".to_owned()
        } else {
            // SAFETY: non-null: a valid C string until the next dl* call on this thread.
            unsafe { std::ffi::CStr::from_ptr(e) }
                .to_string_lossy()
                .into_owned()
        }
    };
    // SAFETY: a valid C path; the library is qlam's own, installed beside this executable
    // (whoever can replace it can replace this executable too). It stays loaded.
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(format!(
            "cannot load `{}`: {}",
            path.display(),
            loader_error()
        ));
    }
    // SAFETY: a handle dlopen returned and a valid C symbol name.
    let symbol = unsafe { libc::dlsym(handle, c"qlam_commands_main".as_ptr()) };
    if symbol.is_null() {
        return Err(format!(
            "`{}` is not qlam's commands library",
            path.display()
        ));
    }
    // SAFETY: host/commands defines `qlam_commands_main` as `extern "C" fn() -> c_int`.
    Ok(unsafe {
        std::mem::transmute::<*mut std::ffi::c_void, extern "C" fn() -> std::ffi::c_int>(symbol)
    })
}

/// The commands library's file name (host/commands builds it).
#[cfg(target_os = "linux")]
const COMMANDS_LIBRARY: &str = "libqlam_commands.so";

/// A line the fast path serves. The grammar, and nothing else:
///
/// ```text
/// line    = { global } "auth" ( "token" provider [ "--format" token-format ]
///                             | "headers" provider ) { global }
///           (globals and `--format` in any order around the words)
/// global  = "--config" value | "--context" value | "--plugin-dir" value
///         | "--output" ( "text" | "json" )            (each also as `--name=value`)
/// token-format = "raw" | "json" | "exec-credential"
/// value   = any argument not starting with `-`
/// ```
///
/// Anything else (another option, `-v`, `--`, `aws-process`, a non-UTF-8 argument) is for
/// clap. A test checks that clap reads every line this accepts the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FastLine {
    pub(crate) config: Option<String>,
    pub(crate) context: Option<String>,
    pub(crate) json_output: bool,
    pub(crate) request: FastRequest,
}

/// What the line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FastRequest {
    Token {
        provider: String,
        format: Option<TokenFormat>,
    },
    Headers {
        provider: String,
    },
}

/// Reads `args` (without the program name) by the grammar of [`FastLine`].
pub(crate) fn parse(args: &[String]) -> Option<FastLine> {
    let (mut config, mut context, mut output, mut format) = (None, None, None, None);
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
            _ => (a.as_str(), None),
        };
        // A value that looks like an option is clap's to judge.
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .filter(|v| !v.starts_with('-'))
        };
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
    let provider = (*provider).to_owned();
    let request = match (*command, format.as_deref()) {
        ("token", f) => FastRequest::Token {
            provider,
            format: match f {
                None => None,
                Some("raw") => Some(TokenFormat::Raw),
                Some("json") => Some(TokenFormat::Json),
                Some("exec-credential") => Some(TokenFormat::ExecCredential),
                Some(_) => return None,
            },
        },
        ("headers", None) => FastRequest::Headers { provider },
        _ => return None,
    };
    Some(FastLine {
        config,
        context,
        json_output,
        request,
    })
}

/// `qlam auth token|headers NAME` with an answer still valid: served before clap (whose
/// command tree is a third of the work of such a run), from configuration and store alone.
/// Anything else, or any doubt, returns `None` and the normal path runs (and reports errors
/// properly).
fn fast_path() -> Option<i32> {
    if std::env::var_os("QLAM_LOG").is_some() {
        return None;
    }
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string().ok())
        .collect::<Option<_>>()?;
    let line = parse(&args)?;
    let mut b = AuthClient::builder();
    if let Some(c) = line.config {
        b = b.config_file(c);
    }
    if let Some(c) = line.context {
        b = b.context(c);
    }
    let client = b.build().ok()?;
    match line.request {
        FastRequest::Token { provider, format } => {
            print_token(line.json_output, &client.cached_token(&provider)?, format);
        }
        FastRequest::Headers { provider } => {
            print_headers(line.json_output, &client.cached_headers(&provider)?)
        }
    }
    Some(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{AuthCommand, Cli, Command, OutputFormat};
    use clap::{CommandFactory, Parser};

    /// Every line built from the grammar's pieces (and near misses): where the fast path
    /// accepts one, clap must read the same provider, request, format, output, config and
    /// context; where clap refuses one, the fast path must not accept it.
    #[test]
    fn the_fast_path_reads_every_line_it_accepts_as_clap_does() {
        let globals: [&[&str]; 9] = [
            &[],
            &["--config", "/c.toml"],
            &["--config=/c.toml"],
            &["--context", "dev"],
            &["--output", "json"],
            &["--output=text"],
            &["--plugin-dir", "/p"],
            &["--config", "--context"],
            &["-v"],
        ];
        let commands: [&[&str]; 9] = [
            &["auth", "token", "sso"],
            &["auth", "token", "sso", "--format", "raw"],
            &["auth", "token", "sso", "--format=exec-credential"],
            &["auth", "token", "sso", "--format", "aws-process"],
            &["auth", "headers", "sso"],
            &["auth", "headers", "sso", "--format", "raw"],
            &["auth", "login", "sso"],
            &["auth", "token"],
            &["auth", "token", "sso", "extra"],
        ];
        let mut accepted = 0;
        for before in globals {
            for after in globals {
                for command in commands {
                    let line: Vec<String> = before
                        .iter()
                        .chain(command)
                        .chain(after)
                        .map(|s| s.to_string())
                        .collect();
                    let Some(fast) = parse(&line) else { continue };
                    accepted += 1;
                    let clap =
                        Cli::try_parse_from(std::iter::once("qlam".to_owned()).chain(line.clone()))
                            .unwrap_or_else(|e| {
                                panic!("the fast path accepts {line:?}, clap refuses it: {e}")
                            });
                    if let Some(c) = &fast.config {
                        assert_eq!(
                            clap.config.as_deref(),
                            Some(std::path::Path::new(c)),
                            "{line:?}"
                        );
                    }
                    if let Some(c) = &fast.context {
                        assert_eq!(clap.context.as_ref(), Some(c), "{line:?}");
                    }
                    assert_eq!(
                        fast.json_output,
                        clap.output == OutputFormat::Json,
                        "{line:?}"
                    );
                    match (&fast.request, &clap.command) {
                        (
                            FastRequest::Token { provider, format },
                            Command::Auth(AuthCommand::Token {
                                provider: p,
                                format: f,
                            }),
                        ) => assert_eq!((provider, format), (p, f), "{line:?}"),
                        (
                            FastRequest::Headers { provider },
                            Command::Auth(AuthCommand::Headers { provider: p }),
                        ) => assert_eq!(provider, p, "{line:?}"),
                        (fast, _) => {
                            panic!("{line:?}: the fast path reads {fast:?}, clap another command")
                        }
                    }
                }
            }
        }
        assert!(
            accepted > 100,
            "the grammar accepts its own lines ({accepted})"
        );
    }

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
