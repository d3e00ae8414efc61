/**
 * `npm run bench`: starts the platform on a fresh database, runs the shared FHIR benchmark harness
 * (../shared/bench) against it, and records the figures in docs/performance.md.
 *
 *   npm run bench                      # --patients 200 --concurrency 8 --duration 15
 *   npm run bench -- --patients 50     # any harness option
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { startPlatform } from './platform';
import { machineDescription, writeSection } from './report';

/** The shared harness; BENCH_HARNESS_DIR points at a copy where ../shared/bench is read-only without its node_modules. */
const HARNESS_DIR = process.env.BENCH_HARNESS_DIR ?? path.resolve(__dirname, '../../../shared/bench');
const DEFAULT_ARGS = ['--patients', '200', '--concurrency', '8', '--duration', '15'];

function withDefaults(args: string[]): string[] {
  const out = [...args];
  for (let i = 0; i < DEFAULT_ARGS.length; i += 2) {
    if (!out.includes(DEFAULT_ARGS[i])) {
      out.push(DEFAULT_ARGS[i], DEFAULT_ARGS[i + 1]);
    }
  }
  return out;
}

async function runHarness(baseUrl: string, token: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['fhir-bench.mjs', baseUrl, ...args], {
      cwd: HARNESS_DIR,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, FHIR_TOKEN: token },
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      process.stdout.write(chunk);
      output += chunk.toString();
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code: code ?? 1, output }));
  });
}

async function main(): Promise<void> {
  if (!existsSync(path.join(HARNESS_DIR, 'node_modules'))) {
    throw new Error(`the harness's dependencies are missing: run "npm ci" in ${HARNESS_DIR} first`);
  }
  const args = withDefaults(process.argv.slice(2));
  const platform = await startPlatform(Number(process.env.BENCH_PORT ?? 18080));
  try {
    const machine = await machineDescription(platform.databaseUrl);
    const { code, output } = await runHarness(platform.baseUrl, platform.token, args);
    const figures = output.split('\n').filter((l) => l.startsWith('figure ')).map((l) => l.slice('figure '.length));
    writeSection(
      'harness',
      [
        '## Shared harness (ingest, read, search, update)',
        '',
        `Command: \`npm run bench -- ${args.join(' ')}\` (run ${new Date().toISOString()}; harness exit code ${code})`,
        '',
        `Machine: ${machine}`,
        '',
        '```',
        ...figures,
        '```',
      ].join('\n'),
    );
    if (code !== 0) {
      process.exitCode = code;
    }
  } finally {
    await platform.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
