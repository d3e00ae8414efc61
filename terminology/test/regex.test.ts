/** Regex filters: a pattern that could take exponential time (ReDoS) is refused before it runs. */
import { hasNestedQuantifier } from '../valueset';

it('finds nested unbounded quantifiers and lets ordinary patterns through', () => {
  for (const bad of ['(a+)+', '((a+)+)+', '(a*)*', '(ab+c)*', '(a{2,})+', '((a+)b)*']) {
    expect([bad, hasNestedQuantifier(bad)]).toEqual([bad, true]);
  }
  for (const ok of ['A.T', '[0-9]+-[0-9]', '(ab)+', '(a+)b', '\\(a+\\)+', '[(a+)]+', 'code[0-9]{1,3}', '(a|b)*', '(a+){2,3}']) {
    expect([ok, hasNestedQuantifier(ok)]).toEqual([ok, false]);
  }
});
