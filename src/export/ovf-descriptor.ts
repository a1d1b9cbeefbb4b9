// An OVF 1.0 descriptor (DMTF DSP0243 1.0) in the dialect the target accepts
// (docs/export.md, "The targets"): VMware's hardware family `vmx-14` with an LSI Logic
// SCSI controller and a vmxnet3 card, or VirtualBox's `virtualbox-2.2` with
// an AHCI (SATA) controller and an e1000 card; the disk a streamOptimized
// vmdk either way. Each Item's rasd: elements are in the schema's
// (alphabetical) order: VMware rejects a descriptor whose order differs. A
// catalog image's guest gets the controller and card its initramfs drives
// (SATA and e1000 unless adapt readied it for the target's own), and, booting
// by UEFI, VMware's `vmw:Config firmware=efi` (VirtualBox's plain OVF has no
// word for it: the loss report says so).
import type { GuestDescriptor } from './guest-descriptor.ts';
import type { DiskBus, NicModel } from '../images/hypervisor-targets.ts';
import { devicesOn, TARGETS } from './targets.ts';
import { xml } from './xml-text.ts';

export type OvaFlavour = 'vmware' | 'virtualbox';

export interface OvfDisk {
  file: string;
  fileBytes: number;
  capacityBytes: number;
}

type Rasd = Record<string, string | number | boolean>;

function item(rasd: Rasd): string {
  const lines = Object.keys(rasd)
    .sort()
    .map((key) => `        <rasd:${key}>${xml(String(rasd[key]))}</rasd:${key}>`);
  return ['      <Item>', ...lines, '      </Item>'].join('\n');
}

/** The OVF controller item for each disk bus an OVA target uses (ResourceType 6: SCSI, 20: SATA, 5: IDE). */
const CONTROLLER: Partial<Record<DiskBus, Rasd>> = {
  lsilogic: { Description: 'SCSI Controller', ElementName: 'SCSI Controller 0', ResourceSubType: 'lsilogic', ResourceType: 6 },
  sata: { Description: 'SATA Controller', ElementName: 'sataController0', ResourceSubType: 'AHCI', ResourceType: 20 },
  ide: { Description: 'IDE Controller', ElementName: 'ideController0', ResourceSubType: 'PIIX4', ResourceType: 5 },
};
const NIC_SUBTYPE: Record<NicModel, string> = { 'virtio-net': 'virtio', e1000: 'E1000', vmxnet3: 'VmxNet3' };

const STREAM_OPTIMIZED = 'http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized';

export function ovfDescriptor(descriptor: GuestDescriptor, disks: OvfDisk[], flavour: OvaFlavour): string {
  const target = flavour === 'vmware' ? 'vmware-ova' : 'virtualbox-ova';
  const devices = { ...TARGETS[target].devices.devices!, ...devicesOn(target, descriptor.facts.drives) };
  const efi = flavour === 'vmware' && descriptor.firmware === 'uefi';
  let id = 0;
  const next = () => ++id;
  const items: string[] = [
    item({
      AllocationUnits: 'hertz * 10^6',
      Description: 'Number of Virtual CPUs',
      ElementName: `${descriptor.cpus} virtual CPU(s)`,
      InstanceID: next(),
      ResourceType: 3,
      VirtualQuantity: descriptor.cpus,
    }),
    item({
      AllocationUnits: 'byte * 2^20',
      Description: 'Memory Size',
      ElementName: `${descriptor.memoryMiB}MB of memory`,
      InstanceID: next(),
      ResourceType: 4,
      VirtualQuantity: descriptor.memoryMiB,
    }),
  ];
  const controller = next();
  items.push(item({ Address: 0, InstanceID: controller, ...CONTROLLER[devices.diskBus]! }));
  disks.forEach((_, index) =>
    items.push(
      item({
        AddressOnParent: index,
        ElementName: `Hard Disk ${index + 1}`,
        HostResource: `ovf:/disk/vmdisk${index + 1}`,
        InstanceID: next(),
        Parent: controller,
        ResourceType: 17,
      }),
    ),
  );
  descriptor.nics.forEach((nic, index) =>
    items.push(
      item({
        Address: nic.mac,
        AutomaticAllocation: true,
        Connection: 'NAT',
        Description: `${devices.nicModel} ethernet adapter on "NAT"`,
        ElementName: `Ethernet ${index + 1}`,
        InstanceID: next(),
        ResourceSubType: NIC_SUBTYPE[devices.nicModel],
        ResourceType: 10,
      }),
    ),
  );
  const files = disks.map((disk, index) => `    <File ovf:href="${xml(disk.file)}" ovf:id="file${index + 1}" ovf:size="${disk.fileBytes}"/>`);
  const diskLines = disks.map(
    (disk, index) =>
      `    <Disk ovf:capacity="${disk.capacityBytes}" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk${index + 1}" ovf:fileRef="file${index + 1}" ovf:format="${STREAM_OPTIMIZED}"/>`,
  );
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"' +
      ' xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"' +
      ' xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"' +
      `${efi ? ' xmlns:vmw="http://www.vmware.com/schema/ovf"' : ''} xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">`,
    '  <References>',
    ...files,
    '  </References>',
    '  <DiskSection>',
    '    <Info>Virtual disk information</Info>',
    ...diskLines,
    '  </DiskSection>',
    '  <NetworkSection>',
    '    <Info>The list of logical networks</Info>',
    '    <Network ovf:name="NAT">',
    '      <Description>The NAT network</Description>',
    '    </Network>',
    '  </NetworkSection>',
    `  <VirtualSystem ovf:id="${xml(descriptor.name)}">`,
    '    <Info>A virtual machine</Info>',
    `    <Name>${xml(descriptor.name)}</Name>`,
    '    <OperatingSystemSection ovf:id="101">',
    '      <Info>The kind of installed guest operating system</Info>',
    '      <Description>Linux 64-Bit</Description>',
    '    </OperatingSystemSection>',
    '    <VirtualHardwareSection>',
    '      <Info>Virtual hardware requirements</Info>',
    '      <System>',
    '        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>',
    '        <vssd:InstanceID>0</vssd:InstanceID>',
    `        <vssd:VirtualSystemIdentifier>${xml(descriptor.name)}</vssd:VirtualSystemIdentifier>`,
    `        <vssd:VirtualSystemType>${devices.machine}</vssd:VirtualSystemType>`,
    '      </System>',
    ...items,
    ...(efi ? ['      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>'] : []),
    '    </VirtualHardwareSection>',
    '  </VirtualSystem>',
    '</Envelope>',
    '',
  ].join('\n');
}
