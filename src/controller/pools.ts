// Fail-closed address pools: Docker's address pools (e.g. `172.17.0.0/16`, `192.168.0.0/16` in /20s)
// added to moat's managed set, so that an address on a network created a moment ago (before moat
// has applied its subnet) is already closed. Unmanaged networks inside a pool are carved out.
import { parseCidr, cidrOverlaps, cidrWithin, type Cidr } from '../model/address.js';
import ipaddr from 'ipaddr.js';
import type { RulesetPlan, SetElement } from '../enforce/plan-model.js';
import { disjointElements } from '../enforce/compile/compile.js';
import { elementText } from '../enforce/validate.js';

function half(c: Cidr): [Cidr, Cidr] {
  const bytes = c.addr.toByteArray();
  const p = c.prefix;
  const second = [...bytes];
  second[Math.floor(p / 8)] |= 0x80 >> (p % 8);
  const mk = (b: number[]): Cidr => {
    const addr = ipaddr.fromByteArray(b) as ipaddr.IPv4 | ipaddr.IPv6;
    return { text: `${addr.toString()}/${p + 1}`, family: c.family, addr, prefix: p + 1 };
  };
  return [mk(bytes), mk(second)];
}

/** `c` minus the `holes`, as a list of CIDRs (bounded: at most 128 levels of splitting per hole). */
export function subtractCidrs(c: Cidr, holes: Cidr[]): Cidr[] {
  const relevant = holes.filter((h) => h.family === c.family && cidrOverlaps(c, h));
  if (relevant.length === 0) return [c];
  if (relevant.some((h) => cidrWithin(c, h))) return [];
  const [a, b] = half(c);
  return [...subtractCidrs(a, relevant), ...subtractCidrs(b, relevant)];
}

/** The plan with its `managed4`/`managed6` sets extended by the pools minus the unmanaged subnets. */
export function withFailClosedPools(plan: RulesetPlan, pools: string[], unmanagedSubnets: string[]): RulesetPlan {
  if (pools.length === 0) return plan;
  const holes = unmanagedSubnets.map((s) => parseCidr(s)).filter((c): c is Cidr => !!c);
  const sets = plan.sets.map((s) => {
    if (s.name !== `managed${s.family}`) return s;
    const extra: SetElement[] = [];
    for (const p of pools) {
      const c = parseCidr(p);
      if (!c || c.family !== s.family) continue;
      for (const piece of subtractCidrs(c, holes)) extra.push({ value: piece.text, owner: 'pool:fail-closed' });
    }
    const all = [...s.elements, ...extra];
    const kept = disjointElements(all.map((e) => e.value));
    const elements = kept.map((v) => all.find((e) => elementText(e.value).text === v) ?? { value: v, owner: 'pool:fail-closed' }).map((e) => ({ value: elementText(e.value).text, owner: e.owner }));
    return { ...s, elements };
  });
  return { ...plan, sets };
}
