// Label selectors and effective labels, with Kubernetes' matching rules.
import { groupLabel, SYNTHETIC, type EndpointSelector, type LabelSelector, type NamespaceScope } from './ir.js';
import { NAMESPACE_NAME_LABEL, type Endpoint } from './world.js';

export function matchesLabelSelector(selector: LabelSelector, labels: Record<string, string>): boolean {
  if (selector.matchLabels) {
    for (const [k, v] of Object.entries(selector.matchLabels)) {
      if (!Object.prototype.hasOwnProperty.call(labels, k) || labels[k] !== v) return false;
    }
  }
  for (const req of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, req.key);
    const values = req.values ?? [];
    switch (req.operator) {
      case 'In':
        if (!has || !values.includes(labels[req.key])) return false;
        break;
      case 'NotIn':
        if (has && values.includes(labels[req.key])) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

/**
 * `matchesLabelSelector` with the selector read once: for matching one selector against many label
 * sets (resolveWorld), where re-reading `matchLabels` per candidate was most of the cost.
 */
export function labelSelectorMatcher(selector: LabelSelector): (labels: Record<string, string>) => boolean {
  if ((selector.matchExpressions ?? []).length > 0) return (labels) => matchesLabelSelector(selector, labels);
  const keys = selector.matchLabels ? Object.keys(selector.matchLabels) : [];
  const values = keys.map((k) => selector.matchLabels![k]);
  const hasOwn = Object.prototype.hasOwnProperty;
  return (labels) => {
    // The value first: most candidates differ there, and the own-property check is the slow part.
    for (let j = 0; j < keys.length; j++) if (labels[keys[j]] !== values[j] || !hasOwn.call(labels, keys[j])) return false;
    return true;
  };
}

export function isEmptySelector(selector: LabelSelector): boolean {
  return Object.keys(selector.matchLabels ?? {}).length === 0 && (selector.matchExpressions ?? []).length === 0;
}

export function matchesNamespaceScope(
  scope: NamespaceScope,
  namespace: string,
  namespaceLabels: (ns: string) => Record<string, string>,
): boolean {
  switch (scope.kind) {
    case 'all':
      return true;
    case 'names':
      return scope.names.includes(namespace);
    case 'selector':
      return matchesLabelSelector(scope.selector, namespaceLabels(namespace));
  }
}

/**
 * The labels selectors see for an endpoint: its own labels, then synthetic ones (namespace, name,
 * container name, Compose project and service), then one `moat.group/<g>=true` per group.
 */
export function effectiveLabels(endpoint: Endpoint, groups: Iterable<string>): Record<string, string> {
  const labels: Record<string, string> = { ...endpoint.labels };
  labels[SYNTHETIC.namespace] = endpoint.namespace;
  labels[SYNTHETIC.name] = endpoint.name;
  if (endpoint.containerName) labels[SYNTHETIC.containerName] = endpoint.containerName;
  if (endpoint.composeService) {
    labels[SYNTHETIC.composeService] ??= endpoint.composeService;
    labels[SYNTHETIC.composeProject] ??= endpoint.namespace;
  }
  for (const g of groups) labels[groupLabel(g)] = 'true';
  return labels;
}

export function matchesEndpointSelector(
  selector: EndpointSelector,
  endpoint: { namespace: string; labels: Record<string, string> },
  namespaceLabels: (ns: string) => Record<string, string>,
): boolean {
  return (
    matchesNamespaceScope(selector.namespaces, endpoint.namespace, namespaceLabels) &&
    matchesLabelSelector(selector.labels, endpoint.labels)
  );
}

export { NAMESPACE_NAME_LABEL };
