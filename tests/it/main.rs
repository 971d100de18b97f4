//! Integration and end-to-end tests of qlam: the real `qlam` binary, real plugin libraries
//! built by cargo and loaded through the stable ABI, fixture plugins that misbehave.
//! One test binary; shared helpers in `util`.

mod basic_verify;
mod cli;
mod client;
mod crash;
mod fastpath;
mod fuzz_replay;
mod helpers;
mod hostile;
mod install;
mod isolation;
mod keyring;
mod oauth;
mod packaging;
mod plugins;
mod presets;
mod python;
mod race;
mod sdk;
mod secrets;
mod trust;
mod util;
mod vendor;
mod windows;
