// The Windows-like image the Windows inspect tests use: no Windows in it,
// only what `image inspect` reads, made with the real tools. The SOFTWARE
// and SYSTEM hives are written by test/images/regf-writer.ts (their content:
// WINDOWS_EXPECTED); the disk is GPT with an ESP (FAT, mtools, holding
// EFI/Microsoft/Boot/bootmgfw.efi) and an NTFS partition (mkntfs, filled
// through ntfs-3g's FUSE mount) holding Windows/System32/config/{SOFTWARE,
// SYSTEM}, Windows/System32/drivers/*.sys, ntoskrnl.exe and cmd.exe.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { binary, dword, expandSz, sz, writeHive, type RegKey } from './regf-writer.ts';

export interface ExpectedDriver {
  name: string;
  type: 'kernel' | 'filesystem';
  start: number;
  imagePath: string;
  /** Whether the image holds its .sys file. */
  file: boolean;
}

export const WINDOWS_EXPECTED = {
  productName: 'Windows 10 Pro',
  editionId: 'Professional',
  installationType: 'Client',
  version: '10.0',
  build: '19045',
  displayVersion: '22H2',
  /** Tcpip\Parameters Hostname (the DNS name) and the NetBIOS ComputerName. */
  hostname: 'pocket-win10',
  computerName: 'POCKET-WIN10',
  architecture: 'x86_64',
  controlSet: 'ControlSet002',
  drivers: [
    { name: 'disk', type: 'kernel', start: 0, imagePath: 'System32\\drivers\\disk.sys', file: true },
    { name: 'netkvm', type: 'kernel', start: 3, imagePath: '\\SystemRoot\\System32\\drivers\\netkvm.sys', file: true },
    { name: 'Ntfs', type: 'filesystem', start: 3, imagePath: 'System32\\Drivers\\Ntfs.sys', file: true },
    { name: 'partmgr', type: 'kernel', start: 0, imagePath: 'System32\\drivers\\partmgr.sys', file: true },
    { name: 'Tcpip', type: 'kernel', start: 0, imagePath: 'System32\\drivers\\tcpip.sys', file: true },
    // Registered, its file gone: the case a converted guest that no longer boots shows.
    { name: 'vioscsi', type: 'kernel', start: 4, imagePath: 'System32\\drivers\\vioscsi.sys', file: false },
    { name: 'viostor', type: 'kernel', start: 0, imagePath: 'System32\\drivers\\viostor.sys', file: true },
  ] satisfies ExpectedDriver[],
  /** Services that are not drivers (type 16, 32: Win32 services): inspect leaves them out. */
  services: ['Dhcp', 'LanmanServer'],
};

/** Enough services under one key that the writer gives it an ri index of li lists. */
const FILLER_SERVICES = Array.from({ length: 12 }, (_, i) => `Svc${String(i).padStart(2, '0')}`);

function controlSet(): RegKey {
  return {
    name: 'ControlSet002',
    subkeys: [
      {
        name: 'Control',
        subkeys: [
          { name: 'ComputerName', subkeys: [{ name: 'ComputerName', values: [sz('ComputerName', WINDOWS_EXPECTED.computerName)] }] },
          {
            name: 'Session Manager',
            subkeys: [{ name: 'Environment', values: [sz('PROCESSOR_ARCHITECTURE', 'AMD64'), expandSz('Path', '%SystemRoot%\\system32')] }],
          },
        ],
      },
      {
        name: 'Services',
        subkeys: [
          ...WINDOWS_EXPECTED.drivers.map((d) => ({
            name: d.name,
            values: [dword('Type', d.type === 'kernel' ? 1 : 2), dword('Start', d.start), dword('ErrorControl', 1), expandSz('ImagePath', d.imagePath)],
            // The DNS host name lives with the TCP/IP driver.
            ...(d.name === 'Tcpip' ? { subkeys: [{ name: 'Parameters', values: [sz('Hostname', WINDOWS_EXPECTED.hostname), sz('Domain', '')] }] } : {}),
          })),
          ...WINDOWS_EXPECTED.services.map((name) => ({
            name,
            values: [dword('Type', 32), dword('Start', 2), expandSz('ImagePath', '%SystemRoot%\\system32\\svchost.exe -k netsvcs')],
          })),
          ...FILLER_SERVICES.map((name) => ({ name, values: [dword('Type', 16), dword('Start', 3)] })),
        ],
      },
    ],
  };
}

export function windowsSystemHive(): Buffer {
  return writeHive(
    {
      name: 'ROOT',
      subkeys: [
        // A stale control set Windows no longer boots with: its hostname must not be reported.
        {
          name: 'ControlSet001',
          subkeys: [
            { name: 'Control', subkeys: [{ name: 'ComputerName', subkeys: [{ name: 'ComputerName', values: [sz('ComputerName', 'OLD-NAME')] }] }] },
            { name: 'Services', subkeys: [{ name: 'Tcpip', subkeys: [{ name: 'Parameters', values: [sz('Hostname', 'old-name')] }] }] },
          ],
        },
        controlSet(),
        { name: 'Select', values: [dword('Current', 2), dword('Default', 2), dword('LastKnownGood', 1)] },
      ],
    },
    'SYSTEM',
  );
}

export function windowsSoftwareHive(): Buffer {
  const e = WINDOWS_EXPECTED;
  return writeHive(
    {
      name: 'ROOT',
      subkeys: [
        {
          name: 'Microsoft',
          subkeys: [
            {
              name: 'Windows NT',
              subkeys: [
                {
                  name: 'CurrentVersion',
                  values: [
                    sz('ProductName', e.productName),
                    sz('EditionID', e.editionId),
                    sz('InstallationType', e.installationType),
                    sz('CurrentVersion', '6.3'),
                    dword('CurrentMajorVersionNumber', 10),
                    dword('CurrentMinorVersionNumber', 0),
                    sz('CurrentBuild', e.build),
                    sz('CurrentBuildNumber', e.build),
                    sz('DisplayVersion', e.displayVersion),
                    sz('ReleaseId', '2009'),
                    // Bigger than one cell holds: stored as db (big data) segments.
                    binary('DigitalProductId4', Buffer.alloc(40_000, 0x5a)),
                  ],
                },
              ],
            },
          ],
        },
      ],
    },
    'SOFTWARE',
  );
}

/** The start of a PE32+ x86-64 console program (what `file` and libguestfs read a Windows program's architecture from). */
function peHeader(): Buffer {
  const b = Buffer.alloc(1024);
  b.write('MZ', 0, 'latin1');
  b.writeUInt32LE(0x40, 0x3c); // e_lfanew
  b.write('PE\0\0', 0x40, 'latin1');
  b.writeUInt16LE(0x8664, 0x44); // AMD64
  b.writeUInt16LE(0xf0, 0x54); // size of the optional header
  b.writeUInt16LE(0x22, 0x56); // executable, large-address aware
  b.writeUInt16LE(0x20b, 0x58); // PE32+
  b.writeUInt16LE(3, 0x58 + 68); // console subsystem
  return b;
}

const run = (command: string, args: string[]) => execFileSync(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
const MiB = 1024 * 1024;

/**
 * The disk: GPT, partition 1 an ESP (32 MiB FAT), partition 2 NTFS (64 MiB).
 * `damaged` writes a SYSTEM hive whose root key points outside the hive.
 */
export function buildWindowsImage(dir: string, options: { damaged?: boolean } = {}): string {
  mkdirSync(dir, { recursive: true });
  const disk = join(dir, options.damaged ? 'windows-damaged.raw' : 'windows.raw');
  const tree = join(dir, options.damaged ? 'tree-damaged' : 'tree');
  const system = windowsSystemHive();
  if (options.damaged) system.writeUInt32LE(0x7ffffff0, 0x24);
  // (the checksum is made right again, so the damage is found where the reader follows the root)
  if (options.damaged) {
    let sum = 0;
    for (let i = 0; i < 0x1fc; i += 4) sum ^= system.readUInt32LE(i);
    system.writeUInt32LE(sum >>> 0, 0x1fc);
  }
  const files: [string, Buffer][] = [
    ['Windows/System32/config/SYSTEM', system],
    ['Windows/System32/config/SOFTWARE', windowsSoftwareHive()],
    ['Windows/System32/ntoskrnl.exe', peHeader()],
    // libguestfs takes a folder for a Windows system root only when System32/cmd.exe is in it.
    ['Windows/System32/cmd.exe', peHeader()],
    ...WINDOWS_EXPECTED.drivers
      .filter((d) => d.file)
      .map((d): [string, Buffer] => [`Windows/System32/drivers/${d.imagePath.split('\\').at(-1)}`, Buffer.from(`driver ${d.name}`)]),
  ];
  // Files written to a folder first, then copied onto the NTFS through ntfs-3g (FUSE).
  for (const [path, bytes] of files) {
    mkdirSync(join(tree, path, '..'), { recursive: true });
    writeFileSync(join(tree, path), bytes);
  }
  writeFileSync(disk, '');
  run('truncate', ['-s', `${100 * MiB}`, disk]);
  run('sgdisk', ['-n', '1:2048:+32M', '-t', '1:ef00', '-c', '1:EFI system partition', '-n', '2:0:+64M', '-t', '2:0700', '-c', '2:Basic data partition', disk]);
  const espStart = 2048 * 512;
  const ntfsStart = espStart + 32 * MiB;
  // The ESP: FAT made in its own file, filled with mtools (no mount), placed at partition 1's offset.
  const esp = join(dir, options.damaged ? 'esp-damaged.img' : 'esp.img');
  writeFileSync(esp, '');
  run('truncate', ['-s', `${32 * MiB}`, esp]);
  run('mkfs.vfat', ['-n', 'SYSTEM', esp]);
  for (const folder of ['EFI', 'EFI/Microsoft', 'EFI/Microsoft/Boot', 'EFI/Boot']) run('mmd', ['-i', esp, `::/${folder}`]);
  const efi = join(dir, 'bootmgfw.efi');
  writeFileSync(efi, Buffer.concat([Buffer.from('MZ'), Buffer.alloc(1022)]));
  run('mcopy', ['-i', esp, efi, '::/EFI/Microsoft/Boot/bootmgfw.efi']);
  run('mcopy', ['-i', esp, efi, '::/EFI/Boot/bootx64.efi']);
  run('dd', [`if=${esp}`, `of=${disk}`, 'bs=1M', `seek=${espStart / MiB}`, 'conv=notrunc,sparse', 'status=none']);
  // The NTFS: made in its own file, filled through ntfs-3g, then placed at partition 2's offset.
  const ntfs = join(dir, options.damaged ? 'ntfs-damaged.img' : 'ntfs.img');
  writeFileSync(ntfs, '');
  run('truncate', ['-s', `${64 * MiB}`, ntfs]);
  run('mkntfs', ['-F', '-Q', '-q', '-L', 'Windows', '-p', String(ntfsStart / 512), '-H', '255', '-S', '63', ntfs]);
  const mountpoint = join(dir, options.damaged ? 'mnt-damaged' : 'mnt');
  mkdirSync(mountpoint, { recursive: true });
  run('ntfs-3g', [ntfs, mountpoint]);
  try {
    run('cp', ['-r', `${tree}/.`, mountpoint]);
  } finally {
    run('fusermount', ['-u', mountpoint]);
  }
  run('dd', [`if=${ntfs}`, `of=${disk}`, 'bs=1M', `seek=${ntfsStart / MiB}`, 'conv=notrunc,sparse', 'status=none']);
  return disk;
}
