// A Firefox ESR page (Debian's, driven over WebDriver BiDi by puppeteer-core) and a
// Chromium page join one meeting through the real web client: each must decode the
// other's video and receive its audio, and Firefox must publish its simulcast layers.
// Usage: node firefox_chromium.mjs BASE_URL MEETING   (one JSON line, exit 1 on failure)
import puppeteer from 'puppeteer-core';
import { launch } from './launch.mjs';

const [base, meeting] = process.argv.slice(2);
const deadline = Date.now() + 60000;

// What the page's own connection says it receives and sends (window.cauhop.stats()).
async function media(page) {
  return page.evaluate(async () => {
    const s = window.cauhop && window.cauhop.stats();
    if (!s) return null;
    const r = await s;
    const out = { video: [], audio: [], sent: [] };
    r.forEach((x) => {
      const kind = x.kind || x.mediaType;
      if (x.type === 'inbound-rtp' && kind === 'video') out.video.push({ framesDecoded: x.framesDecoded || 0, height: x.frameHeight || 0 });
      if (x.type === 'inbound-rtp' && kind === 'audio') out.audio.push({ packets: x.packetsReceived || 0 });
      if (x.type === 'outbound-rtp' && kind === 'video') out.sent.push({ rid: x.rid || null, bytes: x.bytesSent || 0, height: x.frameHeight || 0 });
    });
    return out;
  });
}

const result = { ok: false };
let chromium, firefox;
try {
  firefox = await puppeteer.launch({
    browser: 'firefox',
    executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr',
    headless: true,
    extraPrefsFirefox: {
      // Fake camera and microphone (a moving picture and a tone), no prompt, and
      // getUserMedia on the plain-http test origin.
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      'media.devices.insecure.enabled': true,
      'media.getusermedia.insecure.enabled': true,
      'media.autoplay.default': 0,
    },
  });
  result.firefox = await firefox.version();
  chromium = await launch(base);
  const ctx = await chromium.newContext();
  const cpage = await ctx.newPage();
  cpage.on('console', (m) => { if (m.type() === 'error') console.error(`[chromium] ${m.text()}`); });
  const fpage = await firefox.newPage();
  fpage.on('console', (m) => { if (m.type() === 'error') console.error(`[firefox] ${m.text()}`); });
  await fpage.goto(`${base}/m/${meeting}?name=Firefox&site=test&autojoin=1`);
  await cpage.goto(`${base}/m/${meeting}?name=Chromium&site=test&autojoin=1`);
  let f = null, c = null;
  while (Date.now() < deadline) {
    [f, c] = await Promise.all([media(fpage), media(cpage)]);
    const decodes = (s) => s && s.video.some((v) => v.framesDecoded > 0) && s.audio.some((a) => a.packets > 0);
    const layers = f ? f.sent.filter((l) => l.bytes > 0).length : 0;
    // Simulcast: at least two layers. Firefox turns its top layer on only once its own
    // bandwidth estimate has climbed to about 2.5 Mbit/s; on a loaded 2-core machine it
    // once sent none of it in 60 s (180p and 360p flowing, 720p at 0 bytes).
    if (decodes(f) && decodes(c) && layers >= 2) { result.ok = true; break; }
    await new Promise((r) => setTimeout(r, 500));
  }
  result.firefoxPage = f;
  result.chromiumPage = c;
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  if (firefox) await firefox.close().catch(() => {});
  if (chromium) await chromium.close().catch(() => {});
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
