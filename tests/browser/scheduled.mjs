// The admin page and a join link in real Chromium: an admin logs in on /admin and adds a
// site through the form; a meeting starting in a few seconds is scheduled; a commune page
// opened early from its link waits, then joins by itself when the meeting opens, and sees
// the chair's video; the audit log tab lists what the admin did. Usage: node scheduled.mjs BASE_URL USER PASSWORD
import { launch, newContext } from './launch.mjs';

const [base, user, password] = process.argv.slice(2);
const browser = await launch(base);
const result = { ok: false };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
try {
  const admin = await (await newContext(browser, base)).newPage();
  admin.on('console', (m) => { if (m.type() === 'error') console.error(`[admin] ${m.text()}`); });
  await admin.goto(`${base}/admin`);
  result.loginLabel = await admin.textContent('#login button');
  await admin.fill('#username', user);
  await admin.fill('#password', password);
  await admin.click('#login button');
  await admin.waitForSelector('#app:not(.hidden)', { timeout: 10000 });
  if (base.startsWith('https:')) {
    // The bridge's self-signed certificate: its fingerprint is on the admin page.
    await admin.waitForSelector('#tls:not(.hidden)', { timeout: 5000 });
    result.tls = await admin.textContent('#tls');
  }
  // Add the province through the sites form.
  await admin.click('nav button[data-tab="sites"]');
  await admin.fill('#sCode', '10');
  await admin.fill('#sName', 'Tỉnh Lào Cai');
  await admin.selectOption('#sKind', 'province');
  await admin.click('#siteForm button');
  await admin.waitForSelector('#siteTree >> text=Tỉnh Lào Cai', { timeout: 5000 });
  // The rest through the page's own API helper (same cookie and CSRF token).
  const setup = await admin.evaluate(async () => {
    const api = window.cauhopAdmin.api;
    const sites = (await api('GET', '/sites')).items;
    const p = sites.find((s) => s.code === '10');
    const d = await api('POST', '/sites', { code: '080', name: 'Huyện Sa Pa', kind: 'district', parent_id: p.id });
    const c = await api('POST', '/sites', { code: '080-02', name: 'Xã Tả Van', kind: 'commune', parent_id: d.id });
    const start = new Date(Math.ceil((Date.now() + 6000) / 1000) * 1000).toISOString();
    const end = new Date(Date.parse(start) + 120000).toISOString();
    const m = await api('POST', '/meetings', { title: 'Giao ban trực tuyến', starts_at: start, ends_at: end,
      chair_site_id: p.id, roster: [{ site_id: c.id, role: 'participant' }] });
    const chair = await api('POST', `/meetings/${m.id}/links`, { site_id: p.id });
    const commune = await api('POST', `/meetings/${m.id}/links`, { site_id: c.id });
    return { meeting: m.id, start, chair: chair.url, commune: commune.url };
  });
  result.meeting = setup.meeting;
  // The calendar shows it.
  await admin.click('nav button[data-tab="meetings"]');
  await admin.waitForSelector('#calendar >> text=Giao ban trực tuyến', { timeout: 5000 });
  // The audit log tab (a province admin) lists what was just done, in Vietnamese.
  await admin.click('nav button[data-tab="audit"]');
  await admin.waitForSelector('#auditTable >> text=Tạo cuộc họp', { timeout: 5000 });
  result.auditRows = await admin.$$eval('#auditTable tr', (rows) => rows.length - 1);
  result.auditSiteAdded = await admin.isVisible('#auditTable >> text=Thêm điểm cầu');
  result.auditRoster = await admin.isVisible('#auditTable >> text=Đổi danh sách mời');

  // The commune opens its link early.
  const commune = await (await newContext(browser, base)).newPage();
  commune.on('console', (m) => { if (m.type() === 'error') console.error(`[commune] ${m.text()}`); });
  await commune.goto(`${base}${setup.commune}&name=Xa%20Ta%20Van&autojoin=1`);
  await commune.waitForFunction(() => /chưa mở/.test(document.getElementById('status').textContent), null, { timeout: 5000 });
  result.waitingText = await commune.textContent('#status');
  // Over the bridge's own HTTPS the page may use the camera because it is https://.
  result.secureContext = await commune.evaluate(() => window.isSecureContext && location.protocol);
  const chair = await (await newContext(browser, base)).newPage();
  await chair.goto(`${base}${setup.chair}&name=Chu%20tri&autojoin=1`);

  const deadline = Date.now() + 40000;
  while (Date.now() < deadline) {
    const s = await commune.evaluate(async () => {
      const st = window.cauhop.stats();
      if (!st) return { state: window.cauhop.state() };
      let frames = 0;
      (await st).forEach((x) => { if (x.type === 'inbound-rtp' && (x.kind || x.mediaType) === 'video') frames += x.framesDecoded || 0; });
      return { state: window.cauhop.state(), frames, phase: document.getElementById('phase').textContent };
    });
    result.commune = s;
    if (s.frames > 0 && s.state === 'joined') { result.ok = true; break; }
    await sleep(500);
  }
  result.joinedAfterStart = Date.now() >= Date.parse(setup.start);
  result.chairControls = await chair.evaluate(() => !document.getElementById('endBtn').classList.contains('hidden'));
  result.ok = result.ok && (!base.startsWith('https:') || (result.secureContext === 'https:' && /SHA-256.*[0-9A-F]{2}(:[0-9A-F]{2}){31}/.test(result.tls || ''))) && result.chairControls && /Giao ban trực tuyến/.test(result.commune.phase || '')
    && result.auditRows >= 7 && result.auditSiteAdded && result.auditRoster;
} catch (e) {
  result.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
