// A small TCP connection-rate load generator in C (a Node loop would be the bottleneck, not the
// kernel): `server PORT SECONDS` accepts and closes; `client IP PORT SECONDS MAXCONN WORKERS` opens and
// resets (SO_LINGER 0, so no TIME_WAIT piles up) connections as fast as it can with WORKERS
// processes, stops after SECONDS or MAXCONN connections, and prints `connections seconds`.
// Both stop by themselves. Built on first use into bench/.tools/ (ignored by git) with the system cc.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';

const SOURCE = String.raw`
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

static int server(int port, int seconds) {
  int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a; memset(&a, 0, sizeof a); a.sin_family = AF_INET; a.sin_port = htons(port); a.sin_addr.s_addr = INADDR_ANY;
  if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 4096)) { perror("bind/listen"); return 1; }
  // The second acceptor dies with the first (stopped by its alarm or by the benchmark).
  if (fork() == 0) { prctl(PR_SET_PDEATHSIG, SIGKILL); if (getppid() == 1) _exit(0); alarm(seconds); for (;;) { int c = accept(s, 0, 0); if (c >= 0) close(c); } }
  alarm(seconds);
  for (;;) { int c = accept(s, 0, 0); if (c >= 0) close(c); }
}

static int client(const char *ip, int port, double seconds, long max, int workers) {
  struct sockaddr_in a; memset(&a, 0, sizeof a); a.sin_family = AF_INET; a.sin_port = htons(port);
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) { fprintf(stderr, "bad ip\n"); return 2; }
  int fds[64][2]; if (workers < 1 || workers > 64) return 2;
  double t0 = now();
  for (int w = 0; w < workers; w++) {
    if (pipe(fds[w])) { perror("pipe"); return 2; }
    if (fork() == 0) {
      close(fds[w][0]);
      long n = 0, per = max / workers; struct linger l = { 1, 0 };
      alarm((unsigned)seconds + 5);
      while (n < per && now() - t0 < seconds) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        setsockopt(s, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) n++;
        close(s);
      }
      if (write(fds[w][1], &n, sizeof n) < 0) _exit(1);
      _exit(0);
    }
    close(fds[w][1]); // a worker killed by its alarm then reads as 0 connections (EOF), not a hang
  }
  long total = 0;
  for (int w = 0; w < workers; w++) { long n = 0; if (read(fds[w][0], &n, sizeof n) != sizeof n) n = 0; total += n; close(fds[w][0]); wait(0); }
  printf("%ld %.3f\n", total, now() - t0);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && !strcmp(argv[1], "server")) return server(atoi(argv[2]), atoi(argv[3]));
  if (argc == 7 && !strcmp(argv[1], "client")) return client(argv[2], atoi(argv[3]), atof(argv[4]), atol(argv[5]), atoi(argv[6]));
  fprintf(stderr, "usage: connload server PORT SECONDS | client IP PORT SECONDS MAXCONN WORKERS\n");
  return 2;
}
`;

/** Path of the built binary (built when missing or when the source changed). */
export function connloadBinary(): string {
  const dir = join(dirname(fileURLToPath(import.meta.url)), '.tools');
  const bin = join(dir, `connload-${createHash('sha256').update(SOURCE).digest('hex').slice(0, 8)}`);
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const src = `${bin}.c`;
  writeFileSync(src, SOURCE);
  const r = spawnSync('cc', ['-O2', '-o', bin, src], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cc failed: ${r.stderr}`);
  return bin;
}
