#!/usr/bin/env node
// Writes config/schema.json (JSON Schema of the configuration, for editors and operators)
// from server/config/schema.ts as compiled to dist/. `npm run config:schema`; a unit test
// checks the committed file is current.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { answerHelp } from './lib/usage.mjs';

answerHelp(import.meta.url);

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { ConfigSchema } = await import(path.join(root, 'dist', 'server', 'config', 'schema.js'));
// every key has a default: nothing is required in a file
const optional = (node) => {
  if (Array.isArray(node)) return node.map(optional);
  if (node === null || typeof node !== 'object') return node;
  const out = {};
  for (const [k, v] of Object.entries(node)) if (k !== 'required') out[k] = optional(v);
  return out;
};
const schema = { $schema: 'http://json-schema.org/draft-07/schema#', title: 'sip-webrtc-gateway configuration', ...optional(ConfigSchema) };
// users' entries do need a name and a password
schema.properties.users.items.required = ['username', 'password'];
const text = JSON.stringify(schema, null, 2) + '\n';
fs.writeFileSync(path.join(root, 'config', 'schema.json'), text);
console.log('config/schema.json written');
