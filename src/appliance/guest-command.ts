// Runs one command in the appliance as root through its exec port and
// collects what it printed: the appliance's own steps (pocketvm-files open,
// close) whose output is small.
import type { ExecService } from '../session/exec-channel.ts';
import { execSpec } from '../session/exec-relay.ts';

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export function runInAppliance(execs: ExecService, argv: string[], stdin?: Buffer): Promise<CommandResult> {
  const [path, ...args] = argv;
  return new Promise((resolve) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const handle = execs.start(execSpec(undefined, { path: path!, args }), {
      onFrame: (frame) => {
        if (frame.type === 'O') out.push(frame.payload);
        else if (frame.type === 'E') err.push(frame.payload);
        else if (frame.type === 'X') {
          const signal = frame.payload.readInt32LE(4);
          resolve({
            exitCode: signal ? 128 + signal : frame.payload.readInt32LE(0),
            stdout: Buffer.concat(out).toString('utf8'),
            stderr: Buffer.concat(err).toString('utf8'),
          });
        } else if (frame.type === 'F')
          resolve({ exitCode: frame.payload.readUInt32LE(0) || 1, stdout: '', stderr: frame.payload.subarray(4).toString('utf8') });
      },
    });
    if (stdin) handle.write(stdin);
    handle.end();
  });
}
