//! `qlam`: parse, run, exit with the code DESIGN.md fixes.

mod cli;

fn main() {
    let code = cli::main();
    std::process::exit(code);
}
