//! `qlam credential-helper git`: git's credential protocol answered from a provider chosen by
//! the context's `hosts` table — exact wire format, and once through the real `git`.

use std::process::{Command, Stdio};

use crate::util::{run_with_stdin, Home};

const CONFIG: &str = r#"current_context = "x"
[contexts.x]
[[contexts.x.auth_providers]]
name = "forge"
provider = "token"
command = ["sh", "-c", "n=$(cat \"$QLAM_TEST_COUNTER\" 2>/dev/null || echo 0); n=$((n+1)); echo $n > \"$QLAM_TEST_COUNTER\"; echo \"{\\\"token\\\": \\\"tok-$n\\\", \\\"expires_at\\\": \\\"2099-01-01T00:00:00Z\\\"}\""]
[[contexts.x.auth_providers]]
name = "team"
provider = "token"
env = "QLAM_TEST_TEAM_TOKEN"
[contexts.x.hosts]
"git.example.com" = "forge"
"git.example.com/team" = { provider = "team", username = "x-token" }
"registry.example.com:5000" = { provider = "team", username = "robot" }
"#;

fn helper(home: &Home, action: &str, input: &str) -> crate::util::Run {
    let mut cmd = home.qlam();
    cmd.args(["credential-helper", "git", action])
        .env("QLAM_TEST_COUNTER", home.path().join("counter"))
        .env("QLAM_TEST_TEAM_TOKEN", "team-secret");
    run_with_stdin(&mut cmd, input)
}

#[test]
fn git_protocol_get_store_erase_exact() {
    let home = Home::new();
    home.write_config(CONFIG);
    // The command's token expires 2099-01-01T00:00:00Z = 4070908800: git learns when to stop
    // using it (a provider with a refresh margin answers that much earlier).
    let r = helper(&home, "get", "protocol=https\nhost=git.example.com\n\n");
    r.ok();
    assert_eq!(
        r.stdout,
        "username=oauth2\npassword=tok-1\npassword_expiry_utc=4070908800\n"
    );
    // A path under a more specific route (git sends `path` with credential.useHttpPath).
    let r = helper(
        &home,
        "get",
        "protocol=https\nhost=git.example.com\npath=team/app.git\n\n",
    );
    r.ok();
    assert_eq!(r.stdout, "username=x-token\npassword=team-secret\n");
    // A host qlam has no provider for: no answer, so git asks its next helper.
    let r = helper(
        &home,
        "get",
        "protocol=https\nhost=elsewhere.example.com\n\n",
    );
    r.ok();
    assert_eq!(r.stdout, "");
    // store: qlam's provider already holds the credential; unknown actions are ignored.
    for action in ["store", "frobnicate"] {
        let r = helper(
            &home,
            action,
            "protocol=https\nhost=git.example.com\nusername=oauth2\npassword=tok-1\n\n",
        );
        r.ok();
        assert_eq!(r.stdout, "");
    }
    // The cached token is reused...
    let r = helper(&home, "get", "protocol=https\nhost=git.example.com\n\n");
    assert!(r.stdout.contains("password=tok-1\n"), "{}", r.stdout);
    // ...until git says the server rejected it (erase): then a new one.
    helper(
        &home,
        "erase",
        "protocol=https\nhost=git.example.com\nusername=oauth2\npassword=tok-1\n\n",
    )
    .ok();
    let r = helper(&home, "get", "protocol=https\nhost=git.example.com\n\n");
    assert!(r.stdout.contains("password=tok-2\n"), "{}", r.stdout);
    // Erasing a password that is not qlam's current token changes nothing.
    helper(
        &home,
        "erase",
        "protocol=https\nhost=git.example.com\nusername=oauth2\npassword=old\n\n",
    )
    .ok();
    let r = helper(&home, "get", "protocol=https\nhost=git.example.com\n\n");
    assert!(r.stdout.contains("password=tok-2\n"), "{}", r.stdout);
}

#[test]
fn real_git_credential_fill_gets_the_token() {
    crate::util::require_tool("git");
    let home = Home::new();
    home.write_config(CONFIG);
    let qlam = home.qlam();
    let helper = format!(
        "!'{}' credential-helper git",
        qlam.get_program().to_str().unwrap()
    );
    let git = |input: &str| {
        let mut c = Command::new("git");
        c.args(["-c", "credential.helper=", "-c"])
            .arg(format!("credential.helper={helper}"))
            .args(["-c", "credential.useHttpPath=true", "credential", "fill"])
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env("XDG_CACHE_HOME", home.path().join("cache"))
            .env("XDG_STATE_HOME", home.path().join("state"))
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("QLAM_TEST_COUNTER", home.path().join("counter"))
            .env("QLAM_TEST_TEAM_TOKEN", "team-secret")
            .env_remove("QLAM_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = git("url=https://git.example.com/group/repo.git\n\n");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "protocol=https\nhost=git.example.com\npath=group/repo.git\nusername=oauth2\npassword=tok-1\npassword_expiry_utc=4070908800\n"
    );
    let out = git("url=https://git.example.com/team/app.git\n\n");
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("username=x-token\npassword=team-secret\n"),
        "{out:?}"
    );
    // Not ours: git gets nothing from qlam and, with prompts off, fails.
    let out = git("url=https://elsewhere.example.com/x.git\n\n");
    assert!(!out.status.success(), "{out:?}");
}

fn docker(
    home: &Home,
    program: Option<&std::path::Path>,
    action: &str,
    input: &str,
) -> crate::util::Run {
    let mut cmd = match program {
        Some(p) => {
            let mut c = Command::new(p);
            c.env("HOME", home.path())
                .env("XDG_CONFIG_HOME", home.path().join("config"))
                .env("XDG_CACHE_HOME", home.path().join("cache"))
                .env("XDG_STATE_HOME", home.path().join("state"))
                .env("XDG_DATA_HOME", home.path().join("data"))
                .env_remove("QLAM_CONFIG")
                .arg(action);
            c
        }
        None => {
            let mut c = home.qlam();
            c.args(["credential-helper", "docker", action]);
            c
        }
    };
    cmd.env("QLAM_TEST_COUNTER", home.path().join("counter"))
        .env("QLAM_TEST_TEAM_TOKEN", "team-secret");
    run_with_stdin(&mut cmd, input)
}

#[test]
fn docker_protocol_exact_and_as_docker_credential_qlam() {
    let home = Home::new();
    home.write_config(CONFIG);
    let r = docker(&home, None, "get", "https://registry.example.com:5000/v2/");
    r.ok();
    assert_eq!(
        r.stdout,
        "{\"Secret\":\"team-secret\",\"ServerURL\":\"https://registry.example.com:5000/v2/\",\"Username\":\"robot\"}\n"
    );
    // Not ours: Docker's own "not found" answer, exit 1.
    let r = docker(&home, None, "get", "registry.other.example.com");
    r.code(1);
    assert_eq!(r.stdout, "credentials not found in native keychain\n");
    let r = docker(&home, None, "list", "");
    r.ok();
    assert_eq!(
        r.stdout,
        "{\"git.example.com\":\"oauth2\",\"git.example.com/team\":\"x-token\",\"registry.example.com:5000\":\"robot\"}\n"
    );
    let r = docker(
        &home,
        None,
        "store",
        r#"{"ServerURL":"registry.example.com:5000","Username":"robot","Secret":"x"}"#,
    );
    r.ok();
    assert_eq!(r.stdout, "");
    docker(&home, None, "erase", "registry.example.com:5000").ok();
    // Docker runs helpers as `docker-credential-NAME`: a link of that name to qlam.
    let bin = home.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let link = bin.join("docker-credential-qlam");
    std::os::unix::fs::symlink(home.qlam().get_program(), &link).unwrap();
    let r = docker(&home, Some(&link), "get", "registry.example.com:5000");
    r.ok();
    assert_eq!(
        r.stdout,
        "{\"Secret\":\"team-secret\",\"ServerURL\":\"registry.example.com:5000\",\"Username\":\"robot\"}\n"
    );
}
