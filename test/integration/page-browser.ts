// Shared by the console page's browser tests and bench/console-page.ts:
// Debian's Chromium driven through puppeteer-core (never a browser download),
// and `launcher run --display page` started as a person would, its address
// read from what it prints.
import { existsSync } from 'node:fs';
import { execa, type ResultPromise } from 'execa';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { launcherPath, waitUntil } from './harness.ts';

export const CHROMIUM = '/usr/bin/chromium';
export const hasChromium = existsSync(CHROMIUM);

export async function startChromium(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start.
    args: ['--no-sandbox', '--disable-gpu', '--window-size=1024,768'],
    defaultViewport: { width: 1024, height: 768 },
    // A guest booting under TCG on a loaded machine takes minutes: a wait may outlast puppeteer's 3-minute default.
    protocolTimeout: 900_000,
  });
}

export interface PageRun {
  run: ResultPromise;
  /** The address with its one-time token, as the launcher printed it. */
  firstAddress: string;
  origin: string;
  stderr: () => string;
}

/** `launcher run --display page ...` with no browser opened; resolves once it prints the page's address. */
export async function startPageRun(args: string[], env: Record<string, string> = {}, input?: string): Promise<PageRun> {
  const run = execa(launcherPath, ['run', '--display', 'page', ...args], {
    reject: false,
    ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
    env: { NO_COLOR: '1', POCKETVM_OPEN_PAGE: '0', ...env },
  });
  let stderr = '';
  let exited = false;
  void run.then(() => (exited = true));
  run.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const address = () => /the console page: (http:\/\/127\.0\.0\.1:\d+\/\?t=[A-Za-z0-9_-]+)/.exec(stderr)?.[1];
  if (!(await waitUntil(() => address() !== undefined || exited, 60_000, 50))) throw new Error(`no page address:\n${stderr}`);
  const firstAddress = address();
  if (!firstAddress) throw new Error(`the launcher ended before serving the page:\n${stderr}`);
  return { run, firstAddress, origin: new URL(firstAddress).origin, stderr: () => stderr };
}

/** Signs in on the page; resolves once the sign-in answered (the page shows the error or moves on). */
export async function signInOnPage(page: Page, passphrase: string): Promise<string> {
  await page.waitForSelector('body[data-phase="sign-in"]', { timeout: 30_000 });
  await page.type('#passphrase', passphrase);
  await page.click('#sign-in-button');
  // Browser-side code as strings: this project's TypeScript has no DOM types.
  await page.waitForFunction("document.body.dataset.phase !== 'sign-in' || !['', 'checking…'].includes(document.getElementById('sign-in-error').textContent)", {
    timeout: 60_000,
  });
  return (await page.evaluate("document.getElementById('sign-in-error').textContent")) as string;
}

/** Characters that need Shift on a US keyboard: the keys are sent as scancodes (no layout guessed), so Shift is pressed as a person would. */
const SHIFTED: Record<string, string> = { '>': 'Period', '<': 'Comma', '|': 'Backslash', _: 'Minus', ':': 'Semicolon', '"': 'Quote' };

export async function typeOnScreen(page: Page, text: string): Promise<void> {
  for (const char of text) {
    const code = SHIFTED[char];
    if (code) {
      await page.keyboard.down('Shift');
      await page.keyboard.press(code as 'Period');
      await page.keyboard.up('Shift');
    } else if (char === '\n') await page.keyboard.press('Enter');
    else await page.keyboard.type(char);
  }
}

/** A value of the page, by an expression evaluated in it. */
export async function inPage<T>(page: Page, expression: string): Promise<T> {
  return (await page.evaluate(expression)) as T;
}

/** How many pixels of the screen's canvas are not black (the guest has drawn something). */
export async function litPixels(page: Page): Promise<number> {
  return (await page.evaluate(`(() => {
    const canvas = document.querySelector('#screen canvas');
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let lit = 0;
    for (let i = 0; i < data.length; i += 4) if (data[i] + data[i + 1] + data[i + 2] > 60) lit++;
    return lit;
  })()`)) as number;
}
