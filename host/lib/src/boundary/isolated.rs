//! Isolation: a plugin library in a child process (`isolation = "process"`).
//!
//! The child is the `qlam` executable run as `qlam __isolated-plugin`. It loads the one
//! library under the same trust checks, then serves the parent's calls over its stdin and
//! stdout: frames of a little-endian `u32` length and a JSON message. While a call runs, the
//! child asks the parent for host services (the secret store, the user, logging) with frames
//! of its own, so the store, its locks and every prompt stay in the parent. The child's
//! stderr carries its log records (see `plugin_log`), which the parent logs under its own
//! filters after redaction.
//!
//! One child per library per registry, started on first use; calls into it are made one at a
//! time. When the child dies — a signal, `abort()`, a stack overflow, `exit()` — the call
//! fails with how it died and the next call starts a new child, which builds its providers
//! again. When a call misses its deadline, the parent kills the child.
//!
//! Everything the child says is input: a frame is at most 64 MiB, a message that does not
//! parse ends the child, and answers go through the same checks as in-process ones.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qlam_plugin_api::ffi::{FactoryHandle, LoadErrorKind, ProviderHandle};
use qlam_plugin_api::{
    Capabilities, Interaction, InteractionReply, LogLevel, Secret, ServicesBackend,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ops::{Op, Reply};
use super::Failure;
use crate::plugins::trust::TrustPolicy;

/// The hidden subcommand that makes `qlam` an isolated plugin's process.
pub const CHILD_SUBCOMMAND: &str = "__isolated-plugin";

/// The largest frame either side accepts.
const MAX_FRAME: usize = 64 << 20;

/// One `write` per frame: a reader woken by the length alone would only sleep again.
fn write_frame(w: &mut impl Write, message: &impl Serialize) -> std::io::Result<()> {
    let mut frame = vec![0u8; 4];
    serde_json::to_writer(&mut frame, message).map_err(std::io::Error::other)?;
    let len = u32::try_from(frame.len() - 4).map_err(std::io::Error::other)?;
    frame[..4].copy_from_slice(&len.to_le_bytes());
    w.write_all(&frame)?;
    w.flush()
}

/// `Ok(None)` at the end of the stream before a frame starts.
fn read_frame<T: DeserializeOwned>(r: &mut impl Read) -> std::io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes (at most {MAX_FRAME})"),
        ));
    }
    let mut bytes = vec![0u8; len];
    r.read_exact(&mut bytes)?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        // serde's message can quote the input, which may hold a secret: position only.
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "a message that does not parse ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
        )
    })
}

// ---------------------------------------------------------------------------------------------
// The protocol

/// What the child is to load, and how.
#[derive(Debug, Serialize, Deserialize)]
struct Init {
    library: PathBuf,
    allow_symlinks: bool,
    pins: Vec<(PathBuf, String)>,
    require_pinned: bool,
    /// The most verbose log level the parent wants (a `LogLevel` code, 5: none).
    max_log_level: u8,
}

/// A request to build a provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BuildRequest {
    pub type_name: String,
    pub context: String,
    pub provider: String,
    pub config: Value,
    /// The configuration file's folder: the base of relative paths in `config`.
    #[serde(default)]
    pub config_dir: Option<PathBuf>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ToChild {
    Init(Init),
    Build(BuildRequest),
    ExtraInfo { type_name: String, config: Value },
    Call { provider: u64, op: Op },
    Service(ServiceReply),
}

/// A provider type as the child found it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TypeInfo {
    pub name: String,
    pub description: String,
    pub capabilities: u32,
}

/// What the child found in its library.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Ready {
    pub api_version: String,
    pub types: Vec<TypeInfo>,
    /// Provider types that failed while being listed (a panic in `name`…), as raw errors.
    pub errors: Vec<WireError>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireError {
    kind: u8,
    message: String,
}

impl From<qlam_plugin_api::Error> for WireError {
    fn from(e: qlam_plugin_api::Error) -> Self {
        WireError {
            kind: e.kind().code(),
            message: e.message().to_owned(),
        }
    }
}

impl From<WireError> for qlam_plugin_api::Error {
    fn from(e: WireError) -> Self {
        qlam_plugin_api::Error::new(qlam_plugin_api::ErrorKind::from_code(e.kind), e.message)
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FromChild {
    Ready(Ready),
    /// The library was refused or failed to load (trust, format, version…).
    Refused {
        kind: String,
        summary: String,
        detail: String,
        api_version: Option<String>,
    },
    Built {
        provider: u64,
        capabilities: u32,
    },
    Info(Map<String, Value>),
    Reply(Reply),
    Failed(WireError),
    Service(ServiceCall),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ServiceCall {
    SecretLoad { key: String },
    SecretStore { key: String, value: Secret<String> },
    SecretDelete { key: String },
    Interact(Interaction),
    IsInteractive,
    Log { level: u8, message: String },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ServiceReply {
    Value(Option<Secret<String>>),
    Done,
    Interaction(InteractionReply),
    Bool(bool),
    Failed(WireError),
}

// ---------------------------------------------------------------------------------------------
// The parent's side

/// A plugin library served by a child process.
pub struct IsolatedLibrary {
    path: PathBuf,
    exe: PathBuf,
    policy: TrustPolicy,
    state: Mutex<Option<Running>>,
    generations: AtomicU64,
}

struct Running {
    child: Child,
    to: ChildStdin,
    from: BufReader<DeadlineReader>,
    generation: u64,
    ready: Ready,
}

/// The child's stdout, read only until a deadline: each read first waits (`poll`) for data
/// at most until then. The caller's own thread does the waiting, so an isolated call needs
/// no hand-over to a worker thread to be bounded in time.
struct DeadlineReader {
    pipe: ChildStdout,
    deadline: Instant,
}

impl Read for DeadlineReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        #[cfg(unix)]
        let poll = {
            use std::os::fd::AsRawFd;
            let fd = self.pipe.as_raw_fd();
            move |ms| crate::sys::poll_readable(fd, ms)
        };
        #[cfg(windows)]
        let poll = {
            use std::os::windows::io::AsRawHandle;
            let handle = self.pipe.as_raw_handle();
            // No waiting on an anonymous pipe with a timeout: a look, a millisecond's sleep,
            // another look (the loop in `wait_readable` keeps the deadline).
            move |ms: i32| {
                let ready = crate::sys::pipe_readable(handle)?;
                if ready || ms == 0 {
                    return Ok(ready);
                }
                std::thread::sleep(Duration::from_millis(1));
                crate::sys::pipe_readable(handle)
            }
        };
        #[cfg(any(unix, windows))]
        if !wait_readable(poll, Some(self.deadline))? {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.pipe.read(buf)
    }
}

/// How long a reader of the protocol's pipes asks for data without sleeping. The other side
/// usually answers within microseconds, and a reader asleep on another CPU costs a cross-CPU
/// wake-up to rouse — 20 to 40 µs on the 2-vCPU test machine, against 2 µs for the whole
/// round trip when both sides stay awake (bench/README.md).
#[cfg(any(unix, windows))]
const SPIN: Duration = Duration::from_micros(50);

/// Waits until a pipe has data (or its other end closed): first looking without sleeping
/// for at most [`SPIN`], then sleeping in `poll(ms)` (which says whether there is data, having
/// waited at most `ms` for it; -1: as long as it takes) until `deadline` (none: for ever).
/// `false` when the deadline passed.
#[cfg(any(unix, windows))]
fn wait_readable(
    poll: impl Fn(i32) -> std::io::Result<bool>,
    deadline: Option<Instant>,
) -> std::io::Result<bool> {
    let spin_until = Instant::now() + SPIN;
    while Instant::now() < spin_until {
        if poll(0)? {
            return Ok(true);
        }
        std::hint::spin_loop();
    }
    loop {
        let ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                left.as_millis().clamp(1, i32::MAX as u128) as i32
            }
        };
        if poll(ms)? {
            return Ok(true);
        }
    }
}

/// The child's end of the request pipe, read the same way (without a deadline: the parent
/// decides when the child ends). On Windows a plain blocking read: looking and sleeping in
/// turn for ever would wake an idle child a thousand times a second.
struct SpinningReader(std::fs::File);

impl Read for SpinningReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            let fd = self.0.as_raw_fd();
            wait_readable(|ms| crate::sys::poll_readable(fd, ms), None)?;
        }
        self.0.read(buf)
    }
}

/// Why an isolated library could not be started.
pub(crate) struct StartError {
    /// It did not answer in time (and was killed).
    pub timed_out: bool,
    pub kind: LoadErrorKind,
    pub summary: String,
    pub detail: String,
    pub api_version: Option<String>,
}

impl std::fmt::Debug for IsolatedLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsolatedLibrary")
            .field("path", &self.path)
            .finish()
    }
}

impl IsolatedLibrary {
    /// A library to be run by `exe` (a `qlam` executable) under `policy`; nothing starts
    /// until it is used.
    pub(crate) fn new(path: &Path, exe: &Path, policy: &TrustPolicy) -> Arc<IsolatedLibrary> {
        Arc::new(IsolatedLibrary {
            path: path.to_owned(),
            exe: exe.to_owned(),
            policy: policy.clone(),
            state: Mutex::new(None),
            generations: AtomicU64::new(0),
        })
    }

    /// Starts the child (if it is not running) and answers what it found in the library,
    /// within `limit` (the child is killed when it does not answer in time).
    pub(crate) fn discover(&self, limit: Duration) -> Result<Ready, StartError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.running(&mut state, Instant::now() + limit)
            .map(|r| r.ready.clone())
    }

    fn running<'a>(
        &self,
        state: &'a mut Option<Running>,
        deadline: Instant,
    ) -> Result<&'a mut Running, StartError> {
        let alive = match state.as_mut() {
            Some(r) => matches!(r.child.try_wait(), Ok(None)),
            None => false,
        };
        if !alive {
            if let Some(mut old) = state.take() {
                let _ = old.child.kill();
                let _ = old.child.wait();
            }
            *state = Some(self.start(deadline)?);
        }
        Ok(state.as_mut().expect("started above"))
    }

    fn start(&self, deadline: Instant) -> Result<Running, StartError> {
        let fail = |summary: String| StartError {
            timed_out: false,
            kind: LoadErrorKind::Open,
            summary,
            detail: String::new(),
            api_version: None,
        };
        let mut child = Command::new(&self.exe)
            .arg(CHILD_SUBCOMMAND)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                fail(format!(
                    "cannot start `{}` to run it isolated: {e}",
                    self.exe.display()
                ))
            })?;
        let source = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stderr = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            // Line by line, a line at most 64 KiB (longer ones come in pieces): whatever the
            // child writes, the parent's memory stays bounded.
            let mut reader = BufReader::new(stderr);
            let mut line = Vec::new();
            loop {
                line.clear();
                match (&mut reader).take(64 << 10).read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line);
                        crate::plugins::log::emit_child_line(
                            &source,
                            text.trim_end_matches(['\n', '\r']),
                        );
                    }
                }
            }
        });
        let mut running = Running {
            to: child.stdin.take().expect("piped"),
            from: BufReader::new(DeadlineReader {
                pipe: child.stdout.take().expect("piped"),
                deadline,
            }),
            child,
            generation: self.generations.fetch_add(1, Ordering::SeqCst) + 1,
            ready: Ready {
                api_version: String::new(),
                types: Vec::new(),
                errors: Vec::new(),
            },
        };
        let init = ToChild::Init(Init {
            library: self.path.clone(),
            allow_symlinks: self.policy.allow_symlinks,
            pins: self.policy.pins.clone(),
            require_pinned: self.policy.require_pinned,
            max_log_level: crate::plugins::log::max_level(),
        });
        let answer = self.exchange(&mut running, &init, None, deadline);
        if !matches!(answer, Ok(FromChild::Ready(_))) {
            // It refused the library and is exiting, or broke the protocol: reap it.
            self.end(&mut running);
        }
        match answer {
            Ok(FromChild::Ready(ready)) => {
                running.ready = ready;
                Ok(running)
            }
            Ok(FromChild::Refused {
                kind,
                summary,
                detail,
                api_version,
            }) => Err(StartError {
                timed_out: false,
                kind: crate::plugins::kind_from_name(&kind),
                summary,
                detail,
                api_version,
            }),
            Ok(_) => Err(fail("its process answered out of turn".into())),
            Err(Failure::Crashed(how)) => Err(StartError {
                timed_out: false,
                kind: LoadErrorKind::InitFailed,
                summary: format!("crashed the process that loaded it ({how})"),
                detail: String::new(),
                api_version: None,
            }),
            Err(Failure::TimedOut) => Err(StartError {
                timed_out: true,
                kind: LoadErrorKind::InitFailed,
                summary: "did not finish loading in time (in its own process, which was killed)"
                    .into(),
                detail: String::new(),
                api_version: None,
            }),
            Err(Failure::Garbled(why)) => Err(fail(format!("its process answered garbage: {why}"))),
            Err(Failure::Provider(e)) => Err(fail(e.message().to_owned())),
        }
    }

    /// Sends `message` and reads frames until the answer, serving the child's service calls
    /// with `services` meanwhile; a child that has not answered by `deadline` is killed.
    fn exchange(
        &self,
        running: &mut Running,
        message: &ToChild,
        services: Option<&dyn ServicesBackend>,
        deadline: Instant,
    ) -> Result<FromChild, Failure> {
        running.from.get_mut().deadline = deadline;
        if write_frame(&mut running.to, message).is_err() {
            return Err(self.died(running));
        }
        loop {
            let frame: Option<FromChild> = match read_frame(&mut running.from) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    self.end(running);
                    return Err(Failure::TimedOut);
                }
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    self.end(running);
                    return Err(Failure::Garbled(e.to_string()));
                }
                Err(_) => None,
            };
            match frame {
                None => return Err(self.died(running)),
                Some(FromChild::Service(call)) => {
                    let reply = serve_service(services, call);
                    if write_frame(&mut running.to, &ToChild::Service(reply)).is_err() {
                        return Err(self.died(running));
                    }
                }
                Some(answer) => return Ok(answer),
            }
        }
    }

    /// Kills and reaps a child that broke the protocol or missed its deadline.
    fn end(&self, running: &mut Running) {
        let _ = running.child.kill();
        let _ = running.child.wait();
    }

    /// How the child died (it closed its pipe): its exit status or signal.
    fn died(&self, running: &mut Running) -> Failure {
        // It closed stdout, so it is exiting; a child that closed it and goes on is killed.
        let status = (0..200).find_map(|_| match running.child.try_wait() {
            Ok(Some(s)) => Some(s),
            _ => {
                std::thread::sleep(std::time::Duration::from_millis(5));
                None
            }
        });
        let status = match status {
            Some(s) => s,
            None => {
                let _ = running.child.kill();
                match running.child.wait() {
                    Ok(s) => s,
                    Err(e) => return Failure::Crashed(format!("its process was lost: {e}")),
                }
            }
        };
        Failure::Crashed(describe_exit(status))
    }

    /// Runs `f` with the running child (starting one if needed), under the lock.
    fn with_running<T>(
        &self,
        deadline: Instant,
        f: impl FnOnce(&Self, &mut Running) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let running = self
            .running(&mut state, deadline)
            .map_err(|e| Failure::Crashed(format!("its process could not start: {}", e.summary)))?;
        f(self, running)
    }

    /// Display-only facts for a provider's configuration, from the child.
    pub(crate) fn extra_info(
        &self,
        type_name: &str,
        config: &Value,
        deadline: Instant,
    ) -> Result<Map<String, Value>, Failure> {
        let message = ToChild::ExtraInfo {
            type_name: type_name.to_owned(),
            config: config.clone(),
        };
        self.with_running(deadline, |lib, running| {
            match lib.exchange(running, &message, None, deadline)? {
                FromChild::Info(info) => Ok(info),
                FromChild::Failed(e) => Err(Failure::Provider(e.into())),
                _ => Err(Failure::Garbled("an answer of the wrong kind".into())),
            }
        })
    }
}

impl Drop for IsolatedLibrary {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(mut running) = state.take() {
            // Closing its stdin ends the child's loop and it exits; one that does not within
            // a moment (a plugin's exit handler that hangs) is killed.
            drop(running.to);
            let give_up = Instant::now() + Duration::from_millis(100);
            while Instant::now() < give_up {
                if !matches!(running.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return match signal_name(sig) {
                Some(name) => format!("signal {sig}, {name}"),
                None => format!("signal {sig}"),
            };
        }
    }
    #[cfg(windows)]
    if let Some((code, name)) = status
        .code()
        .and_then(|c| exception_name(c as u32).map(|name| (c as u32, name)))
    {
        return format!("its process ended with exception {code:#010X}, {name}");
    }
    match status.code() {
        Some(code) => format!("its process exited with status {code}"),
        None => "its process ended".into(),
    }
}

/// The exceptions a crashed Windows process's exit status says it ended with.
#[cfg(windows)]
fn exception_name(code: u32) -> Option<&'static str> {
    Some(match code {
        0x8000_0003 => "a breakpoint",
        0xC000_0005 => "an access violation",
        0xC000_001D => "an illegal instruction",
        0xC000_0094 => "an integer division by zero",
        0xC000_00FD => "a stack overflow",
        0xC000_0135 => "a DLL it needs was not found",
        0xC000_0374 => "a corrupted heap",
        // __fastfail: Rust's abort, and what a detected buffer overrun ends with.
        0xC000_0409 => "a fail-fast abort",
        _ => return None,
    })
}

/// The names of the signals a crash ends with.
#[cfg(unix)]
fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => return None,
    })
}

fn serve_service(services: Option<&dyn ServicesBackend>, call: ServiceCall) -> ServiceReply {
    let Some(s) = services else {
        return ServiceReply::Failed(
            qlam_plugin_api::Error::other("no host services outside a provider call").into(),
        );
    };
    let result = match call {
        ServiceCall::SecretLoad { key } => s.secret_load(&key).map(ServiceReply::Value),
        ServiceCall::SecretStore { key, value } => {
            s.secret_store(&key, &value).map(|()| ServiceReply::Done)
        }
        ServiceCall::SecretDelete { key } => s.secret_delete(&key).map(|()| ServiceReply::Done),
        ServiceCall::Interact(request) => s.interact(&request).map(ServiceReply::Interaction),
        ServiceCall::IsInteractive => Ok(ServiceReply::Bool(s.is_interactive())),
        ServiceCall::Log { level, message } => {
            s.log(LogLevel::from_code(level), &message);
            Ok(ServiceReply::Done)
        }
    };
    result.unwrap_or_else(|e| ServiceReply::Failed(e.into()))
}

/// A provider built in an isolated library's process.
pub(crate) struct RemoteProvider {
    library: Arc<IsolatedLibrary>,
    request: BuildRequest,
    services: Arc<dyn ServicesBackend>,
    capabilities: Capabilities,
    /// Its id in the child of this generation; a new child builds it again.
    built: Mutex<(u64, u64)>,
}

impl RemoteProvider {
    fn build_in(
        library: &IsolatedLibrary,
        running: &mut Running,
        request: &BuildRequest,
        services: &dyn ServicesBackend,
        deadline: Instant,
    ) -> Result<(u64, Capabilities), Failure> {
        let message = ToChild::Build(request.clone());
        match library.exchange(running, &message, Some(services), deadline)? {
            FromChild::Built {
                provider,
                capabilities,
            } => Ok((provider, Capabilities::from_bits(capabilities))),
            FromChild::Failed(e) => Err(Failure::Provider(e.into())),
            _ => Err(Failure::Garbled("an answer of the wrong kind".into())),
        }
    }

    /// Builds a provider in the library's process.
    pub(crate) fn build(
        library: Arc<IsolatedLibrary>,
        request: BuildRequest,
        services: Arc<dyn ServicesBackend>,
        deadline: Instant,
    ) -> Result<RemoteProvider, Failure> {
        let (generation, id, capabilities) = library.with_running(deadline, |lib, running| {
            let (id, caps) = Self::build_in(lib, running, &request, &*services, deadline)?;
            Ok((running.generation, id, caps))
        })?;
        Ok(RemoteProvider {
            library,
            request,
            services,
            capabilities,
            built: Mutex::new((generation, id)),
        })
    }

    pub(crate) fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    /// Makes a call in the library's process, building the provider again first when the
    /// process is a new one; the process is killed if it has not answered by `deadline`.
    pub(crate) fn call(&self, op: Op, deadline: Instant) -> Result<Reply, Failure> {
        self.library.with_running(deadline, |lib, running| {
            let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
            if built.0 != running.generation {
                let (id, _) =
                    Self::build_in(lib, running, &self.request, &*self.services, deadline)?;
                *built = (running.generation, id);
            }
            let message = ToChild::Call {
                provider: built.1,
                op,
            };
            match lib.exchange(running, &message, Some(&*self.services), deadline)? {
                FromChild::Reply(reply) => Ok(reply),
                FromChild::Failed(e) => Err(Failure::Provider(e.into())),
                _ => Err(Failure::Garbled("an answer of the wrong kind".into())),
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The child's side

/// The child's view of the host services: each call is a frame to the parent and a wait for
/// its answer (the child serves one parent call at a time, so the answer is the next frame).
struct ParentServices {
    io: Arc<Mutex<ChildIo>>,
}

struct ChildIo {
    input: BufReader<SpinningReader>,
    output: std::fs::File,
}

impl ChildIo {
    /// The protocol's pipes, moved off descriptors 0 and 1: the library's own code may print
    /// (its output then goes to stderr, which the parent logs) or read stdin (it finds
    /// /dev/null or NUL), and neither may corrupt a frame.
    #[cfg(any(unix, windows))]
    fn take_standard_streams() -> std::io::Result<ChildIo> {
        let (input, output) = crate::sys::take_standard_streams()?;
        Ok(ChildIo {
            input: BufReader::new(SpinningReader(input)),
            output,
        })
    }

    #[cfg(not(any(unix, windows)))]
    fn take_standard_streams() -> std::io::Result<ChildIo> {
        Err(std::io::Error::other(
            "isolated providers are not supported on this system yet",
        ))
    }
}

impl ParentServices {
    fn ask(&self, call: ServiceCall) -> qlam_plugin_api::Result<ServiceReply> {
        let mut io = self.io.lock().unwrap_or_else(|p| p.into_inner());
        let lost = || qlam_plugin_api::Error::other("the host process is gone");
        write_frame(&mut io.output, &FromChild::Service(call)).map_err(|_| lost())?;
        match read_frame::<ToChild>(&mut io.input) {
            Ok(Some(ToChild::Service(ServiceReply::Failed(e)))) => Err(e.into()),
            Ok(Some(ToChild::Service(reply))) => Ok(reply),
            _ => {
                // The parent broke the protocol or went away: nothing sensible is left.
                std::process::exit(3)
            }
        }
    }
}

impl ServicesBackend for ParentServices {
    fn secret_load(&self, key: &str) -> qlam_plugin_api::Result<Option<Secret<String>>> {
        match self.ask(ServiceCall::SecretLoad { key: key.into() })? {
            ServiceReply::Value(v) => Ok(v),
            _ => Err(qlam_plugin_api::Error::other(
                "unexpected answer from the host",
            )),
        }
    }

    fn secret_store(&self, key: &str, value: &Secret<String>) -> qlam_plugin_api::Result<()> {
        self.ask(ServiceCall::SecretStore {
            key: key.into(),
            value: value.clone(),
        })
        .map(drop)
    }

    fn secret_delete(&self, key: &str) -> qlam_plugin_api::Result<()> {
        self.ask(ServiceCall::SecretDelete { key: key.into() })
            .map(drop)
    }

    fn interact(&self, request: &Interaction) -> qlam_plugin_api::Result<InteractionReply> {
        match self.ask(ServiceCall::Interact(request.clone()))? {
            ServiceReply::Interaction(r) => Ok(r),
            _ => Err(qlam_plugin_api::Error::other(
                "unexpected answer from the host",
            )),
        }
    }

    fn is_interactive(&self) -> bool {
        matches!(
            self.ask(ServiceCall::IsInteractive),
            Ok(ServiceReply::Bool(true))
        )
    }

    fn log(&self, level: LogLevel, message: &str) {
        let _ = self.ask(ServiceCall::Log {
            level: level.code(),
            message: message.into(),
        });
    }
}

/// The child side of `isolation = "process"`: loads the library the parent names and serves
/// its calls over stdin and stdout until the parent closes the pipe; answers the process exit
/// code. `qlam` runs it as `qlam __isolated-plugin` ([`CHILD_SUBCOMMAND`]); a program that
/// embeds the host and ships its own executable for isolated providers calls it when run so.
pub fn serve() -> i32 {
    let io = match ChildIo::take_standard_streams() {
        Ok(io) => io,
        Err(e) => {
            // The parent logs this line and reports the exit status.
            eprintln!("qlam {CHILD_SUBCOMMAND}: cannot take over the standard streams: {e}");
            return 2;
        }
    };
    let io = Arc::new(Mutex::new(io));
    let send = |message: &FromChild| {
        let mut io = io.lock().unwrap_or_else(|p| p.into_inner());
        write_frame(&mut io.output, message).is_ok()
    };
    let receive = || {
        let mut io = io.lock().unwrap_or_else(|p| p.into_inner());
        read_frame::<ToChild>(&mut io.input)
    };
    let Ok(Some(ToChild::Init(init))) = receive() else {
        eprintln!("qlam {CHILD_SUBCOMMAND}: the first message was not the library to load");
        return 2;
    };
    crate::plugins::log::forward_to_stderr(init.max_log_level);
    let policy = TrustPolicy {
        allow_symlinks: init.allow_symlinks,
        pins: init.pins,
        require_pinned: init.require_pinned,
    };
    let library = match crate::plugins::open_library(&init.library, &policy) {
        Ok(l) => l,
        Err(e) => {
            send(&FromChild::Refused {
                kind: crate::plugins::kind_name(e.kind).into(),
                summary: e.summary,
                detail: e.detail,
                api_version: e.api_version,
            });
            return 0;
        }
    };
    let mut errors: Vec<WireError> = library
        .factory_errors
        .into_iter()
        .map(WireError::from)
        .collect();
    let mut types = Vec::new();
    let mut factories: Vec<(String, FactoryHandle)> = Vec::new();
    for (name, f) in library.factories {
        match f
            .description()
            .and_then(|d| Ok((d, f.capabilities()?.bits())))
        {
            Ok((description, capabilities)) => {
                types.push(TypeInfo {
                    name: name.clone(),
                    description,
                    capabilities,
                });
                factories.push((name, f));
            }
            Err(e) => errors.push(e.into()),
        }
    }
    if !send(&FromChild::Ready(Ready {
        api_version: library.api_version,
        types,
        errors,
    })) {
        return 0;
    }
    let services: Arc<dyn ServicesBackend> = Arc::new(ParentServices { io: io.clone() });
    let mut providers: Vec<ProviderHandle> = Vec::new();
    let factory = |name: &str| {
        factories
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                qlam_plugin_api::Error::configuration(format!(
                    "the library does not provide type `{name}`"
                ))
            })
    };
    loop {
        let answer = match receive() {
            Ok(Some(ToChild::Build(request))) => match factory(&request.type_name).and_then(|f| {
                f.build(
                    &request.context,
                    &request.provider,
                    &request.config,
                    request.config_dir.as_deref(),
                    services.clone(),
                )
            }) {
                Ok(p) => {
                    let capabilities = p.capabilities().bits();
                    providers.push(p);
                    FromChild::Built {
                        provider: providers.len() as u64 - 1,
                        capabilities,
                    }
                }
                Err(e) => FromChild::Failed(e.into()),
            },
            Ok(Some(ToChild::ExtraInfo { type_name, config })) => {
                match factory(&type_name).and_then(|f| f.extra_info(&config)) {
                    Ok(info) => FromChild::Info(info),
                    Err(e) => FromChild::Failed(e.into()),
                }
            }
            Ok(Some(ToChild::Call { provider, op })) => match providers.get(provider as usize) {
                Some(p) => match op.run(p) {
                    Ok(reply) => FromChild::Reply(reply),
                    Err(e) => FromChild::Failed(e.into()),
                },
                None => FromChild::Failed(
                    qlam_plugin_api::Error::other("no such provider in this process").into(),
                ),
            },
            // The parent closed the pipe: done.
            Ok(None) => return 0,
            Ok(Some(_)) | Err(_) => return 2,
        };
        if !send(&answer) {
            return 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_one_write() {
        struct Writes(Vec<Vec<u8>>);
        impl Write for Writes {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.push(b.to_vec());
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut w = Writes(Vec::new());
        write_frame(
            &mut w,
            &ToChild::Call {
                provider: 3,
                op: Op::Token,
            },
        )
        .unwrap();
        assert_eq!(w.0.len(), 1, "one write per frame");
        let back: Option<ToChild> = read_frame(&mut &w.0[0][..]).unwrap();
        assert!(matches!(
            back,
            Some(ToChild::Call {
                provider: 3,
                op: Op::Token
            })
        ));
        let none: Option<ToChild> = read_frame(&mut &b""[..]).unwrap();
        assert!(none.is_none(), "end of stream between frames");
    }

    #[test]
    fn a_garbled_frame_is_refused_without_quoting_it() {
        let body = br#"{"reply": {"text": 42, "x": "canary-garbled-secret"}"#;
        let mut frame = (body.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(body);
        let e = read_frame::<FromChild>(&mut &frame[..]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert!(!e.to_string().contains("canary"), "{e}");
        // A length past the limit is refused before anything is allocated.
        let huge = u32::MAX.to_le_bytes();
        let e = read_frame::<FromChild>(&mut &huge[..]).unwrap_err();
        assert!(e.to_string().contains("at most"), "{e}");
    }
}
