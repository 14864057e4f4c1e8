/* Action pages: keep the signature or letter count fresh (the page works without this). */
(function () {
  "use strict";
  var box = document.querySelector("[data-count-url]");
  if (!box || !window.fetch) { return; }
  var url = box.getAttribute("data-count-url");
  var format = function (n) { return Number(n).toLocaleString("en-US"); };
  function update() {
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "omit" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        var count = box.querySelector("[data-count]");
        if (count) { count.textContent = format(data.count); }
        var letters = box.querySelector("[data-letters]");
        if (letters) { letters.textContent = format(data.letters_sent); }
        var bar = box.querySelector("progress[data-progress]");
        if (bar) { bar.value = Math.min(data.count, Number(bar.max)); }
      })
      .catch(function () { /* offline: keep the number the server rendered */ });
  }
  update();
  window.setInterval(update, 15000);
}());
