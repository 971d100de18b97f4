//! The TOML configuration parser: any text parses or fails with an error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = qlam_host::config::Config::parse(text, Path::new("/fuzz/config.toml")) {
        let _ = config.select_context(None);
        if let Some(first) = config.contexts.first() {
            let _ = config.select_context(Some(&first.name));
        }
    }
});
