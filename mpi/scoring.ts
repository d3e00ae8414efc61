/**
 * How alike two residents' records are. National identifiers decide on their own: the same number is the same
 * person, two different numbers of one kind are two people. Otherwise each field adds agreement weight or takes
 * disagreement weight (in the manner of Fellegi–Sunter log-likelihood ratios, set by hand), and the sum decides
 * against two thresholds: auto-link, review queue, no link. The weights are chosen so that
 *   - a name, birth date and sex alone (a common name!) only reach the review queue: a second agreeing fact
 *     (phone, address) is needed to link, and differing phone and address push it below review;
 *   - twins (same family name, birth date, address and phone, another given name) stay apart;
 *   - typing errors that keep the pinyin (homophones, the usual input-method slip) and a swapped family/given
 *     order count almost as much as the same name.
 * Every comparison is kept as evidence, field by field, with each decision.
 */
import type { Demographics } from './demographics';

export interface MatchThresholds {
  /** Total weight from which a record is linked without a person looking at it. */
  autoLink: number;
  /** Total weight from which a pair goes to the review worklist. */
  review: number;
}

/** The default thresholds (MPI_AUTO_LINK_WEIGHT, MPI_REVIEW_WEIGHT). */
export const DEFAULT_THRESHOLDS: MatchThresholds = { autoLink: 14, review: 9 };

/** The largest total: every field agreeing exactly. */
export const MAX_WEIGHT = 18;

export interface FieldEvidence {
  field: 'identifier' | 'name' | 'birthDate' | 'gender' | 'phone' | 'address';
  outcome: string;
  weight: number;
}

export interface MatchResult {
  /** Sum of the weights; +Infinity for the same national identifier, -Infinity for different ones. */
  weight: number;
  /** 0..1, for $match's search.score. */
  score: number;
  grade: 'certain' | 'probable' | 'possible' | 'certainly-not';
  evidence: FieldEvidence[];
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const next = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = row[j];
      row[j] = next;
    }
  }
  return row[b.length];
}

function compareIds(a: Demographics, b: Demographics): FieldEvidence | undefined {
  const shared = a.ids.filter((i) => b.ids.includes(i));
  if (shared.length) {
    return { field: 'identifier', outcome: `same ${shared[0].split('|')[0]} ${shared[0].split('|')[1]}`, weight: Infinity };
  }
  for (const kind of ['resident-id', 'health-card', 'social-security']) {
    const x = a.ids.filter((i) => i.startsWith(`${kind}|`));
    const y = b.ids.filter((i) => i.startsWith(`${kind}|`));
    // Resident ID numbers are for life and unique: two of them are two people. Cards are reissued, so a
    // different card number only means nothing.
    if (kind === 'resident-id' && x.length && y.length) {
      return { field: 'identifier', outcome: `different resident ID numbers ${x[0].split('|')[1]} and ${y[0].split('|')[1]}`, weight: -Infinity };
    }
  }
  return undefined;
}

function compareName(a: Demographics, b: Demographics): FieldEvidence | undefined {
  if (a.han && b.han) {
    if (a.han === b.han) return { field: 'name', outcome: `same name ${a.han}`, weight: 7 };
    if (a.given && b.given && a.family && b.family && a.given + a.family === b.han) {
      return { field: 'name', outcome: `same name in swapped order (${a.han} / ${b.han})`, weight: 6 };
    }
  }
  if (a.pinyin?.length && b.pinyin?.length) {
    const pa = a.pinyin.join(' ');
    const pb = b.pinyin.join(' ');
    const sortedA = [...a.pinyin].sort().join(' ');
    const sortedB = [...b.pinyin].sort().join(' ');
    if (pa === pb) return { field: 'name', outcome: `same pinyin ${pa}${a.han && b.han ? ` (${a.han} / ${b.han}: homophone)` : ''}`, weight: 5 };
    if (sortedA === sortedB) return { field: 'name', outcome: `same pinyin in swapped order (${pa} / ${pb})`, weight: 5 };
    if (a.pinyin.length === b.pinyin.length && editDistance(pa, pb) <= 1) {
      return { field: 'name', outcome: `pinyin one letter apart (${pa} / ${pb})`, weight: 3 };
    }
    if (a.pinyin[0] === b.pinyin[0] || (a.family && a.family === b.family)) {
      return { field: 'name', outcome: `same family name, different given name (${a.han ?? pa} / ${b.han ?? pb})`, weight: -4 };
    }
    return { field: 'name', outcome: `different names (${a.han ?? pa} / ${b.han ?? pb})`, weight: -6 };
  }
  return undefined;
}

function compareBirthDate(a: Demographics, b: Demographics): FieldEvidence | undefined {
  if (!a.birthDate || !b.birthDate) return undefined;
  if (a.birthDate === b.birthDate) return { field: 'birthDate', outcome: `same birth date ${a.birthDate}`, weight: 5 };
  const [ya, ma, da] = a.birthDate.split('-');
  const [yb, mb, db] = b.birthDate.split('-');
  const digits = a.birthDate.replace(/-/g, '');
  const other = b.birthDate.replace(/-/g, '');
  if (editDistance(digits, other) <= 1 || (ya === yb && ma === db && da === mb)) {
    return { field: 'birthDate', outcome: `birth dates one typing error apart (${a.birthDate} / ${b.birthDate})`, weight: 2 };
  }
  return { field: 'birthDate', outcome: `different birth dates (${a.birthDate} / ${b.birthDate})`, weight: -6 };
}

function compareGender(a: Demographics, b: Demographics): FieldEvidence | undefined {
  if (!a.gender || !b.gender) return undefined;
  return a.gender === b.gender
    ? { field: 'gender', outcome: `same sex ${a.gender}`, weight: 1 }
    : { field: 'gender', outcome: `different sex (${a.gender} / ${b.gender})`, weight: -8 };
}

function comparePhone(a: Demographics, b: Demographics): FieldEvidence | undefined {
  if (!a.phones.length || !b.phones.length) return undefined;
  const same = a.phones.find((p) => b.phones.includes(p));
  return same ? { field: 'phone', outcome: `same phone ${same}`, weight: 3 } : { field: 'phone', outcome: 'different phones', weight: -3 };
}

function compareAddress(a: Demographics, b: Demographics): FieldEvidence | undefined {
  if (!a.address || !b.address) return undefined;
  if (a.address === b.address) return { field: 'address', outcome: 'same address', weight: 2 };
  const [short, long] = a.address.length < b.address.length ? [a.address, b.address] : [b.address, a.address];
  if (short.length >= 6 && long.includes(short)) return { field: 'address', outcome: 'one address contains the other', weight: 1 };
  if (editDistance(a.address, b.address) <= 2) return { field: 'address', outcome: 'addresses two characters apart', weight: 1 };
  return { field: 'address', outcome: 'different addresses', weight: -3 };
}

export function compareRecords(a: Demographics, b: Demographics, thresholds: MatchThresholds = DEFAULT_THRESHOLDS): MatchResult {
  const id = compareIds(a, b);
  if (id && id.weight === Infinity) return { weight: Infinity, score: 1, grade: 'certain', evidence: [id] };
  if (id) return { weight: -Infinity, score: 0, grade: 'certainly-not', evidence: [id] };
  const evidence = [compareName(a, b), compareBirthDate(a, b), compareGender(a, b), comparePhone(a, b), compareAddress(a, b)].filter(
    (e): e is FieldEvidence => e !== undefined,
  );
  const weight = evidence.reduce((sum, e) => sum + e.weight, 0);
  const score = Math.round(Math.max(0, Math.min(1, weight / MAX_WEIGHT)) * 1000) / 1000;
  const grade = weight >= thresholds.autoLink ? 'probable' : weight >= thresholds.review ? 'possible' : 'certainly-not';
  return { weight, score, grade, evidence };
}

export type Decision = 'link' | 'review' | 'no-link';

export function decisionOf(result: MatchResult, thresholds: MatchThresholds = DEFAULT_THRESHOLDS): Decision {
  if (result.weight >= thresholds.autoLink) return 'link';
  if (result.weight >= thresholds.review) return 'review';
  return 'no-link';
}
