// Two headless Chromium pages with fake camera and microphone join one meeting through
// the real web client; each must decode the other's video and receive its audio.
// Usage: node two_tabs.mjs BASE_URL MEETING   (prints one JSON line, exit 1 on failure)
import { launch } from './launch.mjs';

const [base, meeting] = process.argv.slice(2);
const deadline = Date.now() + 45000;

const browser = await launch(base);

async function inbound(page) {
  return page.evaluate(async () => {
    const s = window.cauhop && window.cauhop.stats();
    if (!s) return null;
    const r = await s;
    const out = { video: [], audio: [] };
    r.forEach((x) => {
      if (x.type === 'inbound-rtp') {
        const kind = x.kind || x.mediaType;
        if (kind === 'video') out.video.push({ framesDecoded: x.framesDecoded || 0, height: x.frameHeight || 0, packets: x.packetsReceived });
        if (kind === 'audio') out.audio.push({ packets: x.packetsReceived || 0, samples: x.totalSamplesReceived || 0 });
      }
    });
    return out;
  });
}

const result = { ok: false, pages: [] };
try {
  const pages = [];
  for (const name of ['Tinh', 'Xa']) {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    page.on('console', (m) => { if (m.type() === 'error') console.error(`[${name}] ${m.text()}`); });
    await page.goto(`${base}/m/${meeting}?name=${name}&site=test&autojoin=1`);
    pages.push(page);
  }
  let stats = [];
  while (Date.now() < deadline) {
    stats = await Promise.all(pages.map(inbound));
    const good = stats.every((s) => s && s.video.some((v) => v.framesDecoded > 0) && s.audio.some((a) => a.packets > 0));
    if (good) { result.ok = true; break; }
    await new Promise((r) => setTimeout(r, 500));
  }
  result.pages = stats;
  // With UDP open, UDP is the path (the TCP candidate on the HTTPS port is the fallback).
  await Promise.all(pages.map((p) => p.waitForFunction(() => /UDP/.test(document.getElementById('path').textContent), null, { timeout: 5000 }).catch(() => null)));
  result.pathText = await Promise.all(pages.map((p) => p.textContent('#path')));
  result.ok = result.ok && result.pathText.every((t) => /UDP/.test(t || ''));
  result.ui = await Promise.all(pages.map((p) => p.evaluate(() => ({ state: window.cauhop.state(), tiles: document.querySelectorAll('.tile').length, lang: document.documentElement.lang }))));
} catch (e) {
  result.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
