// `launcher exec` streams over its own port (src/session/exec-channel.ts), in every session.
import { ExecService } from '../exec-channel.ts';
import type { LaunchFeature } from '../launch/feature.ts';

export function execFeature(): { feature: LaunchFeature; execs: ExecService } {
  const execs = new ExecService();
  return { feature: { name: 'exec', channels: [execs.channel()] }, execs };
}
