// An office network that lets only web traffic out: UDP to the media port is dropped
// (nftables in the test's namespace), so two Chromium pages must carry their media over
// TCP to the bridge's HTTPS port (ICE-TCP). Each must decode the other's video and hear
// its audio, and getStats must show the selected pair on TCP to that port.
// Usage: node tcp_only.mjs HTTPS_BASE MEETING   (prints one JSON line, exit 1 on failure)
import { launch, newContext } from './launch.mjs';

const [base, meeting] = process.argv.slice(2);
const port = new URL(base).port || '443';
const started = Date.now();
const deadline = started + 45000;
const browser = await launch(base);

async function look(page) {
  return page.evaluate(async () => {
    const s = window.cauhop && window.cauhop.stats();
    if (!s) return null;
    const r = await s;
    const out = { video: 0, audio: 0, pair: null };
    const byId = new Map();
    r.forEach((x) => byId.set(x.id, x));
    r.forEach((x) => {
      if (x.type === 'inbound-rtp') {
        const kind = x.kind || x.mediaType;
        if (kind === 'video') out.video += x.framesDecoded || 0;
        if (kind === 'audio') out.audio += x.packetsReceived || 0;
      }
      if (x.type === 'transport' && x.selectedCandidatePairId) {
        const pair = byId.get(x.selectedCandidatePairId);
        const remote = pair && byId.get(pair.remoteCandidateId);
        const local = pair && byId.get(pair.localCandidateId);
        if (remote) {
          out.pair = { protocol: remote.protocol, port: remote.port, tcpType: local && local.tcpType,
            rtt: pair.currentRoundTripTime };
        }
      }
    });
    return out;
  });
}

const result = { ok: false, pages: [] };
try {
  const pages = [];
  for (const name of ['Xa-vung-cao', 'Van-phong']) {
    const page = await (await newContext(browser, base)).newPage();
    page.on('console', (m) => { if (m.type() === 'error') console.error(`[${name}] ${m.text()}`); });
    await page.goto(`${base}/m/${meeting}?name=${name}&site=test&autojoin=1`);
    pages.push(page);
  }
  let stats = [];
  while (Date.now() < deadline) {
    stats = await Promise.all(pages.map(look));
    const good = stats.every((s) => s && s.video > 0 && s.audio > 0 && s.pair);
    if (good) { result.ok = true; break; }
    await new Promise((r) => setTimeout(r, 300));
  }
  result.mediaAfterMs = Date.now() - started;
  result.pages = stats;
  // The page says which way its media goes.
  await Promise.all(pages.map((p) => p.waitForFunction(() => /TCP/.test(document.getElementById('path').textContent), null, { timeout: 5000 }).catch(() => null)));
  result.pathText = await Promise.all(pages.map((p) => p.textContent('#path')));
  // Every selected pair is TCP to the HTTPS port: nothing got through over UDP.
  result.ok = result.ok && stats.every((s) => s.pair.protocol === 'tcp' && String(s.pair.port) === port)
    && result.pathText.every((t) => /TCP/.test(t || ''));
} catch (e) {
  result.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
