// Child process for netlink.test.ts, run inside a throw-away netns (`ip netns exec NS node ...`):
// applies the JSON list of element-change batches given on stdin over netlink, one transaction each,
// and prints one line per batch: "ok" or "error <message>".
import { readFileSync } from 'node:fs';
import { NftNetlink, type ElementChange } from '../../../src/enforce/backends/nft/netlink.js';
import { applyElements } from '../../../src/enforce/backends/nft/netlink-table.js';

const { table, batches } = JSON.parse(readFileSync(0, 'utf8')) as { table: string; batches: ElementChange[][] };
const nl = NftNetlink.open();
if (!nl) {
  console.log('error netlink module unavailable');
  process.exit(0);
}
for (const b of batches) {
  try {
    await applyElements(nl, table, b);
    console.log('ok');
  } catch (e) {
    console.log(`error ${(e as Error).message}`);
  }
}
nl.close();
