// The kernel request/answer protocol of counterfactuals for models too large for the page
// (ocrviz.widgets.kernel_cf): the page sets `cf_request` {key, edit, cell, dropped, gain}; Python answers
// the pixel in `cf_answer` {key, edit, cell, base, influence, after, whole, whole_pending, whole_error |
// error} and then the whole image in `cf_answer_pred` (h*w uint8).
//
// Views of one widget share its request and answer traits: a view takes an answer already there for
// its key, does not re-send a request already there (no trait would change, no answer would come),
// and asks again when another view's request overtook its own.
import { u8 } from "./codecs.js";

export function kernelClient(model, w) {
  let answer = null, asked = "", request = null;
  const client = {
    wholePred: null, wholeChanged: null,     // every cell's class under the answered edit, and how many changed
    get answer() { return answer; },
    adopt(ans, edit) {                       // take the kernel's answer to our request (and its whole image, once there)
      answer = { ...ans, p: ans.cell[0] * w + ans.cell[1] };
      if (ans.whole && ans.edit === edit) {
        client.wholePred = Uint8Array.from(u8(model.get("cf_answer_pred")));
        client.wholeChanged = ans.whole.changed;
      }
    },
    // {base, influence, after, edited, pending} of cell p under the edit `edit` (editSig)
    at(p, edit) {
      const key = edit + "@" + p;
      if (answer && answer.key === key) return { ...answer, edited: answer.after !== null, pending: false };
      if (asked !== key) {
        asked = key;
        const [dropped, gain] = JSON.parse(edit);
        request = { key, edit, cell: [Math.floor(p / w), p % w], dropped, gain };
        const last = model.get("cf_answer") || {};
        if (last.key === key && !last.error) {          // already answered (for another view of this widget)
          client.adopt(last, edit);
          return { ...answer, edited: answer.after !== null, pending: false };
        }
        if ((model.get("cf_request") || {}).key !== key) { model.set("cf_request", request); model.save_changes(); }
      }
      const same = answer && answer.p === p;       // this cell's own numbers stay while the edit is re-run
      return { base: same ? answer.base : null, influence: same ? answer.influence : null, after: null,
        edited: edit !== "[[],null]", pending: true };
    },
    // a new cf_answer arrived: "redraw" (ours, for the cell and edit shown: `current` = edit@p), "error"
    // (ours failed: {error}), or "none" (not ours: asked again when our own is unanswered)
    onAnswer(current, edit) {
      const ans = model.get("cf_answer") || {};
      if (!ans.key) return { type: "none" };
      if (ans.key !== asked) {
        if (request && !(answer && answer.key === asked)) { model.set("cf_request", { ...request }); model.save_changes(); }
        return { type: "none" };
      }
      if (ans.error) return { type: "error", error: ans.error };
      client.adopt(ans, edit);
      return { type: ans.key === current ? "redraw" : "none" };
    },
  };
  return client;
}
