/**
 * Text helpers shared by the string, token and uri search types.
 */

/** Combining diacritical marks (U+0300–U+036F) only: the accents of Latin, Greek and Cyrillic letters. */
const LATIN_DIACRITICS = /[\u0300-\u036f]/g;

/**
 * What default and `:contains` string searches compare: lower-cased, accents removed ("Zoë" → "zoe").
 * Only the Latin-style combining block is stripped, so that marks which change a letter in other scripts (the
 * Japanese dakuten, for one) survive; Chinese characters have no decomposition and stay as they are. The final
 * NFC puts anything NFD split apart (Hangul syllables) back together.
 */
export function normalizeString(value: string): string {
  return value.normalize('NFD').replace(LATIN_DIACRITICS, '').normalize('NFC').toLowerCase();
}

/** Escapes `%`, `_` and the escape character itself, so user text is matched literally by LIKE. */
export function escapeLike(value: string): string {
  return value.replace(/[\\%_]/g, (c) => '\\' + c);
}
