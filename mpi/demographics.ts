/**
 * What the index compares of a Patient, normalised once: national identifiers (canonical), the name in Chinese
 * characters and in pinyin (pinyin-pro), birth date and sex (read from the resident ID when the record lacks them),
 * phone numbers and the address. Stored with each indexed patient (mpi_patient.demographics), so that scoring a
 * candidate never loads its resource.
 */
import type { HumanName, Patient } from '@medplum/fhirtypes';
import { pinyin } from 'pinyin-pro';
import { nationalIdToken, parseResidentId, type NationalIdKind } from './national-ids';

export interface Demographics {
  /** `kind|value` of every national identifier, canonical. */
  ids: string[];
  /** The name in Chinese characters, family name first (as written: a swapped name stays swapped). */
  han?: string;
  /** Family name and given name in characters, to recognise a swapped order. */
  family?: string;
  given?: string;
  /** Pinyin syllables of the name, in written order (from the characters, or a Latin-letter name). */
  pinyin?: string[];
  birthDate?: string;
  gender?: string;
  /** Digits only, country code 86 dropped. */
  phones: string[];
  /** Characters and digits of the first address, without spaces and punctuation. */
  address?: string;
}

const HAN = /\p{Script=Han}/u;
const NOT_NAME = /[^\p{Script=Han}A-Za-z]/gu;

const syllables = (han: string): string[] => pinyin(han, { toneType: 'none', type: 'array', surname: 'head' }).map((s) => s.toLowerCase());

function nameParts(name: HumanName): { family: string; given: string; latin: boolean } {
  let family = (name.family ?? '').replace(NOT_NAME, '');
  let given = (name.given ?? []).join('').replace(NOT_NAME, '');
  if (!family && !given && name.text) {
    const text = name.text.trim();
    if (HAN.test(text)) {
      // A Chinese name in `text` alone: the first character is the family name (compound surnames are rare enough
      // that the comparison, which also tries the whole name, does not suffer).
      const chars = text.replace(NOT_NAME, '');
      family = chars.slice(0, 1);
      given = chars.slice(1);
    } else {
      const words = text.split(/[\s,]+/).filter(Boolean);
      family = words[0] ?? '';
      given = words.slice(1).join(' ');
    }
  }
  return { family, given, latin: !HAN.test(family + given) };
}

/** Latin-letter pinyin words split into syllables where they are written apart ("Zhang Wei", "ZHANG Wei-Ming"). */
const latinSyllables = (s: string): string[] => s.toLowerCase().split(/[\s\-']+/).filter(Boolean);

export function demographicsOf(patient: Patient): Demographics {
  const ids = new Set<string>();
  let fromId: { birthDate: string; gender: string } | undefined;
  for (const identifier of patient.identifier ?? []) {
    const token = nationalIdToken(identifier);
    if (token) {
      ids.add(`${token.kind}|${token.value}`);
      if (token.kind === 'resident-id' && !fromId) {
        const parsed = parseResidentId(token.value);
        if (parsed.ok) fromId = { birthDate: parsed.id.birthDate, gender: parsed.id.gender };
      }
    }
  }
  const d: Demographics = { ids: [...ids].sort(), phones: [] };
  const names = (patient.name ?? []).filter((n) => n.use !== 'old');
  const hanName = names.map(nameParts).find((n) => !n.latin && (n.family || n.given));
  const latinName = names.map(nameParts).find((n) => n.latin && (n.family || n.given));
  if (hanName) {
    d.family = hanName.family;
    d.given = hanName.given;
    d.han = hanName.family + hanName.given;
    d.pinyin = syllables(d.han);
  } else if (latinName) {
    d.pinyin = [...latinSyllables(latinName.family), ...latinSyllables(latinName.given)];
  }
  const birthDate = patient.birthDate && /^\d{4}-\d{2}-\d{2}$/.test(patient.birthDate) ? patient.birthDate : fromId?.birthDate;
  if (birthDate) d.birthDate = birthDate;
  const gender = patient.gender === 'male' || patient.gender === 'female' ? patient.gender : fromId?.gender;
  if (gender) d.gender = gender;
  for (const t of patient.telecom ?? []) {
    if ((t.system === 'phone' || t.system === 'sms') && t.value) {
      const digits = t.value.replace(/\D/g, '').replace(/^0086|^86(?=1\d{10}$)/, '');
      if (digits.length >= 7 && !d.phones.includes(digits)) d.phones.push(digits);
    }
  }
  const address = patient.address?.[0];
  if (address) {
    const text = address.text ?? [address.state, address.city, address.district, ...(address.line ?? [])].filter(Boolean).join('');
    const compact = text.replace(/[\s\p{P}]/gu, '');
    if (compact) d.address = compact;
  }
  return d;
}

export const idsOfKind = (d: Demographics, kind: NationalIdKind): string[] =>
  d.ids.filter((i) => i.startsWith(`${kind}|`)).map((i) => i.slice(kind.length + 1));

/**
 * Blocking keys: a candidate shares at least one with the record it may match. Kept narrow enough that a key
 * holds a few dozen patients among millions (a name's pinyin with the birth year; the birth date with the sex),
 * and kind to typing errors (pinyin: homophones and swapped order; birth date: a mistyped name).
 */
export function blockingKeys(d: Demographics): string[] {
  const keys = new Set<string>(d.ids.map((i) => `id:${i}`));
  const py = d.pinyin ? [...d.pinyin].sort().join('') : undefined;
  if (py && d.birthDate) keys.add(`py:${py}:${d.birthDate.slice(0, 4)}`);
  if (d.birthDate) keys.add(`bd:${d.birthDate}:${d.gender ?? '?'}`);
  if (py && d.phones.length) d.phones.forEach((p) => keys.add(`ph:${p}`));
  return [...keys];
}
