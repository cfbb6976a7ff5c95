// Accessibility and readability (issue 17): axe-core, in real Chromium at an old PC's
// 1366x768, over the join page, the kiosk page, every admin view (a meeting's detail
// included) and the meeting report. Any serious or critical violation (contrast
// included) fails; a screenshot of each view goes to the temp dir.
// Usage: node a11y.mjs BASE_URL USER PASSWORD
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { launch, newContext } from './launch.mjs';

const [base, user, password] = process.argv.slice(2);
const axe = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const browser = await launch(base);
const out = process.env.TMPDIR || '/tmp';
const result = { ok: false, views: {} };

async function check(page, name) {
  await page.waitForTimeout(300);
  // Through the DevTools protocol: the pages' CSP (script-src 'self') does not apply.
  await page.evaluate(axe);
  const v = await page.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21aa'] });
    return r.violations.filter((x) => x.impact === 'serious' || x.impact === 'critical')
      .map((x) => ({ id: x.id, impact: x.impact, nodes: x.nodes.slice(0, 4).map((n) => n.target.join(' ') + ' :: ' + (n.failureSummary || '').split('\n').slice(0, 2).join(' ')) }));
  });
  result.views[name] = v;
  await page.screenshot({ path: `${out}/cauhop-a11y-${name}.png`, fullPage: false });
}

try {
  const ctx = await newContext(browser, base);
  const page = await ctx.newPage();
  await page.setViewportSize({ width: 1366, height: 768 });
  await page.goto(`${base}/`);
  await check(page, 'join');
  await page.goto(`${base}/kiosk`);
  await check(page, 'kiosk');
  await page.goto(`${base}/admin`);
  await check(page, 'admin-login');
  await page.fill('#username', user);
  await page.fill('#password', password);
  await page.click('#login button');
  await page.waitForSelector('#app:not(.hidden)', { timeout: 10000 });
  await check(page, 'admin-meetings');
  const meetings = await page.evaluate(async () => (await window.cauhopAdmin.api('GET', '/meetings?limit=5')).items);
  if (meetings.length) {
    await page.evaluate((id) => window.cauhopAdmin.detail(id), meetings[0].id);
    await page.waitForSelector('#meetingDetail:not(.hidden)', { timeout: 5000 });
    await check(page, 'admin-meeting');
  }
  await page.click('#newMeeting');
  await check(page, 'admin-meeting-form');
  for (const tab of ['sites', 'endpoints', 'people', 'audit']) {
    await page.click(`nav button[data-tab="${tab}"]`);
    await check(page, `admin-${tab}`);
  }
  if (meetings.length) {
    await page.goto(`${base}/admin/report?meeting=${meetings[0].id}`);
    await page.waitForSelector('body[data-ready]', { timeout: 10000 });
    await check(page, 'report');
  }
  result.ok = Object.values(result.views).every((v) => v.length === 0) && Object.keys(result.views).length >= 9;
} catch (e) {
  result.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result, null, 1));
process.exit(result.ok ? 0 : 1);
