// ComposeProject -> World: one endpoint per active service, networks keyed by their Docker names.
import { formatDiagnostic } from '../../model/diagnostics.js';
import type { Attachment, DeclaredPort, Endpoint, Network, NetworkMode, Protocol, PublishedPort, World } from '../../model/world.js';
import type { ComposeProject } from './types.js';

const ICC_OPTION = 'com.docker.network.bridge.enable_icc';

function proto(p: string): Protocol {
  return p.toUpperCase() as Protocol;
}

export function composeToWorld(project: ComposeProject): World {
  const ns = project.name;
  const warnings = project.warnings.map(formatDiagnostic);
  const networks: Network[] = [];
  const byKey = new Map<string, string>();
  for (const n of Object.values(project.networks)) {
    byKey.set(n.key, n.name);
    const net: Network = {
      name: n.name,
      driver: n.driver,
      subnets: n.ipam.config.map((c) => c.subnet).filter((s): s is string => s !== undefined),
      internal: n.internal,
      options: { ...n.driverOpts },
      icc: (n.driverOpts[ICC_OPTION] ?? 'true').toLowerCase() !== 'false',
      enableIPv6: n.enableIpv6,
      labels: { ...n.labels },
    };
    const gateways = n.ipam.config.map((c) => c.gateway).filter((s): s is string => s !== undefined);
    if (gateways.length) net.gateways = gateways;
    if (n.external) net.external = true;
    else net.namespace = ns;
    networks.push(net);
  }
  const ensureNetwork = (name: string) => {
    if (networks.some((n) => n.name === name)) return;
    networks.push({ name, driver: name === 'bridge' ? 'bridge' : name, subnets: [], internal: false, options: {}, icc: true, enableIPv6: false, external: true });
  };
  const idOf = (service: string) => `${ns}/${service}`;
  const byContainerName = new Map<string, string>();
  for (const s of Object.values(project.services)) byContainerName.set(s.containerName ?? `${ns}-${s.name}-1`, s.name);

  const endpoints: Endpoint[] = [];
  for (const s of Object.values(project.services)) {
    let networkMode: NetworkMode = { kind: 'bridge' };
    const attachments: Attachment[] = [];
    const mode = s.networkMode;
    if (mode === undefined) {
      for (const [key, sn] of Object.entries(s.networks)) {
        const a: Attachment = { network: byKey.get(key) ?? `${ns}_${key}`, aliases: [s.name, ...sn.aliases.filter((x) => x !== s.name)] };
        if (sn.ipv4Address) a.ipv4 = sn.ipv4Address;
        if (sn.ipv6Address) a.ipv6 = sn.ipv6Address;
        attachments.push(a);
      }
    } else if (mode === 'host') networkMode = { kind: 'host' };
    else if (mode === 'none') networkMode = { kind: 'none' };
    else if (mode.startsWith('service:')) networkMode = { kind: 'container', of: idOf(mode.slice(8)) };
    else if (mode.startsWith('container:')) {
      const target = mode.slice(10);
      const svc = byContainerName.get(target);
      networkMode = { kind: 'container', of: svc ? idOf(svc) : target };
      if (!svc) warnings.push(`service ${s.name}: network_mode ${mode} names a container outside this project; its network is unknown`);
    } else {
      // `bridge`, `default`, or the name of a network Docker already has.
      const net = mode === 'default' ? 'bridge' : mode;
      ensureNetwork(net);
      attachments.push({ network: net, aliases: [] });
      if (net !== 'bridge') warnings.push(`service ${s.name}: network_mode ${mode} is taken as an existing network named "${mode}"`);
    }
    const declared: DeclaredPort[] = [];
    const seen = new Set<string>();
    const declare = (port: number, p: string) => {
      const k = `${port}/${p}`;
      if (seen.has(k)) return;
      seen.add(k);
      declared.push({ port, protocol: proto(p) });
    };
    for (const e of s.expose) declare(e.port, e.protocol);
    for (const p of s.ports) declare(p.target, p.protocol);
    const published: PublishedPort[] = s.ports.map((p) => {
      const pp: PublishedPort = { hostIp: p.hostIp, containerPort: p.target, protocol: proto(p.protocol) };
      if (p.hostPort !== undefined) pp.hostPort = p.hostPort;
      return pp;
    });
    for (const p of s.ports) {
      if (p.hostPortRange) warnings.push(`service ${s.name}: container port ${p.target}/${p.protocol} is published on one host port Docker picks from ${p.published}`);
    }
    const ep: Endpoint = {
      id: idOf(s.name),
      name: s.name,
      namespace: ns,
      containerName: s.containerName ?? `${ns}-${s.name}-1`,
      composeService: s.name,
      labels: { ...s.labels, 'com.docker.compose.project': ns, 'com.docker.compose.service': s.name },
      networkMode,
      attachments,
      declaredPorts: declared,
      publishedPorts: published,
      running: true,
    };
    if (s.image !== undefined) ep.image = s.image;
    endpoints.push(ep);
  }
  return {
    origin: `compose:${project.files.join(',')}`,
    namespaces: [{ name: ns, labels: {} }],
    endpoints,
    networks,
    externals: [],
    host: { addresses: [] },
    warnings,
  };
}
