// Kiosk mode in real Chromium: a room PC opens /kiosk#key=… before its meeting, shows the
// next meeting, joins by itself when it opens, receives the chair's video, rejoins after
// its WebSocket is killed, and reports its health; it answers the chair's roll call by
// itself, and the remote's key (here F9, set in the kiosk link) asks for the floor.
// Usage: node kiosk.mjs BASE USER PASSWORD
import { launch, newContext } from './launch.mjs';

const [base, user, password] = process.argv.slice(2);
const browser = await launch(base);
const result = { ok: false };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function frames(page) {
  return page.evaluate(async () => {
    const st = window.cauhop.stats();
    let n = 0;
    if (st) (await st).forEach((x) => { if (x.type === 'inbound-rtp' && (x.kind || x.mediaType) === 'video') n += x.framesDecoded || 0; });
    return { state: window.cauhop.state(), frames: n };
  });
}
async function until(what, page, cond, ms) {
  const end = Date.now() + ms;
  let s;
  while (Date.now() < end) { s = await frames(page); if (cond(s)) return s; await sleep(300); }
  throw new Error(`timed out waiting for ${what}: ${JSON.stringify(s)}`);
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
    const p = await api('POST', '/sites', { code: 'K10', name: 'Tỉnh K', kind: 'province', parent_id: null });
    const d = await api('POST', '/sites', { code: 'K10-1', name: 'Huyện Bắc Hà', kind: 'district', parent_id: p.id });
    const ep = await api('POST', '/endpoints', { site_id: d.id, name: 'Phòng họp huyện Bắc Hà' });
    const start = new Date(Math.ceil((Date.now() + 8000) / 1000) * 1000).toISOString();
    const m = await api('POST', '/meetings', { title: 'Họp trực tuyến phòng chống thiên tai', starts_at: start,
      ends_at: new Date(Date.parse(start) + 300000).toISOString(), chair_site_id: p.id,
      roster: [{ site_id: d.id, role: 'participant' }] });
    const chair = await api('POST', `/meetings/${m.id}/links`, { site_id: p.id });
    return { key: ep.key, endpoint: ep.endpoint.id, chair: chair.url, start };
  });

  const kiosk = await (await newContext(browser, base)).newPage();
  kiosk.on('console', (m) => { if (m.type() === 'error') console.error(`[kiosk] ${m.text()}`); });
  await kiosk.goto(`${base}/kiosk#key=${encodeURIComponent(setup.key)}&hand=F9`);
  await kiosk.waitForFunction(() => /phòng chống thiên tai/.test(document.getElementById('next').textContent), null, { timeout: 8000 });
  result.waitingText = await kiosk.textContent('#next');
  // The kiosk polls every 15 s: it must be in by then after the start.
  await until('the kiosk to join', kiosk, (s) => s.state === 'joined', 30000);
  result.joinedAfterStart = Date.now() >= Date.parse(setup.start);
  const chair = await (await newContext(browser, base)).newPage();
  await chair.goto(`${base}${setup.chair}&name=Chu%20tri&autojoin=1`);
  result.first = await until('chair video at the kiosk', kiosk, (s) => s.frames > 0, 30000);

  // A dropped connection: the kiosk rejoins by itself and media flows again.
  const killedAt = Date.now();
  await kiosk.evaluate(() => window.cauhop.session().ws.close());
  await until('the kiosk to notice', kiosk, (s) => s.state !== 'joined' || s.frames === 0, 5000).catch(() => null);
  result.rejoined = await until('video after the rejoin', kiosk, (s) => s.state === 'joined' && s.frames > 0, 30000);
  result.recoveryMs = Date.now() - killedAt;

  // Its health reports reach the admin's endpoint list.
  const seen = await admin.evaluate(async (id) => {
    for (let i = 0; i < 30; i++) {
      const e = await window.cauhopAdmin.api('GET', `/endpoints/${id}`);
      if (e.last_seen && e.health) return e.health;
      await new Promise((r) => setTimeout(r, 500));
    }
    return null;
  }, setup.endpoint);
  result.health = seen;

  // The chair calls the roll: the room answers by itself (its camera and microphone
  // work), and the chair's button counts it.
  await chair.waitForSelector('#chairBar:not(.hidden)', { timeout: 10000 });
  await chair.click('#rollBtn');
  await chair.waitForFunction(() => /\(1 /.test(document.getElementById('rollBtn').textContent), null, { timeout: 10000 });
  result.rollButton = await chair.textContent('#rollBtn');
  await chair.click('#rollBtn');
  // The room's remote: one key asks for the floor; the chair's queue shows the room.
  await kiosk.keyboard.press('F9');
  await chair.waitForFunction(() => /Phòng họp huyện Bắc Hà/.test(document.getElementById('queueList').textContent), null, { timeout: 10000 });
  result.queue = await chair.textContent('#queueList');
  result.kioskBanner = await kiosk.textContent('#banner');
  result.ok = !!seen && seen.version === 'kiosk' && /1 có mặt/.test(result.rollButton) && /xin phát biểu/i.test(result.kioskBanner);
} catch (e) {
  result.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
