//! The operator's commands on the real binary: create the first admin, serve, log in,
//! back up while serving, restore, rotate the join-link key; each in the audit log.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cauhop(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cauhop"));
    c.current_dir(dir)
        .env_remove("CAUHOP_DATABASE_URL")
        .env_remove("CAUHOP_JOIN_KEY")
        .env_remove("SUDO_USER")
        .env("USER", "cntt");
    c
}

#[test]
fn create_admin_serve_login_backup_restore() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();

    // The first admin, password on stdin (as a provisioning script would).
    let mut child = cauhop(d)
        .args([
            "admin",
            "create-user",
            "--username",
            "tinh",
            "--name",
            "Quản trị tỉnh",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .map(|mut s| s.write_all(b"mat-khau-rat-dai-2026\n"));
    let out = child.wait_with_output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        d.join("cauhop.db").exists(),
        "the default store is cauhop.db in the working directory"
    );
    // A too-short password is refused with a reason.
    let mut weak = cauhop(d)
        .args(["admin", "create-user", "--username", "x", "--name", "X"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    weak.stdin.take().map(|mut s| s.write_all(b"short\n"));
    let out = weak.wait_with_output()?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at least 10"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Serve on ports the OS picks; read the HTTP port from the banner.
    let mut server = Killed(
        cauhop(d)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--media-ip",
                "127.0.0.1",
                "--media-port",
                "0",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let stdout = server
        .0
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let port: u16 = loop {
        let line = lines
            .next()
            .ok_or_else(|| anyhow::anyhow!("server exited"))??;
        if let Some(rest) = line.split("http://localhost:").nth(1) {
            break rest.trim_end_matches('/').parse()?;
        }
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let http = reqwest::Client::new();
        let r = http
            .post(format!("http://127.0.0.1:{port}/api/v1/login"))
            .json(&serde_json::json!({"username": "tinh", "password": "mat-khau-rat-dai-2026"}))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "login: {}", r.status());
        let cookie = r
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            cookie.contains("HttpOnly")
                && cookie.contains("SameSite=Strict")
                && cookie.contains("Secure"),
            "{cookie}"
        );
        let admin = http
            .get(format!("http://127.0.0.1:{port}/admin"))
            .send()
            .await?;
        anyhow::ensure!(admin.status() == 200);
        Ok(())
    })?;

    // Backup while the server runs.
    let out = cauhop(d).args(["backup", "copy.db"]).output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = cauhop(d).args(["backup", "copy.db"]).output()?;
    assert!(
        !again.status.success(),
        "an existing backup file is not overwritten"
    );
    // Records only when asked for: a meeting's folder comes along with them.
    std::fs::create_dir_all(d.join("records/7"))?;
    std::fs::write(d.join("records/7/20261203-090000.ogg"), b"OggS...")?;
    let out = cauhop(d)
        .args([
            "backup",
            "with-records.db",
            "--with-records",
            "records-copy",
        ])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(d.join("records-copy/7/20261203-090000.ogg"))?,
        b"OggS..."
    );
    drop(server);

    // Restore into a fresh directory and use it.
    let other = tempfile::tempdir()?;
    let out = cauhop(other.path())
        .args(["restore"])
        .arg(d.join("copy.db"))
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The restored store has the admin from the backup.
    let mut child = cauhop(other.path())
        .args(["admin", "set-password", "--username", "tinh"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .map(|mut s| s.write_all(b"mat-khau-moi-2026-11\n"));
    let out = child.wait_with_output()?;
    assert!(
        out.status.success(),
        "set-password on the restored store failed"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("password set"));

    // A new join-link key for the first bridge (its key file is there since it served).
    let out = cauhop(d).args(["keys", "rotate"]).output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Each command is in the audit log under the system user who ran it.
    rt.block_on(async {
        let actions = |dir: std::path::PathBuf| async move {
            let store =
                cauhop_store::Store::open(dir.join("cauhop.db").to_str().unwrap_or("?")).await?;
            let log = store
                .audit_log(&Default::default(), Default::default())
                .await?;
            anyhow::Ok(
                log.items
                    .iter()
                    .filter(|e| e.actor == "cli:cntt")
                    .map(|e| e.action.as_str())
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            actions(d.to_owned()).await?,
            ["join_key.rotate", "person.create"]
        );
        // The restored store has its own history and the new password on top.
        assert_eq!(
            actions(other.path().to_owned()).await?,
            ["person.password", "person.create"]
        );
        anyhow::Ok(())
    })?;
    Ok(())
}
