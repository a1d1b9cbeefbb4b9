// bench/guest-ready: issue 19's `ready → running` against a cold boot of the
// same guest, in the same run, on one fresh stick (the default console payload).
// Per round (--runs N, default 3), in turn:
//
//   cold     `guest boot work` from installed: sign-in, the whole launch
//            (stick, host, user disk, channels, QEMU, boot), then halt
//   ready    `guest ready work` first (not timed: the platform set up), then
//            `guest boot work` from ready: continue the held vCPUs until
//            the guest's agent answers (its ready marker); then halt
//
// Prints both as the wall time of the `guest boot` command and the session's
// own figure (cold: launch → ready; from ready: cont → agent answering), the
// medians and the ratio (ready / cold). Never fails on a time.
import { performance } from 'node:perf_hooks';
import { addStickUser, freshStick, launcher, launcherJson, loginArgs } from '../test/integration/harness.ts';
import { benchOptions, median } from './bench-options.ts';

const { runs, json, say } = benchOptions(3);
const PASSPHRASE = 'bench guest ready passphrase';
const SLOW = { timeout: 1_800_000 };

const stick = await freshStick();
const on = ['--stick', stick.root];
const signedIn = { input: `${PASSPHRASE}\n`, ...SLOW };
const must = (done: { exitCode: number; stderr: string }, what: string) => {
  if (done.exitCode !== 0) throw new Error(`${what} failed (exit ${done.exitCode}): ${done.stderr}`);
};
try {
  await addStickUser(stick.root, 'alice', PASSPHRASE);
  for (const args of [
    ['guest', 'create', 'work', '--from', 'default'],
    ['guest', 'install', 'work'],
  ])
    must(await launcher([...args, ...on], SLOW), args.join(' '));
  const cold: Array<{ wallMs: number; sessionMs: number }> = [];
  const fromReady: Array<{ wallMs: number; sessionMs: number; readyWallMs: number }> = [];
  for (let round = 1; round <= runs; round++) {
    say(`round ${round}/${runs}: cold boot`);
    let started = performance.now();
    const booted = await launcherJson<{ readyMs: number }>(['guest', 'boot', 'work', ...loginArgs('alice'), ...on], signedIn);
    must(booted, 'guest boot (cold)');
    cold.push({ wallMs: performance.now() - started, sessionMs: booted.json.readyMs });
    must(await launcher(['guest', 'halt', 'work', ...on], SLOW), 'guest halt');

    say(`round ${round}/${runs}: ready, then boot from ready`);
    started = performance.now();
    must(await launcher(['guest', 'ready', 'work', ...loginArgs('alice'), ...on], signedIn), 'guest ready');
    const readyWallMs = performance.now() - started;
    started = performance.now();
    const resumed = await launcherJson<{ bootMs: number }>(['guest', 'boot', 'work', ...on], SLOW);
    must(resumed, 'guest boot (from ready)');
    fromReady.push({ wallMs: performance.now() - started, sessionMs: resumed.json.bootMs, readyWallMs });
    must(await launcher(['guest', 'halt', 'work', ...on], SLOW), 'guest halt');
  }
  const report = {
    runs,
    load: (await import('node:os')).loadavg()[0] ?? 0,
    coldBootMs: Math.round(median(cold.map((r) => r.wallMs))),
    coldSessionReadyMs: Math.round(median(cold.map((r) => r.sessionMs))),
    readyCommandMs: Math.round(median(fromReady.map((r) => r.readyWallMs))),
    bootFromReadyMs: Math.round(median(fromReady.map((r) => r.wallMs))),
    bootFromReadySessionMs: Math.round(median(fromReady.map((r) => r.sessionMs))),
    ratio: median(fromReady.map((r) => r.wallMs)) / median(cold.map((r) => r.wallMs)),
    rounds: { cold, fromReady },
  };
  if (json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else {
    const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    process.stdout.write(
      `cold boot (baseline)   guest boot from installed: ${s(report.coldBootMs)} (the session's launch → ready: ${s(report.coldSessionReadyMs)})\n`,
    );
    process.stdout.write(
      `ready → running        guest boot from ready:     ${s(report.bootFromReadyMs)} (cont → agent answering: ${s(report.bootFromReadySessionMs)}); guest ready itself took ${s(report.readyCommandMs)}\n`,
    );
    process.stdout.write(`ratio                  ${report.ratio.toFixed(2)} x (ready → running / cold), ${runs} round(s), load ${report.load.toFixed(1)}\n`);
  }
} finally {
  await launcher(['stop', '--force', ...on]);
  await stick.dispose();
}
