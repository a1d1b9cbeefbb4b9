// The background builder of the integration tier's slow fixtures
// (fixture-prefetch.ts): each in turn, released as soon as it is made or
// has failed; what each build says goes to .cache/fixture-prefetch.log.
import { join } from 'node:path';
import { buildImage } from '../../build/image.ts';
import { adaptImage } from './adapt-image.ts';
import { buildImageCorpus } from './corpus.ts';
import { type PrefetchedFixture, PREFETCHED, releaseFixture } from './fixture-prefetch.ts';

const log = (name: string) => (message: string) => process.stdout.write(`${new Date().toISOString()} ${name}: ${message}\n`);

const builds: Record<PrefetchedFixture, () => Promise<unknown>> = {
  'desktop-image': () =>
    buildImage({
      root: join(import.meta.dirname, '..', '..'),
      guest: 'desktop',
      onProgress: (event) => log('desktop-image')(`${event.step}: ${event.message}`),
    }),
  'adapt-image': async () => adaptImage(log('adapt-image')),
  'images-corpus': async () => buildImageCorpus(log('images-corpus')),
};

// Stopped by npm test when the tests are done first: no claim outlives the builder.
process.once('SIGTERM', () => {
  for (const { name } of PREFETCHED) releaseFixture(name);
  process.exit(143);
});

let failed = false;
for (const { name } of PREFETCHED) {
  const started = performance.now();
  try {
    await builds[name]();
    log(name)(`ready after ${((performance.now() - started) / 1000).toFixed(0)} s`);
  } catch (error) {
    failed = true;
    log(name)(
      `failed after ${((performance.now() - started) / 1000).toFixed(0)} s (its test builds it again): ${error instanceof Error ? error.message : String(error)}`,
    );
  } finally {
    releaseFixture(name);
  }
}
process.exitCode = failed ? 1 : 0;
