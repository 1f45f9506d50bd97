// tests/js/fixtures.json (written by make_fixtures.py from ocrviz's Python) as JS values.
import { readFileSync } from "node:fs";

export const fixtures = JSON.parse(readFileSync(new URL("./fixtures.json", import.meta.url), "utf8"));
export function dataView(b64) { const b = Buffer.from(b64, "base64"); return new DataView(b.buffer, b.byteOffset, b.byteLength); }
