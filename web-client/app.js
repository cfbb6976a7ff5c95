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
  // The chair's controls as the bridge last told them: my id, the meeting's switches, the
  // speaking queue, what the chair holds of each site, and the floor.
  var me = '', controls = {}, hands = [], held = {}, floor = null, handUp = false;
  // The open roll call (null: none) and who confirmed it (the chair's view).
  var rollCall = null, present = {};
  // The roster line whose chair's actions are open.
  var expanded = null;
  // Mutes the page made because the chair held them (lifted with the hold), apart from
  // the user's own.
  var heldMuted = { audio: false, video: false };
  /** The chair role, or the secretary the chair named: the bridge checks it again. */
  function isChair() { return role === 'chair' || (!!me && controls.secretary === me); }
  function heldMe() { return held[me] || {}; }
  window.cauhop = { stats: function () { return session && session.pc ? session.pc.getStats() : null; },
    state: function () { return state; } };
  window.cauhop.view = function () { return { me: me, slots: slotOf, floor: floor, hands: hands, held: held, controls: controls, audioMuted: audioMuted }; };


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
          n.textContent = p.name + (p.district && p.site && p.site !== p.district ? ' — ' + p.site : '') + (p.audio_muted && !(held[id] || {}).audio ? ' — ' + t('selfMutedBadge') : '');
          li.appendChild(dot); li.appendChild(n);
          li.classList.toggle('pinned', pinned === id);
          var pb = document.createElement('button');
          pb.type = 'button'; pb.className = 'pin'; pb.textContent = t(pinned === id ? 'unpin' : 'pin');
          pb.setAttribute('aria-pressed', String(pinned === id));
          pb.onclick = function () { pin(id); };
          li.appendChild(pb);
          // Words, not emoji: Windows 7's fonts have no emoji.
          if (held[id] && (held[id].audio || held[id].video)) {
            var hm = document.createElement('span'); hm.className = 'held';
            hm.textContent = [held[id].audio ? t('heldMicBadge') : '', held[id].video ? t('heldCamBadge') : ''].filter(Boolean).join(', ');
            li.insertBefore(hm, pb);
          }
          if (controls.secretary === id) n.textContent += ' (' + t('secretary') + ')';
          if (rollCall && present[id]) n.textContent += ' — ' + t('presentMark');
          // The chair's actions open under the site clicked: 270 sites with five buttons
          // each would be 1 350 buttons for an old PC to redraw and an official to read.
          if (isChair()) {
            n.classList.add('pick'); n.title = t('actionsHint');
            n.onclick = function () { expanded = expanded === id ? null : id; roster(); };
            if (expanded === id) chairButtons(li, id);
          }
          ul.appendChild(li);
        });
        list.appendChild(ul);
      });
      $('rosterCount').textContent = Object.keys(participants).length + 1;
    }, 200);
  }
  function describe(p) { return p.name + (p.site ? ' — ' + p.site : ''); }
  function button(label, onclick) {
    var b = document.createElement('button'); b.type = 'button'; b.textContent = t(label); b.onclick = onclick; return b;
  }
  /** The chair's buttons on one site's roster line. */
  function chairButtons(line, id) {
    var h = held[id] || {};
    var li = document.createElement('div'); li.className = 'acts'; line.appendChild(li);
    li.appendChild(button('giveFloor', function () { session.chair({ type: 'grant_floor', participant: id }); }));
    li.appendChild(button(h.audio ? 'allowMic' : 'muteOther', function () {
      session.chair({ type: h.audio ? 'unmute_participant' : 'mute_participant', participant: id });
    }));
    li.appendChild(button(h.video ? 'allowCam' : 'stopCam', function () { session.chair({ type: 'stop_camera', participant: id, stop: !h.video }); }));
    li.appendChild(button('remove', function () {
      var why = prompt(t('removeReason'), '');
      if (why !== null) session.chair({ type: 'remove', participant: id, reason: why.slice(0, 200) });
    }));
    if (role === 'chair') {
      var sec = controls.secretary === id;
      li.appendChild(button(sec ? 'noSecretary' : 'makeSecretary', function () { session.chair({ type: 'name_secretary', participant: sec ? null : id }); }));
    }
  }
  /** The speaking queue, first raised first, with each site's district and link. */
  function queueView() {
    $('queue').classList.toggle('hidden', hands.length === 0);
    $('queueCount').textContent = hands.length;
    var ol = $('queueList'); ol.innerHTML = '';
    hands.forEach(function (id) {
      var p = participants[id] || { name: id, site: '' };
      var li = document.createElement('li'); li.dataset.participant = id;
      var dot = document.createElement('span'); dot.className = 'dot ' + (p.quality || 'good'); dot.title = t(p.quality || 'good');
      var n = document.createElement('span');
      n.textContent = describe(p) + (p.district && p.district !== p.site ? ' (' + p.district + ')' : '');
      li.appendChild(dot); li.appendChild(n);
      if (isChair()) {
        li.appendChild(button('giveFloor', function () { session.chair({ type: 'grant_floor', participant: id }); }));
        li.appendChild(button('lowerOther', function () { session.chair({ type: 'lower_hand', participant: id }); }));
      }
      ol.appendChild(li);
    });
  }
  /** The chair's bar, the hand button and the floor bar, from the controls. */
  function controlsView() {
    var chair = isChair();
    $('chairBar').classList.toggle('hidden', !chair);
    $('endBtn').classList.toggle('hidden', !chair);
    $('extendBtn').classList.toggle('hidden', !chair);
    $('muteAllBtn').textContent = t(controls.all_muted ? 'unmuteAll' : 'muteAll');
    $('lockBtn').textContent = t(controls.locked ? 'unlock' : 'lock');
    $('lockBtn').classList.toggle('off', !!controls.locked);
    $('selfUnmute').checked = !!controls.self_unmute;
    $('rollBtn').textContent = rollCall ? fill('rollClose', { p: String(Object.keys(present).length) }) : t('rollOpen');
    $('presentBtn').classList.toggle('hidden', !rollCall || chair || role === 'viewer' || !!present[me]);
    $('handBtn').classList.toggle('hidden', role === 'viewer' || role === 'chair');
    handUp = hands.indexOf(me) >= 0;
    $('handBtn').textContent = t(handUp ? 'lowerHand' : 'raiseHand');
    $('handBtn').setAttribute('aria-pressed', String(handUp));
    floorView();
  }
  function floorView() {
    var who = floor && floor.participant;
    $('floorBar').classList.toggle('hidden', !who);
    $('endTurnBtn').classList.toggle('hidden', !isChair());
    if (!who) return;
    var p = participants[who];
    $('floorText').textContent = who === me ? t('youHaveFloor') : fill('floor', { p: p ? describe(p) : who });
    var secs = floor.since ? Math.max(0, Math.floor((Date.now() - Date.parse(floor.since)) / 1000)) : 0;
    var mmss = function (x) { return Math.floor(x / 60) + ':' + ('0' + (x % 60)).slice(-2); };
    $('floorTimer').textContent = mmss(secs) + (floor.limit_s ? ' / ' + mmss(floor.limit_s) : '');
    $('floorBar').classList.toggle('over', !!floor.limit_s && secs > floor.limit_s);
  }
  setInterval(floorView, 1000);

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
        me = data.participant; controls = {}; hands = []; held = {}; floor = null;
        $('recMark').classList.add('hidden');
        controlsView(); queueView();
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
        var text = CAUHOP_STRINGS.vi[data.code] ? fill(data.code, data) : data.message;
        // A removal carries the chair's own words after the first colon.
        if (data.code === 'removed' && data.message.indexOf(': ') > 0) text += ' ' + t('reason') + data.message.slice(data.message.indexOf(': ') + 2);
        status(text);
        if (['meeting_closed', 'link_expired', 'unauthorized', 'not_invited', 'unknown_meeting', 'replaced', 'removed', 'locked'].indexOf(data.code) >= 0) showJoin();
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
        floor = data;
        document.querySelectorAll('.tile').forEach(function (el) { el.classList.toggle('floor', !!data.participant && el.dataset.participant === data.participant); });
        floorView();
        break;
      case 'hands':
        hands = data.queue || [];
        controlsView(); queueView();
        if (handUp) status(fill('handQueued', { p: String(hands.indexOf(me) + 1) }));
        break;
      case 'roll_call':
        rollCall = data.open ? data : null;
        if (data.open) { present = {}; if (!isChair()) status(t('rollAsk')); }
        else if (data.result) status(fill('rollResult', { p: data.result.present + '/' + data.result.connected + '/' + data.result.absent }));
        controlsView(); roster();
        break;
      case 'present':
        present[data.participant] = true;
        if (data.participant === me) status(t('rollDone'));
        controlsView(); roster();
        break;
      case 'recording':
        // Officials must know: a red mark for as long as it runs, said when it starts.
        $('recMark').classList.toggle('hidden', !data.on);
        if (data.on) status(t('recordingStarted'));
        else if (data.reason === 'disk_full' || data.reason === 'failed') status(t('recordingStopped_' + data.reason));
        break;
      case 'controls':
        controls = data;
        controlsView(); queueView(); roster();
        break;
      case 'held_all':
        // The whole list at once (after joining, and when the chair mutes everyone).
        var before = held[me] || {};
        held = {};
        data.audio.forEach(function (p) { held[p] = { audio: true, video: false, self_unmute: data.self_unmute }; });
        data.video.forEach(function (p) { held[p] = held[p] || { audio: false, self_unmute: data.self_unmute }; held[p].video = true; });
        var mine = held[me] || { audio: false, video: false, self_unmute: data.self_unmute };
        var was = !!before.audio || !!before.video, now = mine.audio || mine.video;
        if ((was || now) && (mine.audio !== !!before.audio || mine.video !== !!before.video || mine.self_unmute !== before.self_unmute)) {
          onEvent('held', { participant: me, audio: mine.audio, video: mine.video, self_unmute: mine.self_unmute });
        }
        roster();
        break;
      case 'held':
        held[data.participant] = { audio: data.audio, video: data.video, self_unmute: data.self_unmute };
        if (data.participant === me) {
          // What the chair holds is not sent anyway; the page says so and spends no uplink.
          // A hold lifted (the floor given, the chair's unmute) gives back what it took.
          if (data.audio && !audioMuted) { audioMuted = true; heldMuted.audio = true; }
          if (!data.audio && heldMuted.audio) { audioMuted = false; heldMuted.audio = false; }
          if (data.video && !videoMuted) { videoMuted = true; heldMuted.video = true; }
          if (!data.video && heldMuted.video) { videoMuted = false; heldMuted.video = false; }
          session.setMuted(audioMuted, videoMuted);
          updateButtons();
          status(data.audio && !data.self_unmute ? t('heldByChair') : data.video ? t('heldCam') : '');
        }
        roster();
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
  $('muteBtn').onclick = function () {
    // The chair's mute is lifted by the chair (or the floor), unless the meeting allows.
    if (audioMuted && heldMe().audio && !heldMe().self_unmute) { status(t('heldByChair')); return; }
    audioMuted = !audioMuted; heldMuted.audio = false; session.setMuted(audioMuted, videoMuted); updateButtons();
  };
  $('camBtn').onclick = function () {
    if (videoMuted && heldMe().video) { status(t('heldCam')); return; }
    videoMuted = !videoMuted; heldMuted.video = false; session.setMuted(audioMuted, videoMuted); updateButtons();
  };
  $('handBtn').onclick = function () { session.send({ type: handUp ? 'lower_hand' : 'raise_hand' }); };
  $('muteAllBtn').onclick = function () { session.chair({ type: controls.all_muted ? 'unmute_all' : 'mute_all' }); };
  $('lockBtn').onclick = function () { session.chair({ type: 'lock', locked: !controls.locked }); };
  $('selfUnmute').onchange = function () { session.chair({ type: 'self_unmute', allowed: $('selfUnmute').checked }); };
  $('rollBtn').onclick = function () { session.chair({ type: 'roll_call', open: !rollCall }); };
  $('presentBtn').onclick = function () { session.send({ type: 'present' }); };
  $('endTurnBtn').onclick = function () { session.chair({ type: 'grant_floor', participant: null }); };
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
