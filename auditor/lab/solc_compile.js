// Compile one Solidity standard-JSON input with solc-js: input on stdin, output JSON on stdout.
// Usage: node solc_compile.js <npm package name, e.g. solc or solc-0.8.24> <project root>
'use strict';

const packageName = process.argv[2];
const projectRoot = process.argv[3] || process.cwd();

let solc;
try {
  // Resolve from the project root, not from this file, so an installed copy of the tool still
  // finds the compilers that `npm ci` put in the checkout.
  solc = require(require.resolve(packageName, { paths: [projectRoot, __dirname] }));
} catch (err) {
  process.stderr.write(`cannot load npm package ${packageName} from ${projectRoot}: ${err.message}\n`);
  process.exit(3);
}

const chunks = [];
process.stdin.on('data', (chunk) => chunks.push(chunk));
process.stdin.on('end', () => {
  const input = Buffer.concat(chunks).toString('utf8');
  // Imports were all inlined by the Python side; a callback that reaches this is a bug there.
  const findImports = (path) => ({ error: `import ${path} was not inlined in the input` });
  const output = solc.compile(input, { import: findImports });
  process.stdout.write(JSON.stringify({ solcVersion: solc.version(), output: JSON.parse(output) }));
});
