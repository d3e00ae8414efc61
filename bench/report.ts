/**
 * Writes benchmark figures into docs/performance.md, in a section per benchmark that each run replaces, with the
 * machine and the command that produced them.
 */
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

const DOC = path.resolve(__dirname, '../../docs/performance.md');

export async function machineDescription(databaseUrl: string): Promise<string> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
  await client.end();
  const cpus = os.cpus();
  return [
    `${cpus.length} × ${cpus[0]?.model ?? 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`,
    `Node ${process.version}, PostgreSQL ${rows[0].server_version} (durable commits: synchronous_commit on), Redis on the same machine`,
    'application, database and harness all on this machine',
  ].join('; ');
}

export function writeSection(name: string, body: string): void {
  const begin = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const section = `${begin}\n${body.trim()}\n${end}`;
  const doc = existsSync(DOC) ? readFileSync(DOC, 'utf8') : '# Performance\n';
  const start = doc.indexOf(begin);
  const stop = doc.indexOf(end);
  const next = start >= 0 && stop > start ? doc.slice(0, start) + section + doc.slice(stop + end.length) : `${doc.trimEnd()}\n\n${section}\n`;
  writeFileSync(DOC, next);
}

/**
 * A benchmark's section in the usual shape: its heading, the sentence giving the command it ran with, the machine,
 * and the lines it printed as a block.
 */
export function writeBenchSection(name: string, heading: string, command: string, machine: string, lines: readonly string[]): void {
  writeSection(
    name,
    [
      heading,
      '',
      command,
      '',
      `Machine: ${machine}. The load averages in the first line say how busy it was: figures from a busy machine are pessimistic.`,
      '',
      '```',
      ...lines,
      '```',
    ].join('\n'),
  );
}
