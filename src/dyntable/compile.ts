// Rules from the built-in defaults, the payload manifest and the user's
// registry compile into ONE immutable table for one host. Every rule either
// becomes an entry, waits for the person's confirmation (`waiting`), or is
// listed in `skipped` with the reason; conflicts and surprises are listed in
// `problems`. Nothing here touches the guest.
//
// The guest writes its own registry, so a rule it wrote must never widen
// what it sees: a FET rule from the registry, and any rule mapping a host
// folder outside the known folders, applies only once the person has
// confirmed it at the launcher (`launcher tables confirm`, a confirmation
// signed with a key only their passphrase leads to: confirmations.ts).
// Pseudo and device file systems are never served (pseudo-filesystems.ts).
import type { GuestManifest } from '../payload/guest-manifest.ts';
import { defaultExclusions, ExclusionMatcher } from './exclusions.ts';
import { type HostPathRules, isHostPathWithin } from './host-paths.ts';
import { KNOWN_FOLDER_IDS, knownFolderGuestPath } from './known-folders.ts';
import { expandHostTemplate, type HostContext } from './name-mapping.ts';
import { deviceNamespaceReason } from './pseudo-filesystems.ts';
import { ruleFingerprint } from './registry-rules.ts';
import {
  type CompiledTable,
  deepFreeze,
  type EntryTarget,
  isGuestPathWithin,
  NAMESPACE_MOUNT_POINT,
  normalizeGuestPath,
  ORIGIN_RANK,
  type RuleSpec,
  type SkippedRule,
  type TableEntry,
  type TableProblem,
  type WaitingRule,
} from './rules.ts';

/** The defaults: each known folder the host has, copy-on-write, under /host/<Name>. */
export function builtinRules(mountPoint = NAMESPACE_MOUNT_POINT): RuleSpec[] {
  return KNOWN_FOLDER_IDS.map((id) => ({
    name: id,
    table: 'FET',
    guestPath: knownFolderGuestPath(mountPoint, id),
    hostPath: `{${id}}`,
    mode: 'cow',
    origin: 'builtin',
    source: 'built-in',
    description: `the host's ${id} folder`,
  }));
}

/** The rules a payload manifest brings (`tables` in guest.json). */
export function manifestRules(manifest: Pick<GuestManifest, 'tables'>, source: string): RuleSpec[] {
  return (manifest.tables ?? []).map((rule) => ({
    name: rule.name,
    table: rule.table,
    guestPath: rule.guestPath,
    ...(rule.hostPath === undefined ? {} : { hostPath: rule.hostPath }),
    ...(rule.mode === undefined ? {} : { mode: rule.mode }),
    ...(rule.description === undefined ? {} : { description: rule.description }),
    origin: 'manifest',
    source,
  }));
}

export interface CompileOptions {
  /** Where the guest mounts the namespace (default /host). */
  mountPoint?: string;
  /** For display of FIT targets: users/<stickUser>/files. */
  stickUser?: string;
}

interface Candidate {
  spec: RuleSpec;
  id: string;
  guestPath: string;
  target: EntryTarget;
  mode: TableEntry['mode'];
}

/** True when `hostPath` (or its real path) is at or inside one of this host's known folders. */
function withinKnownFolder(host: HostContext, hostPath: string, real: string | undefined, rules: HostPathRules): boolean {
  for (const folder of Object.values(host.knownFolders.folders)) {
    if (!folder) continue;
    const roots = [folder.hostPath, host.fs.realpath(folder.hostPath)].filter((p): p is string => p !== undefined);
    if (roots.some((root) => isHostPathWithin(hostPath, root, rules) && (real === undefined || isHostPathWithin(real, root, rules)))) return true;
  }
  return false;
}

/**
 * Why a FET rule needs the person's confirmation before it applies, or
 * undefined when it does not: built-in rules are the known folders
 * themselves; a confirmed rule has been confirmed.
 */
function confirmationNeeded(spec: RuleSpec, insideKnownFolder: boolean): string | undefined {
  if (spec.origin === 'builtin' || spec.origin === 'confirmed' || spec.confirmed) return undefined;
  if (spec.origin === 'registry')
    return insideKnownFolder ? 'a FET rule from the guest registry' : 'a FET rule from the guest registry, outside every known folder';
  return insideKnownFolder ? undefined : 'a rule for a host folder outside every known folder';
}

/** Compile rules for one host into the immutable table. */
export function compileTable(host: HostContext, rules: readonly RuleSpec[], options: CompileOptions = {}): CompiledTable {
  const mountPoint = options.mountPoint ?? NAMESPACE_MOUNT_POINT;
  const skipped: SkippedRule[] = [];
  const problems: TableProblem[] = [];
  const waiting: WaitingRule[] = [];
  const candidates: Candidate[] = [];
  const seenIds = new Set<string>();
  const exclusions = defaultExclusions({
    os: host.os,
    pathStyle: host.pathStyle,
    home: host.home,
    env: host.env,
    ...(host.stickRoot === undefined ? {} : { stickRoot: host.stickRoot }),
    ...(host.pseudoMounts === undefined ? {} : { pseudoMounts: host.pseudoMounts }),
  });
  const rulesOfHost = { style: host.pathStyle, caseInsensitive: host.caseInsensitive };
  const matcher = new ExclusionMatcher(exclusions, rulesOfHost);

  const skip = (spec: RuleSpec, id: string, guestPath: string, reason: string, severity?: 'error' | 'warning') => {
    skipped.push({ id, guestPath, origin: spec.origin, source: spec.source, reason });
    // A missing known folder is normal; the person's own rules deserve a word.
    if (severity) problems.push({ severity, rules: [id], message: `${id} (${spec.source}): ${reason}` });
  };

  for (const spec of rules) {
    let id = `${spec.origin}:${spec.name}`;
    if (seenIds.has(id)) {
      let n = 2;
      while (seenIds.has(`${id}#${n}`)) n++;
      problems.push({ severity: 'error', rules: [id], message: `two ${spec.origin} rules are named ${spec.name}; the second is ${id}#${n}` });
      id = `${id}#${n}`;
    }
    seenIds.add(id);
    const guestPath = normalizeGuestPath(spec.guestPath);
    const userRule = spec.origin !== 'builtin';
    if (guestPath === undefined) {
      skip(spec, id, spec.guestPath, `guest path "${spec.guestPath}" must be absolute, without ..`, 'error');
      continue;
    }
    if (!isGuestPathWithin(guestPath, mountPoint)) {
      skip(spec, id, guestPath, `guest path ${guestPath} is outside the namespace (${mountPoint})`, 'error');
      continue;
    }
    if (spec.table === 'FIT') {
      if (spec.hostPath !== undefined)
        problems.push({ severity: 'warning', rules: [id], message: `${id}: a FIT entry reads from the stick; its HostPath ${spec.hostPath} is ignored` });
      const display = `stick users/${options.stickUser ?? '<name>'}/files${guestPath}`;
      candidates.push({ spec, id, guestPath, target: { kind: 'stick', store: 'files', display }, mode: 'stick' });
      continue;
    }
    if (spec.hostPath === undefined) {
      skip(spec, id, guestPath, 'a FET entry needs a host path', 'error');
      continue;
    }
    const device = deviceNamespaceReason(spec.hostPath, host.pathStyle);
    if (device) {
      skip(spec, id, guestPath, `${spec.hostPath} is ${device}: no rule can expose it`, 'error');
      continue;
    }
    const expansion = expandHostTemplate(spec.hostPath, host);
    if (!expansion.ok) {
      skip(spec, id, guestPath, expansion.reason, userRule ? 'warning' : undefined);
      continue;
    }
    const expandedDevice = deviceNamespaceReason(expansion.hostPath, host.pathStyle);
    if (expandedDevice) {
      skip(spec, id, guestPath, `${expansion.hostPath} is ${expandedDevice}: no rule can expose it`, 'error');
      continue;
    }
    const kind = host.fs.kind(expansion.hostPath);
    if (kind !== 'dir') {
      const reason =
        kind === 'missing' ? `${expansion.hostPath} does not exist on this host` : `${expansion.hostPath} is not a folder (FET entries map folders)`;
      skip(spec, id, guestPath, reason, userRule ? 'warning' : undefined);
      continue;
    }
    const real = host.fs.realpath(expansion.hostPath);
    const why = confirmationNeeded(spec, withinKnownFolder(host, expansion.hostPath, real, rulesOfHost));
    if (why) {
      const hits = [...new Set([...matcher.containing(expansion.hostPath), ...(real ? matcher.containing(real) : [])])];
      const never = hits.find((e) => !e.exposable);
      if (never) {
        // Confirming would not help: say so now rather than ask.
        skip(spec, id, guestPath, `${expansion.hostPath} is excluded: ${never.reason} (${never.hostPath}); no rule can expose it`, 'error');
        continue;
      }
      const lifts = hits.map((e) => e.id);
      const mode = spec.mode ?? 'cow';
      const inside = exclusions.filter((e) => !e.exposable && isHostPathWithin(e.hostPath.replace(/[\\/]\*$/, ''), real ?? expansion.hostPath, rulesOfHost));
      const exposes = [
        `the host folder ${expansion.hostPath}${real && real !== expansion.hostPath ? ` (really ${real})` : ''} and everything in it`,
        mode === 'readonly' ? 'read-only' : 'copy-on-write',
        ...(lifts.length ? [`including what is excluded by default: ${hits.map((e) => `${e.reason} (${e.hostPath})`).join(', ')}`] : []),
        ...(inside.length ? [`except ${inside.map((e) => e.hostPath).join(', ')}, which are never served`] : []),
      ].join(', ');
      waiting.push({
        id,
        name: spec.name,
        table: spec.table,
        guestPath,
        origin: spec.origin,
        source: spec.source,
        template: spec.hostPath,
        hostPath: expansion.hostPath,
        mode,
        fingerprint: ruleFingerprint(spec),
        why,
        exposes,
        lifts,
      });
      continue;
    }
    candidates.push({ spec, id, guestPath, target: { kind: 'host', template: spec.hostPath, hostPath: expansion.hostPath }, mode: spec.mode ?? 'cow' });
  }

  // Precedence: per guest path, the highest origin wins; two rules of that
  // origin for one path are a conflict, and neither applies (the next origin
  // down does, if any).
  const byPath = new Map<string, Candidate[]>();
  for (const c of candidates) byPath.set(c.guestPath, [...(byPath.get(c.guestPath) ?? []), c]);
  const winners: Array<{ candidate: Candidate; overrides: string[] }> = [];
  for (const [guestPath, group] of byPath) {
    const ranks = [...new Set(group.map((c) => ORIGIN_RANK[c.spec.origin]))].sort((a, b) => b - a);
    let winner: Candidate | undefined;
    for (const rank of ranks) {
      const top = group.filter((c) => ORIGIN_RANK[c.spec.origin] === rank);
      if (top.length === 1) {
        winner = top[0];
        break;
      }
      const ids = top.map((c) => c.id);
      problems.push({ severity: 'error', rules: ids, message: `conflict: ${ids.join(' and ')} all claim ${guestPath}; none of them applies` });
      for (const c of top)
        skipped.push({
          id: c.id,
          guestPath,
          origin: c.spec.origin,
          source: c.spec.source,
          reason: `conflicts with ${ids.filter((i) => i !== c.id).join(', ')} for ${guestPath}`,
        });
    }
    if (!winner) continue;
    const overridden = group.filter((c) => ORIGIN_RANK[c.spec.origin] < ORIGIN_RANK[winner.spec.origin]);
    for (const c of overridden)
      skipped.push({
        id: c.id,
        guestPath,
        origin: c.spec.origin,
        source: c.spec.source,
        reason: `overridden by ${winner.id} (${winner.spec.origin} rules take precedence over ${c.spec.origin} rules)`,
      });
    winners.push({ candidate: winner, overrides: overridden.map((c) => c.id) });
  }

  // Exclusions: a FET entry whose host path lies at or inside an excluded
  // path applies only if it is confirmed (and the exclusion can be lifted).
  const entries: TableEntry[] = [];
  for (const { candidate: c, overrides } of winners) {
    const exposes: string[] = [];
    if (c.target.kind === 'host') {
      const real = host.fs.realpath(c.target.hostPath);
      const hits = [...matcher.containing(c.target.hostPath), ...(real ? matcher.containing(real) : [])];
      const confirmed = c.spec.origin === 'confirmed' || c.spec.confirmed === true;
      const blocking = hits.filter((e) => !(confirmed && e.exposable));
      if (blocking.length > 0) {
        const e = blocking[0]!;
        const via = real && !matcher.containing(c.target.hostPath).includes(e) ? ` (through the symlink to ${real})` : '';
        const how = e.exposable ? 'only a rule confirmed with `launcher tables confirm` can expose it' : 'no rule can expose it';
        skip(
          c.spec,
          c.id,
          c.guestPath,
          `${c.target.hostPath}${via} is excluded: ${e.reason} (${e.hostPath}); ${how}`,
          c.spec.origin === 'builtin' ? 'warning' : 'error',
        );
        continue;
      }
      for (const e of hits) if (!exposes.includes(e.id)) exposes.push(e.id);
    }
    entries.push({
      id: c.id,
      name: c.spec.name,
      table: c.spec.table,
      guestPath: c.guestPath,
      target: c.target,
      mode: c.mode,
      origin: c.spec.origin,
      source: c.spec.source,
      ...(c.spec.description === undefined ? {} : { description: c.spec.description }),
      exposes,
      overrides,
    });
  }
  entries.sort((a, b) => (a.guestPath < b.guestPath ? -1 : a.guestPath > b.guestPath ? 1 : 0));

  // The same host files under two unrelated guest paths: legal, but changes
  // through one are not seen through the other (each has its own upper layer
  // path), so say so.
  const fet = entries.filter((e): e is TableEntry & { target: { kind: 'host'; hostPath: string } } => e.target.kind === 'host');
  for (const a of fet) {
    for (const b of fet) {
      if (a === b || !isHostPathWithin(a.target.hostPath, b.target.hostPath, rulesOfHost)) continue;
      if (a.guestPath !== b.guestPath && isGuestPathWithin(a.guestPath, b.guestPath)) {
        // Nested the same way on both sides only if the relative paths agree.
        const hostRel = a.target.hostPath.slice(b.target.hostPath.length).replace(/[\\/]+/g, '/');
        if (a.guestPath.slice(b.guestPath.length).toLowerCase() === hostRel.toLowerCase()) continue;
      }
      problems.push({
        severity: 'warning',
        rules: [a.id, b.id],
        message: `${a.id} (${a.guestPath}) and ${b.id} (${b.guestPath}) show the same host files (${a.target.hostPath}); a change made through one is not seen through the other`,
      });
    }
  }

  return deepFreeze({
    mountPoint,
    host: { os: host.os, pathStyle: host.pathStyle, home: host.home, user: host.user, caseInsensitive: host.caseInsensitive },
    entries,
    exclusions,
    skipped,
    waiting,
    problems,
  });
}
