// Reads a topology file (YAML or JSON) and validates it once, at start-up.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { TopologyError } from './errors.ts';
import { validateTopology, type Topology } from './topology.ts';

export function loadTopology(path: string): Topology {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new TopologyError('(file)', `cannot read ${path}: ${(error as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new TopologyError('(file)', `${path} is not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(error as Error).message}`);
  }
  return validateTopology(doc);
}
