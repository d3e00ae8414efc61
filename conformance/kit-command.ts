/**
 * `npm run conformance:kit -- --base <fhir base url> [--token <bearer token> | --client-id <id>] [--canonical-base <url>]`
 * Runs the conformance kit (kit.ts) against a Huimin deployment, prints one line per check and exits 1 when any
 * check fails (2 on bad arguments). Secrets come from the environment so that they need not appear in a process
 * list: the token from HUIMIN_TOKEN (or --token), a client's secret from HUIMIN_CLIENT_SECRET (with --client-id).
 */
import { parseArgs } from 'node:util';
import { DEFAULT_CANONICAL_BASE, parseCanonicalBase } from './config';
import { loadImplementationGuide } from './guide';
import { runConformanceKit, type KitCheck } from './kit';

const USAGE =
  'usage: npm run conformance:kit -- --base <fhir base url> [--token <bearer token> | --client-id <id> (secret in HUIMIN_CLIENT_SECRET)] [--canonical-base <url>]';

async function main(): Promise<number> {
  let values: { base?: string; token?: string; 'client-id'?: string; 'canonical-base'?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: { base: { type: 'string' }, token: { type: 'string' }, 'client-id': { type: 'string' }, 'canonical-base': { type: 'string' }, help: { type: 'boolean' } },
      strict: true,
    }));
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help || !values.base) {
    console.error(USAGE);
    return values.help ? 0 : 2;
  }
  let base: URL;
  try {
    base = new URL(values.base);
  } catch {
    console.error(`--base must be an absolute URL, got "${values.base}"\n${USAGE}`);
    return 2;
  }
  const clientId = values['client-id'];
  const secret = process.env.HUIMIN_CLIENT_SECRET;
  if (clientId && !secret) {
    console.error('--client-id needs the client secret in HUIMIN_CLIENT_SECRET');
    return 2;
  }
  const canonicalBase = values['canonical-base'] ? parseCanonicalBase(values['canonical-base'], '--canonical-base') : DEFAULT_CANONICAL_BASE;
  const guide = loadImplementationGuide(canonicalBase);
  console.log(`Huimin conformance kit: ${guide.implementationGuide.url} ${guide.implementationGuide.version} against ${base.href}`);
  const print = (c: KitCheck): void => console.log(`${c.ok ? 'PASS' : 'FAIL'}  ${c.name}  ${c.detail}`);
  const report = await runConformanceKit({
    baseUrl: base.href.replace(/\/$/, ''),
    token: values.token ?? process.env.HUIMIN_TOKEN,
    client: clientId && secret ? { id: clientId, secret } : undefined,
    guide,
    onCheck: print,
  });
  console.log(`${report.passed} passed, ${report.failed} failed`);
  return report.failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('conformance kit failed:', err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
