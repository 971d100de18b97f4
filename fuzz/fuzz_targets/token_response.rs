//! Token endpoint answers, through the OAuth provider's real grant code with an in-memory
//! server; the input format is described in `qlam_provider_oauth::fuzzing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    qlam_provider_oauth::fuzzing::token_response(data);
});
