//! A real OAuth 2.0 / OpenID Connect server on loopback: `tests/oauth-server` (the npm package
//! `oidc-provider`) over TLS with a certificate from a CA made at test time, and the scripted
//! user that logs in through plain HTTP.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::artifacts;

pub struct OAuthServer {
    pub issuer: String,
    pub ca_file: PathBuf,
    pub log_file: PathBuf,
    /// The private keys of the `private_key_jwt` clients `qlam-jwt` (EC P-256, kid
    /// `qlam-jwt-key`) and `qlam-jwt-rsa` (RSA, kid `qlam-jwt-rsa-key`), made by the server.
    pub client_key: PathBuf,
    pub client_rsa_key: PathBuf,
    _dir: tempfile::TempDir,
    child: Child,
    _stdin: ChildStdin,
}

pub fn server_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oauth-server")
}

/// Installs the server's packages (pinned by its lockfile) once, when they are missing, so
/// that `cargo test` alone sets everything up.
fn require_node_modules() {
    static ONCE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        if server_dir().join("node_modules/oidc-provider").is_dir() {
            return;
        }
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(server_dir())
            .status()
            .unwrap_or_else(|e| {
                panic!("cannot run npm (Node.js 20 and npm are needed for the OAuth tests): {e}")
            });
        assert!(
            status.success(),
            "`npm ci` in tests/oauth-server failed: {status}"
        );
    });
}

/// Makes a CA and a server certificate for 127.0.0.1 in `dir`; returns (ca, cert, key).
pub fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "qlam test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::CrlSign,
    ];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let (ca, crt, k) = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server-key.pem"),
    );
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    std::fs::write(&crt, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (ca, crt, k)
}

impl OAuthServer {
    /// Starts the server with access tokens valid for `access_token_ttl` seconds.
    pub fn start(access_token_ttl: u64) -> OAuthServer {
        require_node_modules();
        let _ = artifacts();
        let dir = tempfile::tempdir().unwrap();
        let (ca_file, cert, key) = make_certs(dir.path());
        let log_file = dir.path().join("server.log");
        let client_key = dir.path().join("client-key.pem");
        let client_rsa_key = dir.path().join("client-rsa-key.pem");
        let mut child = Command::new("node")
            .arg(server_dir().join("server.mjs"))
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .arg("--access-token-ttl")
            .arg(access_token_ttl.to_string())
            .arg("--log")
            .arg(&log_file)
            .arg("--client-key-out")
            .arg(&client_key)
            .arg("--client-rsa-key-out")
            .arg(&client_rsa_key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start node (Node.js 20 is needed for the OAuth tests)");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("QLAM_TEST_SERVER_LOG").is_some() {
                    eprintln!("[oauth-server] {line}");
                }
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for _ in lines {}
        });
        let ready = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("the OAuth test server did not start within 60 s (set QLAM_TEST_SERVER_LOG=1 to see its stderr)")
        });
        let v: serde_json::Value = serde_json::from_str(&ready)
            .unwrap_or_else(|e| panic!("bad ready line {ready:?}: {e}"));
        OAuthServer {
            issuer: v["issuer"].as_str().unwrap().to_owned(),
            ca_file,
            log_file,
            client_key,
            client_rsa_key,
            _dir: dir,
            child,
            _stdin: stdin,
        }
    }

    /// A configuration with one provider `sso` (the public client) in context `t`.
    pub fn sso_config(&self) -> String {
        format!(
            "current_context = \"t\"\n[contexts.t]\n[[contexts.t.auth_providers]]\nname = \"sso\"\nprovider = \"oauth\"\nissuer = \"{}\"\nclient_id = \"qlam-cli\"\nscopes = [\"openid\", \"offline_access\", \"api\"]\nca_file = \"{}\"\n",
            self.issuer,
            self.ca_file.display()
        )
    }

    /// The log lines with `event` (and `grant_type`, when given).
    pub fn events(&self, event: &str, grant_type: Option<&str>) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.log_file).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == event && grant_type.is_none_or(|g| v["grant_type"] == g))
            .collect()
    }

    /// `$BROWSER` for qlam: the scripted user, trusting the test CA.
    pub fn browser(&self, extra: &str) -> String {
        format!(
            "node {} --ca {}{extra}",
            server_dir().join("scripted-user.mjs").display(),
            self.ca_file.display()
        )
    }

    /// Approves a device code as the scripted user.
    pub fn approve_device(&self, verification_uri: &str, user_code: &str) -> std::process::Output {
        Command::new("node")
            .arg(server_dir().join("scripted-user.mjs"))
            .arg("--ca")
            .arg(&self.ca_file)
            .args(["device", verification_uri, user_code])
            .output()
            .unwrap()
    }

    /// An HTTP client that trusts the test CA, for talking to the server directly.
    pub fn http(&self) -> reqwest::blocking::Client {
        let pem = std::fs::read(&self.ca_file).unwrap();
        reqwest::blocking::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// A refresh grant sent directly (as a thief or a stale process would).
    pub fn refresh_directly(&self, refresh_token: &str) -> (u16, serde_json::Value) {
        let resp = self
            .http()
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", "qlam-cli"),
            ])
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (
            status,
            serde_json::from_slice(&resp.bytes().unwrap()).unwrap_or(serde_json::Value::Null),
        )
    }
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
