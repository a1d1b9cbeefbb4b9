// A cloud-init NoCloud seed (docs/export.md, "The targets"): meta-data (instance
// id, host name), user-data (#cloud-config: host name, the user with sudo and
// SSH keys) and network-config (version 2, each card matched by its MAC, so
// the settings reach the card the guest had on the stick whatever the target
// names it: a network-config that names an interface that does not exist is
// what cloud-init silently ignores). Strings are written as JSON strings,
// which YAML reads as double-quoted scalars: no value can break the YAML.
import { createHash } from 'node:crypto';
import type { GuestDescriptor } from './guest-descriptor.ts';

export interface NocloudSettings {
  hostname: string;
  user: string;
  sshKeys: string[];
}

const q = (text: string) => JSON.stringify(text);

export function nocloudSeed(descriptor: GuestDescriptor, settings: NocloudSettings): Record<'meta-data' | 'user-data' | 'network-config', string> {
  const instance = createHash('sha256').update(`${descriptor.name}\n${settings.hostname}\n${settings.user}`).digest('hex').slice(0, 16);
  const metaData = [`instance-id: ${q(`pocketvm-${descriptor.name}-${instance}`)}`, `local-hostname: ${q(settings.hostname)}`, ''].join('\n');
  const userData = [
    '#cloud-config',
    `hostname: ${q(settings.hostname)}`,
    'preserve_hostname: false',
    'users:',
    `  - name: ${q(settings.user)}`,
    '    shell: "/bin/bash"',
    '    sudo: "ALL=(ALL) NOPASSWD:ALL"',
    '    lock_passwd: true',
    ...(settings.sshKeys.length > 0 ? ['    ssh_authorized_keys:', ...settings.sshKeys.map((key) => `      - ${q(key)}`)] : []),
    '',
  ].join('\n');
  const networkConfig = [
    'version: 2',
    'ethernets:',
    ...descriptor.nics.flatMap((nic, index) => [`  nic${index}:`, '    match:', `      macaddress: ${q(nic.mac)}`, '    dhcp4: true']),
    '',
  ].join('\n');
  return { 'meta-data': metaData, 'user-data': userData, 'network-config': descriptor.nics.length > 0 ? networkConfig : 'version: 2\nethernets: {}\n' };
}
