//! A real Secret Service for the keyring tests: a private D-Bus session bus and
//! gnome-keyring-daemon with an unlocked `login` collection, in a throw-away home.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SecretService {
    pub address: String,
    dbus: Child,
    keyring: Child,
    _home: tempfile::TempDir,
}

/// Installs the Debian packages when they are missing and we can (root with apt-get).
fn require_binaries() {
    static ONCE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let have = |b: &str| Command::new("sh").args(["-c", &format!("command -v {b}")]).output().is_ok_and(|o| o.status.success());
        if have("dbus-daemon") && have("gnome-keyring-daemon") && have("secret-tool") {
            return;
        }
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        assert!(root && have("apt-get"), "the keyring tests need dbus, gnome-keyring and libsecret-tools: apt-get install dbus gnome-keyring libsecret-tools");
        let install = |update: bool| {
            let script = if update {
                "apt-get update -qq && apt-get install -y -qq dbus gnome-keyring libsecret-tools"
            } else {
                "apt-get install -y -qq dbus gnome-keyring libsecret-tools"
            };
            Command::new("sh").args(["-c", script]).env("DEBIAN_FRONTEND", "noninteractive").status().is_ok_and(|s| s.success())
        };
        assert!(install(false) || install(true), "apt-get install dbus gnome-keyring libsecret-tools failed");
    });
}

impl SecretService {
    pub fn start() -> SecretService {
        require_binaries();
        let home = tempfile::tempdir().unwrap();
        let runtime = home.path().join("run");
        std::fs::create_dir_all(&runtime).unwrap();
        std::os::unix::fs::PermissionsExt::set_mode(
            &mut std::fs::metadata(&runtime).unwrap().permissions(),
            0o700,
        );
        let env = |c: &mut Command| {
            c.env("HOME", home.path())
                .env("XDG_DATA_HOME", home.path().join("data"))
                .env("XDG_RUNTIME_DIR", &runtime)
                .env_remove("DBUS_SESSION_BUS_ADDRESS");
        };
        // A bus without service activation: otherwise the first client could start a second,
        // locked gnome-keyring-daemon before ours has registered.
        let config = home.path().join("bus.conf");
        std::fs::write(
            &config,
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:tmpdir=/tmp</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
        )
        .unwrap();
        let mut dbus = Command::new("dbus-daemon");
        env(&mut dbus);
        let mut dbus = dbus
            .arg(format!("--config-file={}", config.display()))
            .args(["--print-address=1", "--nofork", "--nopidfile"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        let mut address = String::new();
        BufReader::new(dbus.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        let address = address.trim().to_owned();
        assert!(
            address.starts_with("unix:"),
            "dbus-daemon printed {address:?}"
        );
        let mut keyring = Command::new("gnome-keyring-daemon");
        env(&mut keyring);
        let mut keyring = keyring
            .args(["--foreground", "--components=secrets", "--unlock"])
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gnome-keyring-daemon");
        // --unlock reads the login keyring's password from stdin, until it closes.
        keyring
            .stdin
            .take()
            .unwrap()
            .write_all(b"qlam-test-keyring-password")
            .unwrap();
        let s = SecretService {
            address,
            dbus,
            keyring,
            _home: home,
        };
        let start = Instant::now();
        loop {
            let owned = Command::new("dbus-send")
                .args([
                    "--session",
                    "--dest=org.freedesktop.DBus",
                    "--print-reply",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    "string:org.freedesktop.secrets",
                ])
                .env("DBUS_SESSION_BUS_ADDRESS", &s.address)
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("boolean true"));
            if owned {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "gnome-keyring-daemon did not take the Secret Service name"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        loop {
            if s.secret_tool(
                &[
                    "store",
                    "--label=ready",
                    "service",
                    "qlam-ready",
                    "user",
                    "x",
                ],
                Some("1"),
            )
            .is_some()
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "the Secret Service did not come up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    /// Runs secret-tool on this bus; `None` when it fails.
    pub fn secret_tool(&self, args: &[&str], stdin: Option<&str>) -> Option<String> {
        let mut child = Command::new("timeout")
            .arg("5")
            .arg("secret-tool")
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .ok()?;
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The value of a qlam item, as another program sees it.
    pub fn lookup(&self, user: &str) -> Option<String> {
        // keyring-rs names its attributes `service` and `username`.
        self.secret_tool(&["lookup", "service", "qlam", "username", user], None)
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        let _ = self.keyring.kill();
        let _ = self.keyring.wait();
        let _ = self.dbus.kill();
        let _ = self.dbus.wait();
    }
}
