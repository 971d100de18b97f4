//! A plugin library's own logging, sent to the host.
//!
//! Every plugin library has its own copies of the `log` and `tracing` crates (their global
//! state is per library), so a record logged by the plugin or by a crate it uses (an HTTP
//! client, a TLS library) would otherwise go nowhere. When the host loads a library it hands
//! over a sink; this module installs a `log` logger that forwards to it, and `tracing` events
//! reach that logger through `tracing`'s `log` feature (a plugin library never sets a
//! `tracing` subscriber of its own). The host applies its filters and redaction.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

use abi_stable::std_types::RStr;

use crate::ffi::FfiLogSink;
use crate::LogLevel;

/// The host's function, as an address (0: none yet).
static SINK: AtomicUsize = AtomicUsize::new(0);

struct Bridge;

static BRIDGE: Bridge = Bridge;

type SinkFn = extern "C" fn(u8, RStr<'_>, RStr<'_>);

fn level_code(level: log::Level) -> u8 {
    match level {
        log::Level::Error => LogLevel::Error.code(),
        log::Level::Warn => LogLevel::Warn.code(),
        log::Level::Info => LogLevel::Info.code(),
        log::Level::Debug => LogLevel::Debug.code(),
        log::Level::Trace => LogLevel::Trace.code(),
    }
}

fn level_filter(code: u8) -> log::LevelFilter {
    match code {
        0 => log::LevelFilter::Trace,
        1 => log::LevelFilter::Debug,
        2 => log::LevelFilter::Info,
        3 => log::LevelFilter::Warn,
        4 => log::LevelFilter::Error,
        _ => log::LevelFilter::Off,
    }
}

impl log::Log for Bridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let address = SINK.load(Ordering::Acquire);
        if address == 0 {
            return;
        }
        // SAFETY: the only non-zero values stored are `SinkFn` pointers (see `install`).
        let sink: SinkFn = unsafe { std::mem::transmute::<usize, SinkFn>(address) };
        let message = record.args().to_string();
        sink(
            level_code(record.level()),
            RStr::from_str(record.target()),
            RStr::from_str(&message),
        );
    }

    fn flush(&self) {}
}

/// Called by the host through the library's `qlam_plugin_set_log_sink_v1`: from now on, records at `sink.max_level` and
/// above go to `sink.log`. Calling it again replaces the sink.
pub fn install(sink: FfiLogSink) {
    SINK.store(sink.log as usize, Ordering::Release);
    static LOGGER: Once = Once::new();
    LOGGER.call_once(|| {
        // A plugin that installed a logger of its own keeps it.
        let _ = log::set_logger(&BRIDGE);
    });
    log::set_max_level(level_filter(sink.max_level));
}
