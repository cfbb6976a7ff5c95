//! How many video frames a WebM file holds, as GStreamer reads it (Debian's
//! `gst-launch-1.0` with matroskademux, and vp8dec to decode them): an outside reader of
//! the record's turn files, not our own code checking itself.

use std::path::Path;
use std::process::Command;

/// Frames of the file's VP8 track that GStreamer demuxes (and, with `decode`, decodes);
/// `None` when `gst-launch-1.0` is not installed (CI installs it).
pub fn webm_frames(path: &Path, decode: bool) -> anyhow::Result<Option<u64>> {
    let location = format!("location={}", path.display());
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.args(["-v", "filesrc", &location, "!", "matroskademux", "!"]);
    if decode {
        cmd.args(["vp8dec", "!"]);
    } else {
        cmd.args(["video/x-vp8", "!"]);
    }
    cmd.args(["fakesink", "silent=false"]);
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "gst-launch-1.0 could not read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    // fakesink says "chain" once per buffer it is given.
    Ok(Some(
        text.lines()
            .filter(|l| l.contains("last-message = chain"))
            .count() as u64,
    ))
}
