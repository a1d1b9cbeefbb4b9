// What the guest says about itself, through the agent: the payload's
// `pocketvm-facts` tool prints one line of JSON.
import { z } from 'zod';
import { GuestFailedError } from '../errors.ts';
import type { GuestAgentClient } from '../vmm/guest-agent-client.ts';

export const GuestFactsSchema = z.object({
  kernel: z.string(),
  uptimeSeconds: z.number(),
  memTotalKiB: z.number(),
  memAvailableKiB: z.number(),
  cpus: z.number(),
  hostname: z.string(),
});

export type GuestFacts = z.infer<typeof GuestFactsSchema>;

export const FACTS_TOOL = '/usr/bin/pocketvm-facts';

export async function readGuestFacts(agent: GuestAgentClient): Promise<GuestFacts> {
  const result = await agent.run(FACTS_TOOL, [], { timeoutMs: 30_000 });
  const text = result.stdout.toString('utf8').trim();
  if (result.exitCode !== 0)
    throw new GuestFailedError(`${FACTS_TOOL} failed in the guest (exit ${result.exitCode}): ${result.stderr.toString('utf8').trim()}`);
  const parsed = GuestFactsSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new GuestFailedError(`${FACTS_TOOL} printed unexpected output: ${text.slice(0, 200)}`);
  return parsed.data;
}
