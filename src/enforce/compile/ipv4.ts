// A fast reading of the IPv4 text the compiler sees most: dotted quads already written canonically
// (what canonicalAddress and parseCidr print). ipaddr.js parses each address with regular
// expressions, three times per address in a compile (validation, range, element text); on the first
// compile after start, before the memos fill, that was a third of the time. Anything else (other
// spellings, IPv6, invalid text) is left to the full parsers, so the results cannot differ.

/**
 * The 32-bit value of `text[start, end)` when it is a canonical dotted quad (four decimal parts
 * 0-255 without leading zeros, nothing else), else -1. Such text is its own canonical form: ipaddr.js
 * accepts it as four-part decimal and prints it back unchanged.
 */
export function canonicalIPv4Value(text: string, start = 0, end = text.length): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + part;
      dots++;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return -1; // a leading zero
      part = part * 10 + (c - 48);
      if (part > 255) return -1;
      digits++;
    } else return -1;
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + part;
}

/** A prefix length written canonically (`0`-`32`, no leading zero), else -1. */
export function canonicalIPv4Prefix(text: string, start: number): number {
  const n = text.length - start;
  if (n < 1 || n > 2) return -1;
  const a = text.charCodeAt(start) - 48;
  if (a < 0 || a > 9) return -1;
  if (n === 1) return a;
  const b = text.charCodeAt(start + 1) - 48;
  if (a === 0 || b < 0 || b > 9) return -1;
  const p = a * 10 + b;
  return p <= 32 ? p : -1;
}

/** Dotted-quad text of a 32-bit value. */
export function ipv4Text(value: number): string {
  return `${Math.floor(value / 16777216)}.${Math.floor(value / 65536) % 256}.${Math.floor(value / 256) % 256}.${value % 256}`;
}
