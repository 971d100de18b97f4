//! Secrets never leak: canary values through every command at the most verbose log level.

use crate::util::{run, Home, DEMO_CONFIG};

const USER_CANARY: &str = "canary-user-5c1e";
const PASSWORD_CANARY: &str = "canary-pw-9f2b";
const TOKEN_CANARY: &str = "canary-token-77aa";
const ENV_CANARY: &str = "canary-env-31d0";

#[test]
fn canaries_never_reach_stderr_at_trace_level() {
    let home = Home::new();
    home.write_config(DEMO_CONFIG);
    let mut stderr = String::new();
    let mut trace = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = home.qlam();
        cmd.env("QLAM_TEST_API_KEY", ENV_CANARY)
            .env("QLAM_LOG", "trace")
            .arg("-vv")
            .args(args);
        let r = match stdin {
            Some(s) => crate::util::run_with_stdin(&mut cmd, s),
            None => run(&mut cmd),
        };
        stderr.push_str(&r.stderr);
        r
    };
    trace(
        &["auth", "login", "basic-demo"],
        Some(&format!("{USER_CANARY}\n{PASSWORD_CANARY}\n")),
    )
    .ok();
    trace(
        &["auth", "login", "token-demo"],
        Some(&format!("{TOKEN_CANARY}\n")),
    )
    .ok();
    for args in [
        &["auth", "status"][..],
        &["--output", "json", "auth", "status"],
        &["auth", "headers", "basic-demo"],
        &["auth", "headers", "token-demo"],
        &["auth", "headers", "env-key"],
        &["auth", "token", "token-demo"],
        &["auth", "token", "env-key", "--format", "exec-credential"],
        &["auth", "credential", "token-demo"],
        &["auth", "credential", "basic-demo"],
        &["auth", "refresh"],
        &["plugins", "list"],
        &["config", "validate"],
    ] {
        trace(args, None).ok();
    }
    // A failing call too: the error path.
    trace(&["auth", "token", "basic-demo"], None).code(1);
    trace(&["auth", "logout"], None).ok();
    assert!(
        stderr.contains("debug: ") || stderr.contains("trace: "),
        "the log level was really verbose:\n{stderr}"
    );
    for canary in [PASSWORD_CANARY, TOKEN_CANARY, ENV_CANARY] {
        assert!(
            !stderr.contains(canary),
            "`{canary}` leaked to stderr:\n{stderr}"
        );
    }
    // The redacted credential does not show the token; the basic credential has no password.
    let home2 = Home::new();
    home2.write_config(DEMO_CONFIG);
    home2
        .run_stdin(
            &["auth", "login", "token-demo"],
            &format!("{TOKEN_CANARY}\n"),
        )
        .ok();
    let r = home2.run(&["auth", "credential", "token-demo"]);
    assert!(!r.stdout.contains(TOKEN_CANARY), "{}", r.stdout);
}

#[cfg(unix)]
#[test]
fn stored_credentials_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new();
    home.write_config(DEMO_CONFIG);
    let mut cmd = home.qlam();
    cmd.args(["auth", "login", "token-demo"]);
    // A permissive umask in the child.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::umask(0o000);
            Ok(())
        });
    }
    crate::util::run_with_stdin(&mut cmd, "t\n").ok();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let file = home.store_dir().join("demo/token-demo.json");
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&home.store_dir()), 0o700);
    assert_eq!(mode(&home.store_dir().join("demo")), 0o700);
}
