// Objects the Kubernetes API server (or kubectl --validate=strict) rejects: each must produce an
// error at the offending YAML node (line:col), with a message and a fix, and no Policy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseNetworkPolicies } from '../../../src/policy/netpol/index.js';

/** A policy in namespace x; spec line k is file line 6+k, spec column c (1-based) is file column c+2. */
function pol(spec: string): string {
  return `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: p
  namespace: x
spec:
${spec.replace(/^\n+|\s+$/g, '').split('\n').map((l) => `  ${l}`).join('\n')}
`;
}

interface Case {
  name: string;
  yaml: string;
  /** line:col of the error */
  at: string;
  message: RegExp;
  fix?: RegExp;
}

const cases: Case[] = [
  // object and metadata
  { name: 'removed apiVersion', yaml: pol('podSelector: {}').replace('networking.k8s.io/v1', 'networking.k8s.io/v1beta1'), at: '1:13', message: /apiVersion "networking\.k8s\.io\/v1beta1" is not supported for NetworkPolicy: it must be networking\.k8s\.io\/v1 \(.*removed in Kubernetes 1\.16\)/, fix: /apiVersion: networking\.k8s\.io\/v1/ },
  { name: 'missing apiVersion', yaml: pol('podSelector: {}').replace('apiVersion: networking.k8s.io/v1\n', ''), at: '1:1', message: /^apiVersion: required/ },
  { name: 'missing metadata.name', yaml: 'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {namespace: x}\nspec: {podSelector: {}}\n', at: '3:11', message: /^metadata\.name: required/ },
  { name: 'metadata.name not a DNS-1123 subdomain', yaml: pol('podSelector: {}').replace('name: p', 'name: Web_App'), at: '4:9', message: /^metadata\.name: invalid value "Web_App": a lowercase RFC 1123 subdomain/ },
  { name: 'metadata.name longer than 253', yaml: pol('podSelector: {}').replace('name: p', `name: ${'a'.repeat(254)}`), at: '4:9', message: /must be no more than 253 characters/ },
  { name: 'metadata.namespace not a DNS-1123 label', yaml: pol('podSelector: {}').replace('namespace: x', 'namespace: my.ns'), at: '5:14', message: /^metadata\.namespace: invalid value "my\.ns": a lowercase RFC 1123 label/ },
  { name: 'metadata.namespace longer than 63', yaml: pol('podSelector: {}').replace('namespace: x', `namespace: ${'n'.repeat(64)}`), at: '5:14', message: /must be no more than 63 characters/ },
  { name: 'metadata.labels invalid value', yaml: pol('podSelector: {}').replace('namespace: x', 'namespace: x\n  labels: {team: "blue team"}'), at: '6:18', message: /^metadata\.labels\.team: invalid label value "blue team"/ },
  { name: 'unknown metadata field', yaml: pol('podSelector: {}').replace('namespace: x', 'namespace: x\n  nmae: q'), at: '6:3', message: /^unknown field "metadata\.nmae"/, fix: /did you mean "name"/ },
  { name: 'unknown top-level field (status)', yaml: pol('podSelector: {}') + 'status: {}\n', at: '8:1', message: /^unknown field "status"/ },
  { name: 'duplicate key (YAML)', yaml: pol('podSelector: {}\npodSelector: {}'), at: '8:3', message: /^YAML syntax error: Map keys must be unique/ },
  {
    name: 'the same policy twice in one file',
    yaml: `${pol('podSelector: {}')}---\n${pol('podSelector: {}')}`,
    at: '12:9',
    message: /^NetworkPolicy x\/p is defined twice in this file \(first at line 4\)/,
  },
  { name: 'List with a wrong apiVersion', yaml: 'apiVersion: v2\nkind: List\nitems: []\n', at: '1:13', message: /apiVersion "v2" is not valid for a List: it must be v1/ },

  // spec structure
  { name: 'unknown spec field (podselector)', yaml: pol('podselector: {}'), at: '7:3', message: /^unknown field "spec\.podselector"/, fix: /did you mean "podSelector"/ },
  { name: 'unknown rule field (form)', yaml: pol('podSelector: {}\ningress:\n- form: []'), at: '9:5', message: /^unknown field "spec\.ingress\[0\]\.form"/, fix: /did you mean "from"/ },
  { name: 'unknown peer field (nameSpaceSelector)', yaml: pol('podSelector: {}\ningress:\n- from:\n  - nameSpaceSelector: {}'), at: '10:7', message: /^unknown field "spec\.ingress\[0\]\.from\[0\]\.nameSpaceSelector"/, fix: /did you mean "namespaceSelector"/ },
  { name: 'egress rule with from instead of to', yaml: pol('podSelector: {}\negress:\n- from: []'), at: '9:5', message: /^unknown field "spec\.egress\[0\]\.from"/, fix: /the fields of an egress rule are to, ports/ },
  { name: 'ingress is not a list', yaml: pol('podSelector: {}\ningress: {from: []}'), at: '8:12', message: /^spec\.ingress: must be a list \(ingress rules\), not an object/ },

  // label selectors
  { name: 'label key with two slashes', yaml: pol('podSelector:\n  matchLabels:\n    a/b/c: x'), at: '9:7', message: /^spec\.podSelector\.matchLabels: invalid label key "a\/b\/c": a qualified name/ },
  { name: 'label key prefix not lowercase', yaml: pol('podSelector:\n  matchLabels:\n    Example.com/app: x'), at: '9:7', message: /invalid label key "Example\.com\/app": prefix part a lowercase RFC 1123 subdomain/ },
  { name: 'label key name longer than 63', yaml: pol(`podSelector:\n  matchLabels:\n    ${'k'.repeat(64)}: x`), at: '9:7', message: /name part must be no more than 63 characters/ },
  { name: 'label value starting with -', yaml: pol('podSelector:\n  matchLabels:\n    app: -web'), at: '9:12', message: /^spec\.podSelector\.matchLabels\.app: invalid label value "-web"/ },
  { name: 'label value longer than 63', yaml: pol(`podSelector:\n  matchLabels:\n    app: ${'v'.repeat(64)}`), at: '9:12', message: /invalid label value "v+": must be no more than 63 characters/ },
  { name: 'label value that is a number', yaml: pol('podSelector:\n  matchLabels:\n    app: 1'), at: '9:12', message: /^spec\.podSelector\.matchLabels\.app: must be a string, not a number/, fix: /quote the value: "1"/ },
  { name: 'unsupported operator', yaml: pol('podSelector:\n  matchExpressions:\n  - {key: app, operator: Equals, values: [a]}'), at: '9:28', message: /^spec\.podSelector\.matchExpressions\[0\]\.operator: unsupported value "Equals": supported values: "In", "NotIn", "Exists", "DoesNotExist"/ },
  { name: 'operator in lower case', yaml: pol('podSelector:\n  matchExpressions:\n  - {key: app, operator: in, values: [a]}'), at: '9:28', message: /unsupported value "in"/, fix: /write In/ },
  { name: 'In without values', yaml: pol('podSelector:\n  matchExpressions:\n  - {key: app, operator: In}'), at: '9:28', message: /^spec\.podSelector\.matchExpressions\[0\]\.values: must be specified when `operator` is 'In' or 'NotIn'/ },
  { name: 'NotIn with an empty values list', yaml: pol('podSelector:\n  matchExpressions:\n  - {key: app, operator: NotIn, values: []}'), at: '9:43', message: /must be specified when `operator` is 'In' or 'NotIn'/ },
  { name: 'Exists with values', yaml: pol('podSelector:\n  matchExpressions:\n  - {key: app, operator: Exists, values: [a]}'), at: '9:44', message: /^spec\.podSelector\.matchExpressions\[0\]\.values: may not be specified when `operator` is 'Exists' or 'DoesNotExist'/ },
  { name: 'requirement without key', yaml: pol('podSelector:\n  matchExpressions:\n  - {operator: Exists}'), at: '9:7', message: /^spec\.podSelector\.matchExpressions\[0\]\.key: required/ },
  { name: 'invalid value in a requirement', yaml: pol('podSelector:\n  matchExpressions:\n  - {key: app, operator: In, values: [ok, "not ok"]}'), at: '9:45', message: /matchExpressions\[0\]\.values\[1\]: invalid label value "not ok"/ },

  // policyTypes
  { name: 'policyTypes in lower case', yaml: pol('podSelector: {}\npolicyTypes: [ingress]'), at: '8:17', message: /^spec\.policyTypes\[0\]: unsupported value "ingress": supported values: "Ingress", "Egress"/, fix: /write Ingress/ },
  { name: 'more than two policyTypes', yaml: pol('podSelector: {}\npolicyTypes: [Ingress, Egress, Ingress]'), at: '8:16', message: /^spec\.policyTypes: may not specify more than two policyTypes/ },

  // peers and ipBlock
  { name: 'empty peer', yaml: pol('podSelector: {}\ningress:\n- from:\n  - {}'), at: '10:7', message: /^spec\.ingress\[0\]\.from\[0\]: must specify a peer/ },
  { name: 'ipBlock with podSelector in one peer', yaml: pol('podSelector: {}\negress:\n- to:\n  - podSelector: {}\n    ipBlock: {cidr: 10.0.0.0/8}'), at: '10:7', message: /^spec\.egress\[0\]\.to\[0\]: may not specify both ipBlock and another peer/ },
  { name: 'ipBlock without cidr', yaml: pol('podSelector: {}\ningress:\n- from:\n  - ipBlock: {except: [10.0.0.0/24]}'), at: '10:16', message: /^spec\.ingress\[0\]\.from\[0\]\.ipBlock\.cidr: required/ },
  { name: 'cidr prefix too long', yaml: pol('podSelector: {}\ningress:\n- from:\n  - ipBlock:\n      cidr: 10.0.0.0/33'), at: '11:15', message: /ipBlock\.cidr: invalid value "10\.0\.0\.0\/33"/ },
  { name: 'cidr without prefix length', yaml: pol('podSelector: {}\ningress:\n- from:\n  - ipBlock:\n      cidr: 10.0.0.1'), at: '11:15', message: /invalid value "10\.0\.0\.1": .*missing prefix length/ },
  { name: 'cidr with host bits set', yaml: pol('podSelector: {}\ningress:\n- from:\n  - ipBlock:\n      cidr: 10.0.0.1/24'), at: '11:15', message: /must be in canonical form/, fix: /write 10\.0\.0\.0\/24/ },
  { name: 'cidr with leading zeros', yaml: pol('podSelector: {}\ningress:\n- from:\n  - ipBlock:\n      cidr: 010.0.0.0/8'), at: '11:15', message: /leading 0s/ },
  { name: 'except outside cidr', yaml: pol('podSelector: {}\ningress:\n- from:\n  - ipBlock:\n      cidr: 10.0.0.0/16\n      except: [10.1.0.0/24]'), at: '12:18', message: /ipBlock\.except\[0\]: invalid value "10\.1\.0\.0\/24": must be a strict subset of `cidr`/ },
  { name: 'except equal to cidr', yaml: pol('podSelector: {}\ningress:\n- from:\n  - ipBlock:\n      cidr: 10.0.0.0/16\n      except: [10.0.0.0/16]'), at: '12:18', message: /must be a strict subset of `cidr`/ },
  { name: 'except of another family', yaml: pol('podSelector: {}\ningress:\n- from:\n  - ipBlock:\n      cidr: 10.0.0.0/16\n      except: ["fd00::/64"]'), at: '12:18', message: /must be a strict subset of `cidr`/ },

  // ports
  { name: 'port 0', yaml: pol('podSelector: {}\ningress:\n- ports:\n  - port: 0'), at: '10:13', message: /^spec\.ingress\[0\]\.ports\[0\]\.port: invalid value 0: must be between 1 and 65535, inclusive/ },
  { name: 'port 65536', yaml: pol('podSelector: {}\ningress:\n- ports:\n  - port: 65536'), at: '10:13', message: /invalid value 65536: must be between 1 and 65535/ },
  { name: 'port with a leading zero', yaml: pol('podSelector: {}\ningress:\n- ports:\n  - port: 080'), at: '10:13', message: /080 has a leading zero/ },
  { name: 'port name longer than 15', yaml: pol('podSelector: {}\ningress:\n- ports:\n  - port: serve-80-tcp-extra'), at: '10:13', message: /invalid value "serve-80-tcp-extra": must be no more than 15 characters/ },
  { name: 'port name in upper case', yaml: pol('podSelector: {}\ningress:\n- ports:\n  - port: HTTP'), at: '10:13', message: /must contain only alpha-numeric characters \(a-z, 0-9\), and hyphens/ },
  { name: 'port name with consecutive hyphens', yaml: pol('podSelector: {}\ningress:\n- ports:\n  - port: a--b'), at: '10:13', message: /must not contain consecutive hyphens/ },
  { name: 'port name ending with a hyphen', yaml: pol('podSelector: {}\ningress:\n- ports:\n  - port: http-'), at: '10:13', message: /must not begin or end with a hyphen/ },
  { name: 'quoted numeric port is a (bad) name', yaml: pol('podSelector: {}\ningress:\n- ports:\n  - port: "80"'), at: '10:13', message: /invalid value "80": must contain at least one letter/, fix: /without quotes/ },
  { name: 'endPort with a named port', yaml: pol('podSelector: {}\ningress:\n- ports:\n  - port: http\n    endPort: 90'), at: '11:16', message: /endPort: may not be specified when `port` is non-numeric/ },
  { name: 'endPort without port', yaml: pol('podSelector: {}\ningress:\n- ports:\n  - endPort: 90'), at: '10:16', message: /endPort: may not be specified when `port` is not specified/ },
  { name: 'endPort below port', yaml: pol('podSelector: {}\ningress:\n- ports:\n  - port: 90\n    endPort: 80'), at: '11:16', message: /endPort: invalid value 80: must be greater than or equal to `port`/ },
  { name: 'endPort above 65535', yaml: pol('podSelector: {}\negress:\n- ports:\n  - port: 90\n    endPort: 70000'), at: '11:16', message: /spec\.egress\[0\]\.ports\[0\]\.endPort: invalid value 70000: must be between 1 and 65535/ },
  { name: 'protocol in lower case', yaml: pol('podSelector: {}\ningress:\n- ports:\n  - protocol: tcp'), at: '10:17', message: /protocol: unsupported value "tcp": supported values: "TCP", "UDP", "SCTP"/, fix: /write TCP/ },
  { name: 'protocol ICMP', yaml: pol('podSelector: {}\ningress:\n- ports:\n  - protocol: ICMP'), at: '10:17', message: /unsupported value "ICMP"/ },
];

for (const c of cases) {
  test(`invalid: ${c.name}`, () => {
    const r = parseNetworkPolicies(c.yaml, 'bad.yaml');
    const errors = r.diagnostics.filter((d) => d.severity === 'error');
    assert.ok(errors.length > 0, 'an error is reported');
    const hit = errors.find((d) => c.message.test(d.message));
    assert.ok(hit, `no error matches ${c.message}; got: ${errors.map((d) => `${d.pos?.line}:${d.pos?.col} ${d.message}`).join(' | ')}`);
    assert.equal(`${hit.pos?.line}:${hit.pos?.col}`, c.at, `position of: ${hit.message}`);
    assert.equal(hit.pos?.file, 'bad.yaml');
    assert.ok(hit.fix && hit.fix.length > 0, 'has a fix');
    if (c.fix) assert.match(hit.fix, c.fix);
    assert.match(hit.code, /^(netpol|yaml)\./);
    // A document with errors produces no Policy (the duplicate case keeps the first definition only).
    const expectedPolicies = c.name === 'the same policy twice in one file' ? 1 : 0;
    assert.equal(r.policies.length, expectedPolicies, 'no policy from a document with errors');
  });
}

test('at least 25 invalid objects are covered', () => {
  assert.ok(cases.length >= 25, `${cases.length}`);
  assert.equal(new Set(cases.map((c) => c.name)).size, cases.length);
});

test('the valid document of a file still yields its policy when another has errors', () => {
  const text = `${pol('podSelector: {}')}---\n${pol('podSelector: {}\npolicyTypes: [Sideways]').replace('name: p', 'name: q')}`;
  const r = parseNetworkPolicies(text, 'mixed.yaml');
  assert.deepEqual(r.policies.map((p) => p.id), ['netpol:x/p']);
  assert.equal(r.diagnostics.filter((d) => d.severity === 'error').length, 1);
});

test('one broken peer withdraws the whole policy (never a narrower or wider one)', () => {
  const r = parseNetworkPolicies(pol('podSelector: {}\ningress:\n- from:\n  - podSelector: {}\n  - ipBlock: {cidr: 300.0.0.0/8}'), 'peer.yaml');
  assert.equal(r.policies.length, 0);
  assert.equal(r.diagnostics.filter((d) => d.severity === 'error').length, 1);
});

test('every error of a document is reported, not just the first', () => {
  const r = parseNetworkPolicies(pol('podSelector:\n  matchLabels: {app: 1}\npolicyTypes: [ingress]\ningress:\n- ports:\n  - port: 0\n  - protocol: tcp'), 'many.yaml');
  const lines = r.diagnostics.filter((d) => d.severity === 'error').map((d) => d.pos?.line);
  assert.deepEqual(lines, [8, 9, 12, 13]);
});
