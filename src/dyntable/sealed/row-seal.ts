// Sealing the values of layer.sqlite's rows: AES-256-GCM of the row's JSON,
// padded to a multiple of 64 bytes so a value's length says little about
// the name or target inside it. The associated data names the row (its
// table and key), so a value copied onto another row does not open.
import { createCipheriv, createDecipheriv, type KeyObject, randomFillSync } from 'node:crypto';
import { SealedDataError } from './sealed-file.ts';

const NONCE = 12;
const TAG = 16;
const PAD = 64;

export function sealRow(key: KeyObject, rowName: string, value: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(value));
  // JSON.parse ignores trailing spaces.
  const plain = Buffer.alloc(Math.ceil((json.length + 1) / PAD) * PAD, 0x20);
  json.copy(plain);
  const out = Buffer.allocUnsafe(NONCE + plain.length + TAG);
  randomFillSync(out, 0, NONCE);
  const c = createCipheriv('aes-256-gcm', key, out.subarray(0, NONCE));
  c.setAAD(Buffer.from(rowName));
  c.update(plain).copy(out, NONCE);
  c.final();
  c.getAuthTag().copy(out, NONCE + plain.length);
  plain.fill(0);
  json.fill(0);
  return out;
}

export function openRow<T>(key: KeyObject, rowName: string, sealed: Uint8Array): T {
  const data = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  let plain: Buffer;
  try {
    if (data.length < NONCE + TAG) throw new Error('short');
    const d = createDecipheriv('aes-256-gcm', key, data.subarray(0, NONCE));
    d.setAAD(Buffer.from(rowName));
    d.setAuthTag(data.subarray(data.length - TAG));
    plain = Buffer.concat([d.update(data.subarray(NONCE, data.length - TAG)), d.final()]);
  } catch {
    throw new SealedDataError('tampered', `layer store row ${rowName.split(':')[0]} does not authenticate`);
  }
  const value = JSON.parse(plain.toString('utf8')) as T;
  plain.fill(0);
  return value;
}
