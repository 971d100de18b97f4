//! The host's state files, as the host reads and writes them: a credential file of the file
//! store, an answer cache file and the plugin index (the same input through all three).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    qlam_host::store::fuzzing::state_file(data);
});
