// How every browser suite (tests/browser.mjs, www/e2e/run.mjs, www/e2e/tabs.mjs,
// examples/nextjs/e2e/run.mjs) launches Chromium through playwright-core: Debian's
// /usr/bin/chromium (or $CHROMIUM), headless, nothing downloaded, no background traffic.

/** `chromium.launch()` options; `routed` when the suite serves its pages by request routing. */
export function launchOptions({ routed = false } = {}) {
  return {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
      // Pages answered by request routing have no IP address space, so Chromium's Local Network
      // Access checks would treat them as public and block their socket to 127.0.0.1.
      ...(routed ? ['--disable-features=LocalNetworkAccessChecks'] : []),
    ],
    timeout: 30_000,
  };
}
