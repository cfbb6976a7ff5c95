// An office network that lets only web traffic out (nftables in the test's namespace):
// two Chromium pages must carry their media another way than UDP to the media port.
// `tcp`: over TCP to the bridge's HTTPS port (ICE-TCP); `relay`: through the TURN server
// the bridge names in its welcome. Each page must decode the other's video, hear its
// audio, and getStats must show the selected pair going that way.
// Usage: node web_only.mjs BASE MEETING tcp|relay|relay-tls   (one JSON line, exit 1 on failure)
import { launch, newContext } from './launch.mjs';

const [base, meeting, expect] = process.argv.slice(2);
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
            local: local && local.candidateType, relayProtocol: local && local.relayProtocol,
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
  const relay = expect.startsWith('relay');
  const said = relay ? /TURN/ : /TCP/;
  await Promise.all(pages.map((p) => p.waitForFunction((re) => new RegExp(re).test(document.getElementById('path').textContent), said.source, { timeout: 5000 }).catch(() => null)));
  result.pathText = await Promise.all(pages.map((p) => p.textContent('#path')));
  // Every selected pair goes the expected way: nothing got through over UDP.
  // `relay-tls`: through TURN over TLS (what passes a proxy that lets only TLS out).
  const way = relay
    ? (s) => s.pair.local === 'relay' && (expect !== 'relay-tls' || s.pair.relayProtocol === 'tls')
    : (s) => s.pair.protocol === 'tcp' && String(s.pair.port) === port;
  result.ok = result.ok && stats.every(way) && result.pathText.every((t) => said.test(t || ''));
} catch (e) {
  result.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
