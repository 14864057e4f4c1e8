// Live progress for an import page: polls the import's status JSON and moves the bar.
//
// Markup: <section id="import-progress" data-status-url="..."> with <progress id="import-bar">
// and <p id="import-phase">. Without JavaScript the page refreshes itself (a <noscript> meta
// refresh); with it, the page reloads once, when the import has finished, to show the report.
(function () {
  "use strict";

  var section = document.getElementById("import-progress");
  if (!section || !section.dataset.statusUrl) {
    return;
  }
  var bar = document.getElementById("import-bar");
  var phase = document.getElementById("import-phase");
  var url = section.dataset.statusUrl;
  var delay = 1000;

  function describe(status) {
    if (status.status === "queued") {
      return "Waiting for a worker…";
    }
    var name = status.phase || status.status;
    name = name.charAt(0).toUpperCase() + name.slice(1);
    return name + ": " + status.progress + "% · " +
      Number(status.rows_processed).toLocaleString() + " rows read";
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (status) {
        if (status.finished) {
          window.location.reload();
          return;
        }
        bar.value = status.progress;
        bar.textContent = status.progress + "%";
        phase.textContent = describe(status);
        delay = 1000;
        window.setTimeout(poll, delay);
      })
      .catch(function () {
        delay = Math.min(delay * 2, 15000); // the server is busy or restarting: back off
        window.setTimeout(poll, delay);
      });
  }

  window.setTimeout(poll, delay);
})();
