#!/usr/bin/env node
// Sums what a GNU ld map file kept in .text/.rodata/.data/.bss, per input object: `map-sizes.mjs FILE`.
// Prints JSON {object: {flash, ram}} (flash = text + rodata + data, ram = data + bss).
import { readFileSync } from 'node:fs';

const text = readFileSync(process.argv[2], 'utf8');
const body = text.slice(text.indexOf('Linker script and memory map'));
const out = {};
const re = /^ (\.(?:text|rodata|data|bss)[^\s]*)\s*\n?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+)/gm;
for (const m of body.matchAll(re)) {
  const [, section, , sizeHex, object] = m;
  const size = parseInt(sizeHex, 16);
  if (!size) continue;
  const name = object.replace(/^.*\//, '');
  const entry = (out[name] ??= { flash: 0, ram: 0 });
  if (!section.startsWith('.bss')) entry.flash += size;
  if (section.startsWith('.data') || section.startsWith('.bss')) entry.ram += size;
}
console.log(JSON.stringify(out));
