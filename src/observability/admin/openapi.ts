// The OpenAPI 3.1 document of the admin API (GET /api/v1/openapi.json, public), built from the route table and
// the schemas the router validates with: documentation and enforcement cannot drift apart.

import { petrelVersionSync } from '../version.js';
import { API_PREFIX, type Op } from './router.js';
import { RESPONSES, SCHEMAS } from './schema.js';

const STATUS_TEXT: Record<number, string> = {
  400: 'invalid request (details name each offending path)',
  401: 'missing or wrong bearer token',
  403: 'refused by the authorizePublish hook, the ACL file, or $SYS',
  404: 'not found',
  413: 'too large (body over 1 MiB, or a PUBLISH over limits.maxPacketSize)',
  503: 'the broker is above its memory limit or shutting down',
};

const json = (schema: string): Record<string, unknown> => ({ 'application/json': { schema: { $ref: `#/components/schemas/${schema}` } } });

export function openApiDocument(ops: readonly Op[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of ops) {
    const full = op.path === '/openapi.json' ? `${API_PREFIX}/openapi.json` : `${API_PREFIX}${op.path}`;
    const parameters: Record<string, unknown>[] = [];
    for (const m of op.path.matchAll(/\{(\w+)\}/g)) {
      parameters.push({ name: m[1], in: 'path', required: true, description: 'URL-encoded', schema: { type: 'string' } });
    }
    for (const q of op.query ?? []) parameters.push({ name: q.name, in: 'query', required: q.required === true, description: q.description, schema: q.schema });
    const responses: Record<string, unknown> = {
      [String(op.ok.status)]: { description: 'success', content: json(op.ok.schema) },
    };
    const errors = op.open === true ? [] : [400, 401, ...(op.errors ?? [])];
    if (op.body !== undefined && !errors.includes(413)) errors.push(413);
    for (const e of errors) responses[String(e)] = { description: STATUS_TEXT[e] ?? 'error', content: json('error') };
    const o: Record<string, unknown> = {
      operationId: `${op.method.toLowerCase()}${op.path.replace(/[{}]/g, '').replace(/[/.](\w)/g, (_m, c: string) => c.toUpperCase())}`,
      summary: op.summary,
      responses,
    };
    if (parameters.length > 0) o.parameters = parameters;
    if (op.body !== undefined) o.requestBody = { required: op.body.optional !== true, content: json(op.body.name) };
    if (op.open === true) o.security = [];
    (paths[full] ??= {})[op.method.toLowerCase()] = o;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Petrel admin API',
      version: petrelVersionSync(),
      description:
        'Off unless http.adminToken (--admin-token-file, PETREL_ADMIN_TOKEN) is set. Every route but this document needs Authorization: Bearer <token>. ' +
        'Lists page with ?limit= (default 100, at most 1000) and ?cursor= (the next of the previous page). Mutating actions are logged (event admin.<action>).',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: { ...SCHEMAS, ...RESPONSES, openapi: { type: 'object', description: 'an OpenAPI 3.1 document' } },
    },
  };
}
