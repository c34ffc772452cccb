// Local images for the demo and the integration tests. No registry is reachable, so images are built
// from the host's static busybox: copy it into a root folder, `busybox --install -s` inside a chroot,
// and import the tar into Docker (scripts/build-images.sh does the same in bash).
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { userError } from '../model/diagnostics.js';

export const BUSYBOX_IMAGE = 'moat-busybox:1';

function statusCode(err: unknown): number | undefined {
  const s = (err as { statusCode?: unknown })?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

export async function imageExists(docker: Docker, name: string): Promise<boolean> {
  try {
    await docker.getImage(name).inspect();
    return true;
  } catch (err) {
    if (statusCode(err) === 404) return false;
    throw err;
  }
}

/** Builds `moat-busybox:1` unless present. Throws UserError when the host has no static busybox. */
export async function ensureBusyboxImage(docker: Docker, name = BUSYBOX_IMAGE): Promise<void> {
  if (await imageExists(docker, name)) return;
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
  if (!busybox) {
    throw userError('demo.no-busybox', `cannot build the image ${name}: no busybox on this host`, {
      fix: 'install Debian busybox-static (apt-get install -y busybox-static) or run scripts/ensure-dockerd.sh',
    });
  }
  const root = mkdtempSync(join(tmpdir(), 'moat-busybox-root-'));
  const tarFile = `${root}.tar`;
  try {
    for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'tmp', 'www', 'proc', 'sys', 'dev', 'root', 'var/run']) {
      mkdirSync(join(root, d), { recursive: true });
    }
    chmodSync(join(root, 'tmp'), 0o1777);
    copyFileSync(busybox, join(root, 'bin/busybox'));
    chmodSync(join(root, 'bin/busybox'), 0o755);
    const inst = spawnSync('chroot', [root, '/bin/busybox', '--install', '-s', '/bin'], { encoding: 'utf8', timeout: 60_000 });
    if (inst.status !== 0) throw new Error(`busybox --install failed (is ${busybox} static?): ${inst.stderr}`);
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
    writeFileSync(join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
    writeFileSync(join(root, 'www/index.html'), 'moat test image\n');
    const tar = spawnSync('tar', ['-C', root, '-cf', tarFile, '.'], { encoding: 'utf8', timeout: 60_000 });
    if (tar.status !== 0) throw new Error(`tar failed: ${tar.stderr}`);
    const [repo, tag] = name.split(':');
    const stream = await docker.importImage(tarFile, {
      repo,
      tag: tag ?? 'latest',
      changes: ['CMD ["/bin/sh"]', 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin', 'WORKDIR /www'],
    });
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve()));
    });
    if (!(await imageExists(docker, name))) throw new Error(`importing ${name} did not create it`);
  } finally {
    rmSync(root, { recursive: true, force: true });
    rmSync(tarFile, { force: true });
  }
}
