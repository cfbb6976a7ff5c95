// The page: join form, tile grid, controls. All DOM work lives here; the protocol and
// WebRTC session are in protocol.js.
'use strict';
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var params = new URLSearchParams(location.search);
  var lang = localStorage.getItem('cauhop.lang') || 'vi';
  var session = null, stream = null, audioMuted = false, videoMuted = false, screenTrack = null;
  var participants = {}; // id -> {name, site}
  var state = '';
  window.cauhop = { stats: function () { return session && session.pc ? session.pc.getStats() : null; },
    state: function () { return state; } };

  function t(key) { return (CAUHOP_STRINGS[lang] || CAUHOP_STRINGS.vi)[key] || key; }
  function applyLang() {
    document.documentElement.lang = lang;
    document.querySelectorAll('[data-t]').forEach(function (el) { el.textContent = t(el.getAttribute('data-t')); });
    $('lang').textContent = t('lang');
    updateButtons();
  }
  function status(text) { $('status').textContent = text || ''; }

  var pathMeeting = location.pathname.indexOf('/m/') === 0 ? decodeURIComponent(location.pathname.slice(3)) : '';
  $('meeting').value = params.get('meeting') || pathMeeting;
  $('name').value = params.get('name') || localStorage.getItem('cauhop.name') || '';
  $('site').value = params.get('site') || localStorage.getItem('cauhop.site') || '';

  async function listDevices() {
    var devices = [];
    try { devices = await navigator.mediaDevices.enumerateDevices(); } catch (e) { devices = []; }
    [['camera', 'videoinput'], ['mic', 'audioinput']].forEach(function (p) {
      var sel = $(p[0]);
      sel.innerHTML = '';
      devices.filter(function (d) { return d.kind === p[1]; }).forEach(function (d, i) {
        var o = document.createElement('option');
        o.value = d.deviceId; o.textContent = d.label || (p[0] + ' ' + (i + 1));
        sel.appendChild(o);
      });
      var none = document.createElement('option');
      none.value = 'none'; none.textContent = t('none');
      sel.appendChild(none);
    });
  }

  async function openMedia() {
    var cam = $('camera').value, mic = $('mic').value;
    var c = {
      audio: mic === 'none' ? false : { deviceId: mic ? { exact: mic } : undefined, echoCancellation: true, noiseSuppression: true },
      // 360p by default: watchable on a TV, affordable on a commune's 3G uplink.
      video: cam === 'none' ? false : { deviceId: cam ? { exact: cam } : undefined, width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { max: 24 } }
    };
    if (!c.audio && !c.video) return null;
    return navigator.mediaDevices.getUserMedia(c);
  }

  async function preview() {
    if (stream) stream.getTracks().forEach(function (tr) { tr.stop(); });
    try { stream = await openMedia(); status(''); } catch (e) { stream = null; status(t('noMedia') + e.name); }
    $('preview').srcObject = stream;
  }

  function tile(id, label) {
    var el = $('tile-' + id);
    if (!el) {
      el = document.createElement('div');
      el.className = 'tile'; el.id = 'tile-' + id;
      var v = document.createElement('video');
      v.autoplay = true; v.playsInline = true;
      var l = document.createElement('div');
      l.className = 'label';
      el.appendChild(v); el.appendChild(l);
      $('grid').appendChild(el);
    }
    if (label) el.querySelector('.label').textContent = label;
    return el;
  }
  function describe(p) { return p.name + (p.site ? ' — ' + p.site : ''); }

  function onEvent(type, data) {
    switch (type) {
      case 'state':
        state = data;
        status(data === 'joined' ? '' : t(data));
        break;
      case 'welcome':
        $('grid').innerHTML = '';
        participants = {};
        data.participants.forEach(function (p) { participants[p.id] = p; tile(p.id, describe(p)); });
        var mine = tile('me', t('you') + ' — ' + $('name').value);
        var mv = mine.querySelector('video');
        mv.muted = true; mv.srcObject = stream;
        break;
      case 'participant_joined':
        participants[data.participant.id] = data.participant;
        tile(data.participant.id, describe(data.participant));
        break;
      case 'participant_left':
        delete participants[data.participant];
        var gone = $('tile-' + data.participant);
        if (gone) gone.remove();
        break;
      case 'track':
        var el = tile(data.participant, participants[data.participant] ? describe(participants[data.participant]) : data.participant);
        var v = el.querySelector('video');
        if (v.srcObject !== data.stream) v.srcObject = data.stream;
        v.play().catch(function () { /* autoplay policy: starts on first click */ });
        break;
      case 'ended':
        status(t('ended'));
        showJoin();
        break;
      case 'error':
        status(data.message);
        break;
    }
  }

  function showJoin() {
    $('meetingView').classList.add('hidden');
    $('join').classList.remove('hidden');
  }

  function updateButtons() {
    $('muteBtn').textContent = audioMuted ? t('unmute') : t('mute');
    $('muteBtn').classList.toggle('off', audioMuted);
    $('camBtn').textContent = videoMuted ? t('camOn') : t('camOff');
    $('camBtn').classList.toggle('off', videoMuted);
    $('shareBtn').textContent = screenTrack ? t('stopShare') : t('share');
  }

  $('join').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var meeting = $('meeting').value.trim(), name = $('name').value.trim();
    if (!meeting || !name) { status(t('needName')); return; }
    localStorage.setItem('cauhop.name', name);
    localStorage.setItem('cauhop.site', $('site').value.trim());
    history.replaceState(null, '', '/m/' + encodeURIComponent(meeting) + location.search);
    $('join').classList.add('hidden');
    $('meetingView').classList.remove('hidden');
    var proto = location.protocol === 'https:' ? 'wss://' : 'ws://';
    session = new CauhopSession({ url: proto + location.host + '/ws', meeting: meeting, name: name,
      site: $('site').value.trim(), stream: stream, onEvent: onEvent });
    session.connect();
  });
  $('muteBtn').onclick = function () { audioMuted = !audioMuted; session.setMuted(audioMuted, videoMuted); updateButtons(); };
  $('camBtn').onclick = function () { videoMuted = !videoMuted; session.setMuted(audioMuted, videoMuted); updateButtons(); };
  $('shareBtn').onclick = async function () {
    if (screenTrack) { screenTrack.stop(); session.stopScreen(); screenTrack = null; updateButtons(); return; }
    try {
      var s = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 5 } });
      screenTrack = s.getVideoTracks()[0];
      screenTrack.onended = function () { session.stopScreen(); screenTrack = null; updateButtons(); };
      session.shareScreen(screenTrack);
    } catch (e) { status(String(e)); }
    updateButtons();
  };
  $('leaveBtn').onclick = function () { session.leave(); status(t('left')); showJoin(); };
  $('lang').onclick = function () { lang = lang === 'vi' ? 'en' : 'vi'; localStorage.setItem('cauhop.lang', lang); applyLang(); };
  $('camera').onchange = preview;
  $('mic').onchange = preview;

  setInterval(function () {
    if (!session) return;
    var loud = session.loudest();
    document.querySelectorAll('.tile').forEach(function (el) {
      var v = el.querySelector('video');
      var s = v && v.srcObject;
      el.classList.toggle('speaking', !!(loud && s && s.getAudioTracks && s.getAudioTracks().some(function (a) { return a.id === loud; })));
    });
  }, 500);

  applyLang();
  preview().then(listDevices).then(function () {
    if (params.get('autojoin') === '1') $('join').requestSubmit();
  });
})();
