/**
 * `npm run hl7:batch -- <file>…`: takes in HL7 v2 batch files (FHS/BHS … BTS/FTS, or plain files of messages) as
 * county data centres drop them. Each message goes through the same pipeline as over MLLP (stored, or recorded
 * AE/AR for replay); a progress bar shows the way, and a summary lists what was refused and why.
 */
import { readFileSync } from 'node:fs';
import cliProgress from 'cli-progress';
import { splitMessages } from '../batch';
import { describeProblem } from '../hl7/problems';
import { openCommandPlatform } from './platform';

async function main(): Promise<void> {
  const files = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  if (files.length === 0) {
    console.error('usage: npm run hl7:batch -- <file> [<file>…]');
    process.exit(2);
  }
  const messages = files.flatMap((file) => splitMessages(readFileSync(file)).map((bytes, index) => ({ file, index, bytes })));
  const platform = await openCommandPlatform();
  const bar = new cliProgress.SingleBar({ format: 'HL7 batch [{bar}] {value}/{total} messages | AA {aa} AE {ae} AR {ar}', hideCursor: true }, cliProgress.Presets.shades_classic);
  const counts = { aa: 0, ae: 0, ar: 0 };
  const refused: string[] = [];
  bar.start(messages.length, 0, counts);
  try {
    for (const m of messages) {
      const result = await platform.adapters.ingest.receive(m.bytes);
      counts[result.outcome.toLowerCase() as 'aa' | 'ae' | 'ar']++;
      if (result.outcome !== 'AA') {
        refused.push(`${m.file} #${m.index + 1} (${result.messageId}): ${result.outcome} ${result.problems.map(describeProblem).join('; ')}`);
      }
      bar.increment(1, counts);
    }
  } finally {
    bar.stop();
    await platform.close();
  }
  console.log(`${messages.length} messages: ${counts.aa} accepted, ${counts.ae} AE, ${counts.ar} AR`);
  if (refused.length) {
    console.log('Refused (kept in the message store; correct and run `npm run hl7:replay -- <id>`):');
    refused.forEach((r) => console.log(`  ${r}`));
  }
  process.exit(refused.length ? 1 : 0);
}

main().catch((err: unknown) => {
  console.error('hl7:batch failed:', err);
  process.exit(1);
});
