import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { launchChromium } from '../support/chromium.js';
import { pidAlive } from '../support/server-process.js';

describe('launchChromium', () => {
  it('renders a page, then closes, leaving neither process nor profile dir', async () => {
    const browser = await launchChromium();
    const pid = browser.pid;
    try {
      expect(pidAlive(pid)).toBe(true);
      const page = await browser.newPage();
      await page.goto('data:text/html,<title>tendril selftest</title><p>ok</p>');
      expect(await page.title()).toBe('tendril selftest');
    } finally {
      await browser.close();
    }
    expect(pidAlive(pid)).toBe(false);
    expect(existsSync(browser.userDataDir)).toBe(false);
  });
});
