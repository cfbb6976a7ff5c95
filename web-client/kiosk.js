// Kiosk mode for a meeting-room PC (/kiosk#key=DEVICE_KEY): waits for the room's next
// meeting with a clock, joins by itself when it opens, shows the meeting full screen with
// only a mute button, rejoins after drops, and reports its state to the bridge.
'use strict';
(function () {
  var K = {
    vi: { nothing: 'Không có cuộc họp nào sắp tới', next: 'Cuộc họp tiếp theo', at: 'lúc',
      badKey: 'Khoá thiết bị không hợp lệ hoặc đã bị thu hồi. Liên hệ cán bộ công nghệ thông tin của huyện.',
      offline: 'Không kết nối được máy chủ cầu họp, đang thử lại…', weak: 'Đường truyền yếu',
      reconnecting: 'Mất kết nối, đang kết nối lại…', ended: 'Cuộc họp đã kết thúc', mute: 'Tắt micrô', unmute: 'Bật micrô',
      noMedia: 'Không mở được camera/micrô: ', handUp: 'Đã xin phát biểu — chờ chủ trì mời', floorHere: 'Mời điểm cầu phát biểu',
      heldHere: 'Chủ trì đã tắt micrô của phòng họp', rollBroken: 'Chưa điểm danh được: camera hoặc micrô của phòng họp không hoạt động' },
    en: { nothing: 'No upcoming meeting', next: 'Next meeting', at: 'at',
      badKey: 'The device key is not valid or was revoked. Contact the district IT officer.',
      offline: 'Cannot reach the bridge, retrying…', weak: 'Weak connection',
      reconnecting: 'Connection lost, reconnecting…', ended: 'The meeting has ended', mute: 'Mute', unmute: 'Unmute',
      noMedia: 'Cannot open camera/microphone: ', handUp: 'Asked to speak — waiting for the chair', floorHere: 'This room has the floor',
      heldHere: 'The chair muted this room', rollBroken: 'Not marked present: the room\'s camera or microphone is not working' }
  };
  var $ = function (id) { return document.getElementById(id); };
  // The key comes in the fragment (never sent to the server: not in proxy logs); an older
  // link's query works too. It is remembered, then taken out of the address bar.
  var query = new URLSearchParams(location.search), frag = new URLSearchParams(location.hash.slice(1));
  var params = { get: function (k) { return frag.get(k) || query.get(k); } };
  var key = params.get('key') || localStorage.getItem('cauhop.kioskKey') || '';
  if (params.get('key')) {
    localStorage.setItem('cauhop.kioskKey', key);
    frag.delete('key'); query.delete('key');
    history.replaceState(null, '', location.pathname + (query.toString() ? '?' + query : '') + (frag.toString() ? '#' + frag : ''));
  }
  var lang = params.get('lang') || 'vi';
  // The remote's key that asks for the floor (a KeyboardEvent.key value: most remotes
  // send a letter, a number or F-key), from the kiosk link (#hand=…) or remembered.
  var handKey = params.get('hand') || localStorage.getItem('cauhop.kioskHandKey') || 'h';
  if (params.get('hand')) localStorage.setItem('cauhop.kioskHandKey', handKey);
  var me = '', handUp = false;
  var session = null, stream = null, state = 'waiting', current = null, muted = false, lastLoss = null;
  function t(k) { return (K[lang] || K.vi)[k] || (CAUHOP_STRINGS[lang] || CAUHOP_STRINGS.vi)[k] || k; }
  function banner(text, cls) {
    var b = $('banner');
    b.textContent = text || ''; b.className = text ? (cls || '') : 'hidden';
  }
  function clock(iso) {
    return new Date(iso ? Date.parse(iso) : Date.now()).toLocaleTimeString(lang === 'vi' ? 'vi-VN' : 'en-GB',
      { timeZone: 'Asia/Ho_Chi_Minh', hour: '2-digit', minute: '2-digit' });
  }
  window.cauhop = { stats: function () { return session && session.pc ? session.pc.getStats() : null; },
    state: function () { return state; }, session: function () { return session; } };

  async function device(method, path, body) {
    var opts = { method: method, headers: { Authorization: 'Device ' + key } };
    if (body) { opts.headers['Content-Type'] = 'application/json'; opts.body = JSON.stringify(body); }
    return fetch('/api/v1' + path, opts);
  }

  async function poll() {
    if (session) return;
    var r;
    try { r = await device('GET', '/device/schedule'); } catch (e) { banner(t('offline'), 'warn'); return; }
    if (r.status === 401) { banner(t('badKey'), 'bad'); return; }
    if (!r.ok) { banner(t('offline'), 'warn'); return; }
    banner('');
    var list = await r.json();
    var live = list.find(function (m) { return ['lobby', 'open', 'closing'].indexOf(m.phase) >= 0; });
    if (live) { join(live); return; }
    var next = list.filter(function (m) { return m.phase === 'scheduled'; })
      .sort(function (a, b) { return Date.parse(a.starts_at) - Date.parse(b.starts_at); })[0];
    $('next').textContent = next ? t('next') + ': ' + next.title + ' — ' + t('at') + ' ' + clock(next.starts_at) + ' ' +
      new Date(Date.parse(next.starts_at) + 7 * 3600000).toISOString().slice(0, 10).split('-').reverse().join('/') : t('nothing');
  }

  function tile(id) {
    var el = $('tile-' + id);
    if (!el) {
      el = document.createElement('div'); el.className = 'tile' + (id === 'v0' ? ' main' : ''); el.id = 'tile-' + id;
      var v = document.createElement('video'); v.autoplay = true; v.playsInline = true;
      el.appendChild(v); $('grid').appendChild(el);
    }
    return el;
  }

  function audioSlot(slot) {
    var el = $('slot-' + slot);
    if (!el) {
      el = document.createElement('audio'); el.id = 'slot-' + slot; el.autoplay = true;
      document.body.appendChild(el);
    }
    return el;
  }

  async function join(m) {
    current = m;
    if (!stream) {
      try {
        stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true },
          video: { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { max: 24 } } });
      } catch (e) { banner(t('noMedia') + e.name, 'warn'); stream = null; }
    }
    var proto = location.protocol === 'https:' ? 'wss://' : 'ws://';
    session = new CauhopSession({ url: proto + location.host + '/ws', meeting: String(m.id), name: 'kiosk',
      key: key, stream: stream, onEvent: onEvent });
    session.connect();
  }

  function backToWaiting(text) {
    if (session) { session.closedByUser = true; session.leave(); }
    session = null; current = null; state = 'waiting';
    $('grid').innerHTML = '';
    $('recMark').classList.add('hidden');
    $('meetingView').classList.add('hidden'); $('waiting').classList.remove('hidden');
    banner(text || '');
    poll();
  }

  function onEvent(type, data) {
    switch (type) {
      case 'state':
        if (data === 'joined') { state = 'joined'; banner(''); }
        if (data === 'reconnecting') { state = 'reconnecting'; banner(t('reconnecting'), 'warn'); }
        break;
      case 'welcome':
        me = data.participant; handUp = false;
        $('waiting').classList.add('hidden'); $('meetingView').classList.remove('hidden');
        $('grid').innerHTML = '';
        break;
      case 'track':
        // Audio slots play from hidden elements; video slots are tiles, the main first.
        var el = data.kind === 'audio' ? audioSlot(data.slot) : tile(data.slot);
        var v = el.querySelector('video,audio') || el;
        if (v.srcObject !== data.stream) v.srcObject = data.stream;
        v.play().catch(function () { /* autoplay is allowed in kiosk mode */ });
        break;
      case 'slots':
        (data.video || []).forEach(function (s, i) {
          var el = $('tile-v' + i);
          if (el) el.classList.toggle('hidden', !s);
        });
        break;
      case 'meeting_state':
        var ph = $('phase'); ph.classList.remove('hidden'); ph.classList.toggle('warn', data.phase === 'closing');
        ph.textContent = data.title + (data.phase === 'closing' ? ' — ' + t('closing').replace('{t}', clock(data.ends_at)) : '');
        break;
      case 'mute_request':
        muted = true; session.setMuted(true, false); updateMute();
        break;
      case 'held_all':
        onEvent('held', { participant: me, audio: data.audio.indexOf(me) >= 0, video: data.video.indexOf(me) >= 0 });
        break;
      case 'held':
        if (data.participant === me && data.audio) { muted = true; session.setMuted(true, !!data.video); updateMute(); banner(t('heldHere'), 'warn'); }
        break;
      case 'hands':
        handUp = (data.queue || []).indexOf(me) >= 0;
        if (handUp) banner(t('handUp'), 'warn');
        break;
      case 'recording':
        $('recMark').classList.toggle('hidden', !data.on);
        break;
      case 'roll_call':
        // The room confirms by itself when its camera and microphone work.
        if (data.open) {
          var live = function (tr) { return tr.readyState === 'live'; };
          var works = stream && stream.getAudioTracks().some(live) && stream.getVideoTracks().some(live) && state === 'joined';
          if (works) session.send({ type: 'present' }); else banner(t('rollBroken'), 'bad');
        }
        break;
      case 'floor':
        // Given the floor, the room is heard: its microphone opens by itself.
        if (data.participant === me) { muted = false; session.setMuted(false, false); updateMute(); banner(t('floorHere'), 'warn'); }
        else if (!handUp) banner('');
        break;
      case 'ended':
        backToWaiting(t('ended'));
        break;
      case 'waiting':
        state = 'waiting'; break;
      case 'error':
        if (data.code === 'unauthorized') backToWaiting(t('badKey'));
        else if (['meeting_closed', 'not_invited', 'unknown_meeting'].indexOf(data.code) >= 0) backToWaiting('');
        break;
    }
  }

  function updateMute() { $('muteBtn').textContent = muted ? t('unmute') : t('mute'); $('muteBtn').classList.toggle('off', muted); }
  $('muteBtn').onclick = function () { muted = !muted; if (session) session.setMuted(muted, false); updateMute(); };
  document.addEventListener('keydown', function (e) {
    if (e.key !== handKey || !session || state !== 'joined') return;
    session.send({ type: handUp ? 'lower_hand' : 'raise_hand' });
  });

  // Link quality from the browser's own counters: loss over the last interval and RTT.
  async function quality() {
    if (!session || !session.pc) return null;
    var lost = 0, got = 0, rtt = 0;
    (await session.pc.getStats()).forEach(function (x) {
      if (x.type === 'inbound-rtp') { lost += x.packetsLost || 0; got += x.packetsReceived || 0; }
      if (x.type === 'candidate-pair' && x.nominated && x.currentRoundTripTime) rtt = x.currentRoundTripTime;
    });
    var prev = lastLoss; lastLoss = { lost: lost, got: got };
    var loss = prev && got + lost > prev.got + prev.lost ? (lost - prev.lost) / (got + lost - prev.got - prev.lost) : 0;
    return { loss: loss, rtt_ms: Math.round(rtt * 1000) };
  }

  setInterval(function () { $('clock').textContent = clock(); }, 1000);
  $('clock').textContent = clock();
  setInterval(poll, 15000);
  setInterval(async function () {
    var q = await quality().catch(function () { return null; });
    if (q && state === 'joined') banner(q.loss > 0.05 || q.rtt_ms > 400 ? t('weak') + ' (' + Math.round(q.loss * 100) + ' %, ' + q.rtt_ms + ' ms)' : '', 'warn');
    device('POST', '/device/health', { version: 'kiosk', state: state, meeting: current ? current.id : null,
      loss: q ? q.loss : null, rtt_ms: q ? q.rtt_ms : null }).catch(function () { /* offline: shown by poll */ });
  }, 10000);
  updateMute();
  if (!key) banner(t('badKey'), 'bad'); else poll();
})();
