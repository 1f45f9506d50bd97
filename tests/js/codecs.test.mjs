// The page's buffer codecs against buffers encoded by ocrviz.widgets.payload (non-square shapes).
import assert from "node:assert/strict";
import { test } from "node:test";
import { classAt, decode, dequantise, f32, resample, u8 } from "../../ocrviz/widgets/js/codecs.js";
import { dataView, fixtures } from "./fixtures.mjs";

const TOL = { float32: 0, fixed24: 1 / (2 ** 24 - 1), fixed16: 1 / (2 ** 16 - 1), exact: 0 };

for (const c of fixtures.codecs) {
  test(`decode ${c.name}`, async () => {
    const out = await decode({ ...c.spec, buf: dataView(c.spec.b64) });
    const got = c.kind === "u8" ? u8(out) : f32(out);
    assert.equal(got.length, c.shape.reduce((a, b) => a * b, 1), "one value per element of the shape");
    for (let i = 0; i < got.length; i++) {
      const want = c.kind === "u8" ? c.values[i] : Math.fround(c.values[i]);
      assert.ok(Math.abs(got[i] - want) <= TOL[c.precision] * 0.5 + 1e-9 * (c.precision !== "float32"),
        `${c.name}[${i}]: ${got[i]} vs ${want}`);
    }
  });
}

test("f32 copies an unaligned view", () => {
  const bytes = new Uint8Array(9), f = new Float32Array([1.5, -2.25]);
  bytes.set(new Uint8Array(f.buffer), 1);
  assert.deepEqual(Array.from(f32(new DataView(bytes.buffer, 1, 8))), [1.5, -2.25]);
  assert.equal(f32(null).length, 0);
  assert.equal(u8(new DataView(new ArrayBuffer(0))).length, 0);
});

test("dequantise: one scale per map", () => {
  assert.deepEqual(Array.from(dequantise(new Uint8Array([1, 2, 3, 4, 5, 6]), [0.5, 2], 3)), [0.5, 1, 1.5, 8, 10, 12]);
});

test("classAt and resample on a 2 x 3 grid with stride 4 (image 8 x 12)", () => {
  const feat = { data: new Uint8Array([0, 1, 2, 3, 4, 5]), hw: [2, 3] };
  assert.equal(classAt(feat, 1, 2, 2, 3, 4), 5);
  const img = { data: resample(feat, 8, 12, 4), hw: [8, 12] };
  assert.equal(img.data.length, 96);
  assert.equal(img.data[7 * 12 + 11], 5);                      // bottom-right pixel: the bottom-right cell
  assert.equal(img.data[3 * 12 + 4], 1);                       // pixel (3, 4): cell (0, 1)
  assert.equal(classAt(img, 1, 1, 2, 3, 4), 4);                // the cell's centre pixel (6, 6)
  assert.deepEqual(Array.from(resample(img, 2, 3, 4)), [0, 1, 2, 3, 4, 5]);
  assert.equal(classAt({ data: new Uint8Array(0), hw: [] }, 0, 0, 2, 3, 4), null);
});
