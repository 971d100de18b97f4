//! Every `qlam` command end to end, with the bundled plugins, exact JSON shapes and the exit
//! codes of DESIGN.md.

use serde_json::json;

use crate::util::{run, Home, DEMO_CONFIG};

#[test]
fn login_status_headers_token_logout_with_the_basic_and_token_providers() {
    let home = Home::new();
    home.write_config(DEMO_CONFIG);

    let run = home.run(&["--output", "json", "auth", "status"]);
    run.ok();
    assert_eq!(
        run.json(),
        json!([
            {"name": "basic-demo", "type": "basic", "status": "available", "description": "Username and password",
             "capabilities": ["headers", "login"], "extra_info": {}, "store": "file"},
            {"name": "token-demo", "type": "token", "status": "available", "description": "Bearer token from store",
             "capabilities": ["headers", "login", "token"], "extra_info": {"header": "Authorization", "source": "store"}, "store": "file"},
            {"name": "env-key", "type": "token", "status": "available", "description": "Bearer token from env:QLAM_TEST_API_KEY",
             "capabilities": ["headers", "token"], "extra_info": {"header": "X-API-Key", "source": "env:QLAM_TEST_API_KEY"}, "store": "file"},
        ])
    );

    // Not logged in: exit 3 with what to do.
    let r = home.run(&["auth", "headers", "basic-demo"]);
    r.code(3);
    assert_eq!(
        r.stderr,
        "error: provider `basic-demo` is not logged in; run `qlam auth login basic-demo`\n"
    );
    let r = home.run(&["--output", "json", "auth", "token", "token-demo"]);
    r.code(3);
    assert_eq!(
        r.json(),
        json!({"error": {"kind": "not_authenticated", "message": "provider `token-demo` is not logged in; run `qlam auth login token-demo`"}})
    );

    // Log in; the answers come from stdin (a script), one line per prompt.
    let r = home.run_stdin(&["auth", "login", "basic-demo"], "ann\nopen-sesame\n");
    r.ok();
    assert_eq!(r.stderr, "Logged in to `basic-demo` as ann\n");
    let r = home.run_stdin(
        &["--output", "json", "auth", "login", "token-demo"],
        "tok-123\n",
    );
    r.ok();
    assert_eq!(
        r.json(),
        json!([{"provider": "token-demo", "ok": true, "done": true, "warnings": []}])
    );

    let r = home.run(&["auth", "headers", "basic-demo"]);
    r.ok();
    assert_eq!(r.stdout, "Authorization: Basic YW5uOm9wZW4tc2VzYW1l\n");
    let r = home.run(&["--output", "json", "auth", "headers", "token-demo"]);
    r.ok();
    assert_eq!(r.json(), json!({"Authorization": "Bearer tok-123"}));
    let r = home.run(&["auth", "token", "token-demo"]);
    r.ok();
    assert_eq!(r.stdout, "tok-123\n");
    let r = home.run(&["auth", "token", "token-demo", "--format", "json"]);
    assert_eq!(r.json(), json!({"token": "tok-123", "expires_at": null}));
    let r = home.run(&["auth", "token", "token-demo", "--format", "exec-credential"]);
    assert_eq!(
        r.json(),
        json!({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "status": {"token": "tok-123"}})
    );
    let r = home.run(&["auth", "token", "basic-demo"]);
    r.code(1);
    assert_eq!(
        r.stderr,
        "error: provider `basic-demo` (type `basic`) does not support tokens\n"
    );

    let r = home.run(&["auth", "status"]);
    r.ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "TYPE", "STATUS", "DESCRIPTION", "STORE", "EXTRA"]
    );
    assert!(
        lines[1].starts_with("basic-demo  basic  authenticated  Username and password"),
        "{}",
        r.stdout
    );
    assert!(
        lines[2].starts_with("token-demo  token  authenticated"),
        "{}",
        r.stdout
    );
    assert!(
        lines[3].starts_with("env-key     token  available"),
        "{}",
        r.stdout
    );

    let r = home.run(&["auth", "credential", "basic-demo"]);
    r.ok();
    let c = r.json();
    assert_eq!(c["kind"], "basic");
    assert_eq!(c["username"], "ann");
    assert_eq!(c["status"], "authenticated");
    assert!(c["login_time"].as_str().unwrap().ends_with('Z'));
    let r = home.run(&["auth", "credential", "token-demo"]);
    assert_eq!(
        r.json(),
        json!({"name": "token-demo", "status": "authenticated", "kind": "vendor", "type": "token",
               "fields": {"source": "store"}, "secrets": {"token": "REDACTED"}})
    );
    let r = home.run(&["auth", "credential", "token-demo", "--show-secrets"]);
    assert_eq!(r.json()["secrets"]["token"], "tok-123");

    // Refresh: none of these providers can refresh.
    let r = home.run(&["auth", "refresh"]);
    r.ok();
    assert_eq!(r.stderr, "no provider in context `demo` supports refresh\n");
    let r = home.run(&["auth", "refresh", "token-demo"]);
    r.code(1);
    assert!(
        r.stderr.contains("does not support refresh"),
        "{}",
        r.stderr
    );

    // Logout of everything that supports it.
    let r = home.run(&["--output", "json", "auth", "logout"]);
    r.ok();
    assert_eq!(
        r.json(),
        json!([
            {"provider": "basic-demo", "ok": true, "done": true, "warnings": []},
            {"provider": "token-demo", "ok": true, "done": true, "warnings": []},
        ])
    );
    home.run(&["auth", "headers", "basic-demo"]).code(3);
    assert!(!home.store_dir().join("demo/basic-demo.json").exists());
}

#[test]
fn non_interactive_login_without_input_fails_clearly_and_stores_nothing() {
    let home = Home::new();
    home.write_config(DEMO_CONFIG);
    let r = home.run(&["auth", "login", "basic-demo"]);
    r.code(1);
    assert_eq!(
        r.stderr,
        "error: `Username` needs an answer, but standard input is closed; run in a terminal or pipe the answer\n"
    );
    assert!(
        !home.store_dir().join("demo/basic-demo.json").exists(),
        "nothing stored"
    );
}

#[test]
fn login_all_is_best_effort() {
    let home = Home::new();
    home.write_config(DEMO_CONFIG);
    // Enough input for basic-demo; token-demo then finds stdin closed.
    let r = home.run_stdin(&["--output", "json", "auth", "login"], "ann\npw\n");
    r.code(1);
    assert_eq!(
        r.json(),
        json!([
            {"provider": "basic-demo", "ok": true, "done": true, "warnings": []},
            {"provider": "token-demo", "ok": false, "warnings": [], "error": {"kind": "interaction",
             "message": "`Token for token-demo` needs an answer, but standard input is closed; run in a terminal or pipe the answer"}},
        ])
    );
    home.run(&["auth", "headers", "basic-demo"]).ok();
}

#[test]
fn command_tokens_are_cached_until_expiry_and_contexts_select_providers() {
    let home = Home::new();
    home.write_config(DEMO_CONFIG);
    let r = home.run(&[
        "--context",
        "other",
        "auth",
        "token",
        "cmd",
        "--format",
        "json",
    ]);
    r.ok();
    assert_eq!(
        r.json(),
        json!({"token": "from-command", "expires_at": "2099-01-01T00:00:00Z"})
    );
    let r = run(home
        .qlam()
        .env("QLAM_CONTEXT", "other")
        .args(["auth", "headers", "cmd"]));
    r.ok();
    assert_eq!(r.stdout, "Authorization: Bearer from-command\n");
    // In context `demo` there is no provider `cmd`: a usage error.
    let r = home.run(&["auth", "token", "cmd"]);
    r.code(2);
    assert_eq!(r.stderr, "error: no provider `cmd` in context `demo`; `qlam auth status` lists the configured ones\n");
    let r = home.run(&["--context", "nope", "auth", "status"]);
    r.code(2);
    assert!(r.stderr.contains("no context `nope` in `"), "{}", r.stderr);
}

#[test]
fn context_list_current_use_keep_the_file_intact() {
    let home = Home::new();
    let path = home.write_config(DEMO_CONFIG);
    let r = home.run(&["context", "list"]);
    r.ok();
    assert_eq!(r.stdout, "* demo\n  other\n");
    let r = home.run(&["--output", "json", "context", "list"]);
    assert_eq!(
        r.json(),
        json!([
            {"name": "demo", "current": true, "providers": ["basic-demo", "token-demo", "env-key"]},
            {"name": "other", "current": false, "providers": ["cmd"]},
        ])
    );
    assert_eq!(home.run(&["context", "current"]).stdout, "demo\n");
    let r = home.run(&["context", "use", "other"]);
    r.ok();
    assert_eq!(r.stderr, "Switched to context `other`\n");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        DEMO_CONFIG.replace("current_context = \"demo\"", "current_context = \"other\"")
    );
    assert_eq!(
        home.run(&["--output", "json", "context", "current"]).json(),
        json!({"current_context": "other"})
    );
    let before = std::fs::read_to_string(&path).unwrap();
    let r = home.run(&["context", "use", "missing"]);
    r.code(2);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        before,
        "a failed switch changes nothing"
    );
}

#[test]
fn config_path_and_validate() {
    let home = Home::new();
    let r = home.run(&["--output", "json", "config", "path"]);
    r.ok();
    assert_eq!(
        r.json(),
        json!({"path": home.config_path(), "exists": false})
    );
    let r = home.run(&["config", "validate"]);
    r.code(1);
    assert!(
        r.stderr.contains("there is no config file at"),
        "{}",
        r.stderr
    );

    home.write_config(DEMO_CONFIG);
    let r = home.run(&["--output", "json", "config", "validate"]);
    r.ok();
    assert_eq!(
        r.json(),
        json!({"path": home.config_path(), "valid": true, "contexts": 2, "providers": 4, "problems": []})
    );

    // A provider setting the provider refuses, and a type no plugin provides.
    let path = home.write_config(
        "[contexts.c]\n[[contexts.c.auth_providers]]\nname = \"t\"\nprovider = \"token\"\nevn = \"X\"\n\n[[contexts.c.auth_providers]]\nname = \"sso\"\nprovider = \"no-such-type\"\n",
    );
    let r = home.run(&["--output", "json", "config", "validate"]);
    r.code(4);
    let v = r.json();
    assert_eq!(v["valid"], false);
    assert_eq!(
        v["problems"][0],
        json!({"context": "c", "provider": "t", "kind": "configuration",
               "message": format!("provider `t` in context `c` (`{}` line 2): invalid token provider config: unknown field `evn`, expected one of `env`, `file`, `command`, `header`, `scheme`, `timeout_secs`", path.display())})
    );
    assert_eq!(v["problems"][1]["kind"], "plugin");
    // The same configuration error when the provider is used.
    let r = home.run(&["auth", "token", "t"]);
    r.code(1);
    assert!(r.stderr.contains("unknown field `evn`"), "{}", r.stderr);
}

#[test]
fn malformed_config_names_file_line_and_column() {
    let home = Home::new();
    let path = home.write_config("current_context = \"a\"\n[contexts.a]\nplugin_dirs = [\"x\"\n");
    for args in [
        &["auth", "status"][..],
        &["context", "list"],
        &["config", "validate"],
    ] {
        let r = home.run(args);
        r.code(1);
        assert!(
            r.stderr
                .starts_with(&format!("error: `{}`:4:1: ", path.display())),
            "{args:?}:\n{}",
            r.stderr
        );
    }
    // plugins list still works with a broken config.
    let r = home.run(&["plugins", "list"]);
    r.ok();
    assert!(r.stderr.starts_with("warning: `"), "{}", r.stderr);
}

#[test]
fn usage_errors_exit_2_and_completions_print_a_script() {
    let home = Home::new();
    let r = home.run(&["auth", "frobnicate"]);
    r.code(2);
    let r = home.run(&["auth", "token"]);
    r.code(2);
    for shell in ["bash", "zsh", "fish"] {
        let r = home.run(&["completions", shell]);
        r.ok();
        assert!(r.stdout.contains("qlam"), "{shell}");
        assert!(
            r.stdout.contains("headers"),
            "{shell}: subcommands are completed"
        );
    }
    let r = home.run(&["--help"]);
    r.ok();
    assert!(r.stdout.contains("auth"));
}

#[test]
fn no_config_at_all() {
    let home = Home::new();
    let r = home.run(&["auth", "status"]);
    r.ok();
    assert_eq!(
        r.stderr,
        "no context is configured; `qlam config path` shows where the config file goes\n"
    );
    let r = home.run(&["auth", "token", "x"]);
    r.code(2);
    assert!(
        r.stderr.contains("there is no config file at"),
        "{}",
        r.stderr
    );
}

#[test]
fn help_from_the_stored_text_equals_claps_and_closed_pipes_are_quiet() {
    let home = Home::new();
    home.write_config(DEMO_CONFIG);
    // To a pipe, `--help` and `-h` come from text stored in the binary; COLUMNS makes qlam
    // ask clap, which renders the same at 100 columns.
    for flag in ["--help", "-h"] {
        let stored = home.run(&[flag]);
        stored.ok();
        let clap = run(home.qlam().arg(flag).env("COLUMNS", "100"));
        clap.ok();
        assert_eq!(stored.stdout, clap.stdout, "{flag}");
        assert!(stored.stdout.contains("Usage: qlam [OPTIONS] <COMMAND>"));
    }
    // A reader that goes away early, and closed standard descriptors: no panic, exit 0.
    let qlam = home.qlam().get_program().to_owned();
    let qlam = qlam.to_str().unwrap();
    for script in [
        format!("'{qlam}' completions bash | head -c 10 >/dev/null; exit ${{PIPESTATUS[0]}}"),
        format!("'{qlam}' plugins list >&- 2>&-"),
        format!("'{qlam}' context list <&- >&-"),
    ] {
        let out = std::process::Command::new("bash")
            .args(["-c", &script])
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env("XDG_CACHE_HOME", home.path().join("cache"))
            .output()
            .unwrap();
        assert!(out.status.success(), "`{script}`: {out:?}");
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "{out:?}"
        );
    }
}

#[test]
fn kubectl_exec_credential_follows_kubernetes_exec_info() {
    let home = Home::new();
    home.write_config(
        "current_context = \"k\"\n[contexts.k]\nauth_providers = [{ name = \"kube\", provider = \"token\" }]\n",
    );
    let exec = |info: Option<&str>, stdin: &str| {
        let mut cmd = home.qlam();
        cmd.args(["auth", "token", "kube", "--format", "exec-credential"]);
        if let Some(i) = info {
            cmd.env("KUBERNETES_EXEC_INFO", i);
        }
        crate::util::run_with_stdin(&mut cmd, stdin)
    };
    // Not interactive (kubectl has no terminal to give): no prompt, a clear error, exit 3.
    let r = exec(
        Some(
            r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}"#,
        ),
        "never-read\n",
    );
    r.code(3);
    assert!(
        r.stderr.contains(
            "kubectl runs qlam without a terminal here, so run `qlam auth login kube` in a shell"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "");
    // Interactive: qlam logs in (the token provider prompts for the token), then answers in
    // the API version kubectl asked for.
    let r = exec(
        Some(
            r#"{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","spec":{"interactive":true}}"#,
        ),
        "kube-token-1\n",
    );
    r.ok();
    assert!(r.stderr.contains("logging in for kubectl"), "{}", r.stderr);
    assert_eq!(
        r.json(),
        json!({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
               "status": {"token": "kube-token-1"}})
    );
    // Logged in now; without KUBERNETES_EXEC_INFO the answer is v1.
    let r = exec(None, "");
    r.ok();
    assert_eq!(
        r.stdout,
        "{\n  \"apiVersion\": \"client.authentication.k8s.io/v1\",\n  \"kind\": \"ExecCredential\",\n  \"status\": {\n    \"token\": \"kube-token-1\"\n  }\n}\n"
    );
}

/// A relative path in a provider's settings means the configuration file's folder, as in a
/// kubeconfig, wherever the command runs — in this process or an isolated provider's child.
#[test]
fn relative_paths_in_provider_settings_are_read_from_the_configuration_folder() {
    let home = Home::new();
    let config = home.write_config(
        "[contexts.c]\n\
         [[contexts.c.auth_providers]]\nname = \"here\"\nprovider = \"token\"\nfile = \"tokens/t.txt\"\n\
         [[contexts.c.auth_providers]]\nname = \"child\"\nprovider = \"token\"\nfile = \"tokens/t.txt\"\nisolation = \"process\"\n",
    );
    let dir = config.parent().unwrap();
    std::fs::create_dir_all(dir.join("tokens")).unwrap();
    std::fs::write(dir.join("tokens/t.txt"), "from-the-config-folder\n").unwrap();
    // The same relative path from the command's directory holds another token: the control.
    let elsewhere = home.path().join("elsewhere");
    std::fs::create_dir_all(elsewhere.join("tokens")).unwrap();
    std::fs::write(
        elsewhere.join("tokens/t.txt"),
        "from-the-current-directory\n",
    )
    .unwrap();
    for provider in ["here", "child"] {
        let r = run(home
            .qlam()
            .current_dir(&elsewhere)
            .args(["auth", "token", provider]));
        r.ok();
        assert_eq!(r.stdout, "from-the-config-folder\n", "{provider}");
    }
}
