//! HTTPS served by the binary itself (issue 16): a self-signed certificate made on first
//! run whose fingerprint is printed and is what clients are served; the page, the API and
//! the WebSocket over it; certificate files replaced on disk served without a restart (a
//! broken replacement keeps the old one); port 80 redirecting; junk on the TLS port
//! (also ICE-TCP frames, which the port shares with the SFU); and a clear refusal to
//! start when the configured files are missing.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use sha2::{Digest, Sha256};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cauhop(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cauhop"));
    c.current_dir(dir)
        .env_remove("CAUHOP_DATABASE_URL")
        .env_remove("CAUHOP_JOIN_KEY")
        .env_remove("CAUHOP_HTTPS_LISTEN")
        .env("RUST_LOG", "info,str0m=warn")
        .args(["--listen", "127.0.0.1:0", "--media-port", "0"])
        .args(["--media-ip", "127.0.0.1"]);
    c
}

/// What the bridge printed until its HTTPS address: (port, fingerprint if self-signed),
/// and the rest of its output from a thread (for the log lines a test waits for).
struct Started {
    port: u16,
    fingerprint: Option<String>,
    lines: std::sync::mpsc::Receiver<String>,
}

fn start(cmd: &mut Command) -> anyhow::Result<(Killed, Started)> {
    let mut child = Killed(cmd.stdout(Stdio::piped()).spawn()?);
    let out = child
        .0
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut port, mut fingerprint) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) else {
            if let Some(status) = child.0.try_wait()? {
                anyhow::bail!("the bridge exited: {status}");
            }
            continue;
        };
        if let Some(rest) = line.split("open: https://localhost:").nth(1) {
            port = rest.trim_end_matches('/').parse().ok();
        }
        if let Some(fp) = line.split("SHA-256 ").nth(1) {
            fingerprint = Some(fp.trim().to_owned());
        }
        if line.contains("quản trị / admin:") && port.is_some() {
            // The fingerprint line follows the admin line when there is one.
            if let Ok(next) = lines.recv_timeout(Duration::from_millis(500))
                && let Some(fp) = next.split("SHA-256 ").nth(1)
            {
                fingerprint = Some(fp.trim().to_owned());
            }
            break;
        }
    }
    let port = port.ok_or_else(|| anyhow::anyhow!("no https:// address printed"))?;
    Ok((
        child,
        Started {
            port,
            fingerprint,
            lines,
        },
    ))
}

fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn pem_der(pem: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    Ok(base64::engine::general_purpose::STANDARD.decode(body)?)
}

/// The certificate the bridge serves now, whoever signed it.
async fn served(port: u16) -> anyhow::Result<String> {
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .build()?;
    let r = client
        .get(format!("https://127.0.0.1:{port}/healthz"))
        .send()
        .await?;
    let info = r
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .ok_or_else(|| anyhow::anyhow!("no peer certificate"))?;
    Ok(fingerprint(info))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_bridge_serves_page_api_and_websocket_over_https() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let (_bridge, started) = start(
        cauhop(d)
            .args(["--https", "127.0.0.1:0", "--ad-hoc"])
            .args(["--database-url", "sqlite://cauhop.db"]),
    )?;
    // The certificate was made on first run, the key readable by its owner only.
    let pem = std::fs::read_to_string(d.join("cauhop-tls.crt"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("cauhop-tls.key"))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is readable by others: {mode:o}");
    }
    let der = pem_der(&pem)?;
    let printed = started
        .fingerprint
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no fingerprint printed for a self-signed start"))?;
    assert_eq!(printed, fingerprint(&der), "printed fingerprint");
    assert_eq!(served(started.port).await?, printed, "served certificate");

    // A client that trusts this one certificate (as a room agent given it as its CA
    // file does) gets the page and the API; one that trusts only the web's roots does not.
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes())?)
        .build()?;
    let base = format!("https://localhost:{}", started.port);
    let page = trusting.get(format!("{base}/")).send().await?;
    assert!(page.status().is_success(), "{}", page.status());
    assert!(page.text().await?.contains("<html"), "the page");
    let api = trusting
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .await?;
    assert!(api.status().is_success(), "{}", api.status());
    let untrusting = reqwest::Client::new()
        .get(format!("{base}/healthz"))
        .send()
        .await;
    assert!(
        untrusting.is_err(),
        "an unknown self-signed certificate was accepted"
    );

    // The WebSocket over TLS: nonsense gets an error message, and the socket stays open.
    let tls = cauhop_endpoint::tls::client_config(Some(&d.join("cauhop-tls.crt")))?;
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        format!("wss://localhost:{}/ws", started.port),
        None,
        false,
        Some(tokio_tungstenite::Connector::Rustls(tls)),
    )
    .await?;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        "{\"type\":\"no-such-message\"}".into(),
    ))
    .await?;
    let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await?
        .ok_or_else(|| anyhow::anyhow!("socket closed"))??;
    assert!(reply.to_string().contains("error"), "{reply}");

    // Junk on the TLS port (plain HTTP, then a client that sends nothing) is closed, and
    // the bridge serves on.
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", started.port))?;
    plain.set_read_timeout(Some(Duration::from_secs(5)))?;
    plain.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut buf = [0u8; 256];
    let n = plain.read(&mut buf).unwrap_or(0);
    assert!(
        !String::from_utf8_lossy(&buf[..n]).contains("<html"),
        "plain HTTP on the TLS port got the page"
    );
    let _silent = std::net::TcpStream::connect(("127.0.0.1", started.port))?;
    // ICE-TCP junk on the same port (it goes to the SFU): a STUN-looking frame of
    // 65 535 bytes that names no session is closed at once; half a frame from a client
    // that then holds the connection waits for its idle timeout, harming nobody.
    let mut ice = std::net::TcpStream::connect(("127.0.0.1", started.port))?;
    let mut big = vec![0xFF, 0xFF, 0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    big.resize(2 + 65_535, 7);
    ice.write_all(&big)?;
    ice.set_read_timeout(Some(Duration::from_secs(5)))?;
    let closed = match ice.read(&mut buf) {
        Ok(0) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        Ok(_) => false,
    };
    assert!(
        closed,
        "an ICE-TCP connection naming no session stayed open"
    );
    let mut half = std::net::TcpStream::connect(("127.0.0.1", started.port))?;
    half.write_all(&[
        0x01, 0xF4, 0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 1, 2,
    ])?;
    assert!(
        trusting
            .get(format!("{base}/healthz"))
            .send()
            .await?
            .status()
            .is_success()
    );

    // The same certificate on the next start: users accepted it once.
    drop(_bridge);
    let (_again, again) = start(
        cauhop(d)
            .args(["--https", "127.0.0.1:0"])
            .args(["--database-url", "sqlite://cauhop.db"]),
    )?;
    assert_eq!(again.fingerprint.as_deref(), Some(printed.as_str()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_files_replaced_on_disk_are_served_without_a_restart() -> anyhow::Result<()> {
    // Two certificates to swap, each made by a bridge's self-signed first run.
    let made = tempfile::tempdir()?;
    let mut certs = Vec::new();
    for name in ["a", "b"] {
        let d = made.path().join(name);
        std::fs::create_dir(&d)?;
        let (bridge, started) = start(
            cauhop(&d)
                .args(["--https", "127.0.0.1:0"])
                .args(["--database-url", "sqlite://cauhop.db"]),
        )?;
        drop(bridge);
        certs.push((
            d.join("cauhop-tls.crt"),
            d.join("cauhop-tls.key"),
            started.fingerprint.unwrap_or_default(),
        ));
    }
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let (cert, key) = (d.join("tls.crt"), d.join("tls.key"));
    std::fs::copy(&certs[0].0, &cert)?;
    std::fs::copy(&certs[0].1, &key)?;
    std::fs::write(
        d.join("cauhop.toml"),
        format!(
            "[https]\ncertificate = \"files\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    )?;
    let (_bridge, started) = start(
        cauhop(d)
            .args(["--https", "127.0.0.1:0", "--config", "cauhop.toml"])
            .args(["--database-url", "sqlite://cauhop.db"]),
    )?;
    // Files that hold a self-signed certificate are called so, with its fingerprint.
    assert_eq!(started.fingerprint.as_deref(), Some(certs[0].2.as_str()));
    assert_eq!(served(started.port).await?, certs[0].2);

    // A renewal (certbot, the province's CA) writes new files: served within seconds.
    std::fs::copy(&certs[1].0, &cert)?;
    std::fs::copy(&certs[1].1, &key)?;
    let t0 = Instant::now();
    while served(started.port).await? != certs[1].2 {
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(20),
            "the new certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    println!("new certificate served after {:?}", t0.elapsed());
    // A half-written or wrong key keeps the certificate in service, and says why.
    while started.lines.try_recv().is_ok() {}
    std::fs::copy(&certs[0].1, &key)?;
    let t0 = Instant::now();
    let mut said = false;
    while t0.elapsed() < Duration::from_secs(20) && !said {
        if let Ok(line) = started.lines.recv_timeout(Duration::from_millis(200)) {
            said = line.contains("not usable") && line.contains("does not belong");
        }
    }
    assert!(said, "no log line about the mismatched key");
    assert_eq!(served(started.port).await?, certs[1].2);
    Ok(())
}

#[test]
fn missing_certificate_files_stop_the_start_with_their_name() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    std::fs::write(
        d.join("cauhop.toml"),
        "[https]\ncertificate = \"files\"\ncert_file = \"/nonexistent/tls.crt\"\n\
         key_file = \"/nonexistent/tls.key\"\n",
    )?;
    let out = cauhop(d)
        .args(["--https", "127.0.0.1:0", "--config", "cauhop.toml"])
        .args(["--database-url", "sqlite://cauhop.db"])
        .output()?;
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("/nonexistent/tls.crt") && text.contains("[https]"),
        "{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_on_the_redirect_port_goes_to_https() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    // A free port for the redirect (the binary prints only the HTTPS one).
    let redirect = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    std::fs::write(
        d.join("cauhop.toml"),
        format!("[https]\nredirect_listen = \"{redirect}\"\n"),
    )?;
    let (_bridge, started) = start(
        cauhop(d)
            .args(["--https", "127.0.0.1:0", "--config", "cauhop.toml"])
            .args(["--database-url", "sqlite://cauhop.db"]),
    )?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let r = client
        .get(format!("http://{redirect}/admin?tab=sites"))
        .send()
        .await?;
    assert_eq!(r.status(), reqwest::StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        r.headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or(""),
        format!("https://127.0.0.1:{}/admin?tab=sites", started.port)
    );
    Ok(())
}
