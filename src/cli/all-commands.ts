// Every command of the launcher, registered on its program (src/cli/program.ts
// loads this for any command but `files` and the hidden `appliance`, which load
// their own module alone).
import type { Command } from 'commander';
import { registerAppliance } from './commands/appliance.ts';
import { registerAudit } from './commands/audit.ts';
import { registerDemo } from './commands/demo.ts';
import { registerEject } from './commands/eject.ts';
import { registerExec } from './commands/exec.ts';
import { registerConsole } from './commands/console.ts';
import { registerExport } from './commands/export.ts';
import { registerFiles } from './commands/files.ts';
import { registerForget } from './commands/forget.ts';
import { registerImage } from './commands/image.ts';
import { registerImport } from './commands/import.ts';
import { registerGuest } from './commands/guest.ts';
import { registerInitStick } from './commands/init-stick.ts';
import { registerMakeStick } from './commands/make-stick.ts';
import { registerProbe } from './commands/probe.ts';
import { registerReg } from './commands/reg.ts';
import { registerRun } from './commands/run.ts';
import { registerSession } from './commands/session.ts';
import { registerStatus } from './commands/status.ts';
import { registerStop } from './commands/stop.ts';
import { registerUpgrade } from './commands/upgrade.ts';
import { registerUser } from './commands/user.ts';
import { registerTables } from './commands/tables.ts';
import { registerVerify } from './commands/verify.ts';
import type { Output } from './output.ts';

export function registerAll(program: Command, current: () => Output): void {
  registerDemo(program, current);
  registerRun(program, current);
  registerExec(program, current);
  registerConsole(program, current);
  registerStatus(program, current);
  registerProbe(program, current);
  registerStop(program, current);
  registerEject(program, current);
  registerAudit(program, current);
  registerInitStick(program, current);
  registerMakeStick(program, current);
  registerVerify(program, current);
  registerTables(program, current);
  registerUser(program, current);
  registerForget(program, current);
  registerUpgrade(program, current);
  registerReg(program, current);
  registerGuest(program, current);
  registerFiles(program, current);
  registerImage(program, current);
  registerExport(program, current);
  registerImport(program, current);
  registerSession(program);
  registerAppliance(program);
}
