/**
 * Narrative XHTML safety (FHIR txt-1/txt-2): the div must be an XHTML div and must not contain active or
 * document-level content. A narrative is rendered by clients, so a `<script>` or an `onclick` in it is a stored
 * XSS vector; the check is deliberately a fast scan of tags and attributes, not a full XHTML parse.
 */
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import { makeIssue } from './issues';

/** Elements the FHIR narrative rules exclude: scripts, forms, frames, objects, document structure, links. */
const FORBIDDEN_ELEMENTS = new Set([
  'script', 'head', 'body', 'html', 'form', 'input', 'button', 'select', 'textarea', 'option', 'base', 'link',
  'meta', 'frame', 'frameset', 'iframe', 'object', 'embed', 'applet', 'param',
]);

const TAG = /<\s*([A-Za-z][\w:.-]*)([^>]*)>/g;
const ATTRIBUTE = /([A-Za-z_:][\w:.-]*)\s*=\s*("[^"]*"|'[^']*')/g;

export function checkNarrativeDiv(div: string, path: string, issues: OperationOutcomeIssue[]): void {
  if (!/^\s*<div[\s>]/.test(div) || !/xmlns\s*=\s*["']http:\/\/www\.w3\.org\/1999\/xhtml["']/.test(div)) {
    issues.push(makeIssue('error', 'value', `${path} must be an XHTML <div> in the namespace http://www.w3.org/1999/xhtml`, path));
  }
  for (const [, name, attributes] of div.matchAll(TAG)) {
    const element = name.toLowerCase();
    if (FORBIDDEN_ELEMENTS.has(element)) {
      issues.push(makeIssue('error', 'security', `${path}: the element <${element}> is not allowed in a narrative (txt-1)`, path));
    }
    for (const [, attribute, quoted] of attributes.matchAll(ATTRIBUTE)) {
      const lower = attribute.toLowerCase();
      if (lower.startsWith('on') || /^\s*["']?\s*javascript:/i.test(quoted)) {
        issues.push(makeIssue('error', 'security', `${path}: the attribute ${attribute} on <${element}> is not allowed in a narrative (txt-1)`, path));
      }
    }
  }
}
