// The page: join form, tile grid, controls. All DOM work lives here; the protocol and
// WebRTC session are in protocol.js.
'use strict';
(function () {
  var $ = function (id) { return document.getElementById(id); };
  // Link parameters come in the fragment (#t=…: never sent to the server, so not in proxy
  // logs or Referer); links sent before that have them in the query, which still works.
  var query = new URLSearchParams(location.search), frag = new URLSearchParams(location.hash.slice(1));
  var params = { get: function (k) { return frag.get(k) || query.get(k); } };
  var lang = localStorage.getItem('cauhop.lang') || 'vi';
  var session = null, stream = null, audioMuted = false, videoMuted = false, screenTrack = null;
  var participants = {}; // id -> {name, site}
  // The token is kept for this tab only (a reload rejoins) and taken out of the address bar.
  var tokenKey = 'cauhop.t:' + location.pathname;
  var state = '', role = '', token = params.get('t') || sessionStorage.getItem(tokenKey) || '';
  if (params.get('t')) {
    sessionStorage.setItem(tokenKey, token);
    frag.delete('t'); query.delete('t');
    history.replaceState(null, '', location.pathname + (query.toString() ? '?' + query : '') + (frag.toString() ? '#' + frag : ''));
  }
  // The user's data switches, remembered per browser: a commune PC keeps "low data".
  var audioOnly = localStorage.getItem('cauhop.audioOnly') === '1';
  var lowData = localStorage.getItem('cauhop.lowData') === '1';
  var starved = null; // the bridge's audio-only notice, while it holds
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
  function clock(iso) {
    if (!iso) return '';
    var d = new Date(iso);
    // Meetings are in Vietnam time whatever the PC's clock zone says.
    return d.toLocaleString(lang === 'vi' ? 'vi-VN' : 'en-GB', { timeZone: 'Asia/Ho_Chi_Minh',
      hour: '2-digit', minute: '2-digit', day: '2-digit', month: '2-digit' });
  }
  function fill(key, vars) {
    return t(key).replace('{t}', clock(vars && vars.at)).replace('{p}', (vars && vars.p) || '');
  }

  var pathMeeting = location.pathname.indexOf('/m/') === 0 ? decodeURIComponent(location.pathname.slice(3)) : '';
  $('meeting').value = params.get('meeting') || pathMeeting;
  $('name').value = params.get('name') || localStorage.getItem('cauhop.name') || '';
  $('site').value = params.get('site') || localStorage.getItem('cauhop.site') || '';
  if (token) {
    // A join link already says which meeting and which site: ask only for the name.
    $('meeting').closest('label').classList.add('hidden');
    $('site').closest('label').classList.add('hidden');
  }

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
      // 720p where the camera has it: sent as 180p/360p/720p simulcast, and Chrome turns
      // the upper layers off by itself when its uplink (a commune's 3G) cannot carry them.
      video: cam === 'none' ? false : { deviceId: cam ? { exact: cam } : undefined, width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { max: 24 } }
    };
    if (!c.audio && !c.video) return null;
    return navigator.mediaDevices.getUserMedia(c);
  }

  async function preview() {
    if (stream) stream.getTracks().forEach(function (tr) { tr.stop(); });
    try { stream = await openMedia(); status(''); } catch (e) { stream = null; status(t('noMedia') + e.name); }
    $('preview').srcObject = stream;
  }

  // Video arrives in fixed slots (`v0` the main picture, `v1`.. thumbnails), audio in
  // `a0`..`a2`; the bridge says who is in which (`slots`), so a tile's label follows its
  // picture. The chair's controls are in the roster, where every site is listed.
  var slotOf = { audio: [], video: [] };
  // The site this user pinned to the main picture (for this page only), or null.
  var pinned = null;
  function pin(id) {
    pinned = id && id !== pinned && participants[id] ? id : null;
    sendView(); roster(); labelSlots();
  }
  function tile(id, label) {
    var el = $('tile-' + id);
    if (!el) {
      el = document.createElement('div');
      el.className = 'tile' + (id === 'v0' ? ' main' : '');
      el.id = 'tile-' + id;
      var v = document.createElement('video');
      v.autoplay = true; v.playsInline = true;
      var l = document.createElement('div');
      l.className = 'label';
      var q = document.createElement('span');
      q.className = 'q'; q.title = t('good');
      el.appendChild(v); el.appendChild(l); el.appendChild(q);
      // A thumbnail clicked takes the main picture; the main one clicked lets it go.
      if (id !== 'me') el.onclick = function () { pin(id === 'v0' ? null : el.dataset.participant); };
      if (id === 'me') $('grid').appendChild(el);
      else $('grid').insertBefore(el, $('grid').firstChild && id === 'v0' ? $('grid').firstChild : null);
    }
    if (label) el.querySelector('.label').textContent = label;
    return el;
  }
  function audioSlot(slot) {
    var el = $('slot-' + slot);
    if (!el) {
      el = document.createElement('audio'); el.id = 'slot-' + slot; el.autoplay = true;
      $('meetingView').appendChild(el);
    }
    return el;
  }
  /** Label every slot tile with who is in it; hide the empty ones. */
  function labelSlots() {
    document.querySelectorAll('.tile').forEach(function (el) {
      if (el.id === 'tile-me') return;
      var i = parseInt(el.id.slice(6), 10);
      var s = slotOf.video[i];
      var p = s && participants[s.participant];
      el.dataset.participant = s ? s.participant : '';
      el.classList.toggle('hidden', !s);
      el.querySelector('.label').textContent = p ? (i === 0 && pinned === s.participant ? '📌 ' : '') + describe(p) + (s.screen ? ' — ' + t('screen') : '') : '';
      el.title = s ? t(i === 0 ? (pinned ? 'unpinHint' : '') : 'pinHint') : '';
      var dot = el.querySelector('.q');
      var q = (p && p.quality) || 'good';
      dot.className = 'q ' + q; dot.title = t(q);
    });
  }
  /** Every site in the meeting, grouped by district, with the chair's controls. */
  var rosterTimer = null;
  function roster() {
    // Batched: 270 sites joining at once redraw the list once, not 270 times.
    if (rosterTimer) return;
    rosterTimer = setTimeout(function () {
      rosterTimer = null;
      var box = $('roster');
      if (!box) return;
      var q = ($('rosterSearch').value || '').toLowerCase();
      // By district in a province meeting (the bridge says which); by site otherwise.
      var groups = {};
      Object.keys(participants).forEach(function (id) {
        var p = participants[id];
        if (q && (p.name + ' ' + p.site + ' ' + (p.district || '')).toLowerCase().indexOf(q) < 0) return;
        var g = p.district || p.site || '—';
        (groups[g] = groups[g] || []).push(id);
      });
      var list = $('rosterList');
      list.innerHTML = '';
      Object.keys(groups).sort().forEach(function (site) {
        var h = document.createElement('h3'); h.textContent = site; list.appendChild(h);
        var ul = document.createElement('ul');
        groups[site].forEach(function (id) {
          var p = participants[id];
          var li = document.createElement('li'); li.dataset.participant = id;
          var dot = document.createElement('span'); dot.className = 'dot ' + (p.quality || 'good'); dot.title = t(p.quality || 'good');
          var n = document.createElement('span'); n.className = 'n';
          n.textContent = p.name + (p.district && p.site && p.site !== p.district ? ' — ' + p.site : '') + (p.audio_muted ? ' 🔇' : '');
          li.appendChild(dot); li.appendChild(n);
          li.classList.toggle('pinned', pinned === id);
          var pb = document.createElement('button');
          pb.type = 'button'; pb.className = 'pin'; pb.textContent = t(pinned === id ? 'unpin' : 'pin');
          pb.setAttribute('aria-pressed', String(pinned === id));
          pb.onclick = function () { pin(id); };
          li.appendChild(pb);
          if (role === 'chair') {
            [['muteOther', 'mute_participant'], ['giveFloor', 'grant_floor']].forEach(function (a) {
              var btn = document.createElement('button');
              btn.type = 'button'; btn.textContent = t(a[0]);
              btn.onclick = function () { session.chair({ type: a[1], participant: id }); };
              li.appendChild(btn);
            });
          }
          ul.appendChild(li);
        });
        list.appendChild(ul);
      });
      $('rosterCount').textContent = Object.keys(participants).length + 1;
    }, 200);
  }
  function describe(p) { return p.name + (p.site ? ' — ' + p.site : ''); }

  // Which way the media goes (UDP, TCP to the web port, a relay), for the connection
  // details; and when no way works, what to ask the IT officer.
  function showPath() {
    var st = window.cauhop.stats();
    if (!st) return;
    st.then(function (r) {
      var byId = {}, pairId = null;
      r.forEach(function (x) { byId[x.id] = x; if (x.type === 'transport' && x.selectedCandidatePairId) pairId = x.selectedCandidatePairId; });
      if (!pairId) r.forEach(function (x) { if (x.type === 'candidate-pair' && x.nominated && x.state === 'succeeded') pairId = x.id; });
      var pair = pairId && byId[pairId], remote = pair && byId[pair.remoteCandidateId], local = pair && byId[pair.localCandidateId];
      if (!remote) return;
      var text = (local && local.candidateType === 'relay') || remote.candidateType === 'relay' ? t('pathRelay')
        : remote.protocol === 'tcp' ? t('pathTcp').replace('{p}', remote.port) : t('pathUdp');
      $('path').textContent = text; $('path').className = remote.protocol === 'tcp' ? 'warn' : '';
    }).catch(function () {});
  }
  function onEvent(type, data) {
    switch (type) {
      case 'media':
        if (data === 'connected') setTimeout(showPath, 1000);
        if (data === 'failed') { $('path').textContent = t('noPath'); $('path').className = 'warn'; }
        break;
      case 'state':
        state = data;
        status(data === 'joined' ? '' : t(data));
        break;
      case 'welcome':
        role = data.role || '';
        $('endBtn').classList.toggle('hidden', role !== 'chair');
        $('extendBtn').classList.toggle('hidden', role !== 'chair');
        $('grid').innerHTML = '';
        participants = {};
        slotOf = { audio: [], video: [] };
        pinned = null;
        data.participants.forEach(function (p) { participants[p.id] = p; });
        roster();
        var mine = tile('me', t('you') + ' — ' + $('name').value);
        var mv = mine.querySelector('video');
        mv.muted = true; mv.srcObject = stream;
        break;
      case 'participant_joined':
        participants[data.participant.id] = data.participant;
        roster();
        break;
      case 'participant_left':
        delete participants[data.participant];
        if (pinned === data.participant) pin(null);
        roster();
        break;
      case 'mute':
        if (participants[data.participant]) { participants[data.participant].audio_muted = data.audio; roster(); }
        break;
      case 'track':
        var el = data.kind === 'audio' ? audioSlot(data.slot) : tile(data.slot);
        var v = el.tagName === 'AUDIO' ? el : el.querySelector('video');
        if (v.srcObject !== data.stream) v.srcObject = data.stream;
        v.play().catch(function () { /* autoplay policy: starts on first click */ });
        if (data.kind === 'video') labelSlots();
        break;
      case 'slots':
        slotOf = data;
        labelSlots();
        break;
      case 'ended':
        status(t('ended'));
        $('phase').classList.add('hidden');
        showJoin();
        break;
      case 'waiting':
        status(fill('waiting', data));
        break;
      case 'error':
        // Known codes in the user's language; the server's sentence otherwise.
        status(CAUHOP_STRINGS.vi[data.code] ? fill(data.code, data) : data.message);
        if (['meeting_closed', 'link_expired', 'unauthorized', 'not_invited', 'unknown_meeting', 'replaced'].indexOf(data.code) >= 0) showJoin();
        break;
      case 'meeting_state':
        var ph = $('phase');
        ph.classList.remove('hidden');
        ph.classList.toggle('warn', data.phase === 'closing');
        ph.textContent = data.title + ' — ' + fill(data.phase, { at: data.phase === 'lobby' ? data.starts_at : data.ends_at });
        break;
      case 'mute_request':
        audioMuted = true; session.setMuted(audioMuted, videoMuted); updateButtons();
        status(t('mutedByChair'));
        break;
      case 'bandwidth':
        starved = data.audio_only ? data : null;
        status(starved ? t('bandwidthLow').replace('{k}', data.kbps) : '');
        break;
      case 'speaker':
        document.querySelectorAll('.tile, #roster li').forEach(function (el) { el.classList.toggle('speaking', !!data.participant && el.dataset.participant === data.participant); });
        break;
      case 'link_quality':
        if (participants[data.participant]) { participants[data.participant].quality = data.quality; roster(); labelSlots(); }
        break;
      case 'floor':
        document.querySelectorAll('.tile').forEach(function (el) { el.classList.toggle('floor', !!data.participant && el.dataset.participant === data.participant); });
        var who = participants[data.participant];
        status(who ? fill('floor', { p: describe(who) }) : '');
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
    $('audioOnlyBtn').setAttribute('aria-pressed', String(audioOnly));
    $('lowDataBtn').setAttribute('aria-pressed', String(lowData));
  }

  /**
   * What this page shows, for the bridge: each video slot's tile height in device pixels
   * (main first), the hidden tab and the switches. An empty slot's tile is hidden, so it
   * is counted at a thumbnail's height: the page has room for it.
   */
  function sendView() {
    if (!session) return;
    var dpr = window.devicePixelRatio || 1;
    var grid = $('grid').clientWidth || 800;
    var thumb = Math.round(Math.min(260, grid / 2) * 9 / 16 * dpr);
    var heights = [];
    for (var i = 0; i < 7; i++) {
      var el = $('tile-v' + i);
      var h = el && el.offsetParent ? Math.round(el.clientHeight * dpr) : (i === 0 ? thumb * 2 : thumb);
      heights.push(h);
    }
    session.setView({ audio_only: audioOnly, low_data: lowData, hidden: document.hidden, tiles: [], pinned: pinned, slots: heights });
  }
  $('rosterSearch').addEventListener('input', roster);
  document.addEventListener('visibilitychange', sendView);
  window.addEventListener('resize', sendView);

  $('join').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var meeting = $('meeting').value.trim(), name = $('name').value.trim();
    if (!meeting || !name) { status(t('needName')); return; }
    localStorage.setItem('cauhop.name', name);
    localStorage.setItem('cauhop.site', $('site').value.trim());
    history.replaceState(null, '', '/m/' + encodeURIComponent(meeting) + location.search + location.hash);
    $('join').classList.add('hidden');
    $('meetingView').classList.remove('hidden');
    var proto = location.protocol === 'https:' ? 'wss://' : 'ws://';
    session = new CauhopSession({ url: proto + location.host + '/ws', meeting: meeting, name: name,
      site: $('site').value.trim(), token: token, stream: stream, onEvent: onEvent });
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
  $('audioOnlyBtn').onclick = function () {
    audioOnly = !audioOnly; localStorage.setItem('cauhop.audioOnly', audioOnly ? '1' : '0'); updateButtons(); sendView();
  };
  $('lowDataBtn').onclick = function () {
    lowData = !lowData; localStorage.setItem('cauhop.lowData', lowData ? '1' : '0'); updateButtons(); sendView();
  };
  $('endBtn').onclick = function () { if (confirm(t('endMeeting') + '?')) session.chair({ type: 'end_meeting' }); };
  $('extendBtn').onclick = function () { session.chair({ type: 'extend', minutes: 15 }); };
  $('leaveBtn').onclick = function () { session.leave(); status(t('left')); showJoin(); };
  $('lang').onclick = function () { lang = lang === 'vi' ? 'en' : 'vi'; localStorage.setItem('cauhop.lang', lang); applyLang(); };
  $('camera').onchange = preview;
  $('mic').onchange = preview;

  // Tiles appear and change size as people join and leave; the view follows each second
  // (sent only when it changed). The speaker highlight comes from the bridge.
  setInterval(sendView, 1000);

  applyLang();
  preview().then(listDevices).then(function () {
    if (params.get('autojoin') === '1') $('join').requestSubmit();
  });
})();
