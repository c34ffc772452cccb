// Addresses and CIDRs (IPv4 and IPv6) on top of ipaddr.js.
import ipaddr from 'ipaddr.js';

export type Family = 4 | 6;

export interface Cidr {
  /** Canonical text, e.g. `10.0.0.0/8`, `fd00::/64`. */
  text: string;
  family: Family;
  addr: ipaddr.IPv4 | ipaddr.IPv6;
  prefix: number;
}

export function isIp(text: string): boolean {
  return ipaddr.isValid(text) && (ipaddr.IPv4.isValidFourPartDecimal(text) || ipaddr.IPv6.isValid(text));
}

export function ipFamily(text: string): Family | undefined {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return 4;
  if (ipaddr.IPv6.isValid(text)) return 6;
  return undefined;
}

/**
 * Parses `a.b.c.d/n` or `v6/n` (a bare address means a single host). Returns undefined when invalid.
 * `strict` demands that no host bits be set (Kubernetes accepts `10.0.0.1/8` only in newer versions; moat accepts it
 * unless strict, and canonicalises to the network address).
 */
export function parseCidr(text: string, strict = false): Cidr | undefined {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const family = ipFamily(addrText);
  if (!family) return undefined;
  const max = family === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p)) return undefined;
    prefix = Number(p);
    if (prefix > max) return undefined;
  }
  const addr = ipaddr.parse(addrText) as ipaddr.IPv4 | ipaddr.IPv6;
  const network = networkAddress(addr, prefix);
  if (strict && network.toString() !== addr.toString()) return undefined;
  return { text: `${network.toString()}/${prefix}`, family, addr: network, prefix };
}

function networkAddress(addr: ipaddr.IPv4 | ipaddr.IPv6, prefix: number): ipaddr.IPv4 | ipaddr.IPv6 {
  const bytes = addr.toByteArray();
  for (let i = 0; i < bytes.length; i++) {
    const bitsHere = Math.max(0, Math.min(8, prefix - i * 8));
    bytes[i] &= bitsHere === 0 ? 0 : (0xff << (8 - bitsHere)) & 0xff;
  }
  return ipaddr.fromByteArray(bytes) as ipaddr.IPv4 | ipaddr.IPv6;
}

export function cidrContains(cidr: Cidr, address: string): boolean {
  const family = ipFamily(address);
  if (family !== cidr.family) return false;
  const a = ipaddr.parse(address);
  return (a as ipaddr.IPv4).match(cidr.addr as ipaddr.IPv4, cidr.prefix);
}

/** Whether `inner` lies entirely within `outer`. */
export function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  return inner.family === outer.family && inner.prefix >= outer.prefix && cidrContains(outer, inner.addr.toString());
}

export function cidrOverlaps(a: Cidr, b: Cidr): boolean {
  return cidrWithin(a, b) || cidrWithin(b, a);
}

/** True for 0.0.0.0/0 and ::/0. */
export function isWholeFamily(cidr: Cidr): boolean {
  return cidr.prefix === 0;
}

/** True for addresses meaning "every interface" in a port binding. */
export function isAllInterfaces(hostIp: string): boolean {
  return hostIp === '' || hostIp === '0.0.0.0' || hostIp === '::' || hostIp === '[::]';
}

export function isLoopback(hostIp: string): boolean {
  const h = hostIp.replace(/^\[|\]$/g, '');
  if (!isIp(h)) return false;
  return ipaddr.parse(h).range() === 'loopback';
}
