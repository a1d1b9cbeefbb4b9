// Pieces the host adapters share: reading the proxy from the environment,
// shell-style KEY=value files, and naming keyboard layouts the way a guest
// understands them (XKB names: us, de, gb, fr …).
import type { ProxyFacts } from './host-profile.ts';

/** `KEY="value"` lines (os-release, /etc/default/keyboard, vconsole.conf, locale.conf). */
export function parseKeyValueFile(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const match = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!match) continue;
    let value = match[2]!.trim();
    if ((value.startsWith('"') && value.endsWith('"')) || (value.startsWith("'") && value.endsWith("'"))) value = value.slice(1, -1);
    values[match[1]!] = value;
  }
  return values;
}

/** `name: value` lines (sysctl, sw_vers, vm_stat, scutil). */
export function parseColonLines(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at <= 0) continue;
    values[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return values;
}

/** Credentials in a proxy URL never leave the host's environment: `http://u:p@h:3128` → `http://u:***@h:3128`. */
export function redactProxy(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/)?([^/@:]+):([^/@]*)@/i, (_all, scheme: string | undefined, user: string) => `${scheme ?? ''}${user}:***@`);
}

function splitList(value: string | undefined, separator: RegExp): string[] {
  return (value ?? '')
    .split(separator)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** http_proxy / https_proxy / all_proxy / no_proxy (either case); null when none is set. */
export function proxyFromEnv(env: Readonly<Record<string, string | undefined>>): ProxyFacts | null {
  const pick = (name: string) => env[name] || env[name.toUpperCase()] || undefined;
  const all = pick('all_proxy');
  const http = pick('http_proxy') ?? all;
  const https = pick('https_proxy') ?? all;
  const noProxy = splitList(pick('no_proxy'), /,/);
  if (!http && !https && noProxy.length === 0) return null;
  return { http: http ? redactProxy(http) : null, https: https ? redactProxy(https) : null, noProxy, autoConfigUrl: null, source: 'env' };
}

export const NO_PROXY: ProxyFacts = { http: null, https: null, noProxy: [], autoConfigUrl: null, source: 'none' };

/** An IANA zone name, as a guest's /usr/share/zoneinfo knows them (no paths, no `..`). */
export function ianaZone(value: string | undefined | null): string | null {
  if (!value) return null;
  const name = value
    .trim()
    .replace(/^:/, '')
    .replace(/^.*\/zoneinfo\//, '');
  return /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/.test(name) ? name : null;
}

/**
 * Windows keyboard layout ids (KLID, HKCU\Keyboard Layout\Preload) → XKB layout
 * and variant. The full KLID first, then its language (low four digits).
 */
const WINDOWS_LAYOUTS: Record<string, [string, string | null]> = {
  '00000409': ['us', null],
  '00020409': ['us', 'intl'],
  '00010409': ['us', 'dvorak'],
  '00000809': ['gb', null],
  '00001809': ['ie', null],
  '00000407': ['de', null],
  '00000807': ['ch', null],
  '0000100c': ['ch', 'fr'],
  '00000c07': ['at', null],
  '0000040c': ['fr', null],
  '0000080c': ['be', null],
  '00000813': ['be', null],
  '00000410': ['it', null],
  '0000040a': ['es', null],
  '0000080a': ['latam', null],
  '00000816': ['pt', null],
  '00000416': ['br', null],
  '00010416': ['br', null],
  '00000413': ['nl', null],
  '00000406': ['dk', null],
  '0000041d': ['se', null],
  '00000414': ['no', null],
  '0000040b': ['fi', null],
  '0000040f': ['is', null],
  '00000415': ['pl', null],
  '00000405': ['cz', null],
  '0000041b': ['sk', null],
  '0000040e': ['hu', null],
  '00000418': ['ro', null],
  '0000041a': ['hr', null],
  '00000424': ['si', null],
  '00000402': ['bg', null],
  '00000419': ['ru', null],
  '00000422': ['ua', null],
  '00000408': ['gr', null],
  '0000041f': ['tr', null],
  '0000040d': ['il', null],
  '00000411': ['jp', null],
  '00000412': ['kr', null],
  '00000425': ['ee', null],
  '00000426': ['lv', null],
  '00000427': ['lt', null],
  '00001009': ['ca', null],
  '00000c0c': ['ca', 'fr-legacy'],
  '00011009': ['ca', 'multix'],
};

export function xkbFromWindowsKlid(klid: string): { layout: string; variant: string | null } | null {
  const id = klid.trim().toLowerCase();
  if (!/^[0-9a-f]{8}$/.test(id)) return null;
  const exact = WINDOWS_LAYOUTS[id];
  if (exact) return { layout: exact[0], variant: exact[1] };
  // The low word is the language: 00010407 (German IBM) is still a German layout.
  const byLanguage = WINDOWS_LAYOUTS[`0000${id.slice(4)}`];
  return byLanguage ? { layout: byLanguage[0], variant: null } : null;
}

/** macOS input source ids (`com.apple.keylayout.German`) → XKB layout and variant. */
const MAC_LAYOUTS: Record<string, [string, string | null]> = {
  US: ['us', null],
  ABC: ['us', null],
  'USInternational-PC': ['us', 'intl'],
  Dvorak: ['us', 'dvorak'],
  Colemak: ['us', 'colemak'],
  British: ['gb', null],
  'British-PC': ['gb', null],
  Irish: ['ie', null],
  German: ['de', null],
  Austrian: ['at', null],
  'Swiss German': ['ch', null],
  SwissFrench: ['ch', 'fr'],
  French: ['fr', 'mac'],
  'French-PC': ['fr', null],
  Belgian: ['be', null],
  Italian: ['it', null],
  'Italian-Pro': ['it', null],
  Spanish: ['es', null],
  'Spanish-ISO': ['es', null],
  LatinAmerican: ['latam', null],
  Portuguese: ['pt', null],
  Brazilian: ['br', null],
  'Brazilian-ABNT2': ['br', null],
  Dutch: ['nl', null],
  Danish: ['dk', null],
  Swedish: ['se', null],
  'Swedish-Pro': ['se', null],
  Norwegian: ['no', null],
  Finnish: ['fi', null],
  Icelandic: ['is', null],
  Polish: ['pl', null],
  PolishPro: ['pl', null],
  Czech: ['cz', null],
  'Czech-QWERTY': ['cz', 'qwerty'],
  Slovak: ['sk', null],
  Hungarian: ['hu', null],
  Romanian: ['ro', null],
  Croatian: ['hr', null],
  Slovenian: ['si', null],
  Bulgarian: ['bg', null],
  Russian: ['ru', null],
  'Russian-Phonetic': ['ru', 'phonetic'],
  Ukrainian: ['ua', null],
  Greek: ['gr', null],
  'Turkish-QWERTY-PC': ['tr', null],
  Turkish: ['tr', 'f'],
  Hebrew: ['il', null],
  Estonian: ['ee', null],
  Latvian: ['lv', null],
  Lithuanian: ['lt', null],
  'Canadian-CSA': ['ca', null],
  CanadianFrench: ['ca', 'fr-legacy'],
};

export function xkbFromMacInputSource(id: string): { layout: string; variant: string | null } | null {
  const match = /^com\.apple\.keylayout\.(.+)$/.exec(id.trim());
  const entry = match ? MAC_LAYOUTS[match[1]!] : undefined;
  return entry ? { layout: entry[0], variant: entry[1] } : null;
}

/** The first of a comma-separated XKB list (`de,us` → `de`). */
export function firstOfList(value: string | undefined): string | null {
  const first = value?.split(',')[0]?.trim();
  return first ? first : null;
}
