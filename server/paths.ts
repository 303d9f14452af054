/** Where the project's files are at run time (compiled code runs from dist/server/). */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
  return dir;
}

export const projectRoot = findRoot();
/** the softphone as built (dist/web), else its sources */
export const webRoot = fs.existsSync(path.join(projectRoot, 'dist', 'web', 'index.html'))
  ? path.join(projectRoot, 'dist', 'web')
  : path.join(projectRoot, 'web');
