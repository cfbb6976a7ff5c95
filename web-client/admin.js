// Admin pages: meetings calendar, sites tree, room endpoints, people, the audit log. Talks to
// /api/v1 with the session cookie and the CSRF token from login.
'use strict';
(function () {
  var A = {
    vi: { adminTitle: 'Quản trị cầu họp', logout: 'Đăng xuất', username: 'Tên đăng nhập', password: 'Mật khẩu',
      login: 'Đăng nhập', meetings: 'Lịch họp', sites: 'Điểm cầu', endpoints: 'Thiết bị phòng họp', people: 'Người dùng',
      dayView: 'Ngày', weekView: 'Tuần', newMeeting: '+ Cuộc họp mới', mTitle: 'Tiêu đề', agenda: 'Nội dung',
      start: 'Bắt đầu', end: 'Kết thúc', repeat: 'Lặp lại', once: 'Không', weekly: 'Hằng tuần', monthly: 'Hằng tháng',
      chair: 'Điểm cầu chủ trì', roster: 'Điểm cầu được mời', save: 'Lưu', cancel: 'Huỷ', code: 'Mã', siteName: 'Điểm cầu',
      kind: 'Cấp', province: 'Tỉnh', district: 'Huyện', commune: 'Xã', parent: 'Thuộc', down: 'Tải xuống (kbit/s)',
      up: 'Tải lên (kbit/s)', addSite: 'Thêm điểm cầu', device: 'Tên thiết bị', addDevice: 'Thêm thiết bị',
      fullName: 'Họ tên', role: 'Vai trò', official: 'Cán bộ', district_admin: 'Quản trị huyện',
      province_admin: 'Quản trị tỉnh', addPerson: 'Thêm người dùng', saved: 'Đã lưu', deleted: 'Đã xoá',
      edit: 'Sửa', del: 'Xoá', links: 'Đường dẫn mời', makeLink: 'Tạo đường dẫn', copy: 'Chép', copied: 'Đã chép',
      badDate: 'Ngày giờ không hợp lệ (dd/mm/yyyy hh:mm)', weekday: ['CN', 'Thứ 2', 'Thứ 3', 'Thứ 4', 'Thứ 5', 'Thứ 6', 'Thứ 7'],
      live: 'Đang kết nối', attendance: 'Điểm danh (CSV)', report: 'Báo cáo cuộc họp', linkHistory: 'Đường truyền 30 ngày', newKey: 'Khoá thiết bị (chỉ hiện một lần, hãy chép ngay):',
      whip: 'WHIP (bộ mã hoá, OBS):', whipHint: 'Xác thực bằng khoá thiết bị của phòng họp: Authorization: Bearer <khoá>. Cầu không chuyển mã: hãy gửi VP8 và Opus.',
      tlsSelf: 'HTTPS: chứng chỉ tự ký. Người dùng so vân tay SHA-256 này với vân tay trình duyệt hiển thị trước khi chấp nhận:', tlsFiles: 'HTTPS: chứng chỉ', tlsUntil: 'hết hạn',
      whep: 'WHEP (màn hình hội trường, ghi hình):', whepHint: 'Xác thực bằng đường dẫn mời vai trò người xem (viewer): Authorization: Bearer <mã trong đường dẫn>. Không tính vào điểm danh.',
      linkCol: 'Đường truyền', inMeeting: 'đang họp', check: 'kiểm tra', go: 'tốt', weak: 'yếu', 'no-go': 'không đủ',
      rotate: 'Đổi khoá', online: 'trực tuyến', offline: 'mất kết nối', never: 'chưa kết nối', noMeetings: 'Không có cuộc họp',
      participant: 'Tham dự', presenter: 'Trình bày', viewer: 'Theo dõi', chairRole: 'Chủ trì', lastSeen: 'Lần cuối',
      confirmDelete: 'Xoá mục này?', lang: 'English', scheduled: 'chưa mở', lobby: 'phòng chờ', open: 'đang họp',
      closing: 'sắp kết thúc', closed: 'đã kết thúc', audit: 'Nhật ký', allKinds: 'Tất cả', joinKey: 'Khoá ký đường dẫn',
      newer: '◀ Mới hơn', older: 'Cũ hơn ▶', when: 'Thời gian', who: 'Người thực hiện', action: 'Thao tác',
      target: 'Đối tượng', detail: 'Chi tiết', address: 'Địa chỉ',
      'meeting.create': 'Tạo cuộc họp', 'meeting.update': 'Sửa cuộc họp', 'meeting.delete': 'Xoá cuộc họp',
      'meeting.floor': 'Chủ trì mời phát biểu', 'meeting.mute': 'Chủ trì tắt/bật micrô', 'meeting.camera': 'Chủ trì tắt/cho camera',
      'meeting.remove': 'Chủ trì mời ra', 'meeting.lock': 'Khoá/mở cuộc họp', 'meeting.secretary': 'Giao quyền thư ký',
      'meeting.end': 'Kết thúc/gia hạn họp', 'meeting.roll_call': 'Điểm danh', 'meeting.record_download': 'Tải bản ghi âm',
      controlHint: 'Khi chủ trì mất kết nối:', muteAll: 'Tắt micrô tất cả', unmuteAll: 'Bật micrô tất cả', endTurn: 'Kết thúc lượt phát biểu',
      giveFloor: 'Mời phát biểu', muteOne: 'Tắt micrô', removeOne: 'Mời ra', removeReason: 'Lý do mời điểm cầu ra (điểm cầu sẽ thấy):',
      settingsH: 'Điều hành cuộc họp', recordSetting: 'Ghi âm cuộc họp (mọi điểm cầu thấy dấu đang ghi)',
      selfUnmuteSetting: 'Điểm cầu bị chủ trì tắt micrô được tự bật lại', floorLimit: 'Giới hạn mỗi lượt phát biểu (phút, 0: không)',
      records: 'Bản ghi âm', turnVideo: 'hình lượt này', noRecords: 'Chưa có bản ghi âm', download: 'Tải về', turns: 'Các lượt phát biểu',
      floorBack: '(chủ trì thu lại lời)', stoppedDisk: 'dừng vì ổ đĩa sắp đầy', stoppedFailed: 'dừng vì lỗi', cutShort: 'bị ngắt (máy chủ khởi động lại)',
      'roster.change': 'Đổi danh sách mời', 'link.create': 'Tạo đường dẫn mời', 'link.revoke': 'Thu hồi đường dẫn',
      'site.create': 'Thêm điểm cầu', 'site.update': 'Sửa điểm cầu', 'site.delete': 'Xoá điểm cầu',
      'person.create': 'Thêm người dùng', 'person.delete': 'Xoá người dùng', 'person.password': 'Đổi mật khẩu',
      'person.login': 'Đăng nhập', 'endpoint.create': 'Thêm thiết bị', 'endpoint.delete': 'Xoá thiết bị',
      'endpoint.key_rotate': 'Đổi khoá thiết bị', 'join_key.rotate': 'Đổi khoá ký đường dẫn' },
    en: { adminTitle: 'Bridge administration', logout: 'Log out', username: 'Username', password: 'Password',
      login: 'Log in', meetings: 'Meetings', sites: 'Sites', endpoints: 'Room endpoints', people: 'People',
      dayView: 'Day', weekView: 'Week', newMeeting: '+ New meeting', mTitle: 'Title', agenda: 'Agenda',
      start: 'Start', end: 'End', repeat: 'Repeat', once: 'No', weekly: 'Weekly', monthly: 'Monthly',
      chair: 'Chair site', roster: 'Invited sites', save: 'Save', cancel: 'Cancel', code: 'Code', siteName: 'Site',
      kind: 'Level', province: 'Province', district: 'District', commune: 'Commune', parent: 'Parent', down: 'Down (kbit/s)',
      up: 'Up (kbit/s)', addSite: 'Add site', device: 'Device name', addDevice: 'Add device',
      fullName: 'Full name', role: 'Role', official: 'Official', district_admin: 'District admin',
      province_admin: 'Province admin', addPerson: 'Add person', saved: 'Saved', deleted: 'Deleted',
      edit: 'Edit', del: 'Delete', links: 'Join links', makeLink: 'Make link', copy: 'Copy', copied: 'Copied',
      badDate: 'Not a valid date and time (dd/mm/yyyy hh:mm)', weekday: ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'],
      live: 'Connected now', attendance: 'Attendance (CSV)', report: 'Meeting report', linkHistory: 'Link, last 30 days', newKey: 'Device key (shown once, copy it now):',
      whip: 'WHIP (encoder, OBS):', whipHint: 'Authenticate with the meeting room\'s device key: Authorization: Bearer <key>. The bridge does not transcode: send VP8 and Opus.',
      tlsSelf: 'HTTPS: self-signed certificate. Users compare this SHA-256 fingerprint with the one their browser shows before accepting it:', tlsFiles: 'HTTPS: certificate', tlsUntil: 'expires',
      whep: 'WHEP (hall display, recorder):', whepHint: 'Authenticate with a join link of the viewer role: Authorization: Bearer <the token in the link>. Never counted as attending.',
      linkCol: 'Link', inMeeting: 'in meeting', check: 'check', go: 'go', weak: 'weak', 'no-go': 'no-go',
      rotate: 'New key', online: 'online', offline: 'offline', never: 'never connected', noMeetings: 'No meetings',
      participant: 'Participant', presenter: 'Presenter', viewer: 'Viewer', chairRole: 'Chair', lastSeen: 'Last seen',
      confirmDelete: 'Delete this?', lang: 'Tiếng Việt', scheduled: 'scheduled', lobby: 'lobby', open: 'in session',
      closing: 'ending', closed: 'ended', audit: 'Audit log', allKinds: 'All', joinKey: 'Link signing key',
      newer: '◀ Newer', older: 'Older ▶', when: 'Time', who: 'By', action: 'Action',
      target: 'Target', detail: 'Detail', address: 'Address',
      'meeting.create': 'Meeting created', 'meeting.update': 'Meeting changed', 'meeting.delete': 'Meeting deleted',
      'meeting.floor': 'Floor given', 'meeting.mute': 'Muted/unmuted by the chair', 'meeting.camera': 'Camera stopped/allowed',
      'meeting.remove': 'Removed by the chair', 'meeting.lock': 'Meeting locked/unlocked', 'meeting.secretary': 'Secretary named',
      'meeting.end': 'Meeting ended/extended', 'meeting.roll_call': 'Roll call', 'meeting.record_download': 'Record downloaded',
      controlHint: 'When the chair\'s link is down:', muteAll: 'Mute everyone', unmuteAll: 'Unmute everyone', endTurn: 'End the turn',
      giveFloor: 'Give floor', muteOne: 'Mute', removeOne: 'Remove', removeReason: 'Why is this site removed (it will see this):',
      settingsH: 'Running the meeting', recordSetting: 'Record the meeting\'s audio (every site sees the mark)',
      selfUnmuteSetting: 'Sites the chair muted may unmute themselves', floorLimit: 'Limit per floor turn (minutes, 0: none)',
      records: 'Audio records', turnVideo: 'video of this turn', noRecords: 'No record yet', download: 'Download', turns: 'Floor turns',
      floorBack: '(the chair took the floor back)', stoppedDisk: 'stopped: disk nearly full', stoppedFailed: 'stopped by an error', cutShort: 'cut short (the bridge restarted)',
      'roster.change': 'Invitations changed', 'link.create': 'Join link made', 'link.revoke': 'Join link revoked',
      'site.create': 'Site added', 'site.update': 'Site changed', 'site.delete': 'Site deleted',
      'person.create': 'Person added', 'person.delete': 'Person removed', 'person.password': 'Password set',
      'person.login': 'Logged in', 'endpoint.create': 'Device added', 'endpoint.delete': 'Device removed',
      'endpoint.key_rotate': 'Device key replaced', 'join_key.rotate': 'Link signing key replaced' }
  };
  var $ = function (id) { return document.getElementById(id); };
  var lang = localStorage.getItem('cauhop.lang') || 'vi';
  var csrf = '', me = null, sites = [], day = new Date();
  function t(k) { return (A[lang] || A.vi)[k] || k; }
  function status(s) { $('status').textContent = s || ''; }
  function el(tag, text, cls) { var e = document.createElement(tag); if (text != null) e.textContent = text; if (cls) e.className = cls; return e; }
  var VN = 7 * 3600 * 1000;
  // Dates as Vietnamese offices write them, dd/mm/yyyy and 24-hour, in Vietnam time,
  // whatever the browser's locale (its date pickers would show the US order): inputs are
  // text in that form, read and written here.
  function isoDay(d) { return new Date(d.getTime() + VN).toISOString().slice(0, 10); }
  function vnDate(d) { var s = isoDay(d); return s.slice(8, 10) + '/' + s.slice(5, 7) + '/' + s.slice(0, 4); }
  function vnTime(iso) { return new Date(Date.parse(iso) + VN).toISOString().slice(11, 16); }
  function toLocalInput(iso) { return vnDate(new Date(iso)) + ' ' + vnTime(iso); }
  function parseDay(v) {
    var m = /^\s*(\d{1,2})\/(\d{1,2})\/(\d{4})\s*$/.exec(v);
    if (!m || +m[1] < 1 || +m[1] > 31 || +m[2] < 1 || +m[2] > 12) throw new Error(t('badDate') + ': ' + v);
    return m[3] + '-' + ('0' + m[2]).slice(-2) + '-' + ('0' + m[1]).slice(-2);
  }
  function fromLocalInput(v) {
    var m = /^\s*(\S+)\s+(\d{1,2}):(\d{2})\s*$/.exec(v);
    if (!m || +m[2] > 23 || +m[3] > 59) throw new Error(t('badDate') + ': ' + v);
    return parseDay(m[1]) + 'T' + ('0' + m[2]).slice(-2) + ':' + m[3] + ':00+07:00';
  }

  async function api(method, path, body) {
    var opts = { method: method, headers: {}, credentials: 'same-origin' };
    if (method !== 'GET') opts.headers['X-CSRF-Token'] = csrf;
    if (body !== undefined) { opts.headers['Content-Type'] = 'application/json'; opts.body = JSON.stringify(body); }
    var r = await fetch('/api/v1' + path, opts);
    var data = r.status === 204 ? null : await r.json().catch(function () { return null; });
    if (!r.ok) {
      if (r.status === 401 && path !== '/login') showLogin();
      var msg = data && data.message ? data.message : r.status + '';
      if (data && data.conflict) msg += ' (#' + data.conflict.meeting_id + ' ' + data.conflict.title + ')';
      throw new Error(msg);
    }
    return data;
  }
  function guard(f) { return function (ev) { if (ev && ev.preventDefault) ev.preventDefault(); Promise.resolve(f(ev)).catch(function (e) { status(e.message); }); }; }

  function applyLang() {
    document.documentElement.lang = lang;
    document.querySelectorAll('[data-t]').forEach(function (e) { e.textContent = t(e.getAttribute('data-t')); });
    $('lang').textContent = t('lang');
  }
  function showLogin() { $('app').classList.add('hidden'); $('logout').classList.add('hidden'); $('login').classList.remove('hidden'); }
  async function start(session) {
    csrf = session.csrf_token; me = session.person;
    $('who').textContent = me.display_name + ' (' + t(me.role) + ')';
    $('login').classList.add('hidden'); $('app').classList.remove('hidden'); $('logout').classList.remove('hidden');
    // The audit log names every district's people and links: the province's admins read it.
    $('auditTab').classList.toggle('hidden', me.role !== 'province_admin');
    await loadSites();
    tab('meetings');
    showTls().catch(function () {});
  }
  // The certificate the bridge serves: the fingerprint the IT officer reads out to users
  // of a self-signed bridge, and when a certificate from files expires.
  async function showTls() {
    var info = await api('GET', '/server');
    var p = $('tls'); p.textContent = '';
    if (!info || !info.https) { p.classList.add('hidden'); return; }
    var h = info.https;
    p.appendChild(el('span', (h.self_signed ? t('tlsSelf') : t('tlsFiles') + ' (' + h.names.join(', ') + ')') + ' '));
    p.appendChild(el('code', h.fingerprint_sha256));
    var until = h.not_after_unix ? vnDate(new Date(h.not_after_unix * 1000)) : h.not_after;
    if (until) p.appendChild(el('small', ' — ' + t('tlsUntil') + ' ' + until));
    p.classList.remove('hidden');
  }

  function tab(name) {
    document.querySelectorAll('.tab').forEach(function (s) { s.classList.toggle('hidden', s.id !== name); });
    ({ meetings: calendar, sites: drawSites, endpoints: loadEndpoints, people: loadPeople, audit: loadAudit })[name]().catch(function (e) { status(e.message); });
  }
  document.querySelectorAll('nav button').forEach(function (b) { b.onclick = function () { tab(b.getAttribute('data-tab')); }; });

  async function loadSites() {
    sites = (await api('GET', '/sites?limit=500')).items;
    var fill = function (sel, filter, blank) {
      sel.innerHTML = '';
      if (blank) sel.appendChild(el('option', '—')).value = '';
      sites.filter(filter).forEach(function (s) { var o = el('option', s.name + ' (' + s.code + ')'); o.value = s.id; sel.appendChild(o); });
    };
    fill($('mChair'), function () { return true; });
    fill($('sParent'), function (s) { return s.kind !== 'commune'; }, true);
    fill($('eSite'), function () { return true; });
    fill($('pSite'), function () { return true; }, true);
  }
  function siteName(id) { var s = sites.find(function (x) { return x.id === id; }); return s ? s.name : '#' + id; }

  // Sites: an indented tree, province → districts → communes.
  async function drawSites() {
    await loadSites();
    var root = $('siteTree'); root.innerHTML = '';
    var walk = function (parent, depth) {
      sites.filter(function (s) { return s.parent_id === parent; }).forEach(function (s) {
        var row = el('div', null, 'site d' + depth);
        row.appendChild(el('span', s.name + ' · ' + s.code + ' · ' + t(s.kind) + ' · ↓' + s.down_kbps + '/↑' + s.up_kbps + ' kbit/s'));
        var del = el('button', t('del')); del.type = 'button';
        del.onclick = guard(async function () { if (confirm(t('confirmDelete'))) { await api('DELETE', '/sites/' + s.id); status(t('deleted')); drawSites(); } });
        var hist = el('a', t('linkHistory')); hist.href = '/admin/report?site=' + s.id; hist.target = '_blank'; hist.className = 'gap';
        row.appendChild(del); row.appendChild(hist); root.appendChild(row);
        walk(s.id, depth + 1);
      });
    };
    walk(null, 0);
  }
  $('siteForm').onsubmit = guard(async function () {
    await api('POST', '/sites', { code: $('sCode').value, name: $('sName').value, kind: $('sKind').value,
      parent_id: $('sParent').value ? +$('sParent').value : null, down_kbps: +$('sDown').value, up_kbps: +$('sUp').value });
    status(t('saved')); $('sCode').value = ''; $('sName').value = ''; drawSites();
  });

  function table(id, head, rows) {
    var tb = $(id); tb.innerHTML = '';
    var tr = el('tr'); head.forEach(function (h) { tr.appendChild(el('th', h)); }); tb.appendChild(tr);
    rows.forEach(function (r) { var row = el('tr'); r.forEach(function (c) { var td = el('td'); if (c instanceof Node) td.appendChild(c); else td.textContent = c; row.appendChild(td); }); tb.appendChild(row); });
  }
  function button(text, f) { var b = el('button', text); b.type = 'button'; b.onclick = guard(f); return b; }

  async function loadEndpoints() {
    var list = (await api('GET', '/endpoints?limit=500')).items;
    var now = Date.now();
    table('epTable', [t('device'), t('siteName'), 'key', t('lastSeen'), t('linkCol'), ''], list.map(function (e) {
      var seen = e.last_seen ? (now - Date.parse(e.last_seen) < 30000 ? t('online') : t('offline') + ' · ' + e.last_seen.slice(0, 16).replace('T', ' ')) : t('never');
      var acts = el('span');
      acts.appendChild(button(t('rotate'), async function () { showKey(await api('POST', '/endpoints/' + e.id + '/key')); }));
      acts.appendChild(button(t('del'), async function () { if (confirm(t('confirmDelete'))) { await api('DELETE', '/endpoints/' + e.id); loadEndpoints(); } }));
      return [e.name, siteName(e.site_id), e.key_hint + '…', seen + (e.health && e.health.state ? ' · ' + (e.health.state === 'in_meeting' ? t('inMeeting') : e.health.state) : ''), linkText(e.health), acts];
    }));
  }
  // What the room agent last reported: its media in the meeting, and the link check it
  // runs before each meeting (so a weak commune is seen before the chair notices).
  function linkText(h) {
    if (!h) return '';
    var parts = [];
    var m = h.media;
    if (m) parts.push('↑' + m.send_kbps + ' ↓' + m.recv_kbps + ' kbit/s' + (m.rtt_ms != null ? ' · ' + m.rtt_ms + ' ms' : '') + (m.loss != null ? ' · ' + Math.round(m.loss * 100) + ' %' : ''));
    var c = h.link_check;
    if (c && c.verdict) {
      var f = c.rtt_ms != null ? ' (' + Math.round(c.rtt_ms) + ' ms, ↑' + Math.round(c.up_kbps) + ' ↓' + Math.round(c.down_kbps) + ' kbit/s, ' + (Math.max(c.loss_up, c.loss_down) * 100).toFixed(1) + ' %)' : '';
      parts.push(t('check') + ': ' + t(c.verdict) + f);
    }
    return parts.join(' — ');
  }
  function showKey(r) { $('newKey').classList.remove('hidden'); $('newKey').textContent = t('newKey') + '\n' + r.key; loadEndpoints(); }
  $('epForm').onsubmit = guard(async function () { showKey(await api('POST', '/endpoints', { site_id: +$('eSite').value, name: $('eName').value })); $('eName').value = ''; });

  async function loadPeople() {
    var list = (await api('GET', '/people?limit=500')).items;
    table('peopleTable', [t('username'), t('fullName'), t('role'), t('siteName'), ''], list.map(function (p) {
      return [p.username, p.display_name, t(p.role), p.site_id ? siteName(p.site_id) : '',
        button(t('del'), async function () { if (confirm(t('confirmDelete'))) { await api('DELETE', '/people/' + p.id); loadPeople(); } })];
    }));
  }
  $('personForm').onsubmit = guard(async function () {
    var body = { username: $('pUser').value, display_name: $('pName').value, role: $('pRole').value,
      site_id: $('pSite').value ? +$('pSite').value : null };
    if ($('pPass').value) body.password = $('pPass').value;
    await api('POST', '/people', body); status(t('saved')); loadPeople();
  });

  // The audit log: newest first, a page at a time, by what it touched.
  var auditOffset = 0, AUDIT_PAGE = 100;
  function detailText(d) {
    if (d == null || typeof d !== 'object') return d == null ? '' : String(d);
    return Object.keys(d).filter(function (k) {
      var v = d[k]; return v != null && !(Array.isArray(v) && v.length === 0);
    }).map(function (k) {
      var v = d[k];
      return k + ': ' + (Array.isArray(v) ? v.join(', ') : typeof v === 'object' ? '{' + detailText(v) + '}' : v);
    }).join('; ');
  }
  function targetText(e) {
    if (e.target_kind === 'site') return siteName(+e.target_id);
    return (t(e.target_kind === 'meeting' ? 'meetings' : e.target_kind === 'link' ? 'links' : e.target_kind === 'person' ? 'people'
      : e.target_kind === 'endpoint' ? 'endpoints' : 'joinKey')) + ' #' + e.target_id;
  }
  async function loadAudit() {
    var kind = $('auKind').value;
    var page = await api('GET', '/audit?limit=' + AUDIT_PAGE + '&offset=' + auditOffset + (kind ? '&kind=' + encodeURIComponent(kind) : ''));
    $('auCount').textContent = page.total ? (auditOffset + 1) + '–' + (auditOffset + page.items.length) + ' / ' + page.total : '0';
    $('auNewer').disabled = auditOffset === 0;
    $('auOlder').disabled = auditOffset + page.items.length >= page.total;
    table('auditTable', [t('when'), t('who'), t('action'), t('target'), t('detail'), t('address')], page.items.map(function (e) {
      var d = detailText(e.detail);
      var cell = el('span', d.length > 240 ? d.slice(0, 240) + '…' : d); cell.title = d;
      return [vnDate(new Date(e.at)) + ' ' + vnTime(e.at), e.actor, t(e.action), targetText(e), cell, e.client || ''];
    }));
  }
  $('auKind').onchange = function () { auditOffset = 0; loadAudit().catch(function (e) { status(e.message); }); };
  $('auNewer').onclick = function () { auditOffset = Math.max(0, auditOffset - AUDIT_PAGE); loadAudit().catch(function (e) { status(e.message); }); };
  $('auOlder').onclick = function () { auditOffset += AUDIT_PAGE; loadAudit().catch(function (e) { status(e.message); }); };

  // Meetings: a day or week of the calendar, in Vietnam time.
  async function calendar() {
    var span = +$('span').value;
    var from = new Date(Date.parse(isoDay(day) + 'T00:00:00+07:00'));
    if (span === 7) from = new Date(from.getTime() - ((new Date(from.getTime() + VN).getUTCDay() + 6) % 7) * 86400000);
    var to = new Date(from.getTime() + span * 86400000);
    $('day').value = vnDate(day);
    var list = (await api('GET', '/meetings?limit=500&from=' + encodeURIComponent(from.toISOString()) + '&to=' + encodeURIComponent(to.toISOString()))).items;
    var cal = $('calendar'); cal.innerHTML = '';
    for (var i = 0; i < span; i++) {
      var d0 = from.getTime() + i * 86400000, col = el('div', null, 'day');
      col.appendChild(el('h3', t('weekday')[new Date(d0 + VN).getUTCDay()] + ' ' + vnDate(new Date(d0))));
      list.filter(function (m) { var s = Date.parse(m.starts_at); return (s >= d0 && s < d0 + 86400000) || m.rrule; }).forEach(function (m) {
        var item = el('div', vnTime(m.starts_at) + '–' + vnTime(m.ends_at) + ' ' + m.title + (m.rrule ? ' ↻' : '') + ' · ' + t(m.phase), 'meeting ' + m.phase);
        item.onclick = guard(function () { return detail(m.id); });
        col.appendChild(item);
      });
      cal.appendChild(col);
    }
    if (!list.length) cal.appendChild(el('p', t('noMeetings')));
  }
  $('prev').onclick = function () { day = new Date(day.getTime() - +$('span').value * 86400000); calendar(); };
  $('next').onclick = function () { day = new Date(day.getTime() + +$('span').value * 86400000); calendar(); };
  $('day').onchange = guard(function () { day = new Date(parseDay($('day').value) + 'T12:00:00+07:00'); return calendar(); });
  $('span').onchange = function () { calendar(); };

  function rosterEditor(roster) {
    var box = $('mRoster'); box.innerHTML = '';
    sites.forEach(function (s) {
      var inv = (roster || []).find(function (i) { return i.site_id === s.id && !i.person_id; });
      var row = el('label', null, 'inv');
      var cb = el('input'); cb.type = 'checkbox'; cb.checked = !!inv; cb.value = s.id;
      var role = el('select');
      ['participant', 'presenter', 'viewer', 'chair'].forEach(function (r) { var o = el('option', t(r === 'chair' ? 'chairRole' : r)); o.value = r; role.appendChild(o); });
      role.value = inv ? inv.role : 'participant';
      row.appendChild(cb); row.appendChild(el('span', ' ' + s.name + ' ')); row.appendChild(role);
      box.appendChild(row);
    });
  }
  function editMeeting(m) {
    $('meetingDetail').classList.add('hidden');
    $('meetingForm').classList.remove('hidden');
    var start = m ? m.starts_at : new Date(Math.ceil(Date.now() / 3600000) * 3600000).toISOString();
    $('mId').value = m ? m.id : '';
    $('mTitle').value = m ? m.title : '';
    $('mAgenda').value = m ? m.agenda : '';
    $('mStart').value = toLocalInput(start);
    $('mEnd').value = toLocalInput(m ? m.ends_at : new Date(Date.parse(start) + 3600000).toISOString());
    $('mRepeat').value = m && m.rrule ? m.rrule.replace(/;.*/, '') : '';
    if (m) $('mChair').value = m.chair_site_id;
    rosterEditor(m ? m.roster : []);
  }
  $('newMeeting').onclick = function () { editMeeting(null); };
  $('mCancel').onclick = function () { $('meetingForm').classList.add('hidden'); };
  $('meetingForm').onsubmit = guard(async function () {
    var roster = [];
    $('mRoster').querySelectorAll('label').forEach(function (row) {
      var cb = row.querySelector('input');
      if (cb.checked) roster.push({ site_id: +cb.value, role: row.querySelector('select').value });
    });
    var body = { title: $('mTitle').value, agenda: $('mAgenda').value, starts_at: fromLocalInput($('mStart').value),
      ends_at: fromLocalInput($('mEnd').value), rrule: $('mRepeat').value || null, chair_site_id: +$('mChair').value, roster: roster };
    var id = $('mId').value;
    var m = await api(id ? 'PUT' : 'POST', id ? '/meetings/' + id : '/meetings', body);
    status(t('saved')); $('meetingForm').classList.add('hidden');
    day = new Date(Date.parse(m.starts_at)); await calendar(); await detail(m.id);
  });

  async function detail(id) {
    var m = await api('GET', '/meetings/' + id);
    var box = $('meetingDetail'); box.innerHTML = ''; box.classList.remove('hidden');
    box.appendChild(el('h2', m.title + ' · ' + t(m.phase)));
    box.appendChild(el('p', vnDate(new Date(m.starts_at)) + ' ' + vnTime(m.starts_at) + '–' + vnTime(m.ends_at) + (m.rrule ? ' · ' + m.rrule : '')));
    if (m.agenda) box.appendChild(el('pre', m.agenda));
    box.appendChild(button(t('edit'), function () { editMeeting(m); }));
    box.appendChild(button(t('del'), async function () { if (confirm(t('confirmDelete'))) { await api('DELETE', '/meetings/' + id); box.classList.add('hidden'); calendar(); } }));
    var csv = el('a', t('attendance')); csv.href = '/api/v1/meetings/' + id + '/attendance?format=csv'; box.appendChild(csv);
    var rep = el('a', t('report')); rep.href = '/admin/report?meeting=' + id; rep.target = '_blank'; rep.className = 'gap'; box.appendChild(rep);
    box.appendChild(el('h3', t('links')));
    var list = el('ul'); box.appendChild(list);
    m.roster.filter(function (i) { return !i.person_id; }).forEach(function (i) {
      var li = el('li', siteName(i.site_id) + ' · ' + t(i.role === 'chair' ? 'chairRole' : i.role) + ' ');
      li.appendChild(button(t('makeLink'), async function () {
        var r = await api('POST', '/meetings/' + id + '/links', { site_id: i.site_id });
        var url = location.origin + r.url;
        var input = el('input'); input.value = url; input.readOnly = true; input.size = 40; input.setAttribute('aria-label', t('links'));
        li.appendChild(input);
        li.appendChild(button(t('copy'), async function () { input.select(); try { await navigator.clipboard.writeText(url); } catch (e) { document.execCommand('copy'); } status(t('copied')); }));
      }));
      list.appendChild(li);
    });
    // A hall's encoder or OBS publishes over WHIP with its room device key (Bearer).
    var whip = el('p', t('whip') + ' '); var wi = el('input'); wi.value = location.origin + '/whip/' + id; wi.readOnly = true; wi.size = 40; wi.setAttribute('aria-label', t('whip'));
    whip.appendChild(wi); whip.appendChild(el('small', ' ' + t('whipHint'))); box.appendChild(whip);
    var whep = el('p', t('whep') + ' '); var we = el('input'); we.value = location.origin + '/whep/' + id; we.readOnly = true; we.size = 40; we.setAttribute('aria-label', t('whep'));
    whep.appendChild(we); whep.appendChild(el('small', ' ' + t('whepHint'))); box.appendChild(whep);
    await settingsBox(box, id);
    await recordsBox(box, id);
    var live = await api('GET', '/meetings/' + id + '/live');
    box.appendChild(el('h3', t('live') + ': ' + live.length));
    // The chair's powers from here, for when the chair's link is down (the bridge lets
    // only the chairing office's admins use them, and logs each).
    var control = function (msg) { return async function () { await api('POST', '/meetings/' + id + '/control', msg); status(t('saved')); }; };
    if (live.length) {
      var bar = el('p', t('controlHint') + ' ');
      bar.appendChild(button(t('muteAll'), control({ type: 'mute_all' })));
      bar.appendChild(button(t('unmuteAll'), control({ type: 'unmute_all' })));
      bar.appendChild(button(t('endTurn'), control({ type: 'grant_floor', participant: null })));
      box.appendChild(bar);
    }
    var ul = el('ul'); live.forEach(function (p) {
      var li = el('li', p.name + (p.site ? ' — ' + p.site : '') + ' ');
      li.appendChild(button(t('giveFloor'), control({ type: 'grant_floor', participant: p.id })));
      li.appendChild(button(t('muteOne'), control({ type: 'mute_participant', participant: p.id })));
      li.appendChild(button(t('removeOne'), async function () {
        var why = prompt(t('removeReason'), '');
        if (why !== null) await control({ type: 'remove', participant: p.id, reason: why.slice(0, 200) })();
      }));
      ul.appendChild(li);
    }); box.appendChild(ul);
  }

  /** The meeting's settings for its chair's controls and its record (managers change them). */
  async function settingsBox(box, id) {
    var s = await api('GET', '/meetings/' + id + '/settings');
    var f = el('div', null, 'card'); f.appendChild(el('h3', t('settingsH')));
    var check = function (label, on) {
      var l = el('label'); var cb = el('input'); cb.type = 'checkbox'; cb.checked = on;
      l.appendChild(cb); l.appendChild(el('span', ' ' + t(label))); f.appendChild(l); f.appendChild(el('br')); return cb;
    };
    var rec = check('recordSetting', s.record), self = check('selfUnmuteSetting', s.self_unmute);
    var ll = el('label', t('floorLimit') + ' '); var lim = el('input'); lim.type = 'number'; lim.min = 0; lim.max = 120;
    lim.value = Math.round(s.floor_limit_s / 60); ll.appendChild(lim); f.appendChild(ll);
    f.appendChild(button(t('save'), async function () {
      await api('PUT', '/meetings/' + id + '/settings', { record: rec.checked, self_unmute: self.checked, floor_limit_s: Math.max(0, Math.round(+lim.value * 60)) });
      status(t('saved'));
    }));
    box.appendChild(f);
  }
  function mmss(x) { x = Math.floor(x); return Math.floor(x / 60) + ':' + ('0' + (x % 60)).slice(-2); }
  /** Each record with a player; the floor turns are its chapters. Only the chairing office sees them. */
  async function recordsBox(box, id) {
    var list;
    try { list = await api('GET', '/meetings/' + id + '/records'); } catch (e) { return; }
    var f = el('div', null, 'card'); f.appendChild(el('h3', t('records')));
    if (!list.length) f.appendChild(el('p', t('noRecords')));
    list.forEach(function (r) {
      var i = r.info || {};
      var why = i.stopped === 'disk_full' ? ' · ' + t('stoppedDisk') : i.stopped === 'failed' ? ' · ' + t('stoppedFailed') : !i.stopped ? ' · ' + t('cutShort') : '';
      f.appendChild(el('p', (i.started_at ? vnDate(new Date(i.started_at)) + ' ' + vnTime(i.started_at) : r.file) + ' · ' + mmss(i.seconds || 0) + ' · ' + Math.round(r.bytes / 1024) + ' KB' + why));
      var src = '/api/v1/meetings/' + id + '/records/' + encodeURIComponent(r.file);
      var audio = el('audio'); audio.controls = true; audio.preload = 'none'; audio.src = src; f.appendChild(audio);
      var dl = el('a', ' ' + t('download')); dl.href = src; dl.download = r.file; f.appendChild(dl);
      if ((i.turns || []).length) {
        f.appendChild(el('h4', t('turns')));
        var ol = el('ol');
        i.turns.forEach(function (turn) {
          var li = el('li');
          li.appendChild(button(mmss(turn.at_s), function () { audio.currentTime = turn.at_s; return audio.play(); }));
          li.appendChild(el('span', ' ' + (turn.who || t('floorBack')) + ' '));
          if (turn.video) {
            var v = el('a', t('turnVideo')); v.href = '/api/v1/meetings/' + id + '/records/' + encodeURIComponent(turn.video); v.target = '_blank';
            li.appendChild(v);
          }
          ol.appendChild(li);
        });
        f.appendChild(ol);
      }
    });
    box.appendChild(f);
  }

  $('login').onsubmit = guard(async function () {
    var s = await api('POST', '/login', { username: $('username').value, password: $('password').value });
    $('password').value = ''; status(''); await start(s);
  });
  $('logout').onclick = guard(async function () { await api('POST', '/logout'); showLogin(); });
  $('lang').onclick = function () { lang = lang === 'vi' ? 'en' : 'vi'; localStorage.setItem('cauhop.lang', lang); applyLang(); };
  applyLang();
  fetch('/api/v1/me', { credentials: 'same-origin' }).then(function (r) { return r.ok ? r.json() : null; })
    .then(function (s) { if (s) start(s).catch(function (e) { status(e.message); }); });
  window.cauhopAdmin = { api: api, tab: tab, detail: detail };
})();
