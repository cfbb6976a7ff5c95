//! The agent's command line as an installer meets it: missing or wrong settings and an
//! unreachable bridge give one clear line and a non-zero exit, never a panic.

use std::process::Command;

fn agent(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cauhop-endpoint"))
        .args(args)
        .env_remove("CAUHOP_BRIDGE")
        .env_remove("CAUHOP_DEVICE_KEY")
        .env_remove("CAUHOP_ENDPOINT_CONFIG")
        .output()
        .expect("run cauhop-endpoint");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_settings_are_explained() {
    let (code, err) = agent(&["--bridge", "https://b.example"]);
    assert_eq!(code, 1);
    assert!(err.contains("missing key"), "{err}");

    let (code, err) = agent(&["--bridge", "https://b", "--key", "k", "--video", "webcam"]);
    assert_eq!(code, 1);
    assert!(err.contains("video: \"webcam\""), "{err}");

    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("endpoint.toml");
    std::fs::write(&path, "bridge = \"https://b\"\nkye = \"typo\"\n").expect("write");
    let (code, err) = agent(&["--config", path.to_str().unwrap_or("")]);
    assert_eq!(code, 1);
    assert!(
        err.contains("unknown field") && err.contains("kye"),
        "{err}"
    );
}

#[test]
fn check_against_no_bridge_fails_cleanly() {
    // Port 9 on loopback: nothing listens there.
    let (code, err) = agent(&["check", "--bridge", "http://127.0.0.1:9", "--key", "k"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach the bridge"), "{err}");
}
