/**
 * XON (OBX-23 performing organization, with OBX-24 its address) → a reference to an Organization, resolved the way
 * the sending facility is (MSH-4 → a registered Organization by identifier):
 *
 *   1. the sending facility itself, when the XON names it (its MSH-4 key or its name);
 *   2. a registered Organization that is part of the facility (a department: `partOf` the facility) with the XON's
 *      identifier (XON.10, else the v2.3/2.4 XON.3) as one of its identifier values — this is how a laboratory
 *      department's HR grant reaches the results it produced;
 *   3. a registered Organization with the identifier `urn:oid:<XON.6.2>|<id>`, when the assigning authority is an
 *      OID (an outside reference laboratory known to the region by its national code);
 *   4. otherwise an Organization the adapters own, keyed in the facility's own identifier system
 *      (`urn:huimin:hl7:<MSH-4>:organization[:<authority>]`), created once and left as it is afterwards. It is not
 *      made `partOf` the facility: nothing in the message says the performer is one of its departments (OBX-23
 *      often names an outside laboratory), so a grant of the hospital does not reach it until it is registered.
 */
import { parseSearchRequest } from '@medplum/core';
import type { Organization } from '@medplum/fhirtypes';
import type { FieldValue } from '../hl7/message';
import type { MappingContext, Ref } from './context';
import { address, facilityIdentifier } from './datatypes';

const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';
const OID = /^\d+(\.\d+)+$/;

/** Lookups of this message (several OBX name the same performer): XON raw text → reference. */
const resolved = new WeakMap<MappingContext['writer'], Map<string, Ref | undefined>>();

async function registered(ctx: MappingContext, query: Record<string, string>): Promise<Ref | undefined> {
  const page = await ctx.repo.search(parseSearchRequest('Organization', { ...query, _elements: 'id' }), { count: 2, offset: 0 }, ctx.session.tx);
  // Two matches are ambiguous: the adapters' own Organization is used rather than guessing.
  return page.rows.length === 1 ? { reference: `Organization/${page.rows[0].id}` } : undefined;
}

export async function writePerformingOrganization(ctx: MappingContext, xon: FieldValue, xad?: FieldValue): Promise<Ref | undefined> {
  if (xon.empty) return undefined;
  let memo = resolved.get(ctx.writer);
  if (!memo) resolved.set(ctx.writer, (memo = new Map()));
  if (memo.has(xon.raw)) return memo.get(xon.raw);
  const ref = await resolve(ctx, xon, xad);
  memo.set(xon.raw, ref);
  return ref;
}

async function resolve(ctx: MappingContext, xon: FieldValue, xad: FieldValue | undefined): Promise<Ref | undefined> {
  const name = xon.get(1).trim();
  const id = (xon.get(10) || xon.get(3)).trim();
  if (!name && !id) return undefined;
  const display = name || id;
  const { facility } = ctx;
  if ((id || name) === facility.key || (!id && name === facility.name)) {
    return { reference: `Organization/${facility.id}`, display };
  }
  const authority = xon.get(6, 2).replace(/^urn:oid:/, '');
  if (id) {
    const department = await registered(ctx, { identifier: id, partof: `Organization/${facility.id}` });
    if (department) return { ...department, display };
    if (OID.test(authority)) {
      const known = await registered(ctx, { identifier: `urn:oid:${authority}|${id}` });
      if (known) return { ...known, display };
    }
  }
  const identifier = facilityIdentifier(ctx.facility, 'organization', id || name, id ? xon.get(6, 1) || authority : 'name');
  if (id && xon.get(7)) identifier.type = { coding: [{ system: V2_0203, code: xon.get(7) }] };
  const organization: Organization = { resourceType: 'Organization', identifier: [identifier], active: true };
  if (name) organization.name = name;
  const where = xad && address(xad);
  if (where) organization.address = [where];
  const ref = await ctx.writer.put(organization, identifier, 'create-if-none');
  return { ...ref, display };
}
