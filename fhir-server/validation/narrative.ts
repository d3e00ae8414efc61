/**
 * Narrative XHTML safety (FHIR txt-1/txt-2): the div must be an XHTML div and must not contain active or
 * document-level content. A narrative is rendered by clients, so a `<script>` or an `onclick` in it is a stored
 * XSS vector; the check is deliberately a fast scan of tags and attributes, not a full XHTML parse.
 */
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import { isPlainObject, makeIssue } from './issues';

/** Elements the FHIR narrative rules exclude: scripts, forms, frames, objects, document structure, links. */
const FORBIDDEN_ELEMENTS = new Set([
  'script',
  'head',
  'body',
  'html',
  'form',
  'input',
  'button',
  'select',
  'textarea',
  'option',
  'base',
  'link',
  'meta',
  'frame',
  'frameset',
  'iframe',
  'object',
  'embed',
  'applet',
  'param',
]);

const TAG = /<\s*([A-Za-z][\w:.-]*)([^>]*)>/g;
const ATTRIBUTE = /([A-Za-z_:][\w:.-]*)\s*=\s*("[^"]*"|'[^']*')/g;

export function checkNarrativeDiv(div: string, path: string, issues: OperationOutcomeIssue[]): void {
  if (!/^\s*<div[\s>]/.test(div) || !/xmlns\s*=\s*["']http:\/\/www\.w3\.org\/1999\/xhtml["']/.test(div)) {
    issues.push(
      makeIssue('error', 'value', `${path} must be an XHTML <div> in the namespace http://www.w3.org/1999/xhtml`, path)
    );
  }
  for (const [, name, attributes] of div.matchAll(TAG)) {
    const element = name.toLowerCase();
    if (FORBIDDEN_ELEMENTS.has(element)) {
      issues.push(
        makeIssue('error', 'security', `${path}: the element <${element}> is not allowed in a narrative (txt-1)`, path)
      );
    }
    for (const [, attribute, quoted] of attributes.matchAll(ATTRIBUTE)) {
      const lower = attribute.toLowerCase();
      if (lower.startsWith('on') || /^\s*["']?\s*javascript:/i.test(quoted)) {
        issues.push(
          makeIssue(
            'error',
            'security',
            `${path}: the attribute ${attribute} on <${element}> is not allowed in a narrative (txt-1)`,
            path
          )
        );
      }
    }
  }
}

const ANCHOR = /\s(?:id|name)\s*=\s*["']([^"']+)["']/g;
const LOCAL_LINK = /\shref\s*=\s*["']#([^"']*)["']/g;

function narrativeDiv(resource: unknown): string | undefined {
  const text = isPlainObject(resource) && isPlainObject(resource.text) ? resource.text : undefined;
  return typeof text?.div === 'string' ? text.div : undefined;
}

/**
 * Local hyperlinks (`href="#x"`) in a resource's narrative must lead somewhere: to an element with that id or
 * name in the narratives of the resource or its contained resources, or to a contained resource's id. A link
 * that resolves nowhere is broken for every reader of the narrative.
 */
export function checkNarrativeLinks(resource: Record<string, unknown>, path: string, issues: OperationOutcomeIssue[]) {
  const div = narrativeDiv(resource);
  if (!div?.includes('href')) {
    return;
  }
  const contained = Array.isArray(resource.contained) ? resource.contained : [];
  const targets = new Set<string>();
  for (const source of [div, ...contained.map(narrativeDiv)]) {
    for (const [, anchor] of source?.matchAll(ANCHOR) ?? []) {
      targets.add(anchor);
    }
  }
  for (const item of contained) {
    if (isPlainObject(item) && typeof item.id === 'string') {
      targets.add(item.id);
    }
  }
  for (const [, fragment] of div.matchAll(LOCAL_LINK)) {
    if (fragment && !targets.has(fragment)) {
      issues.push(
        makeIssue(
          'error',
          'value',
          `${path}.text.div: the link "#${fragment}" does not resolve to anything in the resource`,
          `${path}.text.div`
        )
      );
    }
  }
}
