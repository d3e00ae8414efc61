/**
 * FHIR search value escaping (search.html, "Escaping search parameters"): `\,` `\|` `\$` and `\\` stand for the
 * characters themselves, while the bare `,` separates OR'ed values, `|` the parts of a token or quantity, and `$`
 * the components of a composite value.
 *
 * A value is split on one separator at a time with the other escapes kept, so that `a\|b|c` inside an OR list
 * still splits into "a|b" and "c" afterwards; `unescape` removes the backslashes once no more splitting follows.
 */

/** Splits on every unescaped `separator`, keeping all escapes (including those of the separator) in the parts. */
export function splitUnescaped(value: string, separator: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '\\' && i + 1 < value.length) {
      current += c + value[++i];
    } else if (c === separator) {
      parts.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  parts.push(current);
  return parts;
}

/** Removes the escaping backslashes: `a\,b\\c` is "a,b\c". */
export function unescape(value: string): string {
  return value.replace(/\\(.)/gs, '$1');
}

/** Splits on `separator` and unescapes each part: `a\|b|c` is ["a|b", "c"]. */
export function splitEscaped(value: string, separator: string): string[] {
  return splitUnescaped(value, separator).map(unescape);
}
