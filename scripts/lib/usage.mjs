// `--help` for the project's scripts: prints the script's own header comment (the lines
// starting with "//" after the shebang), which is where each script documents itself.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Prints the calling script's header and exits 0 when -h/--help is among the arguments. */
export function answerHelp(scriptUrl, argv = process.argv.slice(2)) {
  if (!argv.includes('--help') && !argv.includes('-h')) return;
  const lines = fs.readFileSync(fileURLToPath(scriptUrl), 'utf8').split('\n');
  const out = [];
  for (const line of lines.slice(lines[0]?.startsWith('#!') ? 1 : 0)) {
    if (!line.startsWith('//')) break;
    out.push(line.replace(/^\/\/ ?/, ''));
  }
  console.log(out.join('\n').trim());
  process.exit(0);
}
