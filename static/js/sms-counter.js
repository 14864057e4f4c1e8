// Live SMS encoding and segment counter for the template editor.
//
// Markup: <textarea data-sms-counter="body-counter"></textarea> <span id="body-counter"></span>
// Include with <script src=".../sms-counter.js" defer></script>; no inline script needed.
// The counting mirrors outreach/content/segments.py; keep both in step.
(function () {
  "use strict";

  // 3GPP TS 23.038 default alphabet (without the escape code), then the extension table whose
  // characters are sent as ESC + char and cost two septets.
  var GSM7_BASIC =
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ" +
    " !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§" +
    "¿abcdefghijklmnopqrstuvwxyzäöñüà";
  var GSM7_EXTENDED = "\f^{}\\[]~|€";

  function isGsm7(chars) {
    for (var i = 0; i < chars.length; i++) {
      if (GSM7_BASIC.indexOf(chars[i]) < 0 && GSM7_EXTENDED.indexOf(chars[i]) < 0) {
        return false;
      }
    }
    return true;
  }

  // Parts needed when characters are packed in order and none is split across parts.
  function pack(costs, perPart) {
    var parts = 1;
    var used = 0;
    for (var i = 0; i < costs.length; i++) {
      if (used + costs[i] > perPart) {
        parts += 1;
        used = 0;
      }
      used += costs[i];
    }
    return parts;
  }

  function countSegments(body) {
    // Array.from splits by code point, so an emoji is one character, as in Python.
    var chars = Array.from(body);
    var gsm = isGsm7(chars);
    var costs = chars.map(function (c) {
      if (gsm) {
        return GSM7_EXTENDED.indexOf(c) >= 0 ? 2 : 1;
      }
      return c.length; // UTF-16 code units: 2 for a surrogate pair
    });
    var units = costs.reduce(function (a, b) { return a + b; }, 0);
    var single = gsm ? 160 : 70;
    var perPart = gsm ? 153 : 67;
    var multi = units > single;
    return {
      encoding: gsm ? "GSM-7" : "UCS-2",
      segments: multi ? pack(costs, perPart) : units ? 1 : 0,
      units: units,
      per_segment: multi ? perPart : single,
      characters: chars.length,
    };
  }

  function plural(count, noun) {
    return count + " " + noun + (count === 1 ? "" : "s");
  }

  function summary(result) {
    return result.encoding + " · " + plural(result.segments, "segment") + " · " +
      plural(result.characters, "character");
  }

  function update(textarea) {
    var output = document.getElementById(textarea.getAttribute("data-sms-counter"));
    if (output) {
      output.textContent = summary(countSegments(textarea.value));
    }
  }

  if (typeof module === "object" && module.exports) {
    // Lets the Python tests run this file under Node and compare with segments.py.
    module.exports = { countSegments: countSegments, summary: summary };
  }

  if (typeof document === "undefined") {
    return;
  }

  function start() {
    var textareas = document.querySelectorAll("textarea[data-sms-counter]");
    for (var i = 0; i < textareas.length; i++) {
      update(textareas[i]);
    }
  }

  // One delegated listener also covers textareas added after the page loaded.
  document.addEventListener("input", function (event) {
    var target = event.target;
    if (target && target.matches && target.matches("textarea[data-sms-counter]")) {
      update(target);
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
