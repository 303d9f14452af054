/**
 * `--help` for the benches: prints the bench's own header comment (where each documents its
 * options) and exits, before it checks tools or starts anything.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

/** `moduleUrl`: the bench's import.meta.url (its compiled .js; the .ts source is read beside dist/). */
export function answerHelp(moduleUrl: string): void {
  if (!process.argv.includes('--help') && !process.argv.includes('-h')) return;
  const js = fileURLToPath(moduleUrl);
  const ts = js.replace(/\/dist\/bench\//, '/bench/').replace(/\.js$/, '.ts');
  const text = fs.existsSync(ts) ? fs.readFileSync(ts, 'utf8') : '';
  const m = /^\/\*\*([\s\S]*?)\*\//.exec(text);
  console.log(m ? m[1]!.split('\n').map((l) => l.replace(/^\s*\* ?/, '')).join('\n').trim() : `usage: node ${js} (see the source for options)`);
  process.exit(0);
}
