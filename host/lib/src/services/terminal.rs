//! User interaction on the terminal: everything on stderr, prompts read from the terminal (or
//! from piped stdin, one line per prompt, for scripts).

use std::io::{BufRead, IsTerminal, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use qlam_plugin_api::{Error as ProviderError, Interaction, InteractionReply, Secret};

use super::UserInteraction;

/// The CLI's [`UserInteraction`], for embedders too: messages, device codes and progress on
/// stderr (a spinner when stderr is a terminal), URLs opened with `$BROWSER` or the system's
/// opener (printed instead with `no_browser`), prompts read from the terminal without echo for
/// secrets, or one line per prompt from piped stdin.
///
/// ```no_run
/// # fn main() -> Result<(), qlam_host::Error> {
/// let client = qlam_host::AuthClient::builder()
///     .interaction(std::sync::Arc::new(qlam_host::Terminal::new(false)))
///     .build()?;
/// client.login(Some("corp-sso"), &Default::default())?;
/// # Ok(())
/// # }
/// ```
pub struct Terminal {
    no_browser: bool,
    stdin_is_tty: bool,
    stderr_is_tty: bool,
    spinner: Mutex<Option<Spinner>>,
}

struct Spinner {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Terminal {
    /// A terminal interaction; `no_browser` prints URLs instead of opening them.
    pub fn new(no_browser: bool) -> Self {
        Terminal {
            no_browser,
            stdin_is_tty: std::io::stdin().is_terminal(),
            stderr_is_tty: std::io::stderr().is_terminal(),
            spinner: Mutex::new(None),
        }
    }

    fn stop_spinner(&self) {
        if let Some(s) = self
            .spinner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            s.stop.store(true, Ordering::Relaxed);
            let _ = s.thread.join();
            eprint!("\r\x1b[2K");
        }
    }

    fn read_line(&self, prompt: &str) -> Result<String, ProviderError> {
        let mut line = String::new();
        let n = std::io::stdin().lock().read_line(&mut line).map_err(|e| {
            ProviderError::interaction(format!("cannot read an answer for `{prompt}`: {e}"))
        })?;
        if n == 0 {
            return Err(ProviderError::interaction(format!(
                "`{prompt}` needs an answer, but standard input is closed; run in a terminal or pipe the answer"
            )));
        }
        Ok(line.trim_end_matches(['\n', '\r']).to_owned())
    }

    fn open_browser(&self, url: &str) -> bool {
        if let Ok(browsers) = std::env::var("BROWSER") {
            for entry in browser_entries(&browsers, BROWSER_SEPARATOR) {
                let mut parts: Vec<String> = entry.split_whitespace().map(str::to_owned).collect();
                if parts.iter().any(|p| p.contains("%s")) {
                    for p in &mut parts {
                        *p = p.replace("%s", url);
                    }
                } else {
                    parts.push(url.to_owned());
                }
                if spawn_detached(&parts) {
                    return true;
                }
            }
            return false;
        }
        let cmd: Vec<String> = if cfg!(target_os = "macos") {
            vec!["open".into(), url.into()]
        } else if cfg!(windows) {
            vec![
                "cmd".into(),
                "/C".into(),
                "start".into(),
                "".into(),
                url.into(),
            ]
        } else {
            vec!["xdg-open".into(), url.into()]
        };
        spawn_detached(&cmd)
    }
}

/// What separates the commands in `$BROWSER`: the platform's path-list separator, as Python's
/// `webbrowser` reads it (`os.pathsep`) — `;` on Windows, where `:` is in every `C:\…` path.
const BROWSER_SEPARATOR: char = if cfg!(windows) { ';' } else { ':' };

/// The commands of a `$BROWSER` value, in order, empty ones left out.
fn browser_entries(value: &str, separator: char) -> impl Iterator<Item = &str> {
    value.split(separator).filter(|e| !e.trim().is_empty())
}

fn spawn_detached(cmd: &[String]) -> bool {
    let Some((prog, args)) = cmd.split_first() else {
        return false;
    };
    Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .is_ok()
}

impl UserInteraction for Terminal {
    fn interact(
        &self,
        provider: &str,
        request: &Interaction,
    ) -> Result<InteractionReply, ProviderError> {
        match request {
            Interaction::Progress {
                message,
                done: false,
            } => {
                self.stop_spinner();
                if self.stderr_is_tty {
                    let stop = Arc::new(AtomicBool::new(false));
                    let flag = stop.clone();
                    let message = message.clone();
                    let thread = std::thread::spawn(move || {
                        const FRAMES: [&str; 10] =
                            ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
                        let mut i = 0;
                        while !flag.load(Ordering::Relaxed) {
                            eprint!("\r\x1b[2K{} {message}", FRAMES[i % FRAMES.len()]);
                            let _ = std::io::stderr().flush();
                            i += 1;
                            std::thread::sleep(Duration::from_millis(80));
                        }
                    });
                    *self.spinner.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(Spinner { stop, thread });
                } else {
                    eprintln!("{message}…");
                }
                Ok(InteractionReply::Done)
            }
            Interaction::Progress { done: true, .. } => {
                self.stop_spinner();
                Ok(InteractionReply::Done)
            }
            Interaction::ShowVerification {
                verification_uri,
                user_code,
                verification_uri_complete,
            } => {
                self.stop_spinner();
                eprintln!("Visit {verification_uri} and enter code {user_code}");
                if let Some(c) = verification_uri_complete {
                    eprintln!("or open {c}");
                }
                Ok(InteractionReply::Done)
            }
            Interaction::OpenUrl { url } => {
                self.stop_spinner();
                if !self.no_browser && self.open_browser(url) {
                    eprintln!("Opened your browser at {url}");
                    Ok(InteractionReply::Opened { opened: true })
                } else {
                    eprintln!("Open this URL in your browser to continue:\n\n    {url}\n");
                    Ok(InteractionReply::Opened { opened: false })
                }
            }
            Interaction::PromptText { prompt } => {
                self.stop_spinner();
                if self.stdin_is_tty {
                    eprint!("{prompt}: ");
                    let _ = std::io::stderr().flush();
                }
                Ok(InteractionReply::Text {
                    text: Secret::new(self.read_line(prompt)?),
                })
            }
            Interaction::PromptSecret { prompt } => {
                self.stop_spinner();
                let text = if self.stdin_is_tty {
                    rpassword::prompt_password(format!("{prompt}: ")).map_err(|e| {
                        ProviderError::interaction(format!(
                            "cannot read `{prompt}` from the terminal: {e}"
                        ))
                    })?
                } else {
                    self.read_line(prompt)?
                };
                Ok(InteractionReply::Text {
                    text: Secret::new(text),
                })
            }
            _ => Err(ProviderError::interaction(format!(
                "provider `{provider}` asked for an interaction this version of qlam does not know"
            ))),
        }
    }

    fn is_interactive(&self) -> bool {
        self.stdin_is_tty
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.stop_spinner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_commands_split_at_the_path_list_separator() {
        let unix: Vec<&str> = browser_entries("firefox %s::xdg-open", ':').collect();
        assert_eq!(unix, ["firefox %s", "xdg-open"]);
        // On Windows a drive letter's colon is no separator.
        let windows: Vec<&str> =
            browser_entries(r"C:\Program Files\Browser\browser.exe;edge", ';').collect();
        assert_eq!(windows, [r"C:\Program Files\Browser\browser.exe", "edge"]);
    }
}
