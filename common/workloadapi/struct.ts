import { invalidArgument } from '../errors';
import type { ProtoStruct, StructValue } from './proto';

/**
 * JSON values ⇄ `google.protobuf.Struct`. proto-loader has no wrapper for
 * Struct (protobufjs only special-cases Any), so grpc-js must be given the
 * message form `{fields: {k: {stringValue: ...}}}`; a plain object would be
 * encoded as an empty Struct without complaint.
 */

/**
 * The message form of a JSON object, as `google.protobuf.Struct`.
 * @throws TesseraError INVALID_ARGUMENT for values JSON cannot hold (undefined, bigint, functions, non-finite numbers)
 * @example toStruct({ aud: ['db'] }) // { fields: { aud: { listValue: { values: [{ stringValue: 'db' }] } } } }
 */
export function toStruct(obj: Record<string, unknown>): ProtoStruct {
  const fields: Record<string, StructValue> = {};
  for (const [k, v] of Object.entries(obj)) fields[k] = toValue(v, k);
  return { fields };
}

function toValue(v: unknown, path: string): StructValue {
  if (v === null) return { nullValue: 'NULL_VALUE' };
  switch (typeof v) {
    case 'string':
      return { stringValue: v };
    case 'boolean':
      return { boolValue: v };
    case 'number':
      if (!Number.isFinite(v)) throw invalidArgument(`claim ${path} is not a finite number`);
      return { numberValue: v };
    case 'object':
      if (Array.isArray(v)) return { listValue: { values: v.map((x, i) => toValue(x, `${path}[${i}]`)) } };
      return { structValue: toStruct(v as Record<string, unknown>) };
    default:
      throw invalidArgument(`claim ${path} has a ${typeof v} value, which json cannot hold`);
  }
}

/** The JSON object a decoded `google.protobuf.Struct` stands for (the inverse of {@link toStruct}). */
export function fromStruct(s: ProtoStruct | null | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s?.fields ?? {})) out[k] = fromValue(v);
  return out;
}

function fromValue(v: StructValue): unknown {
  // With `oneofs: true` proto-loader names the member that is set; fall back to looking for one.
  const kind = v.kind ?? (Object.keys(v) as (keyof StructValue)[]).find((k) => v[k] !== undefined);
  switch (kind) {
    case 'stringValue':
      return v.stringValue;
    case 'numberValue':
      return v.numberValue;
    case 'boolValue':
      return v.boolValue;
    case 'structValue':
      return fromStruct(v.structValue);
    case 'listValue':
      return (v.listValue?.values ?? []).map(fromValue);
    default:
      return null;
  }
}
