// cauhop signaling protocol v1 and the WebRTC session, with no DOM code (see
// signaling/PROTOCOL.md). The UI (app.js) gives callbacks and calls methods.
// Plain ES2020 so Chrome 109 on Windows 7/8 runs it unchanged.
'use strict';

var CAUHOP_PROTOCOL_VERSION = 1;

/**
 * @param {{url: string, meeting: string, name: string, site: string,
 *          stream: MediaStream|null, onEvent: function(string, *): void}} opts
 */
function CauhopSession(opts) {
  this.opts = opts;
  this.ws = null;
  this.pc = null;
  this.me = null;
  this.closedByUser = false;
  this.makingOffer = false;
  this.retry = 0;
  this.transceivers = [];
  this.screen = null;
  this.queue = Promise.resolve();
}

/** Whether this browser decodes RED-wrapped Opus (Chrome does; the bridge offers RED
 * only to a client that says so, since an answerer that cannot decode it hears nothing). */
function decodesRed() {
  try {
    var caps = window.RTCRtpReceiver && RTCRtpReceiver.getCapabilities && RTCRtpReceiver.getCapabilities('audio');
    return !!caps && caps.codecs.some(function (c) { return c.mimeType.toLowerCase() === 'audio/red'; });
  } catch (e) { return false; }
}

CauhopSession.prototype.emit = function (type, data) {
  try { this.opts.onEvent(type, data); } catch (e) { console.error(e); }
};

CauhopSession.prototype.send = function (msg) {
  if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify(msg));
};

CauhopSession.prototype.connect = function () {
  var self = this;
  this.emit('state', 'connecting');
  var ws = new WebSocket(this.opts.url);
  this.ws = ws;
  ws.onopen = function () {
    var join = { type: 'join', v: CAUHOP_PROTOCOL_VERSION, meeting: self.opts.meeting,
      name: self.opts.name, site: self.opts.site || '' };
    if (self.opts.token) join.token = self.opts.token;
    if (self.opts.key) join.key = self.opts.key;
    self.send(join);
  };
  ws.onmessage = function (ev) {
    var msg;
    try { msg = JSON.parse(ev.data); } catch (e) { return; }
    // One message at a time: an `offer` handled while the previous `answer` is still
    // being applied would see have-local-offer and roll back a finished negotiation.
    self.queue = self.queue.then(function () { return self.handle(msg); })
      .catch(function (e) { self.emit('warning', String(e)); });
  };
  ws.onclose = function () {
    // A socket we let go while waiting in the lobby: the retry timer (`not_open`) opens
    // the next one.
    if (self.ws !== ws || ws.waitingForLobby) return;
    self.teardown();
    if (self.closedByUser) { self.emit('state', 'left'); return; }
    // Jittered exponential backoff: a commune's 3G drop must not become a reconnect storm.
    var delay = Math.min(10000, 1000 * Math.pow(2, self.retry)) * (0.75 + Math.random() / 2);
    self.retry = Math.min(self.retry + 1, 4);
    self.emit('state', 'reconnecting');
    setTimeout(function () { if (!self.closedByUser) self.connect(); }, delay);
  };
};

CauhopSession.prototype.teardown = function () {
  if (this.pc) { try { this.pc.close(); } catch (e) { /* already closed */ } }
  this.pc = null;
  this.me = null;
  this.lastView = null;
  this.transceivers = [];
  this.emit('reset', null);
};

CauhopSession.prototype.handle = async function (msg) {
  switch (msg.type) {
    case 'welcome':
      this.retry = 0;
      this.me = msg.participant;
      // TURN servers with short-lived credentials, when the bridge has them.
      this.iceServers = (msg.ice_servers || []).map(function (s) { return { urls: s.urls, username: s.username, credential: s.credential }; });
      this.emit('welcome', msg);
      this.emit('state', 'joined');
      this.startMedia();
      break;
    case 'answer':
      if (this.pc) await this.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
      break;
    case 'offer':
      if (!this.pc) return;
      // We are the polite side: on glare, drop our offer and take the server's.
      if (this.pc.signalingState !== 'stable') {
        await this.pc.setLocalDescription({ type: 'rollback' });
      }
      await this.pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
      var answer = await this.pc.createAnswer();
      await this.pc.setLocalDescription(answer);
      this.send({ type: 'answer', sdp: this.pc.localDescription.sdp });
      break;
    case 'layers':
      // Nobody receives our other simulcast layers now: stop encoding them (a commune's
      // uplink then carries its thumbnail and voice only). They resume on the next word.
      this.setLayers(msg.mid, msg.active);
      break;
    case 'meeting_ended':
      this.closedByUser = true;
      this.emit('ended', msg.reason);
      break;
    case 'error':
      if (!this.me && msg.code === 'not_open') {
        // Early: wait on the page and try again shortly (or at the start, if sooner).
        var wait = 15000;
        if (msg.at) wait = Math.max(2000, Math.min(wait, Date.parse(msg.at) - Date.now()));
        this.emit('waiting', msg);
        var self = this, ws = this.ws;
        ws.waitingForLobby = true;
        // Let the socket go while waiting: the bridge counts sockets that have not
        // joined, and an office full of pages in the lobby must not fill its share.
        ws.close();
        setTimeout(function () { if (!self.closedByUser && self.ws === ws && !self.me) self.connect(); }, wait);
        return;
      }
      this.emit('error', msg);
      if (!this.me && ['meeting_closed', 'link_expired', 'unauthorized', 'not_invited', 'unknown_meeting', 'replaced', 'removed', 'locked'].indexOf(msg.code) >= 0) {
        // Retrying cannot help; say why and stop.
        this.closedByUser = true;
        if (this.ws) this.ws.close();
      }
      if (msg.fatal && msg.code !== 'internal') this.closedByUser = true;
      break;
    default:
      this.emit(msg.type, msg);
  }
};

/** Send only the simulcast layers `active` (rids) of our video transceiver `mid`. */
CauhopSession.prototype.setLayers = async function (mid, active) {
  if (!this.pc) return;
  var tr = this.pc.getTransceivers().filter(function (t) { return t.mid === mid; })[0];
  if (!tr || !tr.sender) return;
  var p = tr.sender.getParameters();
  if (!p.encodings || p.encodings.length < 2) return;
  var changed = false;
  p.encodings.forEach(function (e) {
    var on = active.indexOf(e.rid) >= 0;
    if (e.active !== on) { e.active = on; changed = true; }
  });
  if (changed) {
    try { await tr.sender.setParameters(p); } catch (e) { this.emit('warning', 'layers: ' + e); }
  }
};

/** Chair actions: the server refuses them for any other role. */
CauhopSession.prototype.chair = function (msg) { this.send(msg); };

CauhopSession.prototype.startMedia = function () {
  var self = this;
  var pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require', iceServers: this.iceServers || [] });
  this.pc = pc;
  // Media arrives in fixed slots: the msid stream id names the slot (`a0`..`a2` audio,
  // `v0` the main picture, `v1`.. thumbnails); `slots` messages say who is in each.
  pc.ontrack = function (ev) {
    var stream = ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]);
    self.emit('track', { slot: stream.id, kind: ev.track.kind, track: ev.track, stream: stream });
  };
  pc.onconnectionstatechange = function () {
    self.emit('media', pc.connectionState);
    // A handshake a lossy 3G link defeated, or a path that never came back: start over
    // (the socket's close handler rejoins with backoff), rather than sit without media.
    if (pc.connectionState === 'failed' && self.pc === pc && self.ws) self.ws.close();
  };
  pc.onnegotiationneeded = async function () {
    try {
      self.makingOffer = true;
      var offer = await pc.createOffer();
      if (pc.signalingState !== 'stable') return;
      await pc.setLocalDescription(offer);
      self.send({ type: 'offer', sdp: pc.localDescription.sdp });
    } catch (e) {
      self.emit('warning', 'offer failed: ' + e);
    } finally {
      self.makingOffer = false;
    }
  };
  var stream = this.opts.stream;
  var tracks = stream ? stream.getTracks() : [];
  if (tracks.length === 0) { this.send({ type: 'ready', red: decodesRed() }); return; }
  tracks.forEach(function (t) {
    var init = { direction: 'sendonly', streams: [stream] };
    // The camera as three simulcast layers: the bridge sends each site the one its link
    // and its tile can take (a commune on 3G the smallest, the province hall the largest).
    if (t.kind === 'video') init.sendEncodings = CAUHOP_SIMULCAST;
    self.transceivers.push(pc.addTransceiver(t, init));
  });
};

/** 180p / 360p / 720p from a 720p camera; Chrome drops the top layers of smaller ones. */
var CAUHOP_SIMULCAST = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000, maxFramerate: 15 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: 'f', maxBitrate: 1200000 }
];

/**
 * Tell the bridge what this page shows: {audio_only, low_data, hidden, tiles: [{participant,
 * height}], pinned}. Sent only when it changed, so calling it every second costs nothing.
 */
CauhopSession.prototype.setView = function (view) {
  var json = JSON.stringify(view);
  if (json === this.lastView || !this.me) return;
  this.lastView = json;
  view.type = 'view';
  this.send(view);
};

CauhopSession.prototype.setMuted = function (audioMuted, videoMuted) {
  var s = this.opts.stream;
  if (s) {
    s.getAudioTracks().forEach(function (t) { t.enabled = !audioMuted; });
    s.getVideoTracks().forEach(function (t) { t.enabled = !videoMuted; });
  }
  this.send({ type: 'mute', audio: audioMuted, video: videoMuted });
};

CauhopSession.prototype.shareScreen = function (track) {
  if (!this.pc) return;
  // One layer at a low frame rate: text must stay sharp, motion does not matter.
  track.contentHint = 'text';
  this.screen = this.pc.addTransceiver(track, { direction: 'sendonly', streams: [this.opts.stream || new MediaStream()],
    sendEncodings: [{ maxBitrate: 600000, maxFramerate: 5 }] });
};

CauhopSession.prototype.stopScreen = function () {
  if (this.screen) { try { this.screen.stop(); } catch (e) { /* gone */ } }
  this.screen = null;
};

CauhopSession.prototype.leave = function () {
  this.closedByUser = true;
  this.send({ type: 'leave' });
  if (this.ws) this.ws.close();
  this.teardown();
};

if (typeof module !== 'undefined') module.exports = { CauhopSession: CauhopSession };
