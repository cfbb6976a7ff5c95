// A Chromium page in a meeting of simulated sites (`cauhop-sites`, str0m over UDP): the
// page receives the bridge's slots and labels them right. The main tile names the
// speaking site and shows its picture; the thumbnails name distinct sites with pictures;
// the roster lists every site; a site pinned from the roster takes this page's main tile
// (its picture, its label) and clicking the main tile gives it back to the speaker; the
// lobby banner is readable (its text's contrast against
// its background, as the browser renders it). A screenshot is saved for a person to look
// at.
// Usage: node province_page.mjs BASE_URL MEETING SITES SPEAKER SCREENSHOT
// (prints one JSON line, exit 1 on failure)
import { launch } from './launch.mjs';

const [base, meeting, sites, speaker, shot] = process.argv.slice(2);
const deadline = Date.now() + 45000;
const browser = await launch(base);
const result = { ok: false };

/** WCAG contrast ratio of two CSS colours `rgb(r, g, b)`. */
function contrast(a, b) {
  const lum = (c) => {
    const [r, g, bl] = c.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number).map((v) => {
      const s = v / 255;
      return s <= 0.03928 ? s / 12.92 : Math.pow((s + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}

try {
  const ctx = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const page = await ctx.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.error(`[page] ${m.text()}`); });
  await page.goto(`${base}/m/${meeting}?name=Chromium&site=test&autojoin=1`);
  const look = () => page.evaluate(() => {
    const label = (el) => (el.querySelector('.label') || {}).textContent || '';
    const tiles = [...document.querySelectorAll('.tile')].filter((el) => el.id !== 'tile-me');
    const shown = tiles.filter((el) => !el.classList.contains('hidden')).map((el) => {
      const v = el.querySelector('video');
      return { id: el.id, label: label(el), width: v ? v.videoWidth : 0, time: v ? v.currentTime : 0 };
    });
    return { shown, roster: document.getElementById('rosterCount').textContent };
  });
  let seen = null;
  while (Date.now() < deadline) {
    seen = await look();
    const main = seen.shown.find((t) => t.id === 'tile-v0');
    const thumbs = seen.shown.filter((t) => t.id !== 'tile-v0' && t.width > 0);
    if (main && main.label.includes(speaker) && main.width > 0 && main.time > 0.5 &&
        thumbs.length >= 3 && Number(seen.roster) === Number(sites) + 1) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  result.seen = seen;
  const main = seen.shown.find((t) => t.id === 'tile-v0');
  const thumbs = seen.shown.filter((t) => t.id !== 'tile-v0' && t.width > 0);
  const labels = thumbs.map((t) => t.label);
  result.mainLabelled = !!main && main.label.includes(speaker) && main.width > 0;
  result.thumbsDistinct = labels.length >= 3 && new Set(labels).size === labels.length &&
    labels.every((l) => l && !l.includes(speaker));
  result.roster = Number(seen.roster) === Number(sites) + 1;

  // Pin a silent site from the roster: the main tile becomes that site's picture.
  const mainNow = () => page.evaluate(() => {
    const el = document.getElementById('tile-v0');
    const v = el && el.querySelector('video');
    return el ? { who: el.dataset.participant, label: el.querySelector('.label').textContent,
      width: v ? v.videoWidth : 0, time: v ? v.currentTime : 0 } : null;
  });
  const target = await page.evaluate((speaker) => {
    const li = [...document.querySelectorAll('#rosterList li')]
      .find((l) => !l.querySelector('.n').textContent.includes(speaker));
    if (!li) return null;
    li.querySelector('button.pin').click();
    return li.dataset.participant;
  }, speaker);
  const pinStart = Date.now();
  let pinnedMain = null;
  let startedAt = null;
  while (target && Date.now() < deadline + 20000) {
    const m = await mainNow();
    if (m && m.who === target && m.width > 0) {
      // Its own picture is playing in the main tile, not the speaker's frozen last frame.
      if (startedAt === null) startedAt = m.time;
      else if (m.time > startedAt + 0.5) { pinnedMain = m; break; }
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  result.pin = { target, main: pinnedMain || (await mainNow()), ms: Date.now() - pinStart };
  result.pinned = !!pinnedMain && pinnedMain.label.startsWith('📌') && !pinnedMain.label.includes(speaker);
  // Clicking the main tile lets the pin go: the speaker comes back.
  await page.click('#tile-v0');
  let back = null;
  const unpinStart = Date.now();
  while (Date.now() < unpinStart + 15000) {
    const m = await mainNow();
    if (m && m.label.includes(speaker) && m.who !== target) { back = m; break; }
    await new Promise((r) => setTimeout(r, 250));
  }
  result.unpin = { main: back || (await mainNow()), ms: Date.now() - unpinStart };
  result.unpinned = !!back && !back.label.startsWith('📌');
  // The lobby banner as the page shows it before a meeting opens.
  result.banner = await page.evaluate(() => {
    const ph = document.getElementById('phase');
    ph.classList.remove('hidden');
    ph.textContent = 'Giao ban trực tuyến — Phòng chờ — cuộc họp bắt đầu lúc 08:00';
    const s = getComputedStyle(ph);
    return { color: s.color, background: s.backgroundColor };
  });
  result.banner.contrast = Math.round(contrast(result.banner.color, result.banner.background) * 10) / 10;
  await page.screenshot({ path: shot });
  result.screenshot = shot;
  result.ok = result.mainLabelled && result.thumbsDistinct && result.roster && result.pinned &&
    result.unpinned && result.banner.contrast >= 4.5;
} catch (e) {
  result.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
