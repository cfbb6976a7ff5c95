// The meeting report (/admin/report?meeting=ID) and a site's last weeks
// (/admin/report?site=ID): what an IT officer prints after a meeting. Times as Vietnamese
// offices write them (dd/mm/yyyy, 24-hour, +07:00), whatever the browser's locale.
'use strict';
(function () {
  var T = {
    vi: {
      back: '← Quản trị', print: 'In báo cáo', csv: 'Tải CSV', reportTitle: 'BÁO CÁO CUỘC HỌP TRỰC TUYẾN',
      siteTitle: 'ĐƯỜNG TRUYỀN CỦA ĐIỂM CẦU', days: 'ngày gần nhất', when: 'Thời gian', site: 'Điểm cầu',
      joined: 'Vào', left: 'Ra', minutes: 'Phút', rejoins: 'Vào lại', down: 'Nhận kbit/s', up: 'Gửi kbit/s',
      loss: 'Mất gói nhận/gửi %', rtt: 'Trễ ms', cut: 'Mất kết nối', unheard: 'Không nghe được',
      audioOnly: 'Chỉ có tiếng', chart: 'Diễn biến', troubleH: 'Điểm cầu không nghe hoặc không nhìn được',
      noTrouble: 'Không có điểm cầu nào gián đoạn quá', seconds: 'giây', from: 'từ', device: 'thiết bị',
      summary: function (n, k, s) { return n + ' điểm cầu tham dự · ' + k + ' điểm cầu gián đoạn từ ' + s + ' giây trở lên'; },
      dated: function (d) { return 'Ngày ' + d.slice(0, 2) + ' tháng ' + d.slice(3, 5) + ' năm ' + d.slice(6, 10); },
      meeting: 'Cuộc họp', noSamples: 'Chưa có số liệu đường truyền', login: 'Hãy đăng nhập ở trang quản trị rồi mở lại báo cáo này.',
      legend: 'Biểu đồ: đường xanh là tốc độ nhận (kbit/s); nền đỏ: mất kết nối; nền vàng: chỉ có tiếng.',
      open: 'đang họp', lang: 'English', report: 'Báo cáo'
    },
    en: {
      back: '← Admin', print: 'Print', csv: 'Download CSV', reportTitle: 'MEETING REPORT',
      siteTitle: 'SITE LINK HISTORY', days: 'last days', when: 'When', site: 'Site',
      joined: 'Joined', left: 'Left', minutes: 'Min', rejoins: 'Rejoins', down: 'Down kbit/s', up: 'Up kbit/s',
      loss: 'Loss down/up %', rtt: 'RTT ms', cut: 'Cut off', unheard: 'Not heard',
      audioOnly: 'Audio only', chart: 'Link', troubleH: 'Sites that could not be heard or seen',
      noTrouble: 'No site was interrupted for', seconds: 's', from: 'from', device: 'device',
      summary: function (n, k, s) { return n + ' sites attended · ' + k + ' interrupted for ' + s + ' s or more'; },
      dated: function (d) { return d; },
      meeting: 'Meeting', noSamples: 'No link samples yet', login: 'Log in on the admin page, then open this report again.',
      legend: 'Chart: the blue line is the download rate (kbit/s); red: cut off; amber: audio only.',
      open: 'in progress', lang: 'Tiếng Việt', report: 'Report'
    }
  };
  var lang = localStorage.getItem('lang') === 'en' ? 'en' : 'vi';
  var VN = 7 * 3600 * 1000;
  var $ = function (id) { return document.getElementById(id); };
  function t(k) { return T[lang][k]; }
  function el(tag, text, cls) { var e = document.createElement(tag); if (text != null) e.textContent = text; if (cls) e.className = cls; return e; }
  // 07/12/2026 08:00 from an RFC 3339 time.
  function vn(iso, seconds) {
    if (!iso) return '';
    var s = new Date(Date.parse(iso) + VN).toISOString();
    return s.slice(8, 10) + '/' + s.slice(5, 7) + '/' + s.slice(0, 4) + ' ' + s.slice(11, seconds ? 19 : 16);
  }
  function hms(iso) { return iso ? new Date(Date.parse(iso) + VN).toISOString().slice(11, 19) : ''; }
  function num(v) { return v == null ? '—' : String(v); }
  function secs(v) { return v ? v + ' ' + t('seconds') : '—'; }

  var q = new URLSearchParams(location.search);
  var meeting = q.get('meeting'), site = q.get('site');
  var data = null;

  async function get(path) {
    var r = await fetch('/api/v1' + path, { credentials: 'same-origin' });
    if (r.status === 401) throw new Error(t('login'));
    var body = await r.json().catch(function () { return null; });
    if (!r.ok) throw new Error((body && body.message) || ('HTTP ' + r.status));
    return body;
  }

  /** A small chart of one site's link: download kbit/s, with the stretches cut off (red)
   * and on audio only (amber) behind it. SVG, so it prints sharp. */
  function chart(points, span, bucket) {
    var W = 220, H = 40, NS = 'http://www.w3.org/2000/svg';
    var svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H); svg.setAttribute('width', W); svg.setAttribute('height', H);
    svg.setAttribute('class', 'chart'); svg.setAttribute('role', 'img');
    var max = Math.max(64, Math.max.apply(null, points.map(function (p) { return p.down_kbps; })));
    var x = function (s) { return span > 0 ? (s / span) * (W - 2) + 1 : 1; };
    var w = Math.max(1, x(bucket) - x(0));
    var base = document.createElementNS(NS, 'rect');
    base.setAttribute('x', 0); base.setAttribute('y', 0); base.setAttribute('width', W); base.setAttribute('height', H); base.setAttribute('class', 'bg');
    svg.appendChild(base);
    points.forEach(function (p) {
      var kind = p.cut_off > 0 ? 'cut' : p.audio_only > 0 ? 'ao' : null;
      if (!kind) return;
      var r = document.createElementNS(NS, 'rect');
      r.setAttribute('x', x(p.t)); r.setAttribute('y', 0); r.setAttribute('width', w); r.setAttribute('height', H); r.setAttribute('class', kind);
      svg.appendChild(r);
    });
    var line = document.createElementNS(NS, 'polyline');
    line.setAttribute('points', points.map(function (p) { return x(p.t + bucket / 2).toFixed(1) + ',' + (H - 2 - (p.down_kbps / max) * (H - 6)).toFixed(1); }).join(' '));
    line.setAttribute('class', 'down');
    svg.appendChild(line);
    var title = document.createElementNS(NS, 'title');
    title.textContent = 'max ' + max + ' kbit/s';
    svg.appendChild(title);
    return svg;
  }

  function table(head, rows) {
    var tb = el('table', null, 'rep'); var tr = el('tr');
    head.forEach(function (h) { tr.appendChild(el('th', h)); }); tb.appendChild(tr);
    rows.forEach(function (r) {
      var row = el('tr');
      r.forEach(function (c) { var td = el('td'); if (c instanceof Node) td.appendChild(c); else td.textContent = c; row.appendChild(td); });
      tb.appendChild(row);
    });
    return tb;
  }

  function letterhead(lines) {
    var box = $('letterhead'); box.innerHTML = '';
    (lines || []).forEach(function (l) { box.appendChild(el('div', l)); });
    var today = vn(new Date().toISOString());
    $('dated').textContent = t('dated')(today);
  }

  function drawMeeting(r) {
    document.title = t('report') + ' — ' + r.title;
    letterhead(r.letterhead);
    $('title').textContent = t('reportTitle');
    $('subtitle').textContent = r.title + ' · ' + vn(r.starts_at);
    var csv = $('csv'); csv.href = '/api/v1/meetings/' + r.meeting_id + '/report?format=csv'; csv.classList.remove('hidden');
    var trouble = $('trouble'); trouble.innerHTML = '';
    trouble.appendChild(el('p', t('summary')(r.sites.length, r.troubled.length, r.after_s), 'summary'));
    trouble.appendChild(el('h2', t('troubleH')));
    var bad = r.sites.filter(function (s) { return s.stretches.length; });
    if (!bad.length) trouble.appendChild(el('p', t('noTrouble') + ' ' + r.after_s + ' ' + t('seconds') + '.'));
    var ul = el('ul', null, 'trouble');
    bad.forEach(function (s) {
      s.stretches.forEach(function (x) {
        var kind = { cut_off: t('cut'), unheard: t('unheard'), audio_only: t('audioOnly') }[x.trouble];
        var li = el('li');
        li.appendChild(el('strong', s.site));
        li.appendChild(document.createTextNode(' — ' + kind + ' ' + x.seconds + ' ' + t('seconds') + ', ' + t('from') + ' ' + hms(x.from) + (x.device && x.device !== s.site ? ' (' + t('device') + ': ' + x.device + ')' : '')));
        ul.appendChild(li);
      });
    });
    trouble.appendChild(ul);
    var span = 0;
    r.sites.forEach(function (s) { s.chart.forEach(function (p) { span = Math.max(span, p.t + r.bucket_s); }); });
    var rows = r.sites.map(function (s) {
      var loss = (s.loss_down_pct == null ? '—' : s.loss_down_pct) + ' / ' + (s.loss_up_pct == null ? '—' : s.loss_up_pct);
      return [s.site, hms(s.first_joined).slice(0, 5), s.last_left ? hms(s.last_left).slice(0, 5) : t('open'), s.minutes, s.rejoins,
        num(s.down_kbps), num(s.up_kbps), loss, num(s.rtt_ms), secs(s.cut_off_s), secs(s.unheard_s), secs(s.audio_only_s),
        s.chart.length ? chart(s.chart, span, r.bucket_s) : t('noSamples')];
    });
    var box = $('sites'); box.innerHTML = '';
    box.appendChild(table([t('site'), t('joined'), t('left'), t('minutes'), t('rejoins'), t('down'), t('up'), t('loss'), t('rtt'), t('cut'), t('unheard'), t('audioOnly'), t('chart')], rows));
    $('legend').textContent = t('legend');
  }

  function drawSite(list, name, days) {
    document.title = t('siteTitle') + ' — ' + name;
    letterhead([]);
    $('title').textContent = t('siteTitle');
    $('subtitle').textContent = name + ' · ' + days + ' ' + t('days');
    $('trouble').innerHTML = '';
    var rows = list.map(function (m) {
      var a = el('a', m.title); a.href = '/admin/report?meeting=' + m.meeting_id;
      var loss = (m.loss_down_pct == null ? '—' : m.loss_down_pct) + ' / ' + (m.loss_up_pct == null ? '—' : m.loss_up_pct);
      return [vn(m.from), a, m.minutes, num(m.down_kbps), num(m.up_kbps), loss, num(m.rtt_ms), secs(m.cut_off_s), secs(m.unheard_s), secs(m.audio_only_s)];
    });
    var box = $('sites'); box.innerHTML = '';
    if (!list.length) box.appendChild(el('p', t('noSamples')));
    else box.appendChild(table([t('when'), t('meeting'), t('minutes'), t('down'), t('up'), t('loss'), t('rtt'), t('cut'), t('unheard'), t('audioOnly')], rows));
    $('legend').textContent = '';
  }

  async function load() {
    document.documentElement.lang = lang;
    document.querySelectorAll('[data-t]').forEach(function (e) { e.textContent = t(e.getAttribute('data-t')); });
    $('lang').textContent = t('lang');
    try {
      if (meeting) {
        data = data || await get('/meetings/' + encodeURIComponent(meeting) + '/report');
        drawMeeting(data);
      } else if (site) {
        var days = Math.min(366, Math.max(1, +(q.get('days') || 30)));
        if (!data) {
          var s = await get('/sites/' + encodeURIComponent(site));
          data = { name: s.name, list: await get('/sites/' + encodeURIComponent(site) + '/links?days=' + days) };
        }
        drawSite(data.list, data.name, days);
      }
      $('status').textContent = '';
      document.body.setAttribute('data-ready', '1');
    } catch (e) {
      $('status').textContent = e.message;
      document.body.setAttribute('data-ready', 'error');
    }
  }
  $('print').onclick = function () { window.print(); };
  $('lang').onclick = function () { lang = lang === 'vi' ? 'en' : 'vi'; localStorage.setItem('lang', lang); load(); };
  load();
})();
