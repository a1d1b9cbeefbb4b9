// One session's store opens against a shared anchor, for
// test/dyntable/anchor-writers.test.ts: from a given wall-clock instant,
// opens `count` stores named `<who>-<i>` (advanceStore: read, rewrite, take, rewrite).
import { advanceStore } from '../../src/dyntable/rollback-anchor.ts';

const [anchorPath, who, startAt, count] = process.argv.slice(2) as [string, string, string, string];
const key = Buffer.alloc(32, 7);
await new Promise((resolve) => setTimeout(resolve, Math.max(0, Number(startAt) - Date.now())));
for (let i = 0; i < Number(count); i++) advanceStore(anchorPath, key, `${who}-${i}`, `${who}-${i}/layer.sqlite`, undefined, false, () => {});
