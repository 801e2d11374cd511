// Node module hooks: a .jsx file is compiled to an ES module with esbuild (React's automatic runtime), as HubSpot's
// own build does when it bundles the card. The only build step the tests need: Node cannot read JSX itself.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { transform } from 'esbuild';

export async function load(url, context, nextLoad) {
  if (!url.startsWith('file:') || !url.endsWith('.jsx')) {
    return nextLoad(url, context);
  }
  const path = fileURLToPath(url);
  const { code } = await transform(await readFile(path, 'utf8'), {
    loader: 'jsx',
    jsx: 'automatic',
    format: 'esm',
    sourcefile: path,
    sourcemap: 'inline',
  });
  return { format: 'module', source: code, shortCircuit: true };
}
