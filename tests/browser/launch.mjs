// Debian's headless Chromium as every scenario starts it: fake camera and microphone,
// no background networking (the machine's network is closed), and the plain-http test
// bridge treated as a secure origin so getUserMedia works.
import { chromium } from 'playwright-core';

export function launch(base) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      '--autoplay-policy=no-user-gesture-required',
      `--unsafely-treat-insecure-origin-as-secure=${base}`,
    ],
  });
}
