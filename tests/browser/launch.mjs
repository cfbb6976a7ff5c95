// Debian's headless Chromium as every scenario starts it: fake camera and microphone,
// no background networking (the machine's network is closed), and the plain-http test
// bridge treated as a secure origin so getUserMedia works.
//
// The fake microphone plays a steady tone from a file written here: Chromium's default
// fake audio is a short beep a second, which the bridge rightly judges silent (it does
// not forward silent microphones), so audio tests would see nothing.
import { chromium } from 'playwright-core';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function toneWav() {
  const rate = 48000, secs = 2, n = rate * secs;
  const buf = Buffer.alloc(44 + n * 2);
  buf.write('RIFF', 0); buf.writeUInt32LE(36 + n * 2, 4); buf.write('WAVE', 8);
  buf.write('fmt ', 12); buf.writeUInt32LE(16, 16); buf.writeUInt16LE(1, 20); buf.writeUInt16LE(1, 22);
  buf.writeUInt32LE(rate, 24); buf.writeUInt32LE(rate * 2, 28); buf.writeUInt16LE(2, 32); buf.writeUInt16LE(16, 34);
  buf.write('data', 36); buf.writeUInt32LE(n * 2, 40);
  // 440 Hz at -20 dBFS: well above the bridge's speech threshold (-50 dBov).
  for (let i = 0; i < n; i++) buf.writeInt16LE(Math.round(3277 * Math.sin(2 * Math.PI * 440 * i / rate)), 44 + i * 2);
  const path = join(tmpdir(), `cauhop-tone-${process.pid}.wav`);
  writeFileSync(path, buf);
  return path;
}

export function launch(base) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      `--use-file-for-fake-audio-capture=${toneWav()}`,
      '--autoplay-policy=no-user-gesture-required',
      `--unsafely-treat-insecure-origin-as-secure=${base}`,
    ],
  });
}

// A browser context for `base`: over the bridge's own HTTPS (a self-signed certificate
// made on its first run) the certificate is accepted as a user does once, and the page
// is then a secure context of its own, with no insecure-origin flag involved.
export function newContext(browser, base, options = {}) {
  return browser.newContext(base.startsWith('https:') ? { ...options, ignoreHTTPSErrors: true } : options);
}
