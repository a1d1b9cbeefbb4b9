// Named points where a test can kill this process outright, as a power cut or
// `kill -9` would: the fault-injection tests (test/guests/fault-injection.test.ts)
// set POCKETVM_FAILPOINT to one name and check that what is left on the stick
// is a state the next command recovers. Unset (always, outside those tests),
// a failpoint costs one string comparison.
const armed = process.env['POCKETVM_FAILPOINT'];

/** SIGKILLs this process if the armed failpoint is `name`. */
export function failpoint(name: string): void {
  if (armed === name) process.kill(process.pid, 'SIGKILL');
}
