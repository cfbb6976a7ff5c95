// The chair runs a meeting from its page, in real Chromium (issue 20): three pages (the
// province chair, communes A and B) join a scheduled meeting from their links; the chair
// mutes everyone; A asks to speak; the chair's page shows A in its queue and gives A the
// floor with one click; A's page is unmuted by the floor; B's main tile shows A (its slot
// message names A, and its picture is decoded at A's camera height) and B's floor bar
// names A with a running timer. Usage: node chair.mjs BASE_URL USER PASSWORD
import { launch, newContext } from './launch.mjs';

const [base, user, password] = process.argv.slice(2);
const browser = await launch(base);
const result = { ok: false };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(page, what, fn, arg, timeout = 20000) {
  try {
    return await page.waitForFunction(fn, arg, { timeout, polling: 250 });
  } catch (e) {
    const said = await page.evaluate(() => document.getElementById('status').textContent + ' | ' + (window.cauhop.state && window.cauhop.state())).catch(() => '');
    throw new Error(`waited ${timeout} ms for ${what} (page: ${said}; ${e})`);
  }
}
try {
  const admin = await (await newContext(browser, base)).newPage();
  await admin.goto(`${base}/admin`);
  await admin.fill('#username', user);
  await admin.fill('#password', password);
  await admin.click('#login button');
  await admin.waitForSelector('#app:not(.hidden)', { timeout: 10000 });
  const setup = await admin.evaluate(async () => {
    const api = window.cauhopAdmin.api;
    const p = await api('POST', '/sites', { code: '20', name: 'Tỉnh Chủ Trì', kind: 'province', parent_id: null });
    const d = await api('POST', '/sites', { code: '200', name: 'Huyện Si Ma Cai', kind: 'district', parent_id: p.id });
    const a = await api('POST', '/sites', { code: '200-01', name: 'Xã Bản Phố', kind: 'commune', parent_id: d.id });
    const b = await api('POST', '/sites', { code: '200-02', name: 'Xã Tà Chải', kind: 'commune', parent_id: d.id });
    const start = new Date(Date.now() - 5000).toISOString();
    const end = new Date(Date.now() + 600000).toISOString();
    const m = await api('POST', '/meetings', { title: 'Giao ban có chủ trì', starts_at: start, ends_at: end,
      chair_site_id: p.id, roster: [{ site_id: a.id, role: 'participant' }, { site_id: b.id, role: 'participant' }] });
    // Recorded: every page must show it.
    await api('PUT', `/meetings/${m.id}/settings`, { record: true, self_unmute: false, floor_limit_s: 300 });
    const link = async (site) => (await api('POST', `/meetings/${m.id}/links`, { site_id: site })).url;
    return { meeting: m.id, chair: await link(p.id), a: await link(a.id), b: await link(b.id) };
  });
  result.meeting = setup.meeting;
  const open = async (url, name) => {
    const page = await (await newContext(browser, base)).newPage();
    page.on('console', (m) => { if (m.type() === 'error') console.error(`[${name}] ${m.text()}`); });
    await page.goto(`${base}${url}&name=${encodeURIComponent(name)}&autojoin=1`);
    await until(page, `${name} joined`, () => window.cauhop.state() === 'joined' && window.cauhop.view().me);
    return page;
  };
  const chair = await open(setup.chair, 'Chủ trì');
  const a = await open(setup.a, 'Đại biểu A');
  const b = await open(setup.b, 'Đại biểu B');
  const idA = await a.evaluate(() => window.cauhop.view().me);
  result.idA = idA;
  // The recording mark on every page.
  for (const [name, page] of [['chair', chair], ['a', a], ['b', b]]) {
    await until(page, `${name}'s recording mark`, () => !document.getElementById('recMark').classList.contains('hidden'));
  }
  // The chair's bar is there for the chair only.
  result.chairBar = await chair.isVisible('#chairBar');
  result.siteHasNoChairBar = !(await a.isVisible('#chairBar'));

  // Everyone muted: A's page shows it, and its own unmute is refused on the page.
  await chair.click('#muteAllBtn');
  await until(a, "A's page muted by the chair", () => window.cauhop.view().audioMuted && document.getElementById('muteBtn').classList.contains('off'));
  result.heldText = await a.textContent('#status');

  // A asks to speak; the chair sees it in the queue and gives the floor with one click.
  await a.click('#handBtn');
  await until(chair, 'A in the chair\'s queue', () => /Đại biểu A/.test(document.getElementById('queueList').textContent));
  result.queueText = await chair.textContent('#queueList');
  await chair.click('#queueList li button');
  await until(a, "A unmuted by the floor", () => !window.cauhop.view().audioMuted, null, 10000);
  result.aHasFloor = await a.textContent('#floorText');

  // B's main slot carries A: the slot message names A and A's picture is decoded there.
  const seen = await until(b, "A's picture in B's main tile", (id) => {
    const v = window.cauhop.view();
    const main = v.slots.video && v.slots.video[0];
    const video = document.querySelector('#tile-v0 video');
    if (!main || main.participant !== id || !video || !video.videoHeight) return false;
    return { height: video.videoHeight, floor: document.getElementById('floorText').textContent };
  }, idA, 30000);
  result.b = await seen.jsonValue();
  // A's link as the chair's roster shows it, sampled for 5 s after A took the floor (its
  // paused layers resumed): on loopback it must not read as a bad link.
  result.aLinkSeen = [];
  for (let i = 0; i < 20; i++) {
    result.aLinkSeen.push(await chair.evaluate((id) => {
      const dot = document.querySelector(`#rosterList li[data-participant="${id}"] .dot`);
      return dot ? dot.className.replace('dot ', '') : '?';
    }, idA));
    await sleep(250);
  }
  await sleep(2200);
  result.timer = await b.textContent('#floorTimer');
  result.timerLimit = /\/ 5:00/.test(result.timer);
  result.queueAfter = await chair.evaluate(() => window.cauhop.view().hands.length);
  // The chair's screen as the chair sees it, for a person to read (kept in the temp dir).
  await b.click('#handBtn');
  await until(chair, "B in the chair's queue", () => window.cauhop.view().hands.length === 1);
  // The chair opens B's actions in the roster (one site at a time).
  await chair.click(`#rosterList li:not([data-participant="${idA}"]) .n.pick`);
  await chair.waitForSelector('#rosterList .acts button', { timeout: 5000 });
  result.actions = await chair.$$eval('#rosterList .acts button', (b) => b.map((x) => x.textContent));
  await chair.setViewportSize({ width: 1280, height: 720 });
  await sleep(500);
  await chair.screenshot({ path: `${process.env.TMPDIR || '/tmp'}/cauhop-chair-page.png` });

  // Everyone leaves; the admin's page lists the record, with A's turn as a chapter.
  for (const p of [a, b, chair]) await p.close();
  await sleep(1500);
  await admin.evaluate((id) => window.cauhopAdmin.tab('meetings'), setup.meeting);
  result.records = await admin.evaluate(async (id) => (await window.cauhopAdmin.api('GET', `/meetings/${id}/records`)), setup.meeting);
  result.recordTurns = (result.records[0] && result.records[0].info.turns || []).map((t) => t.who);
  await admin.evaluate((id) => window.cauhopAdmin.detail(id), setup.meeting);
  await admin.waitForSelector('#meetingDetail audio', { timeout: 5000 });
  await admin.setViewportSize({ width: 1280, height: 1000 });
  await admin.screenshot({ path: `${process.env.TMPDIR || '/tmp'}/cauhop-admin-records.png`, fullPage: true });
  // The meeting's report, as an old PC's screen shows it and as it prints: each site's
  // link as a chart.
  const report = await admin.context().newPage();
  await report.setViewportSize({ width: 1366, height: 768 });
  await report.goto(`${base}/admin/report?meeting=${setup.meeting}`);
  await report.waitForSelector('body[data-ready]', { timeout: 10000 });
  result.report = await report.evaluate(() => ({
    ready: document.body.dataset.ready,
    status: document.getElementById('status').textContent,
    rows: document.querySelectorAll('table.rep tr').length - 1,
    charts: [...document.querySelectorAll('svg.chart polyline')].filter((l) => l.getAttribute('points').split(' ').length >= 2).length,
    title: document.getElementById('title').textContent,
  }));
  await report.screenshot({ path: `${process.env.TMPDIR || '/tmp'}/cauhop-report.png`, fullPage: true });
  result.ok = result.chairBar && result.siteHasNoChairBar && /Đại biểu A/.test(result.queueText)
    && /phát biểu/.test(result.aHasFloor) && result.b.height >= 90 && /Đại biểu A/.test(result.b.floor)
    && /^0:([0-3][0-9]|4[0-5])/.test(result.timer) && !/^0:00/.test(result.timer) && result.timerLimit && result.queueAfter === 0
    && result.records.length === 1 && result.records[0].bytes > 1000 && result.records[0].info.stopped === 'ended'
    && result.recordTurns.some((w) => /Đại biểu A/.test(w || ''))
    && !result.aLinkSeen.includes('bad') && result.actions.length === 5
    && result.report.ready === '1' && result.report.rows >= 2 && result.report.charts >= 2;
} catch (e) {
  result.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
