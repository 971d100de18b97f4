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
"crates.example.com" = "forge"
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
    let env = [
        ("QLAM_TEST_COUNTER", home.path().join("counter").into()),
        ("QLAM_TEST_TEAM_TOKEN", "team-secret".into()),
    ];
    let git = |input: &str| {
        crate::util::git_credential_fill(&home, "", &["credential.useHttpPath=true"], input, &env)
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
        "{\"crates.example.com\":\"oauth2\",\"git.example.com\":\"oauth2\",\"git.example.com/team\":\"x-token\",\"registry.example.com:5000\":\"robot\"}\n"
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

#[test]
fn cargo_protocol_exact() {
    let home = Home::new();
    home.write_config(CONFIG);
    let requests = [
        r#"{"v":1,"registry":{"index-url":"sparse+https://crates.example.com/index/","name":"corp"},"kind":"get","operation":"read"}"#,
        r#"{"v":1,"registry":{"index-url":"https://github.com/rust-lang/crates.io-index","name":"crates-io"},"kind":"get","operation":"publish","name":"x","vers":"1.0.0","cksum":"00"}"#,
        r#"{"v":1,"registry":{"index-url":"sparse+https://crates.example.com/index/","name":"corp"},"kind":"login","token":"ignored"}"#,
        r#"not json"#,
    ];
    let mut cmd = home.qlam();
    cmd.args(["credential-helper", "cargo", "--cargo-plugin"])
        .env("QLAM_TEST_COUNTER", home.path().join("counter"));
    let r = run_with_stdin(&mut cmd, &(requests.join("\n") + "\n"));
    r.ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", r.stdout);
    assert_eq!(lines[0], r#"{"v":[1]}"#);
    assert_eq!(
        lines[1],
        r#"{"Ok":{"cache":"expires","expiration":4070908800,"kind":"get","operation_independent":true,"token":"tok-1"}}"#
    );
    assert_eq!(lines[2], r#"{"Err":{"kind":"url-not-supported"}}"#);
    assert_eq!(lines[3], r#"{"Ok":{"kind":"login"}}"#);
    assert!(
        lines[4]
            .starts_with(r#"{"Err":{"kind":"other","message":"qlam cannot read cargo's request"#),
        "{}",
        lines[4]
    );
}

#[test]
fn real_cargo_yank_sends_the_providers_token() {
    // A sparse registry on loopback: its index config, and the yank API recording the
    // Authorization header cargo sends.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let log = seen.clone();
    let api = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
    let api_in = api.clone();
    let base = crate::util::stub::serve(move |r| {
        use crate::util::stub::Reply;
        log.lock()
            .unwrap()
            .push((r.path.clone(), r.auth().to_owned()));
        let base = api_in.get().cloned().unwrap_or_default();
        match r.path.as_str() {
            "/index/config.json" => {
                Reply::json("200 OK", format!(r#"{{"dl":"{base}/dl","api":"{base}"}}"#))
            }
            p if p.ends_with("/yank") => Reply::json("200 OK", r#"{"ok":true}"#),
            _ => Reply::empty("404 Not Found"),
        }
    });
    api.set(base.clone()).unwrap();
    let port = base.rsplit(':').next().unwrap().to_owned();
    let home = Home::new();
    home.write_config(&format!(
        "current_context = \"x\"\n[contexts.x]\nauth_providers = [{{ name = \"reg\", provider = \"token\", env = \"REG_TOKEN\" }}]\n[contexts.x.hosts]\n\"127.0.0.1:{port}\" = \"reg\"\n"
    ));
    let cargo_home = home.path().join("cargo");
    std::fs::create_dir_all(&cargo_home).unwrap();
    let qlam = home.qlam().get_program().to_owned();
    std::fs::write(
        cargo_home.join("config.toml"),
        format!(
            "[registries.corp]\nindex = \"sparse+http://127.0.0.1:{port}/index/\"\ncredential-provider = [\"{}\"]\n",
            qlam.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO"))
        .args(["yank", "--registry", "corp", "--version", "1.0.0", "foo"])
        .current_dir(home.path())
        .env("CARGO_HOME", &cargo_home)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .env("XDG_STATE_HOME", home.path().join("state"))
        .env("REG_TOKEN", "reg-token-42")
        .env_remove("QLAM_CONFIG")
        .env_remove("CARGO_REGISTRIES_CORP_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.contains(&(
            "/api/v1/crates/foo/1.0.0/yank".to_owned(),
            "reg-token-42".to_owned()
        )),
        "{seen:?}"
    );
}

#[test]
fn aws_credential_process_from_an_aws_type_credential() {
    let home = Home::new();
    let dir = home.path().join("plugins");
    crate::util::install(
        &crate::util::fixture("qlam-fixture-aws"),
        &dir,
        &crate::util::lib_name("aws"),
    );
    let cfg = home.write_config(
        "current_context = \"x\"\n[contexts.x]\nauth_providers = [\n  { name = \"aws\", provider = \"static-aws\", access_key_id = \"AKIAQLAMTEST\", secret_env = \"QLAM_T_AWS_SECRET\", session_token_env = \"QLAM_T_AWS_SESSION\", expiration = \"2099-01-01T00:00:00Z\" },\n  { name = \"tok\", provider = \"token\", env = \"QLAM_T_TOKEN\" },\n]\n",
    );
    let args = |p: &str| {
        vec![
            "--config".to_owned(),
            cfg.to_str().unwrap().to_owned(),
            "--plugin-dir".to_owned(),
            dir.to_str().unwrap().to_owned(),
            "auth".to_owned(),
            "token".to_owned(),
            p.to_owned(),
            "--format".to_owned(),
            "aws-process".to_owned(),
        ]
    };
    let q = |p: &str, env: &[(&str, &str)]| {
        let mut c = home.qlam();
        c.args(args(p));
        for (k, v) in env {
            c.env(k, v);
        }
        crate::util::run(&mut c)
    };
    let env = [
        ("QLAM_T_AWS_SECRET", "aws-secret-canary"),
        ("QLAM_T_AWS_SESSION", "aws-session-canary"),
        ("QLAM_T_TOKEN", "t"),
    ];
    let r = q("aws", &env);
    r.ok();
    assert_eq!(
        r.stdout,
        "{\n  \"AccessKeyId\": \"AKIAQLAMTEST\",\n  \"Expiration\": \"2099-01-01T00:00:00Z\",\n  \"SecretAccessKey\": \"aws-secret-canary\",\n  \"SessionToken\": \"aws-session-canary\",\n  \"Version\": 1\n}\n"
    );
    // A provider of another kind: a clear "unsupported" (exit 1), nothing on stdout.
    let r = q("tok", &env);
    r.code(1);
    assert!(
        r.stderr
            .contains("provider `tok` does not give AWS credentials"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "");
    // No secret: not authenticated (exit 3).
    q("aws", &[]).code(3);

    // The real consumer: botocore's credential_process provider runs qlam and parses it.
    let have_botocore = Command::new("python3")
        .args(["-c", "import botocore"])
        .status()
        .is_ok_and(|s| s.success());
    if !have_botocore {
        eprintln!("botocore is not installed: the consumer check is skipped here (CI installs it)");
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install botocore (.ci/run)"
        );
        return;
    }
    let qlam = home.qlam().get_program().to_str().unwrap().to_owned();
    let aws_config = home.path().join("aws-config");
    std::fs::write(
        &aws_config,
        format!(
            "[profile q]\ncredential_process = {qlam} {}\n",
            args("aws").join(" ")
        ),
    )
    .unwrap();
    let mut c = Command::new("python3");
    c.args([
        "-c",
        "import botocore.session as s; c = s.Session(profile='q').get_credentials().get_frozen_credentials(); print(c.access_key, c.secret_key, c.token)",
    ])
    .env("AWS_CONFIG_FILE", &aws_config)
    .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("none"))
    .env("HOME", home.path())
    .env("XDG_CONFIG_HOME", home.path().join("config"))
    .env("XDG_CACHE_HOME", home.path().join("cache"))
    .env("XDG_STATE_HOME", home.path().join("state"));
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "AKIAQLAMTEST aws-secret-canary aws-session-canary\n"
    );
}

#[test]
fn real_kubectl_runs_qlam_as_its_exec_credential_plugin() {
    if Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .map_or(true, |o| !o.status.success())
    {
        crate::util::require_tool("kubernetes-client");
    }
    use std::io::BufRead;
    let home = Home::new();
    // A Kubernetes API server stand-in over TLS on loopback (kubectl sends exec credentials
    // only over TLS): answers /version and records the Authorization headers it gets.
    let (ca, cert, key) = crate::util::oauth::make_certs(home.path());
    let auth_log = home.path().join("auth.log");
    let script = r#"
import http.server, ssl, sys
cert, key, log = sys.argv[1:4]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        with open(log, "a") as f: f.write("%s\n" % self.headers.get("Authorization"))
        body = b'{"major":"1","minor":"30","gitVersion":"v1.30.0"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
s = http.server.HTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
    let mut server = Command::new("python3")
        .args(["-c", script])
        .arg(&cert)
        .arg(&key)
        .arg(&auth_log)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let port: u16 = first.trim().parse().expect("the server prints its port");
    let cfg = home.write_config(
        "current_context = \"x\"\n[contexts.x]\nauth_providers = [{ name = \"kube\", provider = \"token\", env = \"QLAM_T_KUBE_TOKEN\" }]\n",
    );
    let qlam = home.qlam().get_program().to_str().unwrap().to_owned();
    let kubeconfig = home.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            r#"apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority: {}
contexts:
- name: local
  context:
    cluster: local
    user: qlam
current-context: local
users:
- name: qlam
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: {qlam}
      args: ["--config", "{}", "auth", "token", "kube", "--format", "exec-credential"]
      interactiveMode: Never
"#,
            ca.display(),
            cfg.display()
        ),
    )
    .unwrap();
    let out = Command::new("kubectl")
        .args(["--kubeconfig"])
        .arg(&kubeconfig)
        .args(["get", "--raw", "/version"])
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .env("XDG_STATE_HOME", home.path().join("state"))
        .env("QLAM_T_KUBE_TOKEN", "kube-token-99")
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("v1.30.0"),
        "{out:?}"
    );
    let seen = std::fs::read_to_string(&auth_log).unwrap_or_default();
    assert!(
        !seen.is_empty() && seen.lines().all(|a| a == "Bearer kube-token-99"),
        "{seen:?}"
    );
}
