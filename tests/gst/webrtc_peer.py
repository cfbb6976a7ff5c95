#!/usr/bin/env python3
"""A GStreamer webrtcbin peer for cauhop's interop tests, as a device maker would write it.

webrtcbin keeps its defaults (RSA certificate, libnice keepalives, the transceivers it
makes from the offer); only bundle-policy=max-bundle is set, as every webrtcbin example
does. The test process does the WebSocket signaling and talks to this script over
stdin/stdout, one JSON object per line:

  out {"type": "offer", "sdp": ...}     publisher: its first offer, candidates included
  in  {"type": "answer", "sdp": ...}    the bridge's answer to it
  in  {"type": "offer", "sdp": ...}     the bridge's offer (the slots it sends)
  out {"type": "answer", "sdp": ...}    our answer to that
  out {"type": "stats", ...}            every second: decoded video frames, audio buffers
  out {"type": "error", "message": ...} a pipeline error (the test fails on it)

Usage: webrtc_peer.py publish|subscribe
"""
import json
import os
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

Gst.init(None)

ROLE = sys.argv[1] if len(sys.argv) > 1 else "subscribe"

PUBLISH = """
webrtcbin name=w bundle-policy=max-bundle
videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1
  ! vp8enc deadline=1 target-bitrate=300000 keyframe-max-dist=30
  ! rtpvp8pay pt=96 ! application/x-rtp,media=video,encoding-name=VP8,payload=96 ! w.
audiotestsrc is-live=true wave=sine freq=440
  ! audioconvert ! audioresample ! opusenc ! rtpopuspay pt=111
  ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111 ! w.
"""

if ROLE == "publish":
    pipe = Gst.parse_launch(PUBLISH)
    webrtc = pipe.get_by_name("w")
else:
    # parse_launch of one element returns the element itself, not a pipeline.
    pipe = Gst.Pipeline.new("subscriber")
    webrtc = Gst.ElementFactory.make("webrtcbin", "w")
    webrtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
    pipe.add(webrtc)
DEBUG = os.environ.get("CAUHOP_GST_DEBUG")
counts = {"video_frames": 0, "audio_buffers": 0, "pads": 0, "dtls_failed": 0}
candidates = []  # (mline, candidate) gathered so far
pending = {"kind": None}  # the description waiting for gathering to finish


def send(obj):
    if DEBUG and "sdp" in obj:
        sys.stderr.write(f"--- {ROLE} sends {obj['type']} ---\n{obj['sdp']}\n")
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def with_candidates(sdp_text):
    """The local description with the gathered candidates in their m-sections: the
    bridge takes no trickled candidates, so the description carries them."""
    out, mline = [], -1
    lines = sdp_text.replace("\r\n", "\n").strip("\n").split("\n")
    present = set(line for line in lines if line.startswith("a=candidate:"))

    def flush(index):
        for m, c in candidates:
            line = "a=" + c if not c.startswith("a=") else c
            if m == index and line not in present:
                out.append(line)

    for line in lines:
        if line.startswith("m="):
            if mline >= 0:
                flush(mline)
            mline += 1
        out.append(line)
    if mline >= 0:
        flush(mline)
    return "\r\n".join(out) + "\r\n"


def send_local_when_gathered():
    state = webrtc.get_property("ice-gathering-state")
    if pending["kind"] is None or state != GstWebRTC.WebRTCICEGatheringState.COMPLETE:
        return
    desc = webrtc.get_property("local-description")
    send({"type": pending["kind"], "sdp": with_candidates(desc.sdp.as_text())})
    pending["kind"] = None


def on_gathering(*_):
    GLib.idle_add(lambda: send_local_when_gathered() and False)


def on_candidate(_w, mline, candidate):
    candidates.append((mline, candidate))


def set_local(kind, promise_result):
    desc = promise_result.get_value(kind) if promise_result else None
    if desc is None:
        why = promise_result.get_value("error") if promise_result else None
        send({"type": "error", "message": f"webrtcbin could not create an {kind}: {why}"})
        return
    pending["kind"] = kind

    def applied(_p, *_):
        # webrtcbin applies it on its own thread: read local-description only after,
        # or a renegotiation sends the previous description back.
        GLib.idle_add(lambda: send_local_when_gathered() and False)

    webrtc.emit("set-local-description", desc, Gst.Promise.new_with_change_func(applied, None))


def on_negotiation_needed(_w):
    if ROLE != "publish" or webrtc.get_property("local-description") is not None:
        return
    p = Gst.Promise.new_with_change_func(
        lambda pr, *_: set_local("offer", pr.get_reply()), None
    )
    webrtc.emit("create-offer", None, p)


def on_remote(kind, sdp_text):
    if DEBUG:
        sys.stderr.write(f"--- {ROLE} receives {kind} ---\n{sdp_text}\n")
    ok, msg = GstSdp.SDPMessage.new_from_text(sdp_text)
    if ok != GstSdp.SDPResult.OK:
        send({"type": "error", "message": "bad sdp from bridge"})
        return
    t = GstWebRTC.WebRTCSDPType.OFFER if kind == "offer" else GstWebRTC.WebRTCSDPType.ANSWER
    desc = GstWebRTC.WebRTCSessionDescription.new(t, msg)

    def after_remote(_p, *_):
        if kind == "offer":
            p2 = Gst.Promise.new_with_change_func(
                lambda pr, *_: set_local("answer", pr.get_reply()), None
            )
            webrtc.emit("create-answer", None, p2)

    p = Gst.Promise.new_with_change_func(after_remote, None)
    webrtc.emit("set-remote-description", desc, p)


def count(kind):
    def probe(_pad, _info):
        counts[kind] += 1
        return Gst.PadProbeReturn.OK

    return probe


def on_decoded_pad(_db, pad):
    caps = pad.get_current_caps() or pad.query_caps(None)
    name = caps.get_structure(0).get_name() if caps and caps.get_size() else ""
    sink = Gst.ElementFactory.make("fakesink")
    sink.set_property("sync", False)
    pipe.add(sink)
    sink.sync_state_with_parent()
    pad.link(sink.get_static_pad("sink"))
    if name.startswith("video/"):
        pad.add_probe(Gst.PadProbeType.BUFFER, count("video_frames"))
    elif name.startswith("audio/"):
        pad.add_probe(Gst.PadProbeType.BUFFER, count("audio_buffers"))


def on_pad(_w, pad):
    if pad.get_direction() != Gst.PadDirection.SRC:
        return
    counts["pads"] += 1
    db = Gst.ElementFactory.make("decodebin")
    db.connect("pad-added", on_decoded_pad)
    pipe.add(db)
    db.sync_state_with_parent()
    pad.link(db.get_static_pad("sink"))


def on_stdin(source, _cond):
    line = source.readline()
    if not line:
        loop.quit()
        return False
    try:
        msg = json.loads(line)
    except ValueError:
        return True
    if msg.get("type") in ("offer", "answer"):
        on_remote(msg["type"], msg["sdp"])
    elif msg.get("type") == "quit":
        loop.quit()
        return False
    return True


def on_bus(_bus, message):
    if message.type == Gst.MessageType.ERROR:
        err, dbg = message.parse_error()
        send({"type": "error", "message": f"{err.message} ({dbg})"})
    return True


def report():
    connection = webrtc.get_property("connection-state")
    send({"type": "stats", "connection": connection.value_nick, **counts})
    return True


webrtc.connect("on-negotiation-needed", on_negotiation_needed)
webrtc.connect("on-ice-candidate", on_candidate)
webrtc.connect("notify::ice-gathering-state", on_gathering)
webrtc.connect("pad-added", on_pad)
bus = pipe.get_bus()
bus.add_signal_watch()
bus.connect("message", on_bus)
loop = GLib.MainLoop()
GLib.io_add_watch(GLib.IOChannel.unix_new(sys.stdin.fileno()), GLib.IO_IN | GLib.IO_HUP,
                  lambda ch, cond: on_stdin(sys.stdin, cond))
GLib.timeout_add_seconds(1, report)
pipe.set_state(Gst.State.PLAYING)
send({"type": "started", "role": ROLE, "gstreamer": Gst.version_string()})
loop.run()
pipe.set_state(Gst.State.NULL)
