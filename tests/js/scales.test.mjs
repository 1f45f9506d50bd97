import assert from "node:assert/strict";
import { test } from "node:test";
import { LOG_DECADES, colourise, describeScale, heatLut, maxOf, scaled, viridis, VIRIDIS } from "../../ocrviz/widgets/js/scales.js";

test("scaled: sqrt, log, linear against their formulas; clipped to [0, 1]", () => {
  assert.equal(scaled(0.25, 1, "sqrt"), 0.5);
  assert.equal(scaled(0.25, 1, "linear"), 0.25);
  assert.ok(Math.abs(scaled(0.01, 1, "log") - (1 - 2 / LOG_DECADES)) < 1e-12);
  assert.equal(scaled(1e-5, 1, "log"), 0);                     // below the bottom decade
  assert.equal(scaled(2, 1, "sqrt"), 1);
  assert.equal(scaled(0.5, 0, "sqrt"), 0);                     // an empty map draws nothing
  assert.equal(scaled(-1, 1, "linear"), 0);
  assert.equal(scaled(NaN, 1, "linear"), 0);
});

test("viridis ends and lut alpha", () => {
  assert.deepEqual(viridis(0), VIRIDIS[0]);
  assert.deepEqual(viridis(1), VIRIDIS[VIRIDIS.length - 1]);
  assert.deepEqual(viridis(2), VIRIDIS[VIRIDIS.length - 1]);
  const lut = heatLut();
  assert.equal(lut[0] >>> 24, 70);
  assert.equal(lut[255] >>> 24, 255);
  assert.equal(lut[255] & 0xff, VIRIDIS[VIRIDIS.length - 1][0]);   // little-endian: red in the low byte
});

test("colourise: the top value gets the top colour, zero the bottom", () => {
  const lut = heatLut(), out = new Uint32Array(3);
  colourise(new Float32Array([0, 0.04, 0.16]), out, Math.fround(0.16), "sqrt", lut);   // top: the map's own (float32) maximum
  assert.equal(out[0], lut[0]); assert.equal(out[2], lut[255]); assert.equal(out[1], lut[127]);
  assert.equal(maxOf(new Float32Array([0.1, 0.3, 0.2])), Math.fround(0.3));
});

test("describeScale states the top value, the bottom and the scale", () => {
  assert.equal(describeScale(0.0123, "x", "sqrt"), "top colour = 0.0123 (x); bottom = 0; √ scale");
  assert.match(describeScale(0.5, "x", "log"), /bottom = ≤ 0\.00050 \(1\/1000 of the top\); log scale$/);
});
