/**
 * `npm run hl7:replay -- <message id>…` or `npm run hl7:replay -- --pending [--facility <Organization id>]`:
 * processes failed messages again from the message store, after their mapping, facility registration or data was
 * corrected. The API equivalent is `POST [base]/$hl7-replay`.
 */
import { describeProblem } from '../hl7/problems';
import { searchMessages } from '../store/message-store';
import { openCommandPlatform } from './platform';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const ids = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--facility');
  const facility = args.includes('--facility') ? args[args.indexOf('--facility') + 1] : undefined;
  if (ids.length === 0 && !args.includes('--pending')) {
    console.error('usage: npm run hl7:replay -- <message id>… | --pending [--facility <Organization id>]');
    process.exit(2);
  }
  const platform = await openCommandPlatform();
  let failed = 0;
  try {
    if (args.includes('--pending')) {
      ids.push(...(await searchMessages(platform.db, { pendingReplay: true, facilityId: facility, limit: 1000 })).map((m) => m.id));
    }
    for (const id of ids) {
      const result = await platform.adapters.ingest.replay(id).catch((err: Error) => err);
      if (!result || result instanceof Error) {
        failed++;
        console.log(`${id}: ${result ? result.message : 'no such message'}`);
        continue;
      }
      if (result.outcome !== 'AA') failed++;
      console.log(`${id}: ${result.outcome} (replay ${result.messageId})${result.problems.length ? ` ${result.problems.map(describeProblem).join('; ')}` : ''}`);
    }
  } finally {
    await platform.close();
  }
  process.exit(failed ? 1 : 0);
}

main().catch((err: unknown) => {
  console.error('hl7:replay failed:', err);
  process.exit(1);
});
