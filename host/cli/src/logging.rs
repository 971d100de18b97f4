//! Logging for the CLI: `-v` levels and `QLAM_LOG`, lines shaped like the CLI's own messages.

pub(crate) fn init_logging(verbose: u8) {
    let filter = std::env::var("QLAM_LOG")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            match verbose {
                0 => "warn",
                1 => "debug",
                _ => "trace",
            }
            .to_owned()
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .event_format(Plain {
            show_target: verbose > 1,
        })
        .try_init();
}

/// Log lines like the CLI's own messages: `warning: …`, `debug: …` (with the target at -vv).
pub(crate) struct Plain {
    show_target: bool,
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Plain
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            tracing::Level::INFO => "info",
            tracing::Level::DEBUG => "debug",
            tracing::Level::TRACE => "trace",
        };
        write!(writer, "{level}: ")?;
        if self.show_target {
            write!(writer, "{}: ", event.metadata().target())?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
