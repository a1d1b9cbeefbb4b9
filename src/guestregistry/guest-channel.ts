// The launcher's side of the guest registry channel: the virtio-serial port
// org.pocketvm.registry.0, which the guest's `reg` command (payload/rootfs/
// usr/bin/reg) opens. The guest may be hostile, so every request is bounded,
// checked and answered; a bad one gets an error reply, never a crash, and a
// write can only ever reach the user layer.
//
// Framing (docs/registry.md, "The registry inside the guest"), one request per line:
//
//   ID \t VERB \t ARG \t ARG …\n
//
// ID is the caller's own tag ([A-Za-z0-9_.:-], 1–64 characters); arguments
// escape \\ \t \n \r with a backslash, so a key path `Tables\Rules` travels as
// `Tables\\Rules`. The reply is zero or more output lines, then one status line:
//
//   ID \t . \t TEXT\n          a line of output, unescaped (it has no newline)
//   ID \t ok\n                 done
//   ID \t err \t CODE \t MESSAGE\n   failed; CODE is the guest command's exit code
//
// Replies carry the request's ID so that a caller can skip anything left on the
// port by an earlier caller that was killed mid-reply.
import type { Duplex } from 'node:stream';
import { RegistryError } from '../errors.ts';
import type { GuestRegistryQuota } from './guest-quota.ts';
import { NETWORK_KEY, STORAGE_KEY } from './well-known.ts';
import { formatValueText, parseValueText, REG_TYPES, type RegLayer, type RegType, type RegValue } from './value.ts';

export const REGISTRY_PORT_NAME = 'org.pocketvm.registry.0';

/** What the channel needs of a GuestRegistry (src/guestregistry/registry.ts). */
export interface ChannelRegistry {
  get(key: string, name: string): { value: RegValue; layer: RegLayer } | undefined;
  set(layer: 'user', key: string, name: string, value: RegValue): void;
  deleteValue(layer: 'user', key: string, name: string): boolean;
  deleteKey(layer: 'user', key: string): boolean;
  subkeys(key: string): string[];
  values(key: string): Array<{ name: string; value: RegValue; layer: RegLayer }>;
  exportReg(options?: { key?: string; layer?: RegLayer | 'merged'; format?: 'regedit4' | 'v5' }): string;
  /** The registry's file on the host: kept out of what the guest is told. */
  readonly file?: string;
}

/** The guest command's exit codes, sent in `err` replies (docs/registry.md). */
export const GUEST_EXIT = {
  notFound: 1,
  badRequest: 2,
  // 3: no registry in this session (the guest command decides that alone)
  failed: 4,
  // 5: the launcher did not answer (likewise)
} as const;

/** A request line, escapes included. Values up to the registry's 1 MiB limit fit. */
export const MAX_REQUEST_BYTES = 4 * 1024 * 1024;
/** Stop reading requests while this much reply is waiting for the guest. */
const REPLY_HIGH_WATER = 1024 * 1024;
const ID = /^[A-Za-z0-9_.:-]{1,64}$/;

export interface GuestChannelOptions {
  maxRequestBytes?: number;
  /** Told about every request the channel refused or failed (for the session log). */
  onProblem?: (message: string) => void;
  /** What the guest may write (guest-quota.ts); unlimited but for the registry's own limits without. */
  quota?: GuestRegistryQuota;
  /** Told when a set is refused because the guest's room in the registry is full. */
  onFull?: (message: string) => void;
}

export interface GuestChannelService {
  close(): void;
}

class RequestError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

/** Serves the registry on the launcher's end of the port until closed. */
export function serveGuestChannel(stream: Duplex, registry: ChannelRegistry, options: GuestChannelOptions = {}): GuestChannelService {
  const lines = new RequestLines(options.maxRequestBytes ?? MAX_REQUEST_BYTES);
  const pending: Array<string | typeof TOO_LONG> = [];
  let closed = false;
  let waitingForDrain = false;

  const pump = (): void => {
    while (!closed && !waitingForDrain && pending.length > 0) {
      if (stream.writableLength > REPLY_HIGH_WATER) {
        // The guest is not reading its replies: read no more requests until it does.
        waitingForDrain = true;
        stream.pause();
        stream.once('drain', () => {
          waitingForDrain = false;
          if (closed) return;
          stream.resume();
          pump();
        });
        return;
      }
      const line = pending.shift()!;
      if (line === TOO_LONG) options.onProblem?.(`guest registry channel: refused a request longer than ${lines.max} bytes`);
      const reply =
        line === TOO_LONG
          ? status('-', GUEST_EXIT.badRequest, `the request is longer than the channel's limit of ${lines.max} bytes`)
          : answer(line, registry, options.onProblem, options);
      if (reply !== '' && stream.writable) stream.write(reply);
    }
  };

  const onData = (chunk: Buffer): void => {
    pending.push(...lines.push(chunk));
    pump();
  };
  // A late EPIPE (QEMU gone) must not become an uncaught error.
  const onError = (): void => {};
  stream.on('data', onData);
  stream.on('error', onError);

  return {
    close(): void {
      if (closed) return;
      closed = true;
      stream.off('data', onData);
      pending.length = 0;
    },
  };
}

const TOO_LONG = Symbol('too long');

/**
 * Cuts the byte stream into request lines (on 0x0A, which never occurs inside
 * a UTF-8 sequence). A line over the limit is dropped as it arrives, never
 * held, and reported as TOO_LONG once its newline comes.
 */
export class RequestLines {
  readonly max: number;
  #pieces: Buffer[] = [];
  #bytes = 0;
  #dropping = false;

  constructor(max: number) {
    this.max = max;
  }

  push(chunk: Buffer): Array<string | typeof TOO_LONG> {
    const out: Array<string | typeof TOO_LONG> = [];
    let start = 0;
    for (let newline = chunk.indexOf(0x0a, start); newline !== -1; newline = chunk.indexOf(0x0a, start)) {
      const piece = chunk.subarray(start, newline);
      start = newline + 1;
      if (this.#dropping || this.#bytes + piece.length > this.max) {
        out.push(TOO_LONG);
      } else {
        let line = this.#pieces.length === 0 ? piece : Buffer.concat([...this.#pieces, piece]);
        if (line.at(-1) === 0x0d) line = line.subarray(0, -1);
        out.push(line.toString('utf8'));
      }
      this.#pieces = [];
      this.#bytes = 0;
      this.#dropping = false;
    }
    const rest = chunk.subarray(start);
    if (rest.length > 0 && !this.#dropping) {
      if (this.#bytes + rest.length > this.max) {
        this.#dropping = true;
        this.#pieces = [];
        this.#bytes = 0;
      } else {
        this.#pieces.push(Buffer.from(rest));
        this.#bytes += rest.length;
      }
    }
    return out;
  }
}

/** The whole reply to one request line. */
export function answer(
  line: string,
  registry: ChannelRegistry,
  onProblem?: (message: string) => void,
  limits: Pick<GuestChannelOptions, 'quota' | 'onFull'> = {},
): string {
  // An empty line is the guest command clearing what a killed caller left half-written.
  if (line === '') return '';
  const fields = line.split('\t');
  const id = fields[0] ?? '';
  if (!ID.test(id)) {
    onProblem?.('guest registry channel: a request without a valid id was refused');
    return status('-', GUEST_EXIT.badRequest, 'malformed request: a line starts with an id ([A-Za-z0-9_.:-], at most 64) and a tab');
  }
  try {
    const [verb, ...args] = fields.slice(1).map(unescapeField);
    const output = run(verb ?? '', args, registry, limits.quota);
    let reply = '';
    for (const text of output) for (const piece of text.split('\n')) reply += `${id}\t.\t${piece}\n`;
    return `${reply}${id}\tok\n`;
  } catch (error) {
    if (error instanceof RequestError) return status(id, error.code, error.message);
    const message = error instanceof Error ? error.message : String(error);
    const reason = error instanceof RegistryError ? error.details['reason'] : undefined;
    if (reason === 'not-found') return status(id, GUEST_EXIT.notFound, message);
    // The guest's room is full: the request was fine, the registry cannot take it (like a full stick).
    if (reason === 'quota') {
      limits.onFull?.(message);
      return status(id, GUEST_EXIT.failed, message);
    }
    if (reason === 'type' || reason === 'limit' || reason === 'layer') return status(id, GUEST_EXIT.badRequest, message);
    // Busy, read-only, damaged, a full stick, or a bug: the guest learns what, not where.
    onProblem?.(`guest registry channel: a request failed: ${message}`);
    const shown = registry.file ? message.replaceAll(registry.file, 'registry.sqlite') : message;
    return status(id, GUEST_EXIT.failed, `the registry failed: ${shown}`);
  }
}

function status(id: string, code: number, message: string): string {
  return `${id}\terr\t${code}\t${message.replace(/[\r\n\t]+/g, ' ')}\n`;
}

const ESCAPES: Record<string, string> = { '\\': '\\', t: '\t', n: '\n', r: '\r' };

export function escapeField(text: string): string {
  return text.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}

export function unescapeField(field: string): string {
  return field.replace(/\\(.?)/gs, (_, c: string) => {
    const plain = ESCAPES[c];
    if (plain === undefined) throw new RequestError(GUEST_EXIT.badRequest, `malformed request: "\\${c}" is not an escape (only \\\\ \\t \\n \\r are)`);
    return plain;
  });
}

const USAGE: Record<string, string> = {
  get: 'get KEY NAME',
  set: `set KEY NAME TYPE VALUE (TYPE: ${REG_TYPES.join(', ')}; multi-string takes any number of VALUEs)`,
  del: 'del KEY [NAME]',
  ls: 'ls [KEY]',
  export: 'export [KEY]',
};

/**
 * Storage\ holds the limits on what the guest writes: a guest program may not
 * lift its own. Network\ likewise: a guest the person cut off may not
 * reconnect itself at its next boot.
 */
function refuseStorageKey(key: string): void {
  const top = key.split('\\')[0]?.toLowerCase();
  if (top === STORAGE_KEY.toLowerCase()) {
    throw new RequestError(
      GUEST_EXIT.badRequest,
      `${STORAGE_KEY}\\ holds the limits on what the guest writes to the stick; they are set from the host (launcher reg set)`,
    );
  }
  if (top === NETWORK_KEY.toLowerCase()) {
    throw new RequestError(GUEST_EXIT.badRequest, `${NETWORK_KEY}\\ says whether the guest may use the network; it is set from the host (launcher reg set)`);
  }
}

function arity(verb: string, args: string[], min: number, max: number): void {
  if (args.length < min || args.length > max) throw new RequestError(GUEST_EXIT.badRequest, `usage: reg ${USAGE[verb]}`);
}

/** Runs one verb; returns its output lines (each may hold newlines: it is split later). */
function run(verb: string, args: string[], registry: ChannelRegistry, quota: GuestRegistryQuota | undefined): string[] {
  switch (verb) {
    case 'get': {
      arity(verb, args, 2, 2);
      const [key, name] = args as [string, string];
      const found = registry.get(key, name);
      if (!found) throw new RequestError(GUEST_EXIT.notFound, `${describe(key, name)} is not set`);
      return found.value.type === 'multi-string' ? found.value.data : [formatValueText(found.value)];
    }
    case 'set': {
      if (args.length < 3) arity(verb, args, 4, 4);
      const [key, name, typeName, ...rest] = args as [string, string, string, ...string[]];
      refuseStorageKey(key);
      const type = REG_TYPES.find((t) => t === typeName.toLowerCase());
      if (!type) throw new RequestError(GUEST_EXIT.badRequest, `"${typeName}" is not a type; the types are ${REG_TYPES.join(', ')}`);
      if (type !== 'multi-string') arity(verb, args, 4, 4);
      // The guest writes the user's own layer, and no other.
      const value = parseValue(type, rest);
      const counted = quota?.checkSet(key, name, value);
      registry.set('user', key, name, value);
      counted?.();
      return [];
    }
    case 'del': {
      arity(verb, args, 1, 2);
      const [key, name] = args as [string, string | undefined];
      refuseStorageKey(key);
      const freed = quota ? (name === undefined ? quota.beforeDeleteKey(key) : quota.beforeDeleteValue(key, name)) : undefined;
      const deleted = name === undefined ? registry.deleteKey('user', key) : registry.deleteValue('user', key, name);
      if (deleted) freed?.();
      if (!deleted) throw new RequestError(GUEST_EXIT.notFound, `${name === undefined ? `the key ${key}` : describe(key, name)} is not in your layer`);
      return [];
    }
    case 'ls': {
      arity(verb, args, 0, 1);
      const key = args[0] ?? '';
      const subkeys = registry.subkeys(key);
      const values = key === '' ? [] : registry.values(key);
      return [
        ...subkeys.map((sub) => `${sub}\\`),
        ...values.map((v) => [escapeField(v.name), v.value.type, v.layer, escapeField(formatValueText(v.value))].join('\t')),
      ];
    }
    case 'export': {
      arity(verb, args, 0, 1);
      const text = registry.exportReg({ ...(args[0] ? { key: args[0] } : {}), layer: 'merged', format: 'v5' });
      return [text.replace(/\r?\n$/, '').replace(/\r\n/g, '\n')];
    }
    default:
      throw new RequestError(GUEST_EXIT.badRequest, `"${verb}" is not a request; they are ${Object.keys(USAGE).join(', ')}`);
  }
}

function parseValue(type: RegType, texts: string[]): RegValue {
  if (type === 'multi-string') return { type, data: texts };
  return parseValueText(type, texts[0] ?? '');
}

function describe(key: string, name: string): string {
  return name === '' ? `the default value of ${key}` : `${key} ${name}`;
}
