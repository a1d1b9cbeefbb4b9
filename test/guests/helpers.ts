// A stick for the guest tests: made by initStick with the built default
// payload (the real files install checks), in a temporary folder.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { sourcePayloadRoot } from '../../src/cli/bootstrap.ts';
import { replaceFile } from '../../src/primitives/atomic-replace.ts';
import { initStick } from '../../src/stick/init-stick.ts';
import type { StickLayout } from '../../src/stick/layout.ts';
import { processStartTicks } from '../../src/primitives/process-start.ts';
import { type LockHolder } from '../../src/stick/lock.ts';

export const payloadBuilt = (): boolean => existsSync(join(sourcePayloadRoot, 'default', 'SHA256SUMS'));

export async function makeStick(prefix: string): Promise<{ layout: StickLayout; remove: () => Promise<void> }> {
  const parent = await mkdtemp(join(tmpdir(), prefix));
  const layout = await initStick({ root: join(parent, 'stick'), sourcePayloadRoot, guests: ['default'], version: 'test' });
  return { layout, remove: () => rm(parent, { recursive: true, force: true }) };
}

/**
 * The stick's session lock as a live session running `guest` writes it; held
 * by this (live) test process, so reconcile takes it for a real session.
 */
export async function holdSession(layout: StickLayout, guest: string, state: LockHolder['state']): Promise<void> {
  const processStart = processStartTicks(process.pid);
  const holder: LockHolder = {
    pid: process.pid,
    hostname: hostname(),
    command: 'run',
    startedAt: new Date().toISOString(),
    guest,
    ...(state ? { state } : {}),
    ...(processStart === undefined ? {} : { processStart }),
  };
  await replaceFile(layout.lockFile, JSON.stringify(holder));
}
