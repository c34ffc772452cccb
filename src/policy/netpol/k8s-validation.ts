// The Kubernetes API server's string validators (k8s.io/apimachinery/pkg/util/validation), as
// used for NetworkPolicy objects. Each returns the list of problems (empty when valid), worded
// like the API server's messages.
import { parseCidr, type Cidr } from '../../model/address.js';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

export function isDns1123Label(value: string): string[] {
  const errs: string[] = [];
  if (value.length > 63) errs.push('must be no more than 63 characters');
  if (!DNS1123_LABEL.test(value)) {
    errs.push(
      "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')",
    );
  }
  return errs;
}

export function isDns1123Subdomain(value: string): string[] {
  const errs: string[] = [];
  if (value.length > 253) errs.push('must be no more than 253 characters');
  if (!DNS1123_SUBDOMAIN.test(value)) {
    errs.push(
      "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')",
    );
  }
  return errs;
}

/** A label key: `name` or `prefix/name`, prefix a DNS subdomain, name up to 63 of [A-Za-z0-9_.-] (alphanumeric at both ends). */
export function isQualifiedName(value: string): string[] {
  const errs: string[] = [];
  const parts = value.split('/');
  let name: string;
  if (parts.length === 1) {
    name = parts[0];
  } else if (parts.length === 2) {
    const prefix = parts[0];
    name = parts[1];
    if (prefix.length === 0) errs.push('prefix part must be non-empty');
    else for (const m of isDns1123Subdomain(prefix)) errs.push(`prefix part ${m}`);
  } else {
    return [
      "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character, with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
    ];
  }
  if (name.length === 0) errs.push('name part must be non-empty');
  else if (name.length > 63) errs.push('name part must be no more than 63 characters');
  if (name.length > 0 && !QUALIFIED_NAME.test(name)) {
    errs.push(
      "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc')",
    );
  }
  return errs;
}

export function isValidLabelValue(value: string): string[] {
  const errs: string[] = [];
  if (value.length > 63) errs.push('must be no more than 63 characters');
  if (!LABEL_VALUE.test(value)) {
    errs.push(
      "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', or 'my_value', or '12345')",
    );
  }
  return errs;
}

export function isValidPortNum(port: number): string[] {
  return Number.isInteger(port) && port >= 1 && port <= 65535 ? [] : ['must be between 1 and 65535, inclusive'];
}

/** IANA_SVC_NAME (RFC 6335): what a named port may be called. */
export function isValidPortName(name: string): string[] {
  const errs: string[] = [];
  if (name.length > 15) errs.push('must be no more than 15 characters');
  if (!/^[-a-z0-9]+$/.test(name)) errs.push('must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)');
  else if (!/[a-z]/.test(name)) errs.push('must contain at least one letter (a-z)');
  else if (name.includes('--')) errs.push('must not contain consecutive hyphens');
  else if (name.startsWith('-') || name.endsWith('-')) errs.push('must not begin or end with a hyphen');
  return errs;
}

/**
 * A CIDR as the API server validates it with strict IP/CIDR validation: an address with a prefix length,
 * no leading zeros, no bits set after the prefix. Returns the parsed CIDR or the problem.
 */
export function parseStrictCidr(value: string): { cidr: Cidr } | { error: string; canonical?: string } {
  const slash = value.indexOf('/');
  if (slash < 0) return { error: 'must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64): missing prefix length' };
  const addr = value.slice(0, slash);
  const prefix = value.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefix)) {
    return { error: 'must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64): bad prefix length' };
  }
  if (/^[0-9.]+$/.test(addr) && addr.split('.').some((o) => o.length > 1 && o.startsWith('0'))) {
    return { error: 'must not have leading 0s in IPv4 address octets (they are ambiguous)' };
  }
  const loose = parseCidr(value);
  if (!loose) return { error: 'must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)' };
  if (!parseCidr(value, true)) return { error: `must be in canonical form: the address has bits set after the prefix (did you mean ${loose.text}?)`, canonical: loose.text };
  return { cidr: loose };
}
